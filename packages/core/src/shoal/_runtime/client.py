"""The client side of a node-runtime connection: requests, replies and reference bookkeeping.

Workers and drivers connected to a node agent both talk to their runtime
through a :class:`RuntimeClient`; they differ in who reads the connection
(a worker's main thread, or a driver's reader thread) and in what they do
with messages other than replies.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from shoal._runtime import protocol as P

__all__ = ["RuntimeClient", "Waiter"]


class Waiter:
    __slots__ = ("callback", "done", "event", "ok", "result")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.done = False
        self.ok = False
        self.result: Any = None
        self.callback: Any = None


class RuntimeClient:
    """Sending, request/reply and ref-count bookkeeping over one connection to a node runtime."""

    def __init__(self, conn: P.BlockingConnection) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.reader_lock = threading.Lock()
        self.replies: dict[int, Waiter] = {}
        self.request_ids = itertools.count(1)
        # Reference tracking: local counts, ids this process created, deltas to send.
        self.ref_lock = threading.Lock()
        self.ref_counts: dict[bytes, int] = {}
        self.created: set[bytes] = set()
        self.ref_deltas: list[tuple[bytes, int]] = []
        self.handle_deltas: list[tuple[bytes, int]] = []
        self.handle_counts: dict[bytes, int] = {}
        self.unpins: list[bytes] = []
        self.main_ident = threading.get_ident()
        # Session facts the runtime sends once.
        self.info: dict[str, Any] = {}
        self.info_event = threading.Event()
        self.closed = False

    # -- sending ------------------------------------------------------------

    def _pending_bookkeeping(self) -> bytes:
        out = b""
        with self.ref_lock:
            if self.ref_deltas or self.handle_deltas:
                out += P.encode((P.REFS, self.ref_deltas, self.handle_deltas))
                self.ref_deltas = []
                self.handle_deltas = []
        if self.unpins:
            unpins, self.unpins = self.unpins, []
            out += P.encode((P.UNPIN, unpins))
        return out

    def send(self, msg: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send_bytes(self._pending_bookkeeping() + P.encode(msg))

    def flush(self, wait: bool = True) -> None:
        """Send the pending bookkeeping; with ``wait=False`` only if the send lock is free now."""
        if not self.send_lock.acquire(blocking=wait):
            return  # it goes with the next send or flush
        try:
            data = self._pending_bookkeeping()
            if data:
                self.conn.send_bytes(data)
        finally:
            self.send_lock.release()

    # -- reference tracking (called by ObjectRef from any thread) ----------

    def incref(self, object_id: bytes) -> None:
        with self.ref_lock:
            n = self.ref_counts.get(object_id, 0)
            self.ref_counts[object_id] = n + 1
            if n == 0:
                if object_id in self.created:
                    self.created.discard(object_id)
                else:
                    self.ref_deltas.append((object_id, 1))

    def decref(self, object_id: bytes) -> None:
        with self.ref_lock:
            n = self.ref_counts.get(object_id, 0) - 1
            if n > 0:
                self.ref_counts[object_id] = n
            else:
                self.ref_counts.pop(object_id, None)
                self.ref_deltas.append((object_id, -1))

    def mark_created(self, object_id: bytes) -> None:
        with self.ref_lock:
            if object_id not in self.ref_counts:
                self.created.add(object_id)

    def handle_count(self, actor_id: bytes, delta: int) -> None:
        with self.ref_lock:
            n = self.handle_counts.get(actor_id, 0) + delta
            if n > 0:
                self.handle_counts[actor_id] = n
                if n == 1 and delta > 0:
                    self.handle_deltas.append((actor_id, 1))
            else:
                self.handle_counts.pop(actor_id, None)
                self.handle_deltas.append((actor_id, -1))

    def unpin_later(self, object_id: bytes) -> Any:
        def release() -> None:
            self.unpins.append(object_id)

        return release

    # -- requests to the runtime -------------------------------------------

    def request(self, op: str, args: Any, callback: Any = None) -> Any:
        """Send a request and wait for its reply (or, with ``callback``, return at once)."""
        req_id = next(self.request_ids)
        waiter = Waiter()
        waiter.callback = callback
        self.replies[req_id] = waiter
        self.send((P.REQUEST, req_id, op, args))
        if callback is not None:
            return None
        self.wait_for(waiter)
        if not waiter.ok:
            raise waiter.result
        return waiter.result

    def wait_for(self, waiter: Waiter) -> None:
        while not waiter.done:
            if self.reader_lock.acquire(blocking=False):
                try:
                    while not waiter.done:
                        self.flush()
                        self.dispatch(self.conn.receive(), main=threading.get_ident() == self.main_ident)
                finally:
                    self.reader_lock.release()
            else:
                waiter.event.wait(0.002)

    def allocate(self, nbytes: int) -> tuple[str, int, int]:
        region: tuple[str, int, int] = self.request("alloc", nbytes)
        return region

    def allocate_many(self, sizes: list[int]) -> list[tuple[str, int, int]]:
        """Regions for several values in one round trip (a task's returns)."""
        regions: list[tuple[str, int, int]] = self.request("alloc_many", sizes)
        return regions

    def context(self) -> Any:
        """The running task's context (None outside tasks)."""
        return None

    # -- incoming messages --------------------------------------------------

    def dispatch(self, msgs: list[tuple[Any, ...]], main: bool) -> None:
        for msg in msgs:
            if msg[0] == P.REPLY:
                if msg[1] == 0:
                    self.info = msg[3][1]
                    self.info_event.set()
                    continue
                waiter = self.replies.pop(msg[1], None)
                if waiter is None:
                    continue
                waiter.ok = msg[2]
                waiter.result = msg[3]
                waiter.done = True
                if waiter.callback is not None:
                    waiter.callback(waiter.ok, waiter.result)
                waiter.event.set()
            else:
                self.on_message(msg)

    def on_message(self, msg: tuple[Any, ...]) -> None:
        """A message that is not a reply."""

    def fail_all(self, error: BaseException) -> None:
        """The connection is gone: every waiting request fails with ``error``."""
        self.closed = True
        for req_id in list(self.replies):
            waiter = self.replies.pop(req_id, None)
            if waiter is None:
                continue
            waiter.ok = False
            waiter.result = error
            waiter.done = True
            if waiter.callback is not None:
                waiter.callback(False, error)
            waiter.event.set()
