"""When trials (or the whole experiment) stop: :class:`Stopper` and ready-made stoppers."""

from __future__ import annotations

import abc
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = [
    "CombinedStopper",
    "ExperimentPlateauStopper",
    "FunctionStopper",
    "MaximumIterationStopper",
    "Stopper",
    "TimeoutStopper",
    "TrialPlateauStopper",
    "as_stopper",
]


class Stopper(abc.ABC):
    """Decides after each result whether that trial stops, and whether everything stops."""

    @abc.abstractmethod
    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """True to stop the trial that reported ``result``."""

    @abc.abstractmethod
    def stop_all(self) -> bool:
        """True to stop the whole experiment."""


class CombinedStopper(Stopper):
    """Stops when any of its stoppers does."""

    def __init__(self, *stoppers: Stopper) -> None:
        self._stoppers = stoppers

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        # Every stopper sees every result (some keep state), so no short-circuit.
        return any([s(trial_id, result) for s in self._stoppers])

    def stop_all(self) -> bool:
        return any([s.stop_all() for s in self._stoppers])


class FunctionStopper(Stopper):
    """Wraps ``fn(trial_id, result) -> bool``."""

    def __init__(self, function: Callable[[str, dict[str, Any]], bool]) -> None:
        if not callable(function):
            raise TypeError(f"FunctionStopper expects a function, got {function!r}")
        self._fn = function

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return bool(self._fn(trial_id, result))

    def stop_all(self) -> bool:
        return False

    @classmethod
    def is_valid_function(cls, fn: Any) -> bool:
        return callable(fn) and not isinstance(fn, Stopper)


class MaximumIterationStopper(Stopper):
    """Stops each trial after ``max_iter`` results."""

    def __init__(self, max_iter: int) -> None:
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
        self._max_iter = max_iter
        self._iters: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self._iters[trial_id] = self._iters.get(trial_id, 0) + 1
        return self._iters[trial_id] >= self._max_iter

    def stop_all(self) -> bool:
        return False


class TimeoutStopper(Stopper):
    """Stops the experiment ``timeout`` seconds after the first result."""

    def __init__(self, timeout: float) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a number > 0, got {timeout!r}")
        self._timeout = float(timeout)
        self._start: float | None = None

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if self._start is None:
            self._start = time.monotonic()
        return False

    def stop_all(self) -> bool:
        return self._start is not None and time.monotonic() - self._start >= self._timeout


class TrialPlateauStopper(Stopper):
    """Stops a trial whose ``metric`` has a standard deviation <= ``std`` over its last ``num_results``.

    Not before ``grace_period`` results; ``metric_threshold`` with ``mode``
    only stops trials whose metric is already past the threshold.
    """

    def __init__(
        self,
        metric: str,
        std: float = 0.01,
        num_results: int = 4,
        grace_period: int = 4,
        metric_threshold: float | None = None,
        mode: str | None = None,
    ) -> None:
        if metric_threshold is not None and mode not in ("min", "max"):
            raise ValueError("metric_threshold needs mode='min' or 'max'")
        self._metric = metric
        self._std = std
        self._num_results = num_results
        self._grace = grace_period
        self._threshold = metric_threshold
        self._mode = mode
        self._windows: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if self._metric not in result:
            return False
        value = float(result[self._metric])
        self._counts[trial_id] = self._counts.get(trial_id, 0) + 1
        window = self._windows.setdefault(trial_id, deque(maxlen=self._num_results))
        window.append(value)
        if self._counts[trial_id] < self._grace or len(window) < self._num_results:
            return False
        if self._threshold is not None:
            if self._mode == "min" and value > self._threshold:
                return False
            if self._mode == "max" and value < self._threshold:
                return False
        mean = sum(window) / len(window)
        std = (sum((v - mean) ** 2 for v in window) / len(window)) ** 0.5
        return std <= self._std

    def stop_all(self) -> bool:
        return False


class ExperimentPlateauStopper(Stopper):
    """Stops the experiment when the best ``top`` results' std is <= ``std`` for ``patience`` results."""

    def __init__(self, metric: str, std: float = 0.001, top: int = 10, mode: str = "min", patience: int = 0) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self._metric = metric
        self._std = std
        self._top = top
        self._mode = mode
        self._patience = patience
        self._values: list[float] = []
        self._steps = 0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if self._metric in result:
            self._values.append(float(result[self._metric]))
            self._values.sort(reverse=self._mode == "max")
            del self._values[self._top :]
            if len(self._values) >= self._top:
                mean = sum(self._values) / len(self._values)
                std = (sum((v - mean) ** 2 for v in self._values) / len(self._values)) ** 0.5
                self._steps = self._steps + 1 if std <= self._std else 0
        return self.stop_all()

    def stop_all(self) -> bool:
        return len(self._values) >= self._top and self._steps > self._patience


class _DictStopper(Stopper):
    """``{"metric": threshold}``: stop when any metric reaches its threshold."""

    def __init__(self, criteria: dict[str, Any]) -> None:
        for key, value in criteria.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"stop criterion {key!r} must be a number, got {value!r}")
        self._criteria = dict(criteria)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        for key, threshold in self._criteria.items():
            value = result.get(key)
            if value is None:
                continue
            if value >= threshold:
                return True
        return False

    def stop_all(self) -> bool:
        return False


def as_stopper(stop: Any) -> Stopper | None:
    """RunConfig's ``stop`` as a Stopper (None when there is none)."""
    if stop is None:
        return None
    if isinstance(stop, Stopper):
        return stop
    if isinstance(stop, dict):
        return _DictStopper(stop) if stop else None
    if callable(stop):
        return FunctionStopper(stop)
    raise TypeError(f"stop must be a dict, a function or a Stopper, got {stop!r}")
