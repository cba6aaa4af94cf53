"""DQN: ``DQNConfig``, ``DQN``, its learner and default module."""

from shoal.rl.algorithms.dqn.dqn import DQN, DQNConfig
from shoal.rl.algorithms.dqn.dqn_learner import DQNLearner
from shoal.rl.algorithms.dqn.dqn_rl_module import DQNTorchRLModule

__all__ = ["DQN", "DQNConfig", "DQNLearner", "DQNTorchRLModule"]
