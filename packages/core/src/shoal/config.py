"""shoal's configuration: every key, every ``SHOAL_*`` variable, and how they combine.

Precedence, strongest first: arguments to ``shoal.init(...)``, ``SHOAL_*``
environment variables, a ``shoal.toml`` file or a ``[tool.shoal]`` table in
the nearest ``pyproject.toml`` (searched from the working directory upwards),
then the defaults declared here. An unknown key or a bad value is a
:class:`~shoal.exceptions.ConfigError` that names the key and its source.

All ``SHOAL_*`` environment variables shoal reads are declared in this module:
the user-facing ones in :data:`KEYS` and the ones shoal sets for its own
processes in :data:`INTERNAL_ENV`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.exceptions import ConfigError

__all__ = ["INTERNAL_ENV", "KEYS", "Config", "Key", "find_config_file", "load_config", "parse_size"]


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


def parse_size(value: Any) -> int:
    """Parse a byte count given as an int or a string such as ``"512MiB"`` or ``"2GB"``."""
    if isinstance(value, bool):
        raise ValueError("expected a size in bytes, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ValueError(f"expected a size in bytes such as 1000000 or '512MiB', got {value!r}")


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected true or false, got {value!r}")


def _parse_count(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got a boolean")
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value >= 0:
        return value
    raise ValueError(f"expected a whole number >= 0, got {value!r}")


def _parse_str(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"expected a non-empty string, got {value!r}")


def _parse_resources(value: Any) -> dict[str, float]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"expected a JSON object such as '{{\"accel\": 2}}': {e}") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of resource name to amount, got {value!r}")
    out: dict[str, float] = {}
    for name, amount in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"resource names must be non-empty strings, got {name!r}")
        if name in ("CPU", "GPU", "memory"):
            raise ValueError(f"use num_cpus/num_gpus/memory instead of resources[{name!r}]")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"resource {name!r} needs a number >= 0, got {amount!r}")
        out[name] = float(amount)
    return out


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse_optional(value: Any) -> Any:
        return None if value is None else parse(value)

    return parse_optional


@dataclass(frozen=True)
class Key:
    """One configuration key: its name, environment variable, parser, default and meaning."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "SHOAL_" + self.name.upper()


KEYS: dict[str, Key] = {
    k.name: k
    for k in [
        Key("backend", _parse_str, "local", "Backend to run on: inline, local, cluster, cloud."),
        Key("address", _optional(_parse_str), None, "Cluster address HOST:PORT, or 'auto'."),
        Key("num_cpus", _optional(_parse_count), None, "CPUs to offer (default: os.cpu_count())."),
        Key("num_gpus", _optional(_parse_count), None, "GPUs to offer (default: detected)."),
        Key("resources", _optional(_parse_resources), None, "Custom resources, name to amount."),
        Key(
            "object_store_memory",
            _optional(parse_size),
            None,
            "Shared-memory budget of the object store before spilling (default: 30% of RAM).",
        ),
        Key("namespace", _optional(_parse_str), None, "Namespace for named actors."),
        Key("log_to_driver", _parse_bool, True, "Stream worker stdout/stderr to the driver."),
        Key("temp_dir", _parse_str, "/tmp/shoal", "Where sessions keep sockets, logs and spill files."),
        Key("spill_dir", _optional(_parse_str), None, "Where objects spill (default: TEMP_DIR/spill)."),
        Key(
            "max_inline_bytes",
            parse_size,
            100 * 1024,
            "Serialized values up to this size travel inline instead of through shared memory.",
        ),
        Key(
            "worker_spin_us",
            _parse_count,
            200,
            "Microseconds a process polls before sleeping when waiting for its next message.",
        ),
        Key("token_path", _optional(_parse_str), None, "Cluster token file (default: ~/.shoal/token)."),
        Key("tls", _parse_bool, False, "Use TLS on every cluster channel."),
    ]
}

#: Variables shoal sets for the processes it starts; users do not set these.
INTERNAL_ENV: dict[str, str] = {
    "SHOAL_WORKER_FD": "File descriptor of a worker's connection to its node runtime.",
    "SHOAL_SESSION_DIR": "Directory of the running session (sockets, logs, shared memory names).",
    "SHOAL_WORKER_ID": "Identifier of a worker process within its session.",
    "SHOAL_NODE_ID": "Identifier of the node a worker belongs to.",
    "SHOAL_JOB_ID": "Identifier of the job a worker serves.",
    "SHOAL_PARENT_PID": "PID of the process that started a worker; the worker exits when it dies.",
    "SHOAL_AUTOSCALER_NODE_ID": "Provider id of the node an autoscaler launched (read by its node agent).",
    "SHOAL_AUTOSCALER_NODE_TYPE": "Node type, from the cluster config, of a node an autoscaler launched.",
}

_ENV_NAMES = {k.env: k for k in KEYS.values()}


@dataclass(frozen=True)
class Config:
    """Resolved configuration; ``sources`` says where each key's value came from."""

    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _apply(values: dict[str, Any], sources: dict[str, str], key: str, raw: Any, where: str) -> None:
    spec = KEYS[key]
    try:
        values[key] = spec.parse(raw)
    except ValueError as e:
        raise ConfigError(f"bad value for {key!r} from {where}: {e}") from None
    sources[key] = where


def find_config_file(start: str | os.PathLike[str] | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The nearest ``shoal.toml`` or ``pyproject.toml`` with ``[tool.shoal]``, and its table."""
    import tomllib

    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "shoal.toml"
        if candidate.is_file():
            try:
                return candidate, tomllib.loads(candidate.read_text())
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"cannot parse {candidate}: {e}") from None
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                table = tomllib.loads(candidate.read_text()).get("tool", {}).get("shoal")
            except tomllib.TOMLDecodeError:
                # A broken pyproject.toml that may not be ours: keep looking upwards.
                continue
            if table is not None:
                if not isinstance(table, dict):
                    raise ConfigError(f"[tool.shoal] in {candidate} must be a table")
                return candidate, table
    return None


def load_config(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Config:
    """Resolve the configuration from defaults, file, environment and ``overrides``.

    ``overrides`` are the arguments given to ``shoal.init``; a value of None
    there means "not given" and does not override weaker sources.
    """
    env = os.environ if env is None else env
    values = {name: key.default for name, key in KEYS.items()}
    sources: dict[str, str] = {}

    found = find_config_file(cwd)
    if found is not None:
        path, table = found
        where = f"{path}" if path.name == "shoal.toml" else f"[tool.shoal] in {path}"
        for name, raw in table.items():
            if name not in KEYS:
                raise ConfigError(f"unknown key {name!r} in {where}{_suggest(name, list(KEYS))}")
            _apply(values, sources, name, raw, where)

    for var, raw in env.items():
        if not var.startswith("SHOAL_") or var in INTERNAL_ENV:
            continue
        key = _ENV_NAMES.get(var)
        if key is None:
            known = list(_ENV_NAMES) + list(INTERNAL_ENV)
            raise ConfigError(f"unknown environment variable {var}{_suggest(var, known)}")
        _apply(values, sources, key.name, raw, f"environment variable {var}")

    for name, raw in (overrides or {}).items():
        if name not in KEYS:
            raise ConfigError(f"unknown key {name!r} in shoal.init(){_suggest(name, list(KEYS))}")
        if raw is None:
            continue
        _apply(values, sources, name, raw, "shoal.init()")

    return Config(values, sources)
