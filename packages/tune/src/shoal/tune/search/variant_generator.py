"""Walking a search space: find its domains and grids, resolve a sample, name it.

A search space is a nested structure of dicts and lists whose leaves are
constants, :class:`~shoal.tune.search.sample.Domain` objects or
``{"grid_search": [...]}`` markers. Paths are tuples of keys and list indices.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from shoal.tune.search.sample import Domain, _rng

__all__ = [
    "Path",
    "assign_value",
    "count_variants",
    "flatten_dict",
    "format_vars",
    "get_value",
    "grid_combinations",
    "is_grid",
    "parse_spec_vars",
    "resolve",
    "unflatten_dict",
]

Path = tuple[Any, ...]


def is_grid(value: Any) -> bool:
    """True for a ``{"grid_search": [...]}`` marker."""
    return isinstance(value, dict) and len(value) == 1 and "grid_search" in value


def _walk(space: Any, prefix: Path) -> Iterator[tuple[Path, Any]]:
    if is_grid(space) or isinstance(space, Domain):
        yield prefix, space
    elif isinstance(space, dict):
        for k, v in space.items():
            yield from _walk(v, (*prefix, k))
    elif isinstance(space, list):
        for i, v in enumerate(space):
            yield from _walk(v, (*prefix, i))
    else:
        yield prefix, space


def parse_spec_vars(
    space: dict[str, Any],
) -> tuple[list[tuple[Path, Any]], list[tuple[Path, Domain]], list[tuple[Path, list[Any]]]]:
    """Split a space into constants, domains (sampled or ``sample_from``) and grids, in path order."""
    constants: list[tuple[Path, Any]] = []
    domains: list[tuple[Path, Domain]] = []
    grids: list[tuple[Path, list[Any]]] = []
    for path, value in _walk(space, ()):
        if is_grid(value):
            grids.append((path, list(value["grid_search"])))
        elif isinstance(value, Domain) and value.is_grid():
            grids.append((path, list(value.categories)))  # type: ignore[attr-defined]
        elif isinstance(value, Domain):
            domains.append((path, value))
        else:
            constants.append((path, value))
    return constants, domains, grids


def get_value(config: Any, path: Path) -> Any:
    for key in path:
        config = config[key]
    return config


def assign_value(config: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        config = config[key]
    config[path[-1]] = value


def grid_combinations(grids: list[tuple[Path, list[Any]]]) -> list[tuple[Any, ...]]:
    """Every combination of grid values; the last grid varies fastest."""
    if not grids:
        return [()]
    return list(itertools.product(*(values for _, values in grids)))


def count_variants(space: dict[str, Any]) -> int:
    """Trials one sample of ``space`` expands to (the product of the grid sizes)."""
    _, _, grids = parse_spec_vars(space)
    return math.prod(len(v) for _, v in grids) if grids else 1


def resolve(
    space: dict[str, Any],
    grid_values: tuple[Any, ...] = (),
    random_state: Any = None,
    sampled: dict[Path, Any] | None = None,
) -> tuple[dict[str, Any], dict[Path, Any]]:
    """One concrete config from ``space``: grids set to ``grid_values``, domains drawn.

    ``sampled`` fixes some domain values (used to hold random values constant
    across a grid). ``sample_from`` functions run last, repeatedly, until each
    sees a config whose other values are concrete; they may depend on each
    other in any order. Returns the config and the values chosen for every
    grid and domain path.
    """
    rng: np.random.Generator = _rng(random_state)
    _, domains, grids = parse_spec_vars(space)
    config = _strip(space)
    chosen: dict[Path, Any] = {}
    for (path, _), value in zip(grids, grid_values, strict=True):
        assign_value(config, path, value)
        chosen[path] = value
    functions = []
    for path, domain in domains:
        if domain.is_function():
            functions.append((path, domain))
            continue
        value = sampled[path] if sampled and path in sampled else domain.sample(config=None, random_state=rng)
        assign_value(config, path, value)
        chosen[path] = value
    # sample_from functions may read each other's outputs: keep evaluating the ones whose
    # inputs are ready; a function that reads an unresolved one raises and is retried.
    pending = functions
    for _ in range(len(functions) + 1):
        if not pending:
            break
        still = []
        for path, domain in pending:
            try:
                value = domain.sample(config=config, random_state=rng)
            except _Unresolved:
                still.append((path, domain))
                continue
            if isinstance(value, _Placeholder):
                still.append((path, domain))
                continue
            assign_value(config, path, value)
            chosen[path] = value
        if len(still) == len(pending):
            names = ", ".join("/".join(map(str, p)) for p, _ in still)
            raise ValueError(f"sample_from functions depend on each other in a cycle: {names}")
        pending = still
    return config, chosen


class _Unresolved(Exception):
    """Raised when a sample_from function reads a value that is not resolved yet."""


class _Placeholder:
    """Stands in for an unresolved sample_from value; any use of it means 'not ready yet'."""

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise _Unresolved()

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _fail
    __truediv__ = __rtruediv__ = __floordiv__ = __pow__ = __neg__ = _fail
    __lt__ = __le__ = __gt__ = __ge__ = __float__ = __int__ = __index__ = _fail
    __getitem__ = __iter__ = __len__ = __bool__ = __call__ = __format__ = _fail

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise _Unresolved()


def _strip(space: Any) -> Any:
    """A deep copy of the space with every domain and grid replaced by a placeholder."""
    if is_grid(space):
        return _Placeholder()
    if isinstance(space, Domain):
        return _Placeholder()
    if isinstance(space, dict):
        return {k: _strip(v) for k, v in space.items()}
    if isinstance(space, list):
        return [_strip(v) for v in space]
    return copy.deepcopy(space)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) >= 1e-4 or value == 0 else f"{value:.4g}"
    text = str(value)
    return text


def format_vars(chosen: dict[Path, Any], max_len: int = 100) -> str:
    """``a=1,lr=0.0010`` from chosen values, keyed by each path's last element, for trial names."""
    parts = []
    for path, value in chosen.items():
        key = str(path[-1]) if path else "value"
        text = _short(value)
        for bad in "/\\:*?\"<>| [](){}'":
            text = text.replace(bad, "_")
        parts.append(f"{key}={text}")
    out = ",".join(parts)
    return out[:max_len]


def flatten_dict(d: dict[str, Any], delimiter: str = "/", prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a/b": 1}``; empty dicts are kept as values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{delimiter}{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten_dict(v, delimiter, key))
        else:
            out[key] = v
    return out


def unflatten_dict(d: dict[str, Any], delimiter: str = "/") -> dict[str, Any]:
    """Inverse of :func:`flatten_dict`."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        parts = key.split(delimiter)
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out
