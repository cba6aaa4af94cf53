"""The algorithms: ``PPO`` / ``PPOConfig``, ``DQN`` / ``DQNConfig`` and their base classes."""

from shoal.rl.algorithms.algorithm import Algorithm, Checkpoint, TrainingResult
from shoal.rl.algorithms.algorithm_config import AlgorithmConfig
from shoal.rl.algorithms.dqn import DQN, DQNConfig
from shoal.rl.algorithms.ppo import PPO, PPOConfig
from shoal.rl.algorithms.registry import get_algorithm_class

__all__ = [
    "DQN",
    "PPO",
    "Algorithm",
    "AlgorithmConfig",
    "Checkpoint",
    "DQNConfig",
    "PPOConfig",
    "TrainingResult",
    "get_algorithm_class",
]
