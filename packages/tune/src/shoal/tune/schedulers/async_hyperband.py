"""Asynchronous successive halving: :class:`AsyncHyperBandScheduler` (alias :data:`ASHAScheduler`).

ASHA (Li et al., 2020) stops poor trials early without waiting for others.
Each bracket has *rungs* at ``grace_period * reduction_factor**k`` units of
``time_attr``. When a trial reaches a rung it is compared with the trials
that reached that rung before it: it continues only if its metric is in the
top ``1 / reduction_factor`` of them (the first trial at a rung always
continues). Trials that reach ``max_t`` are stopped as finished.

With several ``brackets``, bracket ``s`` starts its rungs at
``grace_period * reduction_factor**s`` (more patient); each new trial is
assigned a bracket at random, with weight ``e**(number of rungs)`` as in Ray.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shoal.tune.experiment.trial import Trial
from shoal.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

__all__ = ["AsyncHyperBandScheduler", "ASHAScheduler"]


class _Rungs:
    """One ASHA bracket: its milestones and the scores recorded at each."""

    def __init__(self, grace_period: float, max_t: float, rf: float, s: int, stop_last_trials: bool) -> None:
        self.rf = rf
        count = math.floor(math.log(max_t / grace_period) / math.log(rf) + 1e-9) - s + 1
        self.milestones = [grace_period * rf ** (k + s) for k in range(max(count, 0))]
        self.recorded: list[dict[str, float]] = [{} for _ in self.milestones]
        self.stop_last_trials = stop_last_trials

    def cutoff(self, index: int) -> float | None:
        """The score a trial must reach at rung ``index`` to stay in its top 1/rf (None: no one yet)."""
        values = list(self.recorded[index].values())
        if not values:
            return None
        return float(np.nanpercentile(values, (1 - 1 / self.rf) * 100))

    def on_result(self, trial_id: str, t: float, score: float | None) -> str:
        # Only the highest rung the trial has newly reached counts, once per rung.
        for index in reversed(range(len(self.milestones))):
            if t < self.milestones[index]:
                continue
            if trial_id in self.recorded[index]:
                return TrialScheduler.CONTINUE
            action = TrialScheduler.CONTINUE
            cut = self.cutoff(index)
            if score is None:
                return action
            if cut is not None and score < cut:
                action = TrialScheduler.STOP
            self.recorded[index][trial_id] = score
            return action
        return TrialScheduler.CONTINUE


class AsyncHyperBandScheduler(FIFOScheduler):
    """Asynchronous successive halving (ASHA): stop trials that fall behind at each rung.

    ``time_attr`` measures progress (``training_iteration`` by default);
    ``max_t`` is where every trial stops; ``grace_period`` is the first rung;
    ``reduction_factor`` sets both rung spacing and the fraction promoted.
    """

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: float = 100,
        grace_period: float = 1,
        reduction_factor: float = 4,
        brackets: int = 1,
        stop_last_trials: bool = True,
        seed: int | None = None,
    ) -> None:
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not max_t > 0:
            raise ValueError(f"max_t must be > 0, got {max_t!r}")
        if not grace_period > 0:
            raise ValueError(f"grace_period must be > 0, got {grace_period!r}")
        if grace_period > max_t:
            raise ValueError(f"grace_period ({grace_period}) must be <= max_t ({max_t})")
        if not reduction_factor > 1:
            raise ValueError(f"reduction_factor must be > 1, got {reduction_factor!r}")
        if isinstance(brackets, bool) or not isinstance(brackets, int) or brackets < 1:
            raise ValueError(f"brackets must be an integer >= 1, got {brackets!r}")
        self._time_attr = time_attr
        self._metric = metric
        self._mode = mode
        self._max_t = max_t
        self._rf = reduction_factor
        self._stop_last_trials = stop_last_trials
        self._brackets = [_Rungs(grace_period, max_t, reduction_factor, s, stop_last_trials) for s in range(brackets)]
        self._rng = np.random.default_rng(seed)
        self._trial_bracket: dict[str, int] = {}
        self._num_stopped = 0

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._require_metric()
        # As in Ray: bracket s is drawn with probability proportional to e**(its number of rungs),
        # so most trials go to the most aggressive bracket.
        sizes = np.array([len(b.milestones) for b in self._brackets], dtype=float)
        weights = np.exp(sizes - sizes.max())
        self._trial_bracket[trial.trial_id] = int(self._rng.choice(len(weights), p=weights / weights.sum()))

    def _score(self, result: dict[str, Any]) -> float | None:
        value = result.get(self._metric)  # type: ignore[arg-type]
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return self._require_metric() * float(value)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        t = result[self._time_attr]
        if t >= self._max_t and self._stop_last_trials:
            action = TrialScheduler.STOP
        else:
            bracket = self._brackets[self._trial_bracket.setdefault(trial.trial_id, 0)]
            action = bracket.on_result(trial.trial_id, t, self._score(result))
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        index = self._trial_bracket.pop(trial.trial_id, None)
        if index is None or self._time_attr not in result or self._metric not in result:
            return
        # A finished trial still sets the bar at the rungs it reached.
        self._brackets[index].on_result(trial.trial_id, result[self._time_attr], self._score(result))

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._trial_bracket.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        lines = [f"Using AsyncHyperBand: num_stopped={self._num_stopped}"]
        for b in self._brackets:
            rungs = " | ".join(f"Iter {m:.3f}: {b.cutoff(i)}" for i, m in enumerate(b.milestones))
            lines.append(f"Bracket: {rungs}")
        return "\n".join(lines)


ASHAScheduler = AsyncHyperBandScheduler
