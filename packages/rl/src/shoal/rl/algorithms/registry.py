"""Algorithms by name, for ``Tuner("PPO", ...)`` and other string lookups."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoal.rl.algorithms.algorithm import Algorithm
    from shoal.rl.algorithms.algorithm_config import AlgorithmConfig

__all__ = ["ALGORITHMS", "get_algorithm_class", "get_algorithm_config"]

# name -> "module:Class"; imported on lookup so listing names stays cheap.
ALGORITHMS: dict[str, str] = {
    "PPO": "shoal.rl.algorithms.ppo.ppo:PPO",
    "DQN": "shoal.rl.algorithms.dqn.dqn:DQN",
}


def get_algorithm_class(name: str) -> type[Algorithm]:
    """The Algorithm class registered as ``name`` (``"PPO"``, ``"DQN"``); ValueError if unknown."""
    target = ALGORITHMS.get(name)
    if target is None:
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(ALGORITHMS)}")
    module, _, attr = target.partition(":")
    cls: type[Algorithm] = getattr(importlib.import_module(module), attr)
    return cls


def get_algorithm_config(name: str) -> AlgorithmConfig:
    """A default config of the algorithm registered as ``name``."""
    return get_algorithm_class(name).get_default_config()
