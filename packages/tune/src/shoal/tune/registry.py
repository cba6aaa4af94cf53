"""Trainables by name: ``Tuner("PPO")``.

A name resolves to what :func:`register_trainable` registered under it in
this process, else to an entry point of the group ``shoal.tune.trainables``
that an installed distribution declares (shoal-rl declares ``PPO`` and
``DQN``), so a library's trainables are found without importing it first.
"""

from __future__ import annotations

import difflib
import inspect
from importlib.metadata import entry_points
from typing import Any

__all__ = ["ENTRY_POINT_GROUP", "get_trainable_cls", "is_registered", "register_trainable", "registered_names"]

ENTRY_POINT_GROUP = "shoal.tune.trainables"

_registered: dict[str, Any] = {}


def register_trainable(name: str, trainable: Any, warn: bool = True) -> None:
    """Make ``trainable`` (a function, a Trainable class or a trainer) available as ``name``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not (callable(trainable) or hasattr(trainable, "as_trainable")):
        raise TypeError(f"trainable must be a function, a Trainable class or a trainer, got {trainable!r}")
    _registered[name] = trainable


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def registered_names() -> list[str]:
    """Every name :func:`get_trainable_cls` can resolve."""
    return sorted(set(_registered) | set(_entry_points()))


def is_registered(name: str) -> bool:
    return name in _registered or name in _entry_points()


def get_trainable_cls(name: str) -> Any:
    """The trainable registered (or declared as an entry point) as ``name``; ValueError if none."""
    if name in _registered:
        return _registered[name]
    ep = _entry_points().get(name)
    if ep is None:
        known = registered_names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown trainable {name!r}.{hint} Known names: {known or 'none'}; register one with "
            "tune.register_trainable(name, trainable), or install the library that provides it "
            "(shoal-rl provides 'PPO' and 'DQN')"
        )
    try:
        value = ep.load()
    except ImportError as e:
        raise ValueError(f"trainable {name!r} comes from {ep.value}, which failed to import: {e}") from e
    if not (inspect.isclass(value) or callable(value)):
        raise TypeError(f"entry point {name!r} ({ep.value}) is not a trainable: {value!r}")
    return value
