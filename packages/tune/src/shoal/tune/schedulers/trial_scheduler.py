"""The scheduler interface, :class:`TrialScheduler`, and the default :class:`FIFOScheduler`.

A scheduler decides, from results, whether each trial continues, pauses or
stops, and which pending or paused trial runs next. It makes decisions only;
the trial controller carries them out. Its methods receive the controller
(``tune_controller``), which offers:

- ``get_trials()`` / ``get_live_trials()``: every trial / the unfinished ones;
- ``has_resources_for_trial(trial)``: whether the trial fits in the free resources;
- ``stop_trial(trial)``: stop a *paused or pending* trial other than the one
  reporting (the scheduler is not called back for it);
- ``no_more_trials``: True once the search algorithm will add no trials.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.tune.experiment.trial import Trial

__all__ = ["TrialScheduler", "FIFOScheduler"]


class TrialScheduler:
    """Base class of trial schedulers."""

    CONTINUE = "CONTINUE"  #: keep training the trial
    PAUSE = "PAUSE"  #: save the trial and free its resources; it may resume later
    STOP = "STOP"  #: end the trial (it counts as TERMINATED)
    NOOP = "NOOP"  #: the scheduler already acted on the trial itself

    _metric: str | None = None
    _mode: str | None = None
    _supports_buffered_results = True

    @property
    def metric(self) -> str | None:
        return self._metric

    @property
    def mode(self) -> str | None:
        return self._mode

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Take the Tuner's metric and mode; False if the scheduler already has different ones."""
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if self._metric is not None and metric is not None and metric != self._metric:
            return False
        if self._mode is not None and mode is not None and mode != self._mode:
            return False
        if metric is not None:
            self._metric = metric
        if mode is not None:
            self._mode = mode
        return True

    def _require_metric(self) -> float:
        """+1 for mode 'max', -1 for 'min'; a clear error when metric or mode is missing."""
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError(
                f"{type(self).__name__} needs a `metric` and a `mode`: pass them to the scheduler "
                "or to tune.TuneConfig(metric=..., mode=...)"
            )
        return 1.0 if self._mode == "max" else -1.0

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        """A new trial was created (it is PENDING)."""

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        """A trial failed for good."""

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        """A trial reported ``result``; answer CONTINUE, PAUSE, STOP or NOOP."""
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        """A trial finished (its function returned, a stopper fired, or a scheduler stopped it)."""

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        """A trial was removed without completing (stopped from outside the scheduler)."""

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        """The pending or paused trial to start next, or None."""
        from shoal.tune.experiment.trial import Trial

        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in tune_controller.get_live_trials():
                if trial.status == status and tune_controller.has_resources_for_trial(trial):
                    return trial
        return None

    def debug_string(self) -> str:
        return f"Using {type(self).__name__}"

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


class FIFOScheduler(TrialScheduler):
    """Run trials in the order they were created, each to the end."""

    def __init__(self) -> None:
        pass
