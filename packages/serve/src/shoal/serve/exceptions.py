"""Errors raised by shoal.serve; all pickle, since they cross process boundaries."""

from __future__ import annotations

from typing import Any

from shoal.exceptions import ShoalError

__all__ = [
    "BackPressureError",
    "DeploymentUnavailableError",
    "RayServeException",
    "ReplicaDiedError",
    "RequestCancelledError",
    "ServeException",
]


class ServeException(ShoalError):
    """A serve operation failed (deploying, looking up an application, calling a handle)."""


# Ray's name for the same class, so code written for Ray Serve catches it unchanged.
RayServeException = ServeException


class BackPressureError(ServeException):
    """A request was refused because more than ``max_queued_requests`` were already waiting."""

    def __init__(self, num_queued_requests: int = 0, max_queued_requests: int = 0, message: str = "") -> None:
        self.num_queued_requests = num_queued_requests
        self.max_queued_requests = max_queued_requests
        super().__init__(
            message
            or (
                f"Request dropped due to backpressure (num_queued_requests={num_queued_requests}, "
                f"max_queued_requests={max_queued_requests})."
            )
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.num_queued_requests, self.max_queued_requests, self.args[0]))


class RequestCancelledError(ServeException):
    """The request was cancelled (by the caller or because its HTTP client went away)."""


class ReplicaDiedError(ServeException):
    """The replica serving the request died before answering."""


class DeploymentUnavailableError(ServeException):
    """The deployment is not running (deleted, failed to deploy, or serve shut down)."""
