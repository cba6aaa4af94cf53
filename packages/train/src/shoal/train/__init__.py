"""shoal.train: distributed training with Ray Train's API.

``DataParallelTrainer`` runs a training function on N workers (actors placed
by a placement group); ``shoal.train.torch.TorchTrainer`` sets up
``torch.distributed`` for it and ``shoal.train.xgboost.XGBoostTrainer`` sets
up xgboost's collective. Inside the function, workers call ``report`` with
metrics and checkpoints, which land in ``storage_path/name/``; a run whose
workers fail restarts from its latest checkpoint within
``FailureConfig.max_failures``.

    from shoal import train
    from shoal.train.torch import TorchTrainer

    def loop(config):
        for epoch in range(config["epochs"]):
            train.report({"epoch": epoch, "rank": train.get_context().get_world_rank()})

    result = TorchTrainer(loop, train_loop_config={"epochs": 2},
                          scaling_config=train.ScalingConfig(num_workers=2)).fit()
"""

from shoal.train._version import __version__
from shoal.train.backend import BackendConfig
from shoal.train.callback import UserCallback
from shoal.train.checkpoint import Checkpoint
from shoal.train.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from shoal.train.context import (
    TrainContext,
    TrainRunContext,
    get_checkpoint,
    get_context,
    get_dataset_shard,
    report,
)
from shoal.train.data_config import DataConfig
from shoal.train.exceptions import TrainingFailedError, WorkerDiedError, WorkerGroupError
from shoal.train.result import Result
from shoal.train.trainer import DataParallelTrainer

__all__ = [
    "__version__",
    # configuration
    "ScalingConfig",
    "RunConfig",
    "CheckpointConfig",
    "FailureConfig",
    "DataConfig",
    "BackendConfig",
    "UserCallback",
    # training
    "DataParallelTrainer",
    "Checkpoint",
    "Result",
    # inside the training function
    "report",
    "get_checkpoint",
    "get_context",
    "get_dataset_shard",
    "TrainContext",
    "TrainRunContext",
    # errors
    "TrainingFailedError",
    "WorkerGroupError",
    "WorkerDiedError",
]
