"""One run of the trainable on one config: :class:`Trial`.

A trial is plain data that the controller, the schedulers and the search
algorithms read and update; it holds no handle to the actor running it, so
it pickles into the experiment state as it is.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from shoal.tune.checkpoint import Checkpoint
from shoal.tune.search.variant_generator import flatten_dict

__all__ = ["Trial", "CheckpointRecord"]

_WINDOWS = (5, 10)


class CheckpointRecord:
    """A persisted checkpoint and the result it was reported with."""

    __slots__ = ("checkpoint", "index", "metrics")

    def __init__(self, checkpoint: Checkpoint, metrics: dict[str, Any], index: int) -> None:
        self.checkpoint = checkpoint
        self.metrics = metrics
        self.index = index

    def __repr__(self) -> str:
        return f"CheckpointRecord({self.checkpoint.path}, iter={self.metrics.get('training_iteration')})"


class Trial:
    """A trial: its config, status, latest result, checkpoints and errors."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"

    def __init__(
        self,
        trainable_name: str,
        config: dict[str, Any],
        trial_id: str,
        experiment_tag: str = "",
        evaluated_params: dict[str, Any] | None = None,
        resources: dict[str, float] | None = None,
        bundles: list[dict[str, float]] | None = None,
        strategy: str = "PACK",
    ) -> None:
        self.trainable_name = trainable_name
        self.config = config
        self.trial_id = trial_id
        self.experiment_tag = experiment_tag
        self.evaluated_params = dict(evaluated_params or {})
        # An empty dict is a trial that holds nothing (only None means the default).
        self.resources: dict[str, float] = dict(resources) if resources is not None else {"CPU": 1.0}
        # All placement-group bundles, head first ({} when the trainable holds nothing itself),
        # for trials with several bundles; None for a plain one-bundle trial.
        self.bundles: list[dict[str, float]] | None = bundles
        self.strategy = strategy
        self.status = Trial.PENDING
        self.last_result: dict[str, Any] = {}
        self.metric_analysis: dict[str, dict[str, float]] = {}
        self.metric_n_steps: dict[str, dict[str, deque[float]]] = {}
        self._metric_counts: dict[str, int] = {}
        self.num_results = 0
        self.num_failures = 0
        self.error_msg: str | None = None
        self.error: BaseException | None = None
        self.custom_trial_name: str | None = None
        self.dir_name: str | None = None
        self.path: str | None = None
        # Checkpoints kept on disk, oldest first; the latest is what a restart restores.
        self.checkpoints: list[CheckpointRecord] = []
        self.checkpoint_index = 0  # next checkpoint_NNNNNN number
        # What the next start of this trial resumes from (a checkpoint and its counters).
        self.restore_checkpoint: Checkpoint | None = None
        self.restore_state: dict[str, Any] = {}
        # Set by PopulationBasedTraining: restart from this donor state instead of saving.
        self.exploit_from: tuple[Checkpoint | None, dict[str, Any]] | None = None
        self.save_requested = False
        self.start_time: float | None = None

    # -- naming --------------------------------------------------------------

    def default_name(self) -> str:
        """``<trainable>_<trial id>``, with the config's ``env`` between them when it has one (as in Ray)."""
        env = self.config.get("env") if isinstance(self.config, dict) else None
        env_name = env if isinstance(env, str) else getattr(env, "__name__", None) if env is not None else None
        if env_name:
            return f"{self.trainable_name}_{env_name}_{self.trial_id}".replace("/", "_")
        return f"{self.trainable_name}_{self.trial_id}"

    def __str__(self) -> str:
        if self.custom_trial_name is not None:
            return self.custom_trial_name
        return self.default_name()

    def __repr__(self) -> str:
        return str(self)

    def set_experiment_tag(self, tag: str) -> None:
        self.experiment_tag = tag

    def set_config(self, config: dict[str, Any]) -> None:
        self.config = config

    # -- state ---------------------------------------------------------------

    def is_finished(self) -> bool:
        return self.status in (Trial.TERMINATED, Trial.ERROR)

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The latest checkpoint of this trial, if any."""
        return self.checkpoints[-1].checkpoint if self.checkpoints else None

    @property
    def local_path(self) -> str | None:
        return self.path

    def update_last_result(self, result: dict[str, Any]) -> None:
        self.last_result = result
        self.num_results += 1
        # Nested metrics are tracked under their flattened names ("env_runners/episode_return_mean").
        for key, value in flatten_dict(result).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            value = float(value)
            if math.isnan(value):
                continue
            stats = self.metric_analysis.get(key)
            if stats is None:
                self._metric_counts[key] = 1
                self.metric_analysis[key] = {"max": value, "min": value, "avg": value, "last": value}
                self.metric_n_steps[key] = {str(n): deque([value], maxlen=n) for n in _WINDOWS}
                for n in _WINDOWS:
                    self.metric_analysis[key][f"last-{n}-avg"] = value
                continue
            count = self._metric_counts[key] = self._metric_counts[key] + 1
            stats["max"] = max(stats["max"], value)
            stats["min"] = min(stats["min"], value)
            stats["avg"] += (value - stats["avg"]) / count
            stats["last"] = value
            for n in _WINDOWS:
                window = self.metric_n_steps[key][str(n)]
                window.append(value)
                stats[f"last-{n}-avg"] = sum(window) / len(window)

    def restore_point(self) -> tuple[Checkpoint | None, dict[str, Any]]:
        """The checkpoint a (re)start should resume from and the counters that go with it."""
        record = self.checkpoints[-1] if self.checkpoints else None
        if record is None:
            return None, {}
        return record.checkpoint, _counters(record.metrics)


def _counters(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "iteration": int(metrics.get("training_iteration", 0)),
        "time_total": float(metrics.get("time_total_s", 0.0)),
    }
