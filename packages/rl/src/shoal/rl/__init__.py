"""shoal.rl: reinforcement learning on gymnasium with RLlib's config API.

PPO and DQN with env runners as shoal actors stepping vectorized gymnasium
environments, a torch learner, and checkpoints::

    from shoal.rl.algorithms.ppo import PPOConfig

    algo = PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=1).build_algo()
    result = algo.train()
    print(result["env_runners"]["episode_return_mean"])
    algo.stop()

Heavy modules (torch) load on first use of an algorithm name, so
``import shoal.rl`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shoal.rl._version import __version__
from shoal.rl.env.env_context import EnvContext
from shoal.rl.env.registry import register_env
from shoal.rl.errors import EnvError, UnsupportedSpaceException

if TYPE_CHECKING:
    from shoal.rl.algorithms import DQN, PPO, Algorithm, AlgorithmConfig, DQNConfig, PPOConfig
    from shoal.rl.core import Columns, DefaultModelConfig, RLModule, RLModuleSpec

__all__ = [
    "DQN",
    "PPO",
    "Algorithm",
    "AlgorithmConfig",
    "Columns",
    "DQNConfig",
    "DefaultModelConfig",
    "EnvContext",
    "EnvError",
    "PPOConfig",
    "RLModule",
    "RLModuleSpec",
    "UnsupportedSpaceException",
    "__version__",
    "register_env",
]

_LAZY = {
    "DQN": "shoal.rl.algorithms",
    "PPO": "shoal.rl.algorithms",
    "Algorithm": "shoal.rl.algorithms",
    "AlgorithmConfig": "shoal.rl.algorithms",
    "DQNConfig": "shoal.rl.algorithms",
    "PPOConfig": "shoal.rl.algorithms",
    "Columns": "shoal.rl.core",
    "DefaultModelConfig": "shoal.rl.core",
    "RLModule": "shoal.rl.core",
    "RLModuleSpec": "shoal.rl.core",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal.rl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
