"""``XGBoostTrainer``: distributed xgboost on N workers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoal.train.checkpoint import Checkpoint
from shoal.train.config import RunConfig, ScalingConfig
from shoal.train.data_config import DataConfig
from shoal.train.trainer import DataParallelTrainer
from shoal.train.xgboost.config import XGBoostConfig

__all__ = ["XGBoostTrainer"]


class XGBoostTrainer(DataParallelTrainer):
    """Runs an xgboost training function on N workers joined in xgboost's collective.

    Each worker reads its shard with :func:`shoal.train.get_dataset_shard`, builds a
    ``DMatrix`` and calls ``xgboost.train``; the workers' histograms are combined
    through the collective, so all of them end with the same model. Pass
    ``ShoalTrainReportCallback()`` to ``xgboost.train`` to report metrics and
    checkpoints each round.
    """

    def __init__(
        self,
        train_loop_per_worker: Callable[..., Any],
        *,
        train_loop_config: dict[str, Any] | None = None,
        xgboost_config: XGBoostConfig | None = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        datasets: dict[str, Any] | None = None,
        dataset_config: DataConfig | None = None,
        resume_from_checkpoint: Checkpoint | None = None,
    ) -> None:
        if xgboost_config is not None and not isinstance(xgboost_config, XGBoostConfig):
            raise TypeError(f"xgboost_config must be a shoal.train.xgboost.XGBoostConfig, got {xgboost_config!r}")
        super().__init__(
            train_loop_per_worker,
            train_loop_config=train_loop_config,
            backend_config=xgboost_config or XGBoostConfig(),
            scaling_config=scaling_config,
            run_config=run_config,
            datasets=datasets,
            dataset_config=dataset_config,
            resume_from_checkpoint=resume_from_checkpoint,
        )
