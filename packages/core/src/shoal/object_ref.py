"""References to values in the object store: :class:`ObjectRef` and :class:`ObjectRefGenerator`."""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shoal.backend import Backend

__all__ = ["ObjectRef", "ObjectRefGenerator", "RefTracker", "new_id"]


class RefTracker(Protocol):
    """Counts live :class:`ObjectRef` instances of this process, per object id."""

    def incref(self, object_id: bytes) -> None: ...

    def decref(self, object_id: bytes) -> None: ...


class _NoTracker:
    def incref(self, object_id: bytes) -> None:
        pass

    def decref(self, object_id: bytes) -> None:
        pass


_tracker: RefTracker = _NoTracker()
_backend_getter: Callable[[], Backend] | None = None


def set_tracker(tracker: RefTracker | None, backend_getter: Callable[[], Backend] | None) -> None:
    """Install the running backend's reference tracker (called by the session)."""
    global _tracker, _backend_getter
    _tracker = tracker if tracker is not None else _NoTracker()
    _backend_getter = backend_getter


def _current_backend() -> Backend:
    if _backend_getter is None:
        from shoal import _session

        return _session.backend()
    return _backend_getter()


class _IdSource:
    """Unique 16-byte ids: 8 random bytes per process (re-drawn after fork) and a counter."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = b""
        self._counter: Iterator[int] = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> bytes:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._prefix = os.urandom(8)
                    self._counter = itertools.count(1)
                    self._pid = os.getpid()
        # next() on itertools.count is atomic under the GIL.
        return self._prefix + next(self._counter).to_bytes(8, "little")


_ids = _IdSource()


def new_id() -> bytes:
    """A fresh id for an object, task or actor."""
    return _ids.next()


class ObjectRef:
    """A reference to a value that a task returned or ``shoal.put`` stored.

    Hashable, comparable and picklable into other tasks; ``await ref`` or
    ``ref.future()`` give its value asynchronously. The value is freed when
    the last reference anywhere is dropped.
    """

    __slots__ = ("__weakref__", "_id")

    def __init__(self, object_id: bytes) -> None:
        self._id = object_id
        _tracker.incref(object_id)

    def __del__(self) -> None:
        try:
            _tracker.decref(self._id)
        except Exception:  # noqa: BLE001 - interpreter shutdown: modules may be gone
            pass

    def __reduce__(self) -> tuple[Any, ...]:
        return (ObjectRef, (self._id,))

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def binary(self) -> bytes:
        """The id as bytes."""
        return self._id

    def hex(self) -> str:
        """The id as a hex string."""
        return self._id.hex()

    def future(self) -> concurrent.futures.Future[Any]:
        """A :class:`concurrent.futures.Future` that completes with the value (or its error)."""
        return _current_backend().future(self)

    def __await__(self) -> Any:
        import asyncio  # loaded already where there is something to await in; not in every worker

        return asyncio.wrap_future(self.future()).__await__()


class ObjectRefGenerator:
    """The result of a generator task: yields an :class:`ObjectRef` per value as it is produced.

    Iterate with ``for ref in gen`` or ``async for ref in gen``. An error raised
    by the task arrives as a ref whose ``get`` raises it.
    """

    def __init__(self, generator_id: bytes, backend: Backend) -> None:
        self._id = generator_id
        self._backend = backend
        self._index = 0
        self._done = False

    def __iter__(self) -> Iterator[ObjectRef]:
        return self

    def __next__(self) -> ObjectRef:
        return self._next(timeout=None)

    def _next(self, timeout: float | None) -> ObjectRef:
        if self._done:
            raise StopIteration
        ref = self._backend.generator_next(self._id, self._index, timeout)
        if ref is None:
            self._done = True
            raise StopIteration
        self._index += 1
        return ref

    def __aiter__(self) -> AsyncIterator[ObjectRef]:
        return self

    async def __anext__(self) -> ObjectRef:
        import asyncio

        loop = asyncio.get_running_loop()
        ref = await loop.run_in_executor(None, self._next_or_none)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def _next_or_none(self) -> ObjectRef | None:
        # StopIteration cannot cross into a future, so the end is signalled with None.
        try:
            return self._next(timeout=None)
        except StopIteration:
            return None

    def is_finished(self) -> bool:
        """True once every value has been handed out."""
        return self._done

    def completed(self) -> ObjectRef:
        """A ref that resolves once the generator task has finished (to None, or its error)."""
        return self._backend.generator_completed(self._id)

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._id.hex()})"

    def __del__(self) -> None:
        try:
            self._backend.generator_release(self._id, self._index)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
