# The shoal pytest plugin (runtime fixtures, leak check) for every package's tests.
pytest_plugins = ["shoal.testing.plugin"]
