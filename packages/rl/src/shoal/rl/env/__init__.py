"""Environments: ``register_env``, ``EnvContext``, the env runner and the runner group."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shoal.rl.env.env_context import EnvContext
from shoal.rl.env.registry import register_env

if TYPE_CHECKING:
    from shoal.rl.env.env_runner import SingleAgentEnvRunner
    from shoal.rl.env.env_runner_group import EnvRunnerGroup

__all__ = ["EnvContext", "EnvRunnerGroup", "SingleAgentEnvRunner", "register_env"]

# The runners import torch; load them on first use.
_LAZY = {
    "SingleAgentEnvRunner": "shoal.rl.env.env_runner",
    "EnvRunnerGroup": "shoal.rl.env.env_runner_group",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal.rl.env' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
