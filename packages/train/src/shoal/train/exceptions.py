"""Errors that ``fit()`` raises."""

from __future__ import annotations

from typing import Any

from shoal.exceptions import ShoalError

__all__ = ["TrainingFailedError", "WorkerGroupError", "WorkerDiedError"]


class TrainingFailedError(ShoalError, RuntimeError):
    """Training failed and no restarts were left (``FailureConfig.max_failures``)."""


class WorkerGroupError(TrainingFailedError):
    """One or more training workers failed; ``worker_failures`` maps world rank to its error.

    Each error carries the worker's traceback as ``traceback_str`` where one was
    captured (an exception in the training function), and the message names the
    rank and process of every failed worker.
    """

    def __init__(self, error_message: str, worker_failures: dict[int, BaseException]) -> None:
        self._error_message = error_message
        self.worker_failures = dict(worker_failures)
        super().__init__("Training failed due to worker errors:\n" + error_message)

    def __reduce__(self) -> Any:
        return (type(self), (self._error_message, self.worker_failures))


class WorkerDiedError(ShoalError, RuntimeError):
    """A training worker's process ended without reporting an error (killed, crashed, out of memory)."""

    def __init__(self, message: str, rank: int | None = None, pid: int | None = None) -> None:
        self.rank = rank
        self.pid = pid
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (self.args[0] if self.args else "", self.rank, self.pid))
