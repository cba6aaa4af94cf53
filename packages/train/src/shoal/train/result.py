"""What ``fit()`` returns: :class:`Result`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from shoal.train import _storage
from shoal.train.checkpoint import Checkpoint

__all__ = ["Result"]


@dataclass
class Result:
    """The outcome of a training run.

    Attributes:
        metrics: the latest metrics rank 0 reported (None if it reported none).
        checkpoint: the latest persisted checkpoint (None if none was reported).
        error: the :class:`~shoal.train.TrainingFailedError` if the run failed.
        path: the run's directory on its storage (``storage_path/name``).
        best_checkpoints: ``(checkpoint, metrics)`` of the retained checkpoints,
            worst first by ``checkpoint_score_attribute`` (oldest first without one).
        return_value: what the training function returned on rank 0.
    """

    metrics: dict[str, Any] | None
    checkpoint: Checkpoint | None
    error: BaseException | None = None
    path: str = ""
    best_checkpoints: list[tuple[Checkpoint, dict[str, Any]]] = field(default_factory=list)
    return_value: Any = None
    filesystem: Any = field(default=None, repr=False)

    @property
    def metrics_dataframe(self) -> Any:
        """A pandas DataFrame with one row of metrics per retained checkpoint (None if there are none)."""
        if not self.best_checkpoints:
            return None
        import pandas as pd

        return pd.DataFrame([m for _, m in self.best_checkpoints])

    def get_best_checkpoint(self, metric: str, mode: str) -> Checkpoint | None:
        """The retained checkpoint with the highest (``mode="max"``) or lowest (``"min"``) ``metric``."""
        if mode not in ("max", "min"):
            raise ValueError(f"get_best_checkpoint(mode=...) must be 'max' or 'min', got {mode!r}")
        scored = [(m[metric], c) for c, m in self.best_checkpoints if metric in m]
        if not scored:
            if self.best_checkpoints:
                raise RuntimeError(f"no retained checkpoint reported the metric {metric!r}")
            return None
        pick = max if mode == "max" else min
        return pick(scored, key=lambda pair: pair[0])[1]

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], storage_filesystem: Any = None) -> Result:
        """The result of an earlier run, read back from its directory (without its error)."""
        from shoal.train._checkpoint_manager import CheckpointManager
        from shoal.train.config import CheckpointConfig

        fs, fs_path = _storage.resolve_path(path, storage_filesystem)
        fs_path = fs_path.rstrip("/")
        if not _storage.exists(fs, fs_path):
            raise RuntimeError(f"run directory {fs_path} does not exist")
        storage = _storage.StorageContext(os.path.dirname(fs_path), os.path.basename(fs_path), fs)
        manager = CheckpointManager(storage, CheckpointConfig())
        if not manager.load():
            raise RuntimeError(
                f"{fs_path} holds no {_storage.SNAPSHOT_FILE}: it is not the directory of a shoal.train run"
            )
        return result_from(manager, storage, metrics=None)


def result_from(manager: Any, storage: _storage.StorageContext, metrics: dict[str, Any] | None, **extra: Any) -> Result:
    latest = manager.latest
    if metrics is None and latest is not None:
        metrics = dict(latest.metrics)
    return Result(
        metrics=metrics,
        checkpoint=latest.checkpoint if latest is not None else None,
        path=storage.experiment_fs_path,
        best_checkpoints=[(r.checkpoint, dict(r.metrics)) for r in manager.kept],
        filesystem=storage.filesystem,
        **extra,
    )
