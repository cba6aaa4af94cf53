"""A first-in first-out queue shared by tasks and actors (Ray's ``util.queue.Queue``).

The items live in an async actor, so any process holding the queue can put
and get; blocking calls wait inside the actor without holding a CPU.
"""

from __future__ import annotations

import asyncio
import queue as _stdlib_queue
from typing import Any

__all__ = ["Queue", "Empty", "Full"]


class Empty(_stdlib_queue.Empty):
    """get() found nothing within its timeout (or without blocking)."""


class Full(_stdlib_queue.Full):
    """put() found no room within its timeout (or without blocking)."""


class _QueueActor:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)

    def qsize(self) -> int:
        return self.queue.qsize()

    def empty(self) -> bool:
        return self.queue.empty()

    def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None = None) -> None:
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except TimeoutError:
            raise Full from None

    async def get(self, timeout: float | None = None) -> Any:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            raise Empty from None

    def put_nowait(self, item: Any) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            raise Full from None

    def put_nowait_batch(self, items: list[Any]) -> None:
        if self.maxsize > 0 and len(items) + self.qsize() > self.maxsize:
            raise Full(f"Cannot add {len(items)} items to queue of size {self.qsize()} and maxsize {self.maxsize}.")
        for item in items:
            self.queue.put_nowait(item)

    def get_nowait(self) -> Any:
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            raise Empty from None

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        if num_items > self.qsize():
            raise Empty(f"Cannot get {num_items} items from queue of size {self.qsize()}.")
        return [self.queue.get_nowait() for _ in range(num_items)]


class Queue:
    """A FIFO queue usable from the driver, tasks and actors; pass it like any value."""

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None) -> None:
        import shoal

        if not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError(f"maxsize must be an integer >= 0, got {maxsize!r}")
        self.maxsize = maxsize
        options = {"num_cpus": 0, **(actor_options or {})}
        self.actor = shoal.remote(**options)(_QueueActor).remote(maxsize)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        return self.qsize()

    def qsize(self) -> int:
        import shoal

        return int(shoal.get(self.actor.qsize.remote()))

    def empty(self) -> bool:
        import shoal

        return bool(shoal.get(self.actor.empty.remote()))

    def full(self) -> bool:
        import shoal

        return bool(shoal.get(self.actor.full.remote()))

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add an item, waiting up to ``timeout`` for room; Full if there is none."""
        import shoal

        if not block:
            self._unwrap(lambda: shoal.get(self.actor.put_nowait.remote(item)))
            return
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        self._unwrap(lambda: shoal.get(self.actor.put.remote(item, timeout)))

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if not block:
            await self._unwrap_async(self.actor.put_nowait.remote(item))
        else:
            await self._unwrap_async(self.actor.put.remote(item, timeout))

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item, waiting up to ``timeout``; Empty if there is none."""
        import shoal

        if not block:
            return self._unwrap(lambda: shoal.get(self.actor.get_nowait.remote()))
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        return self._unwrap(lambda: shoal.get(self.actor.get.remote(timeout)))

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        if not block:
            return await self._unwrap_async(self.actor.get_nowait.remote())
        return await self._unwrap_async(self.actor.get.remote(timeout))

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    def put_nowait_batch(self, items: list[Any]) -> None:
        import shoal

        if not isinstance(items, list):
            raise TypeError("put_nowait_batch expects a list of items")
        self._unwrap(lambda: shoal.get(self.actor.put_nowait_batch.remote(items)))

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        import shoal

        if not isinstance(num_items, int) or num_items < 0:
            raise ValueError("num_items must be a non-negative integer")
        items: list[Any] = self._unwrap(lambda: shoal.get(self.actor.get_nowait_batch.remote(num_items)))
        return items

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """Stop the queue's actor; the queue is unusable afterwards."""
        import shoal

        if self.actor is not None:
            shoal.kill(self.actor)
        self.actor = None

    @staticmethod
    def _unwrap(call: Any) -> Any:
        # Errors raised in the actor come back as TaskError(Empty/Full); callers expect the plain ones.
        try:
            return call()
        except Empty as e:
            raise Empty(*_plain_args(e)) from None
        except Full as e:
            raise Full(*_plain_args(e)) from None

    @staticmethod
    async def _unwrap_async(ref: Any) -> Any:
        try:
            return await ref
        except Empty as e:
            raise Empty(*_plain_args(e)) from None
        except Full as e:
            raise Full(*_plain_args(e)) from None


def _plain_args(error: BaseException) -> tuple[Any, ...]:
    cause = getattr(error, "cause", None)
    return tuple(cause.args) if cause is not None else tuple(error.args)
