"""Resource shapes: validated ``{name: amount}`` mappings and their hashable keys."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.config import parse_size

__all__ = [
    "COMMODITY_RESOURCES",
    "SIZE_RESOURCES",
    "Shape",
    "ShapeKey",
    "add_shapes",
    "format_shape",
    "normalize_shape",
    "shape_from_key",
    "shape_key",
]

Shape = dict[str, float]
#: A shape as a sorted tuple of ``(name, amount)`` pairs, usable as a dict key.
ShapeKey = tuple[tuple[str, float], ...]

#: Resources counted in bytes; config files may write them as ``"4GiB"``.
SIZE_RESOURCES = frozenset({"memory", "object_store_memory"})
#: Resources every node has. Any other resource a node offers (GPU, TPU, a
#: custom accelerator) is "special": launching it for work that does not use
#: it is the waste the node-type scorer avoids.
COMMODITY_RESOURCES = frozenset({"CPU", "memory", "object_store_memory"})


def normalize_shape(value: Any, what: str = "bundle") -> Shape:
    """Check a resource mapping and return it as ``{name: float}`` without zero entries.

    Raises TypeError for a non-mapping, a non-string name or a non-numeric
    amount, and ValueError for a negative amount; ``what`` names the argument.
    """
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict of resource name to amount, got {type(value).__name__}")
    out: Shape = {}
    for name, amount in value.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{what}: resource names must be non-empty strings, got {name!r}")
        if name in SIZE_RESOURCES and isinstance(amount, str):
            try:
                amount = parse_size(amount)
            except ValueError as e:
                raise ValueError(f"{what}[{name!r}]: {e}") from None
        # bool is an int subclass: {"CPU": True} must not quietly mean one CPU.
        if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
            raise TypeError(f"{what}[{name!r}] must be a number, got {amount!r}")
        if amount < 0:
            raise ValueError(f"{what}[{name!r}] must be >= 0, got {amount!r}")
        if amount > 0:
            out[name] = float(amount)
    return out


def shape_key(shape: Mapping[str, float]) -> ShapeKey:
    """The hashable key of an already normalized shape."""
    return tuple(sorted(shape.items()))


def shape_from_key(key: ShapeKey) -> Shape:
    return dict(key)


def add_shapes(shapes: Iterable[Mapping[str, float]]) -> Shape:
    """The element-wise sum of several shapes (a STRICT_PACK group as one node's worth)."""
    total: Shape = {}
    for s in shapes:
        for k, v in s.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _fmt_amount(name: str, v: float) -> str:
    if name in SIZE_RESOURCES:
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if v >= size:
                return f"{v / size:g}{unit}"
    return f"{v:g}"


def format_shape(shape: Mapping[str, float] | ShapeKey) -> str:
    """A short, stable text form: ``{CPU: 1, GPU: 1}``."""
    items = shape if isinstance(shape, tuple) else sorted(shape.items())
    return "{" + ", ".join(f"{k}: {_fmt_amount(k, v)}" for k, v in items) + "}"
