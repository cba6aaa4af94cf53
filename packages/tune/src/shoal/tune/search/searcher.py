"""The :class:`Searcher` interface and :class:`ConcurrencyLimiter`.

A searcher proposes one configuration at a time (``suggest``) and learns
from results (``on_trial_result``, ``on_trial_complete``). The Tuner wraps
it in a :class:`~shoal.tune.search.search_algorithm.SearchGenerator`, which
counts samples and fills in the constant part of the param space.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

__all__ = ["Searcher", "ConcurrencyLimiter"]


def _check_mode(mode: str | None) -> None:
    if mode not in (None, "min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


class Searcher:
    """Base class of search algorithms that propose configurations one at a time.

    Subclasses implement :meth:`suggest` and :meth:`on_trial_complete`, and may
    override :meth:`set_search_properties` to receive the metric, mode and the
    Tuner's param space when they were not given to the constructor.
    """

    #: Returned by :meth:`suggest` when the searcher will propose nothing more.
    FINISHED = "FINISHED"
    CKPT_FILE_TMPL = "searcher-state-{}.pkl"

    def __init__(self, metric: str | None = None, mode: str | None = None) -> None:
        _check_mode(mode)
        self._metric = metric
        self._mode = mode

    @property
    def metric(self) -> str | None:
        """The metric this searcher optimizes."""
        return self._metric

    @property
    def mode(self) -> str | None:
        """``"min"`` or ``"max"``."""
        return self._mode

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        """Take the Tuner's metric, mode and param space; False if this searcher cannot use them."""
        _check_mode(mode)
        if self._metric is None and metric is not None:
            self._metric = metric
        if self._mode is None and mode is not None:
            self._mode = mode
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Let the searcher limit concurrency itself; False means wrap it in a ConcurrencyLimiter."""
        return False

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """A config for a new trial, None for 'not now', or :attr:`FINISHED`."""
        raise NotImplementedError

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """An intermediate result of a trial."""

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """A trial ended, with its last result (None if it errored before reporting)."""
        raise NotImplementedError

    def on_pause(self, trial_id: str) -> None:
        """A trial was paused by the scheduler."""

    def on_unpause(self, trial_id: str) -> None:
        """A paused trial was resumed."""

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        """Tell the searcher about a configuration evaluated elsewhere."""
        raise NotImplementedError(f"{type(self).__name__} cannot take points evaluated elsewhere")

    def get_state(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        """Write the searcher's state to a file."""
        import cloudpickle

        with open(checkpoint_path, "wb") as f:
            cloudpickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        """Read the state that :meth:`save` wrote."""
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        self.save(os.path.join(checkpoint_dir, self.CKPT_FILE_TMPL.format(session_str)))

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        names = sorted(n for n in os.listdir(checkpoint_dir) if n.startswith("searcher-state-") and n.endswith(".pkl"))
        if not names:
            raise RuntimeError(f"no searcher state file in {checkpoint_dir}")
        self.restore(os.path.join(checkpoint_dir, names[-1]))


class ConcurrencyLimiter(Searcher):
    """Let at most ``max_concurrent`` trials of the wrapped searcher be live at once.

    With ``batch=True`` it proposes ``max_concurrent`` trials, then waits for
    all of them to finish before proposing the next batch.
    """

    def __init__(self, searcher: Searcher, max_concurrent: int, batch: bool = False) -> None:
        if not isinstance(searcher, Searcher):
            raise TypeError(f"searcher must be a Searcher, got {searcher!r}")
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be an integer >= 1, got {max_concurrent!r}")
        self.searcher = searcher
        self.max_concurrent = max_concurrent
        self.batch = batch
        self.live_trials: set[str] = set()
        self.num_unfinished_live_trials = 0
        self.cached_results: dict[str, tuple[dict[str, Any] | None, bool]] = {}
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    @property
    def metric(self) -> str | None:
        return self.searcher.metric

    @property
    def mode(self) -> str | None:
        return self.searcher.mode

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if len(self.live_trials) >= self.max_concurrent:
            return None
        suggestion = self.searcher.suggest(trial_id)
        if suggestion not in (None, Searcher.FINISHED):
            self.live_trials.add(trial_id)
            self.num_unfinished_live_trials += 1
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self.live_trials:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self.live_trials:
            return
        if not self.batch:
            self.live_trials.discard(trial_id)
            self.num_unfinished_live_trials -= 1
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            return
        # In batch mode, results are held until the whole batch is done, then passed on together.
        self.cached_results[trial_id] = (result, error)
        self.num_unfinished_live_trials -= 1
        if self.num_unfinished_live_trials <= 0:
            for tid, (res, err) in self.cached_results.items():
                self.searcher.on_trial_complete(tid, result=res, error=err)
            self.cached_results.clear()
            self.live_trials.clear()
            self.num_unfinished_live_trials = 0

    def on_pause(self, trial_id: str) -> None:
        self.searcher.on_pause(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self.searcher.on_unpause(trial_id)

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        self.searcher.add_evaluated_point(parameters, value, error, pruned, intermediate_values)
