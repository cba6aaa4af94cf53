"""What the training function sees: ``report``, ``get_checkpoint``, ``get_context``, ``get_dataset_shard``."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.train._storage import StorageContext
    from shoal.train._worker import WorkerSession
    from shoal.train.checkpoint import Checkpoint
    from shoal.train.config import RunConfig, ScalingConfig

__all__ = [
    "TrainContext",
    "TrainRunContext",
    "get_checkpoint",
    "get_context",
    "get_dataset_shard",
    "report",
]


@dataclass(frozen=True)
class TrainContext:
    """Where this worker stands in the group: ranks, sizes and the run's name."""

    world_rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    experiment_name: str
    storage: StorageContext
    metadata: dict[str, Any]
    # Set when the run is a tune trial: the trial's name (the experiment is tune's).
    trial_name: str | None = None

    def get_world_size(self) -> int:
        """Number of workers in the group."""
        return self.world_size

    def get_world_rank(self) -> int:
        """This worker's rank in ``[0, world_size)``."""
        return self.world_rank

    def get_local_rank(self) -> int:
        """This worker's rank among the workers on its node."""
        return self.local_rank

    def get_local_world_size(self) -> int:
        """Number of workers on this worker's node."""
        return self.local_world_size

    def get_node_rank(self) -> int:
        """Index of this worker's node among the group's nodes."""
        return self.node_rank

    def get_experiment_name(self) -> str:
        """The run's name (``RunConfig.name``), or the tune experiment's when the run is a trial."""
        return self.experiment_name

    def get_trial_name(self) -> str:
        """The tune trial's name when the run is a trial; the run's name otherwise."""
        return self.trial_name or self.experiment_name

    def get_trial_dir(self) -> str:
        """The run's directory on storage (the tune trial's folder when the run is a trial)."""
        return self.storage.experiment_fs_path

    def get_storage(self) -> StorageContext:
        return self.storage

    def get_metadata(self) -> dict[str, Any]:
        return dict(self.metadata)


@dataclass(frozen=True)
class TrainRunContext:
    """What callbacks learn about the run (driver side)."""

    run_config: RunConfig
    scaling_config: ScalingConfig
    train_loop_config: dict[str, Any] | None
    backend_config: Any

    def get_run_config(self) -> RunConfig:
        return self.run_config


# The session of the training function running in this process. Worker threads
# that shoal.train starts set a thread-local one (two workers may share a
# process on the inline backend); threads the user starts see the process-wide one.
_local = threading.local()
_process_session: WorkerSession | None = None


def _set_session(session: WorkerSession | None) -> None:
    global _process_session
    _local.session = session
    _process_session = session


def _session(fn_name: str) -> WorkerSession:
    session = getattr(_local, "session", None) or _process_session
    if session is None:
        raise RuntimeError(
            f"shoal.train.{fn_name}() works only inside a training function run by a trainer "
            "(TorchTrainer, DataParallelTrainer, XGBoostTrainer)"
        )
    return session


def report(
    metrics: dict[str, Any],
    checkpoint: Checkpoint | None = None,
    checkpoint_dir_name: str | None = None,
) -> None:
    """Report ``metrics`` (and optionally a checkpoint) for this step of training.

    Every worker must call ``report`` the same number of times: the driver
    records a step once all ranks have reported it, with rank 0's metrics. A
    checkpoint given by any rank is copied into the run's storage under
    ``checkpoint_dir_name`` (by default ``checkpoint_NNNNNN``); checkpoints from
    several ranks for one step are merged into one directory. ``report`` returns
    once the checkpoint is persisted; it waits only while this worker's previous
    report has not yet been taken by the driver.
    """
    _session("report").report(metrics, checkpoint, checkpoint_dir_name)


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint to resume from: the latest one reported in this run (before a restart),
    or ``resume_from_checkpoint``, or None on a fresh start."""
    return _session("get_checkpoint").checkpoint


def get_context() -> TrainContext:
    """This worker's :class:`TrainContext`."""
    return _session("get_context").context


def get_dataset_shard(dataset_name: str | None = None) -> Any:
    """This worker's shard of the dataset passed to the trainer as ``datasets={name: ...}``."""
    return _session("get_dataset_shard").dataset_shard(dataset_name)
