"""Routers: send a deployment's requests to its replicas, from one event loop.

Each event loop that sends requests (the proxy's, a replica's, the
driver's background loop for sync handles) has one :class:`LoopClient`. It
keeps one :class:`Router` per deployment and learns the running replicas
from the controller by long poll. A router picks a replica with the power
of two choices on the requests it has in flight to each (counted here, so
no round trip per request), queues requests when every replica is at
``max_ongoing_requests``, and refuses them past ``max_queued_requests``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import shoal
from shoal.serve import _wire as W
from shoal.serve._constants import CONTROLLER_NAME, LISTEN_TIMEOUT_S, ROUTER_METRICS_PERIOD_S, SERVE_NAMESPACE
from shoal.serve._loop import await_ref
from shoal.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaDiedError
from shoal.serve.multiplex import rank_replicas

__all__ = ["Inflight", "LoopClient", "ReplicaConnection", "Router", "client_for_loop", "reset_clients"]

logger = logging.getLogger("shoal.serve")

_FINAL = frozenset((W.OK, W.ERR, W.HTTP_FULL, W.STREAM_END, W.REJECT))


class Inflight:
    """One request sent to a replica: its frames arrive here in order."""

    __slots__ = ("conn", "done", "frames", "rid", "waiter")

    def __init__(self, conn: ReplicaConnection, rid: int) -> None:
        self.conn = conn
        self.rid = rid
        self.frames: collections.deque[tuple[Any, ...]] = collections.deque()
        self.waiter: asyncio.Future[tuple[Any, ...]] | None = None
        self.done = False

    def deliver(self, frame: tuple[Any, ...]) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            waiter.set_result(frame)
        else:
            self.frames.append(frame)

    async def next(self) -> tuple[Any, ...]:
        """The next frame of the response (waits for it)."""
        if self.frames:
            return self.frames.popleft()
        waiter = self.conn.loop.create_future()
        self.waiter = waiter
        return await waiter

    def cancel(self) -> None:
        """Ask the replica to cancel the request; its final frame still settles the books."""
        if not self.done:
            self.conn.send((W.CANCEL, self.rid))


class ReplicaConnection:
    """The stream to one replica and the requests this loop has in flight on it."""

    def __init__(self, replica_id: str, socket_path: str, router: Router) -> None:
        self.replica_id = replica_id
        self.socket_path = socket_path
        self.router = router
        self.loop = router.loop
        self.ongoing = 0
        self.pending: dict[int, Inflight] = {}
        self.proto: W.FrameConnection | None = None
        self.dead = False
        self.draining = False

    async def connect(self) -> None:
        _, proto = await self.loop.create_unix_connection(
            lambda: W.FrameConnection(self._on_frame, self._on_lost), self.socket_path
        )
        self.proto = proto

    def send(self, msg: tuple[Any, ...]) -> None:
        if self.proto is not None:
            self.proto.send(msg)

    def start(self, rid: int, msg: tuple[Any, ...]) -> Inflight:
        inflight = Inflight(self, rid)
        self.pending[rid] = inflight
        self.ongoing += 1
        assert self.proto is not None
        self.proto.send(msg)
        return inflight

    def _on_frame(self, frame: tuple[Any, ...]) -> None:
        kind = frame[0]
        if kind in _FINAL:
            inflight = self.pending.pop(frame[1], None)
            if inflight is None:
                return
            inflight.done = True
            self.ongoing -= 1
            if kind == W.REJECT and not self.draining:
                # It is shutting down; the controller's update that says so may still be on its way.
                self.draining = True
                self.router.stop_using(self)
            inflight.deliver(frame)
            if self.draining:
                if not self.pending:
                    self.close()
            else:
                self.router.slot_freed()
        else:
            inflight = self.pending.get(frame[1])
            if inflight is not None:
                inflight.deliver(frame)

    def _on_lost(self, exc: Exception | None) -> None:
        self.dead = True
        pending, self.pending = self.pending, {}
        self.ongoing = 0
        if pending:
            err = W.dumps_error(ReplicaDiedError(f"replica {self.replica_id} died while handling the request"))
            for rid, inflight in pending.items():
                inflight.done = True
                inflight.deliver((W.ERR, rid, err))
        self.router.replica_lost(self)

    def close(self) -> None:
        if self.proto is not None:
            self.proto.close()


class Router:
    """Routes one deployment's requests from one event loop (see the module docstring)."""

    def __init__(self, client: LoopClient, key: tuple[str, str, str]) -> None:
        self.client = client
        self.key = key
        self.loop = client.loop
        self.replicas: list[ReplicaConnection] = []
        self._by_id: dict[str, ReplicaConnection] = {}
        self._connecting: set[str] = set()
        self._wanted: set[str] = set()
        self._rejected: set[str] = set()
        self.max_ongoing = 5
        self.max_queued = -1
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()
        self.unavailable: BaseException | None = None
        self.known = False
        self._rids = client.rids

    @property
    def num_queued(self) -> int:
        return len(self._queue)

    @property
    def num_ongoing(self) -> int:
        return sum(r.ongoing for r in self.replicas)

    # -- replica set updates (from the controller) ----------------------------

    def update(self, value: dict[str, Any] | None) -> None:
        """Apply the controller's view: ``{"replicas": [(id, socket)], "max_ongoing": n, "max_queued": n}``."""
        if value is None:
            self.known = True
            self._fail_all(
                DeploymentUnavailableError(f"deployment {self.key[2]!r} of app {self.key[1]!r} does not exist")
            )
            for r in self.replicas:
                r.draining = True
            self.replicas = []
            self._by_id.clear()
            self._wanted = set()
            return
        self.unavailable = None
        self.known = True
        self.max_ongoing = value["max_ongoing"]
        self.max_queued = value["max_queued"]
        self._rejected &= {rid for rid, _ in value["replicas"]}
        wanted = {rid: path for rid, path in value["replicas"] if rid not in self._rejected}
        self._wanted = set(wanted)
        keep = []
        for conn in self.replicas:
            if conn.replica_id in wanted and not conn.dead:
                keep.append(conn)
            else:
                # Requests in flight finish on it; nothing new goes there.
                conn.draining = True
                self._by_id.pop(conn.replica_id, None)
                if not conn.pending:
                    conn.close()
        self.replicas = keep
        for rid, path in wanted.items():
            if rid not in self._by_id and rid not in self._connecting:
                self._connecting.add(rid)
                self.loop.create_task(self._connect(rid, path))
        self.slot_freed()

    async def _connect(self, replica_id: str, path: str) -> None:
        conn = ReplicaConnection(replica_id, path, self)
        try:
            for delay in (0.05, 0.2, 0.5, None):
                try:
                    await conn.connect()
                    break
                except OSError as e:
                    if delay is None:
                        logger.warning("cannot connect to replica %s at %s: %s", replica_id, path, e)
                        self.client.report_failure(replica_id)
                        return
                    await asyncio.sleep(delay)
        finally:
            self._connecting.discard(replica_id)
        if replica_id not in self._wanted or self.client.closed:
            conn.close()  # removed while we were connecting
            return
        self._by_id[replica_id] = conn
        self.replicas.append(conn)
        self.slot_freed()

    def stop_using(self, conn: ReplicaConnection) -> None:
        """Send nothing new to this replica (it is draining)."""
        self._rejected.add(conn.replica_id)
        self._wanted.discard(conn.replica_id)
        if self._by_id.get(conn.replica_id) is conn:
            del self._by_id[conn.replica_id]
        if conn in self.replicas:
            self.replicas.remove(conn)

    def replica_lost(self, conn: ReplicaConnection) -> None:
        if self._by_id.get(conn.replica_id) is conn:
            del self._by_id[conn.replica_id]
            self.client.report_failure(conn.replica_id)
        if conn in self.replicas:
            self.replicas.remove(conn)

    def _fail_all(self, err: BaseException) -> None:
        self.unavailable = err
        while self._queue:
            fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(err)

    # -- choosing a replica ---------------------------------------------------

    def _pick(self, model: str = "") -> ReplicaConnection | None:
        replicas = self.replicas
        n = len(replicas)
        limit = self.max_ongoing
        if model and n > 1:
            # The replica that keeps this model loaded, or the next in its order when busy.
            for r in rank_replicas(model, replicas):
                if r.ongoing < limit:
                    return r
            return None
        if n == 1:
            r = replicas[0]
            return r if r.ongoing < limit else None
        if n == 0:
            return None
        # Power of two choices: the less loaded of two random replicas.
        i = random.randrange(n)
        j = random.randrange(n - 1)
        if j >= i:
            j += 1
        a, b = replicas[i], replicas[j]
        if b.ongoing < a.ongoing:
            a = b
        if a.ongoing < limit:
            return a
        best = min(replicas, key=lambda r: r.ongoing)
        return best if best.ongoing < limit else None

    def slot_freed(self) -> None:
        """A request finished or a replica arrived: let the oldest queued request try again."""
        queue = self._queue
        while queue:
            fut = queue.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    async def assign(self, make_msg: Callable[[int], tuple[Any, ...]], model: str = "") -> Inflight:
        """Send a request to a replica (waiting in the queue while all are busy) and return it in flight.

        Requests that name a multiplexed ``model`` go to the replica that has it, if it has room.
        """
        conn = self._pick(model)
        if conn is None:
            conn = await self._wait_for_slot(model)
        rid = next(self._rids)
        return conn.start(rid, make_msg(rid))

    async def _wait_for_slot(self, model: str = "") -> ReplicaConnection:
        while True:
            if self.unavailable is not None:
                raise self.unavailable
            if self.max_queued != -1 and len(self._queue) >= self.max_queued:
                raise BackPressureError(len(self._queue), self.max_queued)
            fut = self.loop.create_future()
            self._queue.append(fut)
            self.client.queue_changed()
            try:
                await fut
            except asyncio.CancelledError:
                try:
                    self._queue.remove(fut)
                except ValueError:
                    # It was woken just as it was cancelled: pass the turn on.
                    self.slot_freed()
                raise
            conn = self._pick(model)
            if conn is not None:
                if self._queue:
                    # More capacity may be free than this one request needs.
                    self.slot_freed()
                return conn

    def shutdown(self, err: BaseException) -> None:
        self._fail_all(err)
        for conn in self.replicas:
            conn.close()
        self.replicas = []


