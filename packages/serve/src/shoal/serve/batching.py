"""``@serve.batch``: gather concurrent calls of an async method into one call on a list."""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import types
from collections.abc import Callable
from typing import Any

__all__ = ["batch"]


class _BatchQueue:
    """Calls waiting to be batched, and the task that runs batches, on one event loop."""

    def __init__(self, fn: Callable[..., Any], owner: Any, max_batch_size: int, timeout_s: float, concurrent: int):
        self.fn = fn
        self.owner = owner
        self.max_batch_size = max_batch_size
        self.timeout_s = timeout_s
        self.items: collections.deque[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = collections.deque()
        self.loop = asyncio.get_running_loop()
        self.arrived = asyncio.Event()
        self.slots = asyncio.Semaphore(concurrent)
        self.task = self.loop.create_task(self._run())

    def put(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> asyncio.Future[Any]:
        fut = self.loop.create_future()
        self.items.append((args, kwargs, fut))
        self.arrived.set()
        return fut

    async def _run(self) -> None:
        while True:
            await self.arrived.wait()
            deadline = self.loop.time() + self.timeout_s
            while len(self.items) < self.max_batch_size:
                remaining = deadline - self.loop.time()
                if remaining <= 0:
                    break
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), remaining)
                except TimeoutError:
                    break
            batch: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
            while self.items and len(batch) < self.max_batch_size:
                item = self.items.popleft()
                if not item[2].done():  # skip callers that were cancelled while waiting
                    batch.append(item)
            if not self.items:
                self.arrived.clear()
            if batch:
                await self.slots.acquire()
                self.loop.create_task(self._call(batch))

    async def _call(self, batch: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            nargs = len(batch[0][0])
            keys = list(batch[0][1])
            if any(len(a) != nargs or list(k) != keys for a, k, _ in batch):
                raise TypeError("all calls of a @serve.batch method must pass the same arguments")
            args = [[a[i] for a, _, _ in batch] for i in range(nargs)]
            kwargs = {key: [k[key] for _, k, _ in batch] for key in keys}
            prefix = (self.owner,) if self.owner is not None else ()
            results = await self.fn(*prefix, *args, **kwargs)
            if not isinstance(results, (list, tuple)) or len(results) != len(batch):
                raise TypeError(
                    f"a @serve.batch function must return a list of {len(batch)} results (one per call), "
                    f"got {type(results).__name__}"
                    + (f" of length {len(results)}" if isinstance(results, (list, tuple)) else "")
                )
            for (_, _, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
        except Exception as e:  # noqa: BLE001 - every caller of the batch sees the error
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
        finally:
            self.slots.release()


class _Batched:
    """An async function or method whose calls are batched; binds to instances like a function.

    A class (not a closure) so that it pickles with the deployment class that
    holds it; the queues, which cannot pickle, are left out.
    """

    def __init__(self, fn: Callable[..., Any], max_batch_size: int, timeout_s: float, concurrent: int) -> None:
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._max_batch_size = max_batch_size
        self._timeout_s = timeout_s
        self._concurrent = concurrent
        params = list(inspect.signature(fn).parameters)
        self._is_method = bool(params) and params[0] == "self"
        self._queues: dict[tuple[int, int], _BatchQueue] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_queues"] = {}
        return state

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return types.MethodType(self, obj)

    def _queue(self, owner: Any) -> _BatchQueue:
        loop = asyncio.get_running_loop()
        key = (id(owner), id(loop))
        queue = self._queues.get(key)
        if queue is None or queue.loop is not loop:
            queue = _BatchQueue(self._fn, owner, self._max_batch_size, self._timeout_s, self._concurrent)
            self._queues[key] = queue
        return queue

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        owner = None
        if self._is_method:
            owner, args = args[0], args[1:]
        return await self._queue(owner).put(args, kwargs)

    def set_max_batch_size(self, n: int) -> None:
        """Change the batch size of this function's queues, now and later."""
        self._max_batch_size = n
        for queue in self._queues.values():
            queue.max_batch_size = n

    def set_batch_wait_timeout_s(self, timeout_s: float) -> None:
        """Change how long a batch waits to fill up."""
        self._timeout_s = float(timeout_s)
        for queue in self._queues.values():
            queue.timeout_s = float(timeout_s)


def batch(
    _func: Callable[..., Any] | None = None,
    *,
    max_batch_size: int = 10,
    batch_wait_timeout_s: float = 0.01,
    max_concurrent_batches: int = 1,
) -> Any:
    """Batch calls of an async function or method: it receives lists and returns a list of results.

    Each caller passes one item and gets its own result back. A batch
    runs when ``max_batch_size`` calls wait or ``batch_wait_timeout_s``
    has passed since the first of them arrived.
    """
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise ValueError(f"max_batch_size must be an integer >= 1, got {max_batch_size!r}")
    if (
        isinstance(batch_wait_timeout_s, bool)
        or not isinstance(batch_wait_timeout_s, (int, float))
        or batch_wait_timeout_s < 0
    ):
        raise ValueError(f"batch_wait_timeout_s must be a number >= 0, got {batch_wait_timeout_s!r}")
    if (
        isinstance(max_concurrent_batches, bool)
        or not isinstance(max_concurrent_batches, int)
        or max_concurrent_batches < 1
    ):
        raise ValueError(f"max_concurrent_batches must be an integer >= 1, got {max_concurrent_batches!r}")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@serve.batch needs an async function, got {fn!r}")
        return _Batched(fn, max_batch_size, float(batch_wait_timeout_s), max_concurrent_batches)

    if _func is not None:
        return decorate(_func)
    return decorate
