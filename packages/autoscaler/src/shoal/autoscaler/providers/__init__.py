"""Built-in node providers: ``aws``, ``gcp``, ``azure``, ``kuberay`` and ``local``.

Each module imports its cloud SDK only when a provider is created without an
injected client, so importing a module never needs the SDK.
"""
