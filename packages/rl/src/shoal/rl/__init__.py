"""shoal.rl: Reinforcement learning on gymnasium with RLlib's config API.

Not built yet. This package will hold:

PPO and DQN with env runners as actors over gymnasium environments, a torch learner,
and checkpoints, configured through RLlib-style config builders.
"""

from shoal.rl._version import __version__

__all__ = ["__version__"]
