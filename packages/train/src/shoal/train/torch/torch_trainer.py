"""``TorchTrainer``: data-parallel PyTorch training on N workers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoal.train.checkpoint import Checkpoint
from shoal.train.config import RunConfig, ScalingConfig
from shoal.train.data_config import DataConfig
from shoal.train.torch.config import TorchConfig
from shoal.train.trainer import DataParallelTrainer

__all__ = ["TorchTrainer"]


class TorchTrainer(DataParallelTrainer):
    """Runs ``train_loop_per_worker`` on N workers with ``torch.distributed`` initialised.

    The process group uses gloo on CPU and nccl with ``use_gpu=True``; inside the
    function, :func:`prepare_model` wraps the model in DistributedDataParallel and
    :func:`prepare_data_loader` shards a DataLoader. Each worker runs with as many
    torch threads as CPUs it holds.
    """

    def __init__(
        self,
        train_loop_per_worker: Callable[..., Any],
        *,
        train_loop_config: dict[str, Any] | None = None,
        torch_config: TorchConfig | None = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        datasets: dict[str, Any] | None = None,
        dataset_config: DataConfig | None = None,
        resume_from_checkpoint: Checkpoint | None = None,
    ) -> None:
        if torch_config is not None and not isinstance(torch_config, TorchConfig):
            raise TypeError(f"torch_config must be a shoal.train.torch.TorchConfig, got {torch_config!r}")
        super().__init__(
            train_loop_per_worker,
            train_loop_config=train_loop_config,
            backend_config=torch_config or TorchConfig(),
            scaling_config=scaling_config,
            run_config=run_config,
            datasets=datasets,
            dataset_config=dataset_config,
            resume_from_checkpoint=resume_from_checkpoint,
        )
