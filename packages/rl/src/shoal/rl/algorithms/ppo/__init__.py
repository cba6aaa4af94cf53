"""PPO: ``PPOConfig``, ``PPO``, its learner and default module."""

from shoal.rl.algorithms.ppo.ppo import PPO, PPOConfig
from shoal.rl.algorithms.ppo.ppo_learner import PPOLearner
from shoal.rl.algorithms.ppo.ppo_rl_module import PPOTorchRLModule

__all__ = ["PPO", "PPOConfig", "PPOLearner", "PPOTorchRLModule"]
