"""shoal.train: Distributed PyTorch and XGBoost training with Ray Train's API.

Not built yet. This package will hold:

TorchTrainer and DataParallelTrainer run a training function on N workers with
torch.distributed set up, report metrics and checkpoints, and restart from the latest
checkpoint when a worker fails; XGBoostTrainer does the same for xgboost.
"""

from shoal.train._version import __version__

__all__ = ["__version__"]
