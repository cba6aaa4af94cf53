"""Building blocks: RLModule, Learner, action distributions, column names."""

from shoal.rl.core.columns import DEFAULT_MODULE_ID, Columns
from shoal.rl.core.learner import Learner, LearnerGroup
from shoal.rl.core.rl_module import DefaultModelConfig, RLModule, RLModuleSpec

__all__ = [
    "DEFAULT_MODULE_ID",
    "Columns",
    "DefaultModelConfig",
    "Learner",
    "LearnerGroup",
    "RLModule",
    "RLModuleSpec",
]