class LoopClient:
    """Everything serve's routing needs on one event loop: routers and the long poll that feeds them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.routers: dict[tuple[str, ...], Router] = {}
        self.extra_listeners: dict[tuple[str, ...], Callable[[Any], None]] = {}
        self.versions: dict[tuple[str, ...], int] = {}
        self.rids = itertools.count(1)
        self.closed = False
        self._controller: Any = None
        self._poll_task: asyncio.Task[None] | None = None
        self._keys_changed: asyncio.Future[None] | None = None
        self._metrics_handle: asyncio.TimerHandle | None = None
        self._router_id = f"{id(self):x}"

    # -- lookups -------------------------------------------------------------

    def controller(self) -> Any:
        if self._controller is None:
            self._controller = shoal.get_actor(CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        return self._controller

    def router(self, key: tuple[str, str, str]) -> Router:
        router = self.routers.get(key)
        if router is None:
            router = Router(self, key)
            self.routers[key] = router
            self._watch(key)
        return router

    def listen(self, key: tuple[str, ...], callback: Callable[[Any], None]) -> None:
        """Call ``callback(value)`` whenever the controller publishes a new value under ``key``."""
        self.extra_listeners[key] = callback
        self._watch(key)

    def _watch(self, key: tuple[str, ...]) -> None:
        self.versions.setdefault(key, -1)
        if self._poll_task is None:
            self._poll_task = self.loop.create_task(self._poll())
        elif self._keys_changed is not None and not self._keys_changed.done():
            self._keys_changed.set_result(None)

    # -- the long poll -------------------------------------------------------

    async def _poll(self) -> None:
        try:
            await self._poll_forever()
        except asyncio.CancelledError:
            # The loop is ending (asyncio.run cancels its tasks): close the sockets while it still runs.
            self.close()
            raise

    async def _poll_forever(self) -> None:
        from shoal.exceptions import ActorError

        while not self.closed:
            self._keys_changed = self.loop.create_future()
            try:
                ref = self.controller().listen.remote(dict(self.versions), LISTEN_TIMEOUT_S)
            except ValueError:
                self._lost_controller()
                return
            call = asyncio.ensure_future(await_ref(ref))
            done, _ = await asyncio.wait({call, self._keys_changed}, return_when=asyncio.FIRST_COMPLETED)
            if call not in done:
                call.cancel()
                continue
            try:
                updates = call.result()
            except ActorError:
                self._lost_controller()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("serve: long poll on the controller failed")
                await asyncio.sleep(0.5)
                continue
            for key, (version, value) in updates.items():
                self.versions[key] = version
                router = self.routers.get(key)
                if router is not None:
                    router.update(value)
                callback = self.extra_listeners.get(key)
                if callback is not None:
                    try:
                        callback(value)
                    except Exception:
                        logger.exception("serve: route update failed")

    def _lost_controller(self) -> None:
        err = DeploymentUnavailableError("serve is not running (its controller is gone)")
        self.close(err)

    # -- metrics for autoscaling ------------------------------------------------

    def queue_changed(self) -> None:
        if self._metrics_handle is None and not self.closed:
            self._metrics_handle = self.loop.call_later(ROUTER_METRICS_PERIOD_S, self._report_metrics)

    def _report_metrics(self) -> None:
        self._metrics_handle = None
        queued = {key[1:]: r.num_queued for key, r in self.routers.items() if r.num_queued}
        try:
            self.controller().record_router_metrics.remote(self._router_id, queued)
        except Exception:  # noqa: BLE001 - metrics are best effort
            return
        if queued:
            self._metrics_handle = self.loop.call_later(ROUTER_METRICS_PERIOD_S, self._report_metrics)

    def report_failure(self, replica_id: str) -> None:
        """Tell the controller that a replica could not be reached, so it checks it at once."""
        if self.closed:
            return
        try:
            self.controller().replica_unreachable.remote(replica_id)
        except Exception:  # noqa: BLE001 - the controller may be gone too
            pass

    def close(self, err: BaseException | None = None) -> None:
        self.closed = True
        err = err or DeploymentUnavailableError("serve was shut down")
        for router in self.routers.values():
            router.shutdown(err)
        if self._metrics_handle is not None:
            self._metrics_handle.cancel()
        with _clients_lock:
            if _clients.get(self.loop) is self:
                del _clients[self.loop]


_clients: dict[asyncio.AbstractEventLoop, LoopClient] = {}
_clients_lock = threading.Lock()


def client_for_loop(loop: asyncio.AbstractEventLoop) -> LoopClient:
    """The LoopClient of ``loop`` (made on first use)."""
    client = _clients.get(loop)
    if client is None or client.closed:
        with _clients_lock:
            client = _clients.get(loop)
            if client is None or client.closed:
                for stale in [lp for lp in _clients if lp.is_closed()]:
                    del _clients[stale]
                client = LoopClient(loop)
                _clients[loop] = client
    return client


def reset_clients() -> None:
    """Close every LoopClient of this process (serve shut down)."""
    with _clients_lock:
        clients = list(_clients.values())
    for client in clients:
        if client.loop.is_closed():
            continue
        client.loop.call_soon_threadsafe(client.close)
