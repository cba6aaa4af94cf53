"""Config precedence: shoal.init arguments > SHOAL_* environment > shoal.toml / [tool.shoal] > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.config import INTERNAL_ENV, KEYS, load_config, parse_size
from shoal.exceptions import ConfigError


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    config = load_config(env={}, cwd=tmp_path)
    assert config.backend == "local"
    assert config.num_cpus is None
    assert config.log_to_driver is True
    assert config.source("backend") == "default"


def test_shoal_toml_beats_defaults(tmp_path: Path) -> None:
    (tmp_path / "shoal.toml").write_text('backend = "inline"\nnum_cpus = 3\n')
    config = load_config(env={}, cwd=tmp_path)
    assert config.backend == "inline"
    assert config.num_cpus == 3
    assert config.source("num_cpus") == str(tmp_path / "shoal.toml")


def test_pyproject_tool_shoal_is_read_from_a_parent_folder(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.shoal]\nnum_cpus = 5\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    config = load_config(env={}, cwd=sub)
    assert config.num_cpus == 5
    assert "[tool.shoal]" in config.source("num_cpus")


def test_nearest_file_wins(tmp_path: Path) -> None:
    (tmp_path / "shoal.toml").write_text("num_cpus = 1\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "pyproject.toml").write_text("[tool.shoal]\nnum_cpus = 2\n")
    assert load_config(env={}, cwd=sub).num_cpus == 2


def test_pyproject_without_tool_shoal_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "shoal.toml").write_text("num_cpus = 7\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load_config(env={}, cwd=sub).num_cpus == 7


def test_environment_beats_file(tmp_path: Path) -> None:
    (tmp_path / "shoal.toml").write_text('backend = "inline"\nnum_cpus = 3\n')
    config = load_config(env={"SHOAL_NUM_CPUS": "6"}, cwd=tmp_path)
    assert config.num_cpus == 6
    assert config.backend == "inline"
    assert config.source("num_cpus") == "environment variable SHOAL_NUM_CPUS"


def test_init_arguments_beat_environment_and_file(tmp_path: Path) -> None:
    (tmp_path / "shoal.toml").write_text("num_cpus = 3\nlog_to_driver = false\n")
    config = load_config({"num_cpus": 8, "namespace": None}, env={"SHOAL_NUM_CPUS": "6"}, cwd=tmp_path)
    assert config.num_cpus == 8
    assert config.source("num_cpus") == "shoal.init()"
    # None means "not given": the file's value stands.
    assert config.log_to_driver is False


def test_unknown_key_in_file_names_key_and_file(tmp_path: Path) -> None:
    (tmp_path / "shoal.toml").write_text("num_cpu = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'num_cpu' in .*shoal\.toml.*did you mean 'num_cpus'"):
        load_config(env={}, cwd=tmp_path)


def test_bad_value_in_file_names_key_and_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.shoal]\nnum_cpus = "many"\n')
    with pytest.raises(ConfigError, match=r"bad value for 'num_cpus' from \[tool\.shoal\] in .*pyproject\.toml"):
        load_config(env={}, cwd=tmp_path)


def test_unknown_environment_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"SHOAL_NUM_CPU\b.*did you mean 'SHOAL_NUM_CPUS'"):
        load_config(env={"SHOAL_NUM_CPU": "2"}, cwd=tmp_path)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'log_to_driver' from environment variable SHOAL_LOG_TO_DRIVER"):
        load_config(env={"SHOAL_LOG_TO_DRIVER": "maybe"}, cwd=tmp_path)


def test_bad_init_argument_names_shoal_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'object_store_memory' from shoal\.init\(\)"):
        load_config({"object_store_memory": "lots"}, env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"unknown key 'nmespace' in shoal\.init\(\).*'namespace'"):
        load_config({"nmespace": "x"}, env={}, cwd=tmp_path)


def test_internal_variables_are_declared_and_not_rejected(tmp_path: Path) -> None:
    env = {name: "1" for name in INTERNAL_ENV}
    assert load_config(env=env, cwd=tmp_path).backend == "local"


def test_every_key_has_an_env_name_and_help() -> None:
    for key in KEYS.values():
        assert key.env == "SHOAL_" + key.name.upper()
        assert key.help


def test_values_are_parsed(tmp_path: Path) -> None:
    env = {
        "SHOAL_OBJECT_STORE_MEMORY": "512MiB",
        "SHOAL_RESOURCES": '{"accel": 2}',
        "SHOAL_LOG_TO_DRIVER": "off",
    }
    config = load_config(env=env, cwd=tmp_path)
    assert config.object_store_memory == 512 * 1024**2
    assert config.resources == {"accel": 2.0}
    assert config.log_to_driver is False


@pytest.mark.parametrize(("text", "size"), [(10, 10), ("2GB", 2 * 10**9), ("1.5 KiB", 1536), ("7", 7)])
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", [-1, "ten", True, "5 parsecs"])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


def test_resources_cannot_name_cpu(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="num_cpus"):
        load_config({"resources": {"CPU": 2}}, env={}, cwd=tmp_path)
