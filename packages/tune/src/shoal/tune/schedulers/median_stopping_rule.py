"""The median stopping rule: :class:`MedianStoppingRule`.

From Google Vizier (Golovin et al., 2017): stop a trial at time ``t`` if its
best result so far is worse than the median of the other trials' *running
averages* up to ``t``.
"""

from __future__ import annotations

import statistics
from typing import Any

from shoal.tune.experiment.trial import Trial
from shoal.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

__all__ = ["MedianStoppingRule"]


class MedianStoppingRule(FIFOScheduler):
    """Stop trials whose best score is below the median of the others' running means.

    Nothing is stopped before ``grace_period`` units of ``time_attr`` or
    before ``min_samples_required`` other trials have results; a trial is
    judged at most every ``min_time_slice``. With ``hard_stop=False`` a
    trial below the median is paused instead (it may resume when resources
    are free and no pending trial waits).
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
        self._last_judged: dict[str, float] = {}
        self._stopped: set[str] = set()
        # Soft-stopped trials resumed because nothing else was left; they run to the end.
        self._released: set[str] = set()

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._require_metric()

    def _running_mean(self, trial_id: str, t: float) -> float | None:
        values = [s for (time, s) in self._results.get(trial_id, ()) if time <= t]
        return sum(values) / len(values) if values else None

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        sign = self._require_metric()
        if trial.trial_id in self._stopped:
            return TrialScheduler.STOP
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        t = float(result[self._time_attr])
        self._results.setdefault(trial.trial_id, []).append((t, sign * float(result[self._metric])))
        if t < self._grace_period or trial.trial_id in self._released:
            return TrialScheduler.CONTINUE
        if t - self._last_judged.get(trial.trial_id, float("-inf")) < self._min_time_slice:
            return TrialScheduler.CONTINUE
        self._last_judged[trial.trial_id] = t
        others = [m for tid in self._results if tid != trial.trial_id if (m := self._running_mean(tid, t)) is not None]
        if len(others) < self._min_samples:
            return TrialScheduler.CONTINUE
        median = statistics.median(others)
        best = max(s for _, s in self._results[trial.trial_id])
        if best < median:
            if self._hard_stop:
                self._stopped.add(trial.trial_id)
                return TrialScheduler.STOP
            return TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        if self._time_attr in result and self._metric in result and trial.trial_id not in self._stopped:
            t = float(result[self._time_attr])
            rows = self._results.setdefault(trial.trial_id, [])
            if not rows or rows[-1][0] != t:
                rows.append((t, self._require_metric() * float(result[self._metric])))

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        # Pending trials first; paused (soft-stopped) ones only when nothing else waits.
        for trial in tune_controller.get_live_trials():
            if trial.status == Trial.PENDING and tune_controller.has_resources_for_trial(trial):
                return trial
        if tune_controller.no_more_trials:
            for trial in tune_controller.get_live_trials():
                if trial.status == Trial.PAUSED and tune_controller.has_resources_for_trial(trial):
                    self._released.add(trial.trial_id)
                    return trial
        return None

    def debug_string(self) -> str:
        return f"Using MedianStoppingRule: num_stopped={len(self._stopped)}"
