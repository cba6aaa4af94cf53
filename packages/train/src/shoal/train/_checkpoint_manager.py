"""The driver's book of registered checkpoints: which to keep, which to delete, and its snapshot."""

from __future__ import annotations

import json
import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any

from shoal.train import _storage
from shoal.train.checkpoint import Checkpoint
from shoal.train.config import CheckpointConfig

logger = logging.getLogger("shoal.train")

__all__ = ["CheckpointManager", "RegisteredCheckpoint"]


@dataclass
class RegisteredCheckpoint:
    """A persisted checkpoint with the metrics rank 0 reported beside it."""

    checkpoint: Checkpoint
    metrics: dict[str, Any]
    index: int  # order of registration over the whole run, restarts included
    dir_name: str


class CheckpointManager:
    """Keeps ``num_to_keep`` best checkpoints (plus always the latest) and deletes the rest.

    Its state is written to ``checkpoint_manager_snapshot.json`` in the run's
    directory after every change, so a new ``fit()`` with the same run name (or
    :meth:`Result.from_path`) finds the checkpoints again.
    """

    def __init__(self, storage: _storage.StorageContext, config: CheckpointConfig, persist: bool = True) -> None:
        self._storage = storage
        self._config = config
        # False inside a tune trial: tune keeps the books (and the files) of the trial's checkpoints.
        self._persist = persist
        self._kept: list[RegisteredCheckpoint] = []  # worst first (oldest first without a score)
        self._latest: RegisteredCheckpoint | None = None
        self._next_index = 0
        self._warned_missing = False
        #: Steps reported over the whole run (restarts and resumed runs included);
        #: default checkpoint directory names count from it, so they never repeat.
        self.report_count = 0

    # -- queries ------------------------------------------------------------------

    @property
    def latest(self) -> RegisteredCheckpoint | None:
        return self._latest

    @property
    def kept(self) -> list[RegisteredCheckpoint]:
        """Retained checkpoints, worst first by score (oldest first when ranked by recency)."""
        return list(self._kept)

    def dir_names(self) -> set[str]:
        return {r.dir_name for r in self._kept}

    # -- registering --------------------------------------------------------------

    def register(self, checkpoint: Checkpoint, metrics: dict[str, Any], dir_name: str) -> RegisteredCheckpoint:
        entry = RegisteredCheckpoint(checkpoint, dict(metrics), self._next_index, dir_name)
        self._next_index += 1
        # Reporting the same directory twice replaces the older entry.
        self._kept = [r for r in self._kept if r.dir_name != dir_name]
        self._latest = entry
        self._kept.append(entry)
        self._kept.sort(key=self._sort_key)
        deleted = self._trim()
        self.save()
        for r in deleted:
            _storage.delete_dir(self._storage.fs, r.checkpoint.path)
        return entry

    def _score(self, entry: RegisteredCheckpoint) -> float:
        attr = self._config.checkpoint_score_attribute
        assert attr is not None
        value = entry.metrics.get(attr)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
            if not self._warned_missing:
                logger.warning(
                    "checkpoint_score_attribute %r is missing or not a number in the reported metrics "
                    "%s; such checkpoints rank worst",
                    attr,
                    sorted(entry.metrics),
                )
                self._warned_missing = True
            return -math.inf
        return float(value) if self._config.checkpoint_score_order == "max" else -float(value)

    def _sort_key(self, entry: RegisteredCheckpoint) -> tuple[float, int]:
        if self._config.checkpoint_score_attribute is None:
            return (0.0, entry.index)
        # Ties go to the newer checkpoint.
        return (self._score(entry), entry.index)

    def _trim(self) -> list[RegisteredCheckpoint]:
        keep = self._config.num_to_keep
        if keep is None or len(self._kept) <= keep:
            return []
        dropped = [r for r in self._kept[:-keep] if r is not self._latest]
        self._kept = [r for r in self._kept if r not in dropped]
        return dropped

    # -- snapshot -----------------------------------------------------------------

    def save(self) -> None:
        if not self._persist:
            return
        state = {
            "next_index": self._next_index,
            "report_count": self.report_count,
            "latest": self._latest.dir_name if self._latest else None,
            "checkpoints": [{"dir_name": r.dir_name, "index": r.index, "metrics": r.metrics} for r in self._kept],
        }
        _storage.write_text(self._storage.fs, self._storage.snapshot_path, _storage.to_json(state))

    def load(self) -> bool:
        """Read the snapshot of an earlier run with this name; False if there is none."""
        fs, path = self._storage.fs, self._storage.snapshot_path
        if not _storage.exists(fs, path):
            return False
        state = json.loads(_storage.read_text(fs, path))
        self._kept = []
        for item in state["checkpoints"]:
            ckpt_path = self._storage.checkpoint_path(item["dir_name"])
            if not _storage.exists(fs, ckpt_path):
                logger.warning("checkpoint %s listed in %s is missing; skipped", ckpt_path, path)
                continue
            self._kept.append(
                RegisteredCheckpoint(Checkpoint(ckpt_path, fs), item["metrics"], item["index"], item["dir_name"])
            )
        self._kept.sort(key=self._sort_key)
        self._next_index = int(state.get("next_index", len(self._kept)))
        self.report_count = int(state.get("report_count", 0))
        latest = state.get("latest")
        self._latest = next((r for r in self._kept if r.dir_name == latest), None)
        return True
