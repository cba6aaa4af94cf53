"""Experiment settings: :class:`TuneConfig`, :class:`RunConfig`, :class:`CheckpointConfig`, :class:`FailureConfig`."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CheckpointConfig", "FailureConfig", "RunConfig", "TuneConfig"]


def _check_int(name: str, value: Any, minimum: int, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass
class CheckpointConfig:
    """Which checkpoints to keep, and when class trainables save.

    ``num_to_keep`` (None: all) keeps the most recent checkpoints, or the best
    by ``checkpoint_score_attribute`` in ``checkpoint_score_order``; the
    latest is always kept for recovery. ``checkpoint_frequency`` (every N
    iterations) and ``checkpoint_at_end`` apply to class trainables only.
    """

    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool | None = None

    def __post_init__(self) -> None:
        _check_int("num_to_keep", self.num_to_keep, 1)
        if self.checkpoint_score_order not in ("max", "min"):
            raise ValueError(f"checkpoint_score_order must be 'max' or 'min', got {self.checkpoint_score_order!r}")
        _check_int("checkpoint_frequency", self.checkpoint_frequency, 0, allow_none=False)


@dataclass
class FailureConfig:
    """How to handle trials that raise: ``max_failures`` retries each (from its latest checkpoint;
    -1 retries forever); ``fail_fast=True`` ends the experiment at the first failure and
    ``fail_fast="raise"`` re-raises it from ``fit()``."""

    max_failures: int = 0
    fail_fast: bool | str = False

    def __post_init__(self) -> None:
        _check_int("max_failures", self.max_failures, -1, allow_none=False)
        if self.fail_fast not in (True, False, "raise"):
            raise ValueError(f"fail_fast must be True, False or 'raise', got {self.fail_fast!r}")


@dataclass
class RunConfig:
    """Where results go and when trials stop.

    Results land in ``storage_path/name/`` (``~/shoal_results`` and
    ``<trainable>_<timestamp>`` by default). ``stop`` is a dict of metric
    thresholds (``{"training_iteration": 10}``), a function
    ``(trial_id, result) -> bool`` or a :class:`~shoal.tune.stopper.Stopper`.
    ``verbose``: 0 silent, 1 the live table (on a terminal) and a summary,
    2 also one line per trial result.
    """

    name: str | None = None
    storage_path: str | os.PathLike[str] | None = None
    storage_filesystem: Any = None
    failure_config: FailureConfig | None = None
    checkpoint_config: CheckpointConfig | None = None
    sync_config: Any = None
    verbose: int | None = None
    stop: dict[str, Any] | Callable[..., bool] | Any | None = None
    callbacks: list[Any] | None = None
    progress_reporter: Any = None
    log_to_file: bool = False

    def __post_init__(self) -> None:
        if self.storage_filesystem is not None:
            raise ValueError("shoal.tune stores results on the local filesystem; storage_filesystem must be None")
        if self.name is not None and (not isinstance(self.name, str) or not self.name or os.sep in self.name):
            raise ValueError(f"name must be a non-empty string without {os.sep!r}, got {self.name!r}")
        if self.failure_config is None:
            self.failure_config = FailureConfig()
        if self.checkpoint_config is None:
            self.checkpoint_config = CheckpointConfig()
        if self.verbose is not None and self.verbose not in (0, 1, 2, 3):
            raise ValueError(f"verbose must be 0, 1, 2 or 3, got {self.verbose!r}")
        if self.callbacks is not None and not isinstance(self.callbacks, list):
            raise TypeError(f"callbacks must be a list, got {self.callbacks!r}")


@dataclass
class TuneConfig:
    """How to search: ``metric``/``mode`` to optimize, ``num_samples`` (-1: until stopped),
    ``search_alg`` and ``scheduler``, ``max_concurrent_trials``, ``time_budget_s``,
    ``reuse_actors`` and trial naming."""

    mode: str | None = None
    metric: str | None = None
    search_alg: Any = None
    scheduler: Any = None
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    time_budget_s: float | datetime.timedelta | None = None
    reuse_actors: bool | None = None
    trial_name_creator: Callable[[Any], str] | None = None
    trial_dirname_creator: Callable[[Any], str] | None = None

    def __post_init__(self) -> None:
        if self.mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.metric is not None and not isinstance(self.metric, str):
            raise TypeError(f"metric must be a string, got {self.metric!r}")
        if (
            isinstance(self.num_samples, bool)
            or not isinstance(self.num_samples, int)
            or (self.num_samples < 1 and self.num_samples != -1)
        ):
            raise ValueError(f"num_samples must be an integer >= 1, or -1 for no limit, got {self.num_samples!r}")
        _check_int("max_concurrent_trials", self.max_concurrent_trials, 1)
        if isinstance(self.time_budget_s, datetime.timedelta):
            self.time_budget_s = self.time_budget_s.total_seconds()
        if self.time_budget_s is not None and (
            isinstance(self.time_budget_s, bool)
            or not isinstance(self.time_budget_s, (int, float))
            or self.time_budget_s <= 0
        ):
            raise ValueError(f"time_budget_s must be a number > 0, got {self.time_budget_s!r}")
