"""shoal's exception hierarchy, rooted at :class:`ShoalError`.

Every class here pickles, because errors cross process boundaries. Ray's
names for the same errors are exported as aliases (``RayTaskError`` is
:class:`TaskError`, ...) so that code migrated from Ray keeps catching them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ShoalError",
    "ConfigError",
    "BackendNotFoundError",
    "BackendUnavailableError",
    "TaskError",
    "ActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "AsyncioActorExit",
    "GetTimeoutError",
    "WorkerCrashedError",
    "TaskCancelledError",
    "TaskUnschedulableError",
    "ObjectLostError",
    "ObjectFreedError",
    "ObjectStoreFullError",
    "ObjectFetchTimedOutError",
    "ObjectReconstructionFailedError",
    "OwnerDiedError",
    "OutOfMemoryError",
    "NodeDiedError",
    "RuntimeEnvSetupError",
    "PendingCallsLimitExceeded",
    "PlacementGroupSchedulingError",
    "ShoalSystemError",
    "AuthenticationError",
    # Ray's names, for migrated code.
    "RayError",
    "RayTaskError",
    "RayActorError",
    "RaySystemError",
    "LocalRayletDiedError",
]


class ShoalError(Exception):
    """Base of every error shoal raises."""


class ConfigError(ShoalError, ValueError):
    """A configuration key or value is unknown or invalid."""


class BackendNotFoundError(ShoalError, ValueError):
    """No backend is registered under the requested name."""


class BackendUnavailableError(ShoalError, ImportError):
    """A backend is registered but cannot be loaded; its message says what to install."""


class ShoalSystemError(ShoalError):
    """shoal's runtime itself failed (a bug or a lost internal process)."""


class AuthenticationError(ShoalError):
    """A peer presented no cluster token or a wrong one."""


class TaskError(ShoalError):
    """A task or actor method raised; ``get`` re-raises it as this and as the original class.

    ``cause`` is the original exception and ``traceback_str`` the remote
    traceback of the user's code, without shoal's own frames.
    """

    def __init__(
        self,
        function_name: str = "",
        traceback_str: str = "",
        cause: BaseException | None = None,
        pid: int | None = None,
    ) -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"shoal::{self.function_name}()"
        if self.pid is not None:
            where += f" (pid={self.pid})"
        body = self.traceback_str.rstrip() if self.traceback_str else repr(self.cause)
        return f"{where}\n{body}"

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> Any:
        return (_rebuild_task_error, (self.function_name, self.traceback_str, self.cause, self.pid))

    def as_instanceof_cause(self) -> TaskError:
        """Return an error that is both a :class:`TaskError` and an instance of the cause's class."""
        cause = self.cause
        if cause is None or isinstance(cause, TaskError):
            return cause if isinstance(cause, TaskError) else self
        cls = _dual_class(type(cause))
        if cls is None:
            return self
        try:
            # Through type's call, not cls.__new__: built-ins such as MemoryError refuse
            # a direct __new__ on a subclass with another base first (_dual_init does nothing).
            err = cls(*getattr(cause, "args", ()))
        except Exception:  # noqa: BLE001 - a cause class that cannot be built this way
            return self
        try:
            err.__dict__.update(cause.__dict__)
        except (AttributeError, TypeError):  # pragma: no cover - exotic exception types
            pass
        err.function_name = self.function_name
        err.traceback_str = self.traceback_str
        err.cause = cause
        err.pid = self.pid
        err.args = (self._message(),)
        return err


_DUAL_CLASSES: dict[type, type | None] = {}


def _dual_class(cause_cls: type) -> type | None:
    """A subclass of both TaskError and ``cause_cls``, created once per class."""
    if cause_cls in _DUAL_CLASSES:
        return _DUAL_CLASSES[cause_cls]
    cls: type | None
    try:
        cls = type(
            f"TaskError({cause_cls.__name__})",
            (TaskError, cause_cls),
            {
                "__init__": _dual_init,
                "__str__": TaskError.__str__,
                "__reduce__": TaskError.__reduce__,
                "__module__": cause_cls.__module__,
            },
        )
    except TypeError:
        cls = None
    _DUAL_CLASSES[cause_cls] = cls
    return cls


def _dual_init(self: TaskError, *args: Any, **kwargs: Any) -> None:
    # The instance is filled in by as_instanceof_cause; the cause class's own
    # __init__ signature is unknown, so nothing is called here.
    pass


def _rebuild_task_error(
    function_name: str, traceback_str: str, cause: BaseException | None, pid: int | None
) -> TaskError:
    return TaskError(function_name, traceback_str, cause, pid).as_instanceof_cause()


class ActorError(ShoalError):
    """An actor could not run a method call."""

    def __init__(self, message: str = "The actor died unexpectedly.", actor_id: str | None = None):
        self.actor_id = actor_id
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (self.args[0] if self.args else "", self.actor_id))


class ActorDiedError(ActorError):
    """The actor is dead: killed, crashed, failed in its constructor, or out of restarts."""


class ActorUnavailableError(ActorError):
    """The actor is restarting or unreachable for now; the call may succeed later."""


class ActorUnschedulableError(ActorError):
    """No node can ever hold the actor's resources."""


class AsyncioActorExit(ShoalError):
    """Raised inside an async actor to make it exit."""


class GetTimeoutError(ShoalError, TimeoutError):
    """``get`` did not see the object within its timeout."""


class WorkerCrashedError(ShoalError):
    """The worker process running the task died and no retries were left."""


class TaskCancelledError(ShoalError):
    """The task was cancelled with ``shoal.cancel``."""

    def __init__(self, message: str = "The task was cancelled.", task_id: str | None = None):
        self.task_id = task_id
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (self.args[0] if self.args else "", self.task_id))


class TaskUnschedulableError(ShoalError):
    """No node can ever satisfy the task's resource request."""


class ObjectLostError(ShoalError):
    """The object's value is gone and cannot be rebuilt."""

    def __init__(self, message: str = "The object was lost.", object_id: str | None = None):
        self.object_id = object_id
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (self.args[0] if self.args else "", self.object_id))


class ObjectFreedError(ObjectLostError):
    """The object was freed explicitly and can no longer be read."""


class ObjectReconstructionFailedError(ObjectLostError):
    """The object was lost and rebuilding it from lineage failed."""


class OwnerDiedError(ObjectLostError):
    """The process that owned the object died."""


class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching the object from another node timed out."""


class ObjectStoreFullError(ShoalError, MemoryError):
    """The object store is full and nothing more can be spilled."""


class OutOfMemoryError(ShoalError, MemoryError):
    """A worker was killed because the machine ran out of memory."""


class NodeDiedError(ShoalError):
    """The node running the work died."""


class RuntimeEnvSetupError(ShoalError):
    """The task's or actor's runtime_env could not be set up."""


class PendingCallsLimitExceeded(ShoalError):
    """An actor's queue of pending calls is full."""


class PlacementGroupSchedulingError(ShoalError, ValueError):
    """A placement group can never be placed, or was removed."""


# Ray's names for the same errors.
RayError = ShoalError
RayTaskError = TaskError
RayActorError = ActorError
RaySystemError = ShoalSystemError
LocalRayletDiedError = ShoalSystemError
