"""Synchronous HyperBand: :class:`HyperBandScheduler`.

HyperBand (Li et al., 2017) runs successive halving in brackets that trade
the number of configurations against the budget each gets. With
``s_max = floor(log_eta(max_t))``, bracket ``s`` (from ``s_max`` down to 0)
takes ``ceil((s_max + 1) / (s + 1) * eta**s)`` trials and first trains them
to ``max_t * eta**-s``. When every trial of the bracket has reached the
current milestone (the others wait PAUSED), the best ``1 / eta`` go on to a
milestone ``eta`` times larger and the rest stop; at ``max_t`` trials end.
New trials fill brackets in order; after bracket 0 a new round of brackets
begins.

Pausing needs checkpoints: a paused function trainable that never reported
one restarts from scratch when it resumes, as in Ray Tune.
"""

from __future__ import annotations

import math
from typing import Any

from shoal.tune.experiment.trial import Trial
from shoal.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

__all__ = ["HyperBandScheduler"]


class _Bracket:
    """One successive-halving bracket."""

    def __init__(self, s: int, size: int, first_milestone: float, max_t: float, eta: float) -> None:
        self.s = s
        self.size = size
        self.eta = eta
        self.max_t = max_t
        self.milestone = min(first_milestone, max_t)
        self.trials: list[Trial] = []
        self.live: dict[str, Trial] = {}
        self.scores: dict[str, float | None] = {}
        self.reached: set[str] = set()
        self.promoted: set[str] = set()

    def filled(self) -> bool:
        return len(self.trials) >= self.size

    def add(self, trial: Trial) -> None:
        self.trials.append(trial)
        self.live[trial.trial_id] = trial

    def remove(self, trial_id: str) -> None:
        self.live.pop(trial_id, None)
        self.scores.pop(trial_id, None)
        self.reached.discard(trial_id)
        self.promoted.discard(trial_id)

    def round_done(self, no_more_trials: bool) -> bool:
        if not self.live:
            return False
        if not (self.filled() or no_more_trials):
            return False
        return all(tid in self.reached for tid in self.live)

    def halve(self) -> tuple[list[Trial], list[Trial]]:
        """Keep the best 1/eta of the live trials for the next, larger milestone; return (good, bad)."""
        ranked = sorted(
            self.live.values(),
            key=lambda t: (self.scores.get(t.trial_id) is None, -(self.scores.get(t.trial_id) or 0.0)),
        )
        keep = max(1, math.floor(len(ranked) / self.eta))
        good, bad = ranked[:keep], ranked[keep:]
        for t in bad:
            self.remove(t.trial_id)
        self.milestone = min(self.milestone * self.eta, self.max_t)
        self.reached.clear()
        self.promoted = {t.trial_id for t in good}
        return good, bad

    def __repr__(self) -> str:
        return (
            f"Bracket(s={self.s}, size={len(self.trials)}/{self.size}, milestone={self.milestone}, "
            f"live={len(self.live)})"
        )


class HyperBandScheduler(FIFOScheduler):
    """Synchronous HyperBand with pausing; ``max_t`` and ``reduction_factor`` (eta) shape the brackets."""

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: float = 81,
        reduction_factor: float = 3,
        stop_last_trials: bool = True,
    ) -> None:
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not max_t > 0:
            raise ValueError(f"max_t must be > 0, got {max_t!r}")
        if not reduction_factor > 1:
            raise ValueError(f"reduction_factor must be > 1, got {reduction_factor!r}")
        self._time_attr = time_attr
        self._metric = metric
        self._mode = mode
        self._max_t = max_t
        self._eta = reduction_factor
        self._stop_last_trials = stop_last_trials
        self._s_max = max(0, math.floor(math.log(max_t) / math.log(reduction_factor) + 1e-9))
        self._brackets: list[_Bracket] = []
        self._next_s = self._s_max
        self._trial_bracket: dict[str, _Bracket] = {}
        self._num_stopped = 0

    def _new_bracket(self) -> _Bracket:
        s = self._next_s
        size = math.ceil((self._s_max + 1) / (s + 1) * self._eta**s)
        bracket = _Bracket(s, size, self._max_t * self._eta ** (-s), self._max_t, self._eta)
        self._brackets.append(bracket)
        self._next_s = s - 1 if s > 0 else self._s_max
        return bracket

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._require_metric()
        bracket = self._brackets[-1] if self._brackets and not self._brackets[-1].filled() else self._new_bracket()
        bracket.add(trial)
        self._trial_bracket[trial.trial_id] = bracket

    def _score(self, result: dict[str, Any]) -> float | None:
        value = result.get(self._metric)  # type: ignore[arg-type]
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return self._require_metric() * float(value)

    def _annotate(self, bracket: _Bracket, result: dict[str, Any]) -> None:
        """Hook for subclasses to add bracket information to a result."""

    def _settle(self, tune_controller: Any, bracket: _Bracket, current: Trial | None) -> list[Trial]:
        """Halve a bracket whose round is done; stop the losers other than ``current``. Returns the winners."""
        good, bad = bracket.halve()
        for t in bad:
            self._trial_bracket.pop(t.trial_id, None)
            self._num_stopped += 1
            if t is not current and not t.is_finished():
                tune_controller.stop_trial(t)
        return good

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        bracket = self._trial_bracket.get(trial.trial_id)
        if bracket is None or trial.trial_id not in bracket.live or self._time_attr not in result:
            return TrialScheduler.CONTINUE
        self._annotate(bracket, result)
        bracket.scores[trial.trial_id] = self._score(result)
        if result[self._time_attr] < bracket.milestone:
            return TrialScheduler.CONTINUE
        if bracket.milestone >= self._max_t:
            bracket.remove(trial.trial_id)
            self._trial_bracket.pop(trial.trial_id, None)
            return TrialScheduler.STOP if self._stop_last_trials else TrialScheduler.CONTINUE
        bracket.reached.add(trial.trial_id)
        if bracket.round_done(tune_controller.no_more_trials):
            good = self._settle(tune_controller, bracket, trial)
            if trial in good:
                bracket.promoted.discard(trial.trial_id)
                return TrialScheduler.CONTINUE
            return TrialScheduler.STOP
        return TrialScheduler.PAUSE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        bracket = self._trial_bracket.pop(trial.trial_id, None)
        if bracket is not None:
            bracket.remove(trial.trial_id)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.on_trial_complete(tune_controller, trial, {})

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self.on_trial_complete(tune_controller, trial, {})

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        for bracket in self._brackets:
            if not bracket.live:
                continue
            if bracket.round_done(tune_controller.no_more_trials):
                self._settle(tune_controller, bracket, None)
            for trial in bracket.trials:
                if not tune_controller.has_resources_for_trial(trial):
                    continue
                if trial.status == Trial.PENDING:
                    return trial
                if trial.status == Trial.PAUSED and trial.trial_id in bracket.promoted:
                    bracket.promoted.discard(trial.trial_id)
                    return trial
        return None

    def debug_string(self) -> str:
        return "Using HyperBand: " + ", ".join(repr(b) for b in self._brackets if b.live)
