"""The public functions of ``shoal``: remote, get, put, wait, cancel, kill and friends."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, overload

from shoal import _session
from shoal.actor import ActorClass, ActorHandle
from shoal.object_ref import ObjectRef, ObjectRefGenerator
from shoal.remote_function import RemoteFunction

__all__ = [
    "available_resources",
    "cancel",
    "cluster_resources",
    "get",
    "get_actor",
    "get_gpu_ids",
    "kill",
    "nodes",
    "put",
    "remote",
    "wait",
]


def _make_remote(obj: Any, options: dict[str, Any]) -> RemoteFunction | ActorClass:
    if inspect.isclass(obj):
        return ActorClass(obj, options)
    if callable(obj):
        return RemoteFunction(obj, options)
    raise TypeError(f"@shoal.remote expects a function or a class, got {obj!r}")


@overload
def remote(__obj: Callable[..., Any]) -> Any: ...


@overload
def remote(**options: Any) -> Callable[[Any], Any]: ...


def remote(*args: Any, **options: Any) -> Any:
    """Make a function a task (``f.remote()``) or a class an actor (``Cls.remote()``).

    Use bare (``@shoal.remote``) or with options
    (``@shoal.remote(num_cpus=2, max_retries=1)``).
    """
    if args:
        if len(args) != 1 or options:
            raise TypeError(
                "@shoal.remote takes either one function or class, or only keyword options "
                "such as @shoal.remote(num_cpus=1)"
            )
        return _make_remote(args[0], {})
    return lambda obj: _make_remote(obj, options)


class _NotAnObjectRef(TypeError, ValueError):
    """``get``/``wait`` of something that is not a ref (a TypeError; Ray raises ValueError, so also that)."""


def _not_a_ref(value: Any, what: str) -> TypeError:
    return _NotAnObjectRef(f"Attempting to call `{what}` on the value {value!r}, which is not a shoal.ObjectRef.")


def get(object_refs: ObjectRef | Sequence[ObjectRef], *, timeout: float | None = None) -> Any:
    """The value of a ref, or the values of a list of refs, waiting up to ``timeout`` seconds.

    Re-raises a task's exception (as a TaskError that is also the original
    class) and raises GetTimeoutError when the timeout passes.
    """
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be a number >= 0 or None, got {timeout!r}")
    backend = _session.backend()
    if isinstance(object_refs, ObjectRef):
        return backend.get([object_refs], timeout)[0]
    if isinstance(object_refs, ObjectRefGenerator):
        raise TypeError("get() does not take an ObjectRefGenerator; iterate over it to get refs")
    if isinstance(object_refs, (list, tuple)):
        for ref in object_refs:
            if not isinstance(ref, ObjectRef):
                raise _not_a_ref(ref, "get")
        values = backend.get(object_refs, timeout)
        return values
    raise _not_a_ref(object_refs, "get")


def put(value: Any, *, _owner: Any = None) -> ObjectRef:
    """Store ``value`` in the object store and return its ref."""
    if isinstance(value, ObjectRef):
        raise TypeError(
            "Calling 'put' on an ObjectRef is not allowed. If you really want to do this, "
            "wrap it in a list: shoal.put([ref])"
        )
    return _session.backend().put(value)


def wait(
    object_refs: Sequence[ObjectRef],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Wait until ``num_returns`` refs are ready or ``timeout`` passes.

    Returns ``(ready, not_ready)``; both keep the order of ``object_refs``.
    """
    if isinstance(object_refs, ObjectRef):
        raise TypeError("wait() expected a list of shoal.ObjectRef, got a single shoal.ObjectRef")
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"wait() expected a list of shoal.ObjectRef, got {type(object_refs).__name__}")
    for ref in object_refs:
        if not isinstance(ref, ObjectRef):
            raise TypeError(f"wait() expected a list of shoal.ObjectRef, got an element {ref!r}")
    if len(set(object_refs)) != len(object_refs):
        raise ValueError("wait() requires a list of unique object refs")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns < 0:
        raise ValueError(f"num_returns must be an integer >= 0, got {num_returns!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be a number >= 0 or None, got {timeout!r}")
    if not object_refs:
        return [], []  # as Ray: nothing to wait for, whatever num_returns asks
    if num_returns > len(object_refs):
        raise ValueError(f"num_returns ({num_returns}) cannot be greater than the number of refs ({len(object_refs)})")
    return _session.backend().wait(list(object_refs), num_returns, timeout, fetch_local)


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that produces ``object_ref``; its ``get`` raises TaskCancelledError.

    A queued task never runs; a running one is interrupted (KeyboardInterrupt
    inside it), or with ``force=True`` its worker is killed. ``recursive``
    also cancels the tasks it submitted.
    """
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"cancel() expects an ObjectRef, got {object_ref!r}")
    _session.backend().cancel(object_ref, force, recursive)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Stop an actor at once; with ``no_restart=False`` it may restart within ``max_restarts``."""
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"kill() expects an actor handle, got {actor!r}")
    _session.backend().kill_actor(actor._actor_id, no_restart)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of the live actor named ``name``; ValueError if there is none."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor() needs a non-empty name, got {name!r}")
    return ActorHandle(_session.backend().get_actor(name, namespace))


def cluster_resources() -> dict[str, float]:
    """Total resources of the cluster."""
    return _session.backend().cluster_resources()


def available_resources() -> dict[str, float]:
    """Resources not held by running tasks and actors."""
    return _session.backend().available_resources()


def nodes() -> list[dict[str, Any]]:
    """One dict per node (``NodeID``, ``Alive``, ``Resources``, ...)."""
    return _session.backend().nodes()


def get_gpu_ids() -> list[int]:
    """GPU ids assigned to the calling task or actor (empty in the driver)."""
    return list(_session.backend().runtime_info().gpu_ids)
