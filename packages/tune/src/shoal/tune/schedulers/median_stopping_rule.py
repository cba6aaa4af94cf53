"""The median stopping rule: :class:`MedianStoppingRule`.

From Google Vizier (Golovin et al., 2017): stop a trial at time ``t`` if its
best result so far is worse than the median of the other trials' *running
averages* up to ``t``. The rules follow Ray's: only trials that have reached
``t`` are compared, their averages cover ``[grace_period, t]``, and a trial
that cannot be judged yet (too few others) yields its resources to waiting
trials.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from shoal.tune.experiment.trial import Trial
from shoal.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

__all__ = ["MedianStoppingRule"]


class MedianStoppingRule(FIFOScheduler):
    """Stop trials whose best score is below the median of the others' running means.

    At each result past ``grace_period`` (in units of ``time_attr``), the
    trial's best score is compared with the median of the running means,
    over ``[grace_period, t]``, of the other trials that have reached ``t``.
    With fewer than ``min_samples_required`` such trials the trial is not
    judged; it pauses to let pending or paused trials catch up, at most once
    every ``min_time_slice``. With ``hard_stop=False`` a trial below the
    median is paused instead of stopped; it resumes, and runs to the end,
    once no other trial waits and the search has no more trials to add.
    """

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        grace_period: float = 60.0,
        min_samples_required: int = 3,
        min_time_slice: float = 0,
        hard_stop: bool = True,
    ) -> None:
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if grace_period < 0:
            raise ValueError(f"grace_period must be >= 0, got {grace_period!r}")
        if isinstance(min_samples_required, bool) or not isinstance(min_samples_required, int):
            raise TypeError(f"min_samples_required must be an int, got {min_samples_required!r}")
        self._time_attr = time_attr
        self._metric = metric
        self._mode = mode
        self._grace_period = grace_period
        self._min_samples = min_samples_required
        self._min_time_slice = min_time_slice
        self._hard_stop = hard_stop
        # trial_id -> [(time, score)], scores signed so that larger is better.
        self._results: dict[str, list[tuple[float, float]]] = {}
        self._last_pause: dict[str, float] = {}
        self._stopped: set[str] = set()

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._require_metric()

    def _running_mean(self, trial_id: str, t: float) -> float:
        values = [s for (time, s) in self._results[trial_id] if self._grace_period <= time <= t]
        return sum(values) / len(values) if values else math.nan

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        sign = self._require_metric()
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        if trial.trial_id in self._stopped:
            # A soft-stopped trial that was resumed runs on to its end.
            return TrialScheduler.CONTINUE
        t = float(result[self._time_attr])
        rows = self._results.setdefault(trial.trial_id, [])
        rows.append((t, sign * float(result[self._metric])))
        if t < self._grace_period:
            return TrialScheduler.CONTINUE
        means = [
            mean
            for tid, other in self._results.items()
            if tid != trial.trial_id and other[-1][0] >= t
            if math.isfinite(mean := self._running_mean(tid, t))
        ]
        if len(means) < self._min_samples:
            return self._on_insufficient_samples(tune_controller, trial, t)
        if max(s for _, s in rows) < statistics.median(means):
            self._stopped.add(trial.trial_id)
            return TrialScheduler.STOP if self._hard_stop else TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE

    def _on_insufficient_samples(self, tune_controller: Any, trial: Trial, t: float) -> str:
        # Yield to waiting trials so that there is something to compare with next time.
        if t - self._last_pause.get(trial.trial_id, -math.inf) <= self._min_time_slice:
            return TrialScheduler.CONTINUE
        if tune_controller is None or not any(
            self._may_run(tune_controller, other) for other in tune_controller.get_live_trials() if other is not trial
        ):
            return TrialScheduler.CONTINUE
        self._last_pause[trial.trial_id] = t
        return TrialScheduler.PAUSE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        if self._time_attr in result and self._metric in result and trial.trial_id not in self._stopped:
            t = float(result[self._time_attr])
            rows = self._results.setdefault(trial.trial_id, [])
            if not rows or rows[-1][0] != t:
                rows.append((t, self._require_metric() * float(result[self._metric])))

    def _may_run(self, tune_controller: Any, trial: Trial) -> bool:
        """Whether ``choose_trial_to_run`` could pick ``trial`` (resources aside)."""
        if trial.status == Trial.PENDING:
            return True
        return trial.status == Trial.PAUSED and (trial.trial_id not in self._stopped or tune_controller.no_more_trials)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        # Pending trials first, then the ones that yielded; soft-stopped ones only when
        # nothing else waits and the search will add no more trials.
        live = tune_controller.get_live_trials()
        for trial in live:
            if trial.status == Trial.PENDING and tune_controller.has_resources_for_trial(trial):
                return trial
        for trial in live:
            if (
                trial.status == Trial.PAUSED
                and trial.trial_id not in self._stopped
                and tune_controller.has_resources_for_trial(trial)
            ):
                return trial
        if tune_controller.no_more_trials:
            for trial in live:
                if trial.status == Trial.PAUSED and tune_controller.has_resources_for_trial(trial):
                    return trial
        return None

    def debug_string(self) -> str:
        return f"Using MedianStoppingRule: num_stopped={len(self._stopped)}"
