"""Hooks into an experiment's life: :class:`Callback`.

Subclass and override what you need; each hook gets ``iteration`` (the
controller's step count), ``trials`` (every trial so far) and the trial
concerned. Callbacks run in the driver, between decisions, so keep them quick.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Callback"]


class Callback:
    """Base class of experiment callbacks (``RunConfig(callbacks=[...])``)."""

    def setup(
        self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None, **info: Any
    ) -> None:
        """Called once before the first trial starts."""

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """Called before each round of the controller loop."""

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """Called after each round of the controller loop."""

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial started for the first time."""

    def on_trial_restore(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial restarted from a checkpoint (after a pause, a failure or an exploit)."""

    def on_trial_save(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial saved a checkpoint."""

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        """A trial reported a result."""

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial finished successfully."""

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial failed and will be retried."""

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial failed for good."""

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        """A checkpoint of a trial was registered."""

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """Called once after the last trial ended."""
