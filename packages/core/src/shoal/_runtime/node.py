"""The node runtime: the object table, the scheduler and the worker pool of one machine.

It runs inside the driver for the ``local`` backend (one I/O thread plus
direct calls from user threads under one lock) and inside a node agent for
the ``cluster`` backend. Workers talk to it over socket pairs (see
:mod:`shoal._runtime.protocol`); the driver calls its methods directly.

Workers are spawned only from the I/O thread: Linux delivers a worker's
parent-death signal when the *thread* that forked it exits.
"""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import logging
import os
import pickle
import select
import shutil
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from shoal._runtime import protocol as P
from shoal._runtime.actors import ActorManager
from shoal._runtime.objects import REMOTE, ObjectTable
from shoal._runtime.pipeline import Pipelining
from shoal._runtime.pool import MAX_STARTING, Job, ProcessPool
from shoal._runtime.procs import WorkerProc, kill_worker, send_and_wake
from shoal._runtime.requests import handle_request
from shoal._runtime.resources import Grant, NodeResources
from shoal._runtime.store import SharedMemoryStore, layout_size, write_into
from shoal._runtime.tasks import DRIVER, FINISHED, READY, RUNNING, WAITING, Generator, Task
from shoal._runtime.values import encode_error, payload_size
from shoal._runtime.wire import CALL, CREATE, STREAM, TaskWire
from shoal.exceptions import (
    ObjectLostError,
    ShoalError,
    TaskCancelledError,
    TaskUnschedulableError,
)
from shoal.object_ref import new_id

__all__ = ["NodeRuntime"]

log = logging.getLogger("shoal.runtime")


def placement_of(sched: tuple[Any, ...] | None) -> tuple[bytes | None, bool]:
    """The placement group a task runs in, and whether it captures its children."""
    if sched is not None and sched[0] == "PLACEMENT_GROUP":
        return sched[3], bool(sched[5])
    return None, False


def interrupt(w: WorkerProc, task_id: bytes) -> None:
    """Tell a worker to cancel a task, and wake its main thread if it is busy running one."""
    send_and_wake(w, (P.CANCEL, task_id, False))


class NodeRuntime(ProcessPool, Pipelining):
    """One node's runtime; all state is guarded by ``self.lock``."""

    def __init__(
        self,
        *,
        node_id: str,
        job_id: str,
        namespace: str,
        resources: dict[str, float],
        store_capacity: int,
        session_dir: str,
        spill_dir: str,
        max_inline: int,
        spin_us: int,
        log_to_driver: bool,
        job_runtime_env: dict[str, Any] | None,
        prestart: int,
    ) -> None:
        self.lock = threading.RLock()
        self.node_id = node_id
        self.job_id = job_id
        self.namespace = namespace
        self.session_dir = session_dir
        self.max_inline = max_inline
        self.spin_us = spin_us
        self.log_to_driver = log_to_driver
        self.job_runtime_env = job_runtime_env or {}
        self.resources = NodeResources(resources)
        self.store = SharedMemoryStore(store_capacity, name=f"shoal-{node_id[:8]}")
        self.objects = ObjectTable(self.store, spill_dir)
        self.spill_dir = spill_dir
        self.functions: dict[bytes, bytes] = {}
        self.tasks: dict[bytes, Task] = {}
        self.ready: dict[Any, collections.deque[Task]] = {}
        self.pipe_workers: dict[Any, list[WorkerProc]] = {}  # busy workers by the queue key of their task
        self.fn_time: dict[bytes, float] = {}  # average run time of each function's tasks (s)
        self.generators: dict[bytes, Generator] = {}
        self.workers: dict[int, WorkerProc] = {}
        self.idle: dict[str, list[WorkerProc]] = {}
        self.starting: dict[str, int] = {}
        self.want_workers: dict[str, int] = {}
        self.by_fd: dict[int, Callable[[], None]] = {}
        self.holds: dict[int, dict[bytes, int]] = {DRIVER: {}}
        self.driver_allocs: dict[tuple[str, int], Any] = {}  # driver allocations not yet stored
        self.blobs: dict[bytes, Any] = {}  # allocations filled by raw frames from a link, by blob id
        self.releases: collections.deque[tuple[bytes, int]] = collections.deque()
        self.unpins: collections.deque[bytes] = collections.deque()
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._worker_ids = itertools.count(1)
        self._warned_infeasible: set[Any] = set()
        self.actors = ActorManager(self)
        self.stopping = False
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self.by_fd[self._wake_r] = self._drain_wake
        self._woken = False
        self._prestart = prestart
        self.init_jobs(Job(job_id, namespace, dict(job_runtime_env or {})))
        self.cluster_view: list[dict[str, Any]] = []  # other nodes, from the head's heartbeat replies
        self.peers: Any = None  # PeerManager once the node is part of a cluster
        # While > 0, link connections buffer what they are given and are written once when the
        # batch of incoming messages being handled is done (one write for many forwarded calls).
        self.batching = 0
        self.batch_thread = 0  # the thread whose batch is open (batches run under the lock)
        self.deferred: set[Any] = set()
        self.directory: Any = None  # the head's named-actor directory, in a cluster
        self.thread = threading.Thread(target=self._loop, name="shoal-runtime", daemon=True)

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        with self.lock:
            if self._prestart:
                self.want_workers[self.job_id] = self._prestart
        self.thread.start()

    def shutdown(self) -> None:
        with self.lock:
            self.stopping = True
            workers = list(self.workers.values())
        self.wake()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout=5)
        for w in workers:
            kill_worker(w)
        for w in workers:
            try:
                if w.proc is not None:
                    w.proc.wait(timeout=5)
            except Exception:  # noqa: BLE001 - nothing more to do for a stuck child
                pass
            w.conn.close()
            w.close_output()
        with self.lock:
            self.workers.clear()
            self.store.close()
            self.objects.objects.clear()
        if self.listener is not None:
            path = self.listener.getsockname()
            self.listener.close()
            if isinstance(path, str) and os.path.exists(path):
                os.unlink(path)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._epoll.close()
        shutil.rmtree(self.spill_dir, ignore_errors=True)

    def wake(self) -> None:
        """Make the I/O thread run its loop once more."""
        if not self._woken:
            self._woken = True
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass

    def _drain_wake(self) -> None:
        self._woken = False
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def add_timer(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self._timer_seq), callback))
        if threading.current_thread() is not self.thread:
            self.wake()

    # -- the I/O loop -------------------------------------------------------

    def _loop(self) -> None:
        epoll = self._epoll
        while True:
            with self.lock:
                if self.stopping:
                    return
                self._housekeeping()
                timeout = self._poll_timeout()
            try:
                events = epoll.poll(timeout)
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return
            with self.lock:
                if self.stopping:
                    return
                self.begin_batch()
                try:
                    for fd, _ in events:
                        handler = self.by_fd.get(fd)
                        if handler is not None:
                            try:
                                handler()
                            except Exception:  # one bad message must not stop the node
                                log.exception("shoal runtime: error while handling fd %d", fd)
                    self._run_timers()
                finally:
                    self.end_batch()

    def begin_batch(self) -> None:
        """Start handling a batch of incoming messages (under the lock); see :meth:`defers`."""
        self.batching += 1
        self.batch_thread = threading.get_ident()

    def defers(self) -> bool:
        """Whether a link connection written to now should wait for the end of the batch."""
        return self.batching > 0 and self.batch_thread == threading.get_ident()

    def end_batch(self) -> None:
        """Close a batch: write what it deferred."""
        self.batching -= 1
        if self.batching == 0:
            self.batch_thread = 0
            deferred, self.deferred = self.deferred, set()
            for conn in deferred:
                conn.flush()

    def _poll_timeout(self) -> float:
        if self._flush_pending():
            return 0.002
        if self.releases or self.unpins:
            return 0.05
        if self.timers:
            return max(0.0, min(1.0, self.timers[0][0] - time.monotonic()))
        return 1.0

    def _flush_pending(self) -> bool:
        """Write what connections could not take at once; True while some output still waits."""
        waiting = False
        for w in self.workers.values():
            if w.conn.pending_output and not w.conn.closed:
                w.conn.flush()
                waiting = waiting or w.conn.pending_output
        return waiting

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, cb = heapq.heappop(self.timers)
            cb()

    def _housekeeping(self) -> None:
        self.drain_releases()
        for env_key, want in list(self.want_workers.items()):
            while want > 0 and self.starting.get(env_key, 0) < MAX_STARTING:
                self._spawn(env_key)
                want -= 1
            if want > 0:
                self.want_workers[env_key] = want
            else:
                del self.want_workers[env_key]
        self._run_timers()
        self.dispatch()

    def drain_releases(self) -> None:
        """Apply ref-count changes and unpins queued by the driver's threads."""
        releases = self.releases
        holds = self.holds[DRIVER]
        while releases:
            object_id, delta = releases.popleft()
            if delta > 0:
                holds[object_id] = holds.get(object_id, 0) + delta
                self.objects.incref(object_id, delta)
            else:
                n = holds.get(object_id, 0) + delta
                if n > 0:
                    holds[object_id] = n
                else:
                    holds.pop(object_id, None)
                self.objects.decref(object_id, -delta)
        unpins = self.unpins
        while unpins:
            self.objects.unpin(unpins.popleft())

    # -- submission ---------------------------------------------------------

    def add_hold(self, owner: int, object_id: bytes) -> None:
        holds = self.holds.get(owner)
        if holds is not None:
            holds[object_id] = holds.get(object_id, 0) + 1

    def submit(self, wire: TaskWire, owner: int, job_id: str | None = None) -> None:
        """Accept a task (or actor call) from the driver, a worker or another node."""
        self.start_task(self.register_task(wire, owner, job_id))

    def register_task(self, wire: TaskWire, owner: int, job_id: str | None = None) -> Task:
        """Record a task, create its return objects and keep its arguments alive.

        ``job_id`` names the job of a task forwarded by another node.
        """
        if wire.fn_bytes is not None and wire.fn_id is not None:
            self.functions[wire.fn_id] = wire.fn_bytes
        env_key = self.env_key(owner, wire.runtime_env, job_id) if wire.kind != CALL else ""
        task = Task(wire, owner, env_key)
        task.forwarded_in = job_id is not None
        self.tasks[wire.task_id] = task
        if wire.parent is not None:
            parent = self.tasks.get(wire.parent)
            if parent is not None:
                parent.children.append(wire.task_id)
        objects = self.objects
        for rid in wire.return_ids:
            objects.create(rid, 1, wire.task_id)
            self.add_hold(owner, rid)
        if wire.num_returns == STREAM:
            completion = new_id()
            objects.create(completion, 1, wire.task_id)
            self.generators[wire.task_id] = Generator(owner, completion)
        pinned = [*wire.deps, *wire.contained]
        for oid in pinned:
            objects.incref(oid)
        task.pinned = pinned
        for actor_id in wire.handles:
            self.actors.handle_delta(actor_id, +1)
        if wire.args[0] == P.SHM:
            task.args_id = wire.task_id
            objects.create(wire.task_id, 1)
            alloc = self._take_alloc(owner, wire.args)
            objects.set_ready(wire.task_id, wire.args, None)
            if alloc is not None:
                objects.attach_alloc(wire.task_id, alloc)
        elif wire.args[0] == P.BLOB or (wire.args[0] == P.INLINE and payload_size(wire.args) > self.max_inline):
            # Large arguments that came from another node go to shared memory, like local ones.
            task.args_id = wire.task_id
            objects.create(wire.task_id, 1)
            self.store_local(wire.task_id, wire.args, None)
        return task

    def start_task(self, task: Task) -> None:
        if task.wire.kind == CALL:
            self.actors.enqueue_call(task)
            return
        self._wait_for_deps(task)

    def _wait_for_deps(self, task: Task) -> None:
        missing = [d for d in set(task.wire.deps) if not self.objects.is_ready(d)]
        task.pending_deps = len(missing)
        if self.peers is not None:
            for dep in missing:
                if self.objects.is_remote(dep):
                    self.peers.pull(dep)
        if not missing:
            self._deps_ready(task)
            return
        for dep in missing:
            if not self.objects.add_waiter(dep, functools.partial(self._dep_arrived, task)):
                task.pending_deps -= 1
        if task.pending_deps == 0:
            self._deps_ready(task)

    def _dep_arrived(self, task: Task) -> None:
        task.pending_deps -= 1
        if task.pending_deps == 0 and task.state == WAITING:
            self._deps_ready(task)

    def dep_error(self, task: Task) -> tuple[Any, ...] | None:
        """The first error among a task's arguments, if any."""
        for dep in task.wire.deps:
            obj = self.objects.objects.get(dep)
            if obj is None:
                return encode_error(ObjectLostError(f"argument {dep.hex()} of {task.name} was lost"))
            if obj.payload is not None and obj.payload[0] == P.ERROR:
                return obj.payload
        return None

    def _deps_ready(self, task: Task) -> None:
        if task.cancelled:
            return
        err = self.dep_error(task)
        if err is not None:
            self.fail_task_payload(task, err)
            return
        if task.wire.kind == CREATE:
            self.actors.creation_ready(task)
            return
        self._enqueue(task)

    def _enqueue(self, task: Task) -> None:
        task.state = READY
        wire = task.wire
        sched = wire.scheduling
        if (
            sched is not None
            and sched[0] == "NODE_AFFINITY"
            and not sched[2]
            and sched[1] != self.node_id
            and not (self.peers is not None and self.peers.knows(sched[1]))
        ):
            self.fail_task(
                task,
                TaskUnschedulableError(f"task {task.name} must run on node {sched[1]}, which does not exist"),
            )
            return
        key = (tuple(sorted(wire.resources.items())), task.env_key, sched)
        if not self.placement_feasible(wire.resources, sched) and key not in self._warned_infeasible:
            self._warned_infeasible.add(key)
            log.warning(
                "task %s needs %s, which this node can never provide (total %s); it stays pending",
                task.name,
                wire.resources,
                self.resources.total,
            )
        task.queue_key = key
        queue = self.ready.get(key)
        if queue is None:
            queue = self.ready[key] = collections.deque()
        queue.append(task)
        self.dispatch()

    def placement_feasible(self, need: dict[str, float], sched: tuple[Any, ...] | None) -> bool:
        if sched is not None and sched[0] == "PLACEMENT_GROUP":
            return True
        return self.resources.feasible(need)

    def _requeue(self, task: Task) -> None:
        task.worker = None
        task.grant = None
        self._enqueue(task)

    # -- scheduling ---------------------------------------------------------

    def bundle_for(self, task: Task) -> Any:
        """The placement-group bundle a task draws from: a Bundle, None (node), or False (not yet)."""
        sched = task.wire.scheduling
        if sched is None or sched[0] != "PLACEMENT_GROUP":
            return None
        pg = self.actors.placement_groups.get(sched[3])
        if pg is None or pg.state == "REMOVED":
            return "removed"
        if pg.state != "CREATED":
            return False
        index = sched[4]
        need = task.wire.resources
        if index is not None and index >= 0:
            if index >= len(pg.bundles):
                return "removed"
            bundle = pg.bundles[index]
            if bundle is None:
                return ("remote", pg.bundle_nodes[index])
            return bundle if self.resources.fits(need, bundle) else False
        for bundle in pg.bundles:
            if bundle is not None and self.resources.fits(need, bundle):
                return bundle
        if pg.owner:
            for bundle, where in zip(pg.bundles, pg.bundle_nodes, strict=True):
                if bundle is None and where:
                    return ("remote", where)
        return False

    def dispatch(self) -> None:
        """Start every ready task that has resources and a worker."""
        actors = self.actors
        if actors.pending:
            actors.place_pending()
        if actors.pending_groups:
            actors.retry_pending_groups()
        if not self.ready:
            return
        for key in list(self.ready):
            queue = self.ready[key]
            while queue:
                task = queue[0]
                if task.cancelled or task.state != READY:
                    queue.popleft()
                    continue
                bundle = self.bundle_for(task)
                if bundle == "removed":
                    queue.popleft()
                    self.fail_task(task, ShoalError(f"the placement group of {task.name} was removed"))
                    continue
                if isinstance(bundle, tuple):
                    # The bundle is held by another node: the task runs there.
                    queue.popleft()
                    self.peers.forward(task, bundle[1])
                    continue
                local_fits = bundle is not False and self.resources.fits(task.wire.resources, bundle)
                if self.peers is not None and bundle is None and not task.forwarded_in:
                    target = self.peers.choose(task.wire.resources, task.wire.scheduling, local_fits)
                    if target is not None and target != self.node_id:
                        queue.popleft()
                        self.peers.placed(task.wire.scheduling)
                        self.peers.forward(task, target)
                        continue
                    if target is None and task.wire.scheduling is not None and not local_fits:
                        break
                if not local_fits:
                    target_w = self.pipeline_target(task) if bundle is None else None
                    if target_w is None:
                        break
                    queue.popleft()
                    self.pipeline(task, target_w)
                    continue
                w = self.idle_worker(task.env_key)
                if w is None:
                    demand = self.resources.how_many_fit(task.wire.resources, bundle or None, cap=len(queue))
                    self.need_worker(task.env_key, demand)
                    break
                queue.popleft()
                if self.peers is not None:
                    self.peers.placed(task.wire.scheduling)
                self._run(task, w, bundle)
            if not queue:
                del self.ready[key]

    def _run(self, task: Task, w: WorkerProc, bundle: Any) -> None:
        wire = task.wire
        grant = self.resources.acquire(wire.resources, bundle)
        task.grant = grant
        task.worker = w
        task.state = RUNNING
        w.state = "busy"
        w.task = task
        w.last_task_name = task.name
        w.grant = grant
        self.began(task, w)
        self.send_exec(task, w, grant)

    def send_exec(self, task: Task, w: WorkerProc, grant: Grant) -> None:
        """Send a task to the worker that will run it (now, or next under ``grant``)."""
        wire = task.wire
        fn_bytes = None
        if wire.fn_id not in w.known_functions:
            fn_bytes = self.functions.get(wire.fn_id)  # type: ignore[arg-type]
            w.known_functions.add(wire.fn_id)  # type: ignore[arg-type]
        deps = self.dep_payloads(task, w)
        args = self.args_payload(task, w)
        pg_id, capture = placement_of(wire.scheduling)
        ctx = (wire.resources, grant.gpu_ids, pg_id, capture, wire.retry_exceptions)
        num_returns = wire.num_returns
        w.conn.send(
            (
                P.EXEC,
                wire.task_id,
                wire.fn_id,
                fn_bytes,
                args,
                deps,
                wire.return_ids,
                num_returns,
                wire.name,
                ctx,
            )
        )

    def producers(self, ids: list[bytes]) -> list[WorkerProc]:
        """Workers running the tasks that will produce these pending objects (for direct polling)."""
        out: list[WorkerProc] = []
        for oid in ids:
            obj = self.objects.objects.get(oid)
            if obj is None or obj.payload is not None or obj.task_id is None:
                continue
            task = self.tasks.get(obj.task_id)
            w = task.worker if task is not None else None
            if w is not None and w.kind == "worker" and w not in out:
                out.append(w)
        return out

    def poll_worker(self, w: WorkerProc) -> None:
        """Handle whatever a worker has sent, without waiting (the caller holds the lock)."""
        self._on_readable(w)

    def pin_for(self, w: WorkerProc, object_id: bytes) -> None:
        self.objects.pin(object_id)
        w.pins[object_id] = w.pins.get(object_id, 0) + 1

    def dep_payloads(self, task: Task, w: WorkerProc) -> list[tuple[bytes, tuple[Any, ...]]]:
        out = []
        for dep in task.wire.deps:
            payload = self.objects.readable_payload(dep)
            if payload[0] == P.SHM:
                self.pin_for(w, dep)
            out.append((dep, payload))
        return out

    def args_payload(self, task: Task, w: WorkerProc) -> tuple[Any, ...]:
        if task.args_id is None:
            return task.wire.args
        payload = self.objects.readable_payload(task.args_id)
        self.pin_for(w, task.args_id)
        return payload

    # -- completion ---------------------------------------------------------

    def release_task(self, task: Task, keep_lineage: bool = False) -> None:
        """A task is over: drop what it kept alive (unless it may have to run again to rebuild
        results kept on another node: then ``unpin_task`` does that later)."""
        task.state = FINISHED
        self.tasks.pop(task.task_id, None)
        if not keep_lineage:
            self.unpin_task(task)

    def unpin_task(self, task: Task) -> None:
        """Drop the arguments and actor handles a task kept alive."""
        objects = self.objects
        for oid in task.pinned:
            objects.decref(oid)
        task.pinned = []
        for actor_id in task.wire.handles:
            self.actors.handle_delta(actor_id, -1)
        if task.args_id is not None:
            objects.decref(task.args_id)
            task.args_id = None

    def fail_task(self, task: Task, error: BaseException) -> None:
        self.fail_task_payload(task, encode_error(error))

    def fail_task_payload(self, task: Task, payload: tuple[Any, ...]) -> None:
        if task.state == FINISHED:
            return
        for rid in task.wire.return_ids:
            self.objects.set_ready(rid, payload, None)
        gen = self.generators.get(task.task_id)
        if gen is not None:
            self._gen_item(task, gen, (payload, []))
            self._gen_done(task, gen, payload)
        if task.wire.kind == CREATE:
            self.actors.creation_failed(task, payload)
        self.release_task(task)

    def _take_alloc(self, owner: int, payload: tuple[Any, ...]) -> Any:
        if payload[0] != P.SHM:
            return None
        if owner == DRIVER:
            return self.driver_allocs.pop((payload[1], payload[2]), None)
        w = self.workers.get(owner)
        if w is None:
            return None
        return w.allocs.pop((payload[1], payload[2]), None)

    def store_result(self, owner: int, object_id: bytes, payload: tuple[Any, ...], contained: list[bytes]) -> None:
        alloc = self._take_alloc(owner, payload)
        if alloc is not None:
            self.objects.attach_alloc(object_id, alloc)
        self.objects.set_ready(object_id, payload, contained)

    def _on_done(self, w: WorkerProc, msg: tuple[Any, ...]) -> None:
        _, task_id, results, error, retryable = msg
        task = self.tasks.get(task_id)
        if w.actor is not None:
            self.actors.call_done(w.actor, w, task_id, task, results, error, retryable)
            return
        if task is None or task.worker is not w:
            # A cancelled or failed-over task reporting late: drop the result.
            if results:
                for payload, _ in results:
                    alloc = self._take_alloc(w.worker_id, payload)
                    if alloc is not None:
                        self.store.free(alloc)
            if w.task is not None and w.task.task_id == task_id:
                self._finish_on_worker(w, None)
            return
        self.record_run_time(task)
        self._finish_on_worker(w, task)
        if error is not None:
            if retryable and not task.cancelled and task.retries_left != 0:
                if task.retries_left > 0:
                    task.retries_left -= 1
                self._requeue(task)
                return
            self.fail_task_payload(task, error)
            return
        gen = self.generators.get(task_id)
        if gen is not None:
            self._gen_done(task, gen, None)
        else:
            for rid, (payload, contained) in zip(task.wire.return_ids, results, strict=True):
                self.store_result(w.worker_id, rid, payload, contained)
        self.release_task(task)

    def _finish_on_worker(self, w: WorkerProc, task: Task | None) -> None:
        if self.next_queued(w):
            self.dispatch()
            return
        self.steal_for_idle(w)
        self.leave_pipeline(w)
        if w.grant is not None:
            self.resources.release(w.grant)
            w.grant = None
        if w.blocked:
            w.blocked = 0
        if task is not None and task.wire.max_calls:
            fn_id = task.wire.fn_id
            calls = w.calls.get(fn_id, 0) + 1  # type: ignore[arg-type]
            w.calls[fn_id] = calls  # type: ignore[index]
            if calls >= task.wire.max_calls:
                w.retire = True
        self.make_idle(w)
        self.dispatch()

    # -- streaming generators ----------------------------------------------

    def _on_gen_item(self, w: WorkerProc, msg: tuple[Any, ...]) -> None:
        _, task_id, _index, (payload, contained) = msg
        task = self.tasks.get(task_id)
        gen = self.generators.get(task_id)
        if gen is None or task is None:
            alloc = self._take_alloc(w.worker_id, payload)
            if alloc is not None:
                self.store.free(alloc)
            return
        item_id = new_id()
        self.objects.create(item_id, 1)
        self.store_result(w.worker_id, item_id, payload, contained)
        gen.items.append(item_id)
        if payload[0] == P.ERROR:
            gen.error = payload
        self._wake_gen(gen)

    def _gen_item(self, task: Task, gen: Generator, item: tuple[Any, Any]) -> None:
        item_id = new_id()
        self.objects.create(item_id, 1)
        self.objects.set_ready(item_id, item[0], item[1])
        gen.items.append(item_id)
        self._wake_gen(gen)

    def _gen_done(self, task: Task, gen: Generator, error: tuple[Any, ...] | None) -> None:
        gen.done = True
        from shoal._runtime.values import encode_value

        if error is None:
            error = gen.error
        payload = error if error is not None else encode_value(None, self.max_inline, self.allocate_for_driver)[0]
        self.objects.set_ready(gen.completion_id, payload, None)
        self._wake_gen(gen)

    def _wake_gen(self, gen: Generator) -> None:
        waiters, gen.waiters = gen.waiters, []
        for cb in waiters:
            cb()

    def generator_next(
        self,
        gen_id: bytes,
        index: int,
        owner: int,
        reply: Callable[[bytes | None], None],
        timeout: float | None,
    ) -> None:
        gen = self.generators.get(gen_id)
        if gen is None:
            reply(None)
            return
        state = {"done": False}

        def attempt() -> bool:
            if index < len(gen.items):
                item_id = gen.items[index]
                # The generator's hold on the item passes to the consumer.
                self.add_hold(owner, item_id)
                gen.consumed = max(gen.consumed, index + 1)
                state["done"] = True
                reply(item_id)
                return True
            if gen.done:
                state["done"] = True
                reply(None)
                return True
            return False

        if attempt():
            return

        def waiter() -> None:
            if not state["done"] and not attempt():
                gen.waiters.append(waiter)

        gen.waiters.append(waiter)
        if timeout is not None:

            def expire() -> None:
                if not state["done"]:
                    state["done"] = True
                    if waiter in gen.waiters:
                        gen.waiters.remove(waiter)
                    reply(b"timeout")

            self.add_timer(timeout, expire)

    def generator_item_for_peer(self, gen_id: bytes, index: int, w: WorkerProc, reply: Callable[[Any], None]) -> None:
        """The next value of a generator forwarded here, as (item_id, bytes payload, nested refs), or None."""
        from shoal._runtime.peers import portable_payload

        def answer(item_id: bytes | None) -> None:
            if item_id is None:
                reply(None)
                return
            obj = self.objects.objects.get(item_id)
            if obj is None or obj.payload is None:
                reply(None)
                return
            contained = list(obj.contained or [])
            for cid in contained:
                self.objects.incref(cid)
                self.add_hold(w.worker_id, cid)
            reply((item_id, portable_payload(self, item_id, w.conn), contained))

        self.generator_next(gen_id, index, w.worker_id, answer, None)

    def generator_completed(self, gen_id: bytes, owner: int) -> bytes:
        gen = self.generators[gen_id]
        self.objects.incref(gen.completion_id)
        self.add_hold(owner, gen.completion_id)
        return gen.completion_id

    def generator_release(self, gen_id: bytes, consumed: int) -> None:
        gen = self.generators.get(gen_id)
        if gen is None:
            return
        # Items never handed out still carry the generator's hold.
        for item_id in gen.items[gen.consumed :]:
            self.objects.decref(item_id)
        gen.items = gen.items[: gen.consumed]
        gen.consumed = len(gen.items)
        if gen.done:
            del self.generators[gen_id]
            self.objects.decref(gen.completion_id)
        else:
            gen.items = []
            gen.consumed = 0
            # Further items arrive for nobody: drop them as they come.
            task = self.tasks.get(gen_id)
            if task is not None:
                del self.generators[gen_id]
                self.objects.decref(gen.completion_id)

    # -- allocation -----------------------------------------------------------

    def allocate_for_driver(self, nbytes: int) -> tuple[str, int, int]:
        with self.lock:
            # Refs the driver dropped free their memory first, so it can be reused at once.
            self.drain_releases()
            alloc = self.objects.allocate(nbytes)
            self.driver_allocs[(alloc.path, alloc.offset)] = alloc
            return alloc.path, alloc.offset, alloc.size

    def allocate_for_worker(self, w: WorkerProc, nbytes: int) -> tuple[str, int, int]:
        alloc = self.objects.allocate(nbytes)
        w.allocs[(alloc.path, alloc.offset)] = alloc
        return alloc.path, alloc.offset, alloc.size

    def allocate_many_for_worker(self, w: WorkerProc, sizes: list[int]) -> list[tuple[str, int, int]]:
        """Space for several values: all of it, or none (what was taken goes back)."""
        regions: list[tuple[str, int, int]] = []
        try:
            for nbytes in sizes:
                regions.append(self.allocate_for_worker(w, nbytes))
        except BaseException:
            for path, offset, _ in regions:
                self.store.free(w.allocs.pop((path, offset)))
            raise
        return regions

    # -- cancellation -------------------------------------------------------

    def cancel(self, object_id: bytes, force: bool, recursive: bool) -> None:
        obj = self.objects.objects.get(object_id)
        task_id = obj.task_id if obj is not None else None
        if task_id is None:
            task_id = object_id if object_id in self.tasks else None
        task = self.tasks.get(task_id) if task_id is not None else None
        if task is None:
            return
        self.cancel_task(task, force, recursive)

    def cancel_task(self, task: Task, force: bool, recursive: bool) -> None:
        if task.wire.kind == CALL:
            self.actors.cancel_call(task, force)
        elif task.state in (WAITING, READY):
            task.cancelled = True
            self.fail_task(task, TaskCancelledError(f"task {task.name} was cancelled", task_id=task.task_id.hex()))
        elif task.state == RUNNING and task.worker is not None:
            task.cancelled = True
            # A task queued behind another on its worker: killing the worker would end
            # the other one too, and this one has not started: the worker drops it.
            if force and task.worker.task is task:
                task.force_cancelled = True
                kill_worker(task.worker)
            else:
                interrupt(task.worker, task.task_id)
        if recursive:
            for child_id in list(task.children):
                child = self.tasks.get(child_id)
                if child is not None:
                    self.cancel_task(child, force, recursive)

    # -- requests from workers ---------------------------------------------

    def _on_refs(self, w: WorkerProc, msg: tuple[Any, ...]) -> None:
        _, deltas, handle_deltas = msg
        holds = w.holds
        objects = self.objects
        for object_id, delta in deltas:
            if delta > 0:
                holds[object_id] = holds.get(object_id, 0) + delta
                objects.incref(object_id, delta)
            else:
                n = holds.get(object_id, 0) + delta
                if n > 0:
                    holds[object_id] = n
                else:
                    holds.pop(object_id, None)
                objects.decref(object_id, -delta)
        for actor_id, delta in handle_deltas:
            n = w.handle_holds.get(actor_id, 0) + delta
            if n > 0:
                w.handle_holds[actor_id] = n
            else:
                w.handle_holds.pop(actor_id, None)
            self.actors.handle_delta(actor_id, delta)

    def _on_unpin(self, w: WorkerProc, msg: tuple[Any, ...]) -> None:
        for object_id in msg[1]:
            n = w.pins.get(object_id, 0) - 1
            if n > 0:
                w.pins[object_id] = n
            else:
                w.pins.pop(object_id, None)
            self.objects.unpin(object_id)

    def _on_submit(self, w: WorkerProc, msg: tuple[Any, ...]) -> None:
        wire = TaskWire._make(msg[1])  # sent as a plain tuple (cheaper to pickle)
        if len(msg) > 2 and w.kind == "peer":
            self.submit_from_peer(w, wire, msg[2])
        else:
            self.submit(wire, w.worker_id, None)

    def submit_from_peer(self, w: WorkerProc, wire: Any, extra: dict[str, Any]) -> None:
        """A task or actor call forwarded by the peer node behind ``w``."""
        job_id = self.peers.accept_extra(w.worker_id, extra) if self.peers is not None else None
        self.submit(wire, w.worker_id, job_id)

    def _on_put(self, w: WorkerProc, msg: tuple[Any, ...]) -> None:
        _, object_id, payload, contained = msg
        self.objects.create(object_id, 1)
        self.add_hold(w.worker_id, object_id)
        if w.kind == "peer":
            self.store_local(object_id, payload, contained)
        else:
            self.store_result(w.worker_id, object_id, payload, contained)

    def _on_request(self, w: WorkerProc, msg: tuple[Any, ...]) -> None:
        handle_request(self, w, msg[1], msg[2], msg[3])

    def reply(self, w: WorkerProc, req_id: int, ok: bool, result: Any) -> None:
        if w.state == "dead":
            return
        try:
            w.conn.send((P.REPLY, req_id, ok, result))
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            w.conn.send((P.REPLY, req_id, False, ShoalError(f"could not send the reply: {e}")))

    # -- cluster view -------------------------------------------------------

    def pending_demand(self) -> list[dict[str, Any]]:
        """Resource shapes waiting to be placed, with how many and why (for the head and the autoscaler)."""
        found: dict[tuple[str, tuple[tuple[str, float], ...]], int] = {}
        for queue in self.ready.values():
            for t in queue:
                if t.state == READY and not t.cancelled:
                    key = ("task", tuple(sorted(t.wire.resources.items())))
                    found[key] = found.get(key, 0) + 1
        for actor in self.actors.pending:
            key = ("actor", tuple(sorted(actor.creation.wire.resources.items())))
            found[key] = found.get(key, 0) + 1
        for pg in self.actors.placement_groups.values():
            if pg.state == "PENDING":
                for bundle in pg.bundle_specs:
                    key = ("placement_group", tuple(sorted(bundle.items())))
                    found[key] = found.get(key, 0) + 1
        out = []
        for (kind, shape), count in found.items():
            need = dict(shape)
            reason = (
                "waiting for resources in use to be released"
                if self.resources.feasible(need)
                else f"no node can provide {need}"
            )
            out.append({"shape": need, "count": count, "kind": kind, "reason": reason})
        return out

    def enable_cluster(self, token: str, directory: Any, tls: Any = None) -> None:
        """Make this node part of a cluster: it may send work to, and take work from, other nodes."""
        from shoal._runtime.peers import PeerManager

        self.peers = PeerManager(self, token, tls)
        self.directory = directory
        self.objects.release_remote = self.peers.remote_freed

    def cluster_resources(self) -> dict[str, float]:
        if not self.cluster_view:
            return dict(self.resources.total)
        total: dict[str, float] = {}
        for n in self.cluster_view:
            if n["alive"]:
                for k, v in n["total"].items():
                    total[k] = total.get(k, 0.0) + v
        return total

    def available_resources(self) -> dict[str, float]:
        # As in Ray, a resource that is fully in use is left out.
        if not self.cluster_view:
            return {k: v for k, v in self.resources.free.items() if v > 1e-9}
        free: dict[str, float] = {}
        for n in self.cluster_view:
            if not n["alive"]:
                continue
            pool = self.resources.free if n["node_id"] == self.node_id else n["available"]
            for k, v in pool.items():
                free[k] = free.get(k, 0.0) + v
        return {k: v for k, v in free.items() if v > 1e-9}

    def local_available(self) -> dict[str, float]:
        return {k: v for k, v in self.resources.free.items() if v > 1e-9}

    def all_nodes(self) -> list[dict[str, Any]]:
        if not self.cluster_view:
            return [self.node_info()]
        return [
            {
                "NodeID": n["node_id"],
                "Alive": n["alive"],
                "NodeManagerAddress": n["address"].rsplit(":", 1)[0],
                "NodeManagerPort": int(n["address"].rsplit(":", 1)[1]),
                "NodeManagerHostname": n["hostname"],
                "NodeName": n["address"].rsplit(":", 1)[0],
                "Resources": dict(n["total"]),
                "alive": n["alive"],
            }
            for n in self.cluster_view
        ]

    def resolve_blob(self, payload: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
        """The shared-memory payload (and its allocation) of bytes that arrived as raw frames."""
        _, blob_id, data_len, spans = payload
        alloc = self.blobs.pop(blob_id)
        return (P.SHM, alloc.path, alloc.offset, alloc.size, data_len, spans), alloc

    def store_local(self, object_id: bytes, payload: tuple[Any, ...], contained: list[bytes] | None) -> None:
        """Keep a value that came from elsewhere, moving large bytes into shared memory."""
        alloc = None
        if payload[0] == P.BLOB:
            payload, alloc = self.resolve_blob(payload)
        elif payload[0] == P.INLINE and payload_size(payload) > self.max_inline:
            data, buffers = payload[1], payload[2]
            total = layout_size([len(data), *(len(b) for b in buffers)])
            alloc = self.objects.allocate(total)
            offsets = write_into(alloc.path, alloc.offset, alloc.size, [data, *buffers])
            spans = [(o, len(b)) for o, b in zip(offsets[1:], buffers, strict=True)]
            payload = (P.SHM, alloc.path, alloc.offset, alloc.size, len(data), spans)
        entry = self.objects.objects.get(object_id)
        if entry is not None and entry.payload is not None and entry.payload[0] == REMOTE:
            entry.payload = None  # a remote stand-in is replaced by the local copy
        if alloc is not None:
            self.objects.attach_alloc(object_id, alloc)
        self.objects.set_ready(object_id, payload, contained)

    def node_info(self) -> dict[str, Any]:
        return {
            "NodeID": self.node_id,
            "Alive": True,
            "NodeManagerAddress": "127.0.0.1",
            "NodeManagerHostname": socket.gethostname(),
            "NodeName": "127.0.0.1",
            "Resources": dict(self.resources.total),
            "alive": True,
        }

    _handlers: dict[int, Callable[[NodeRuntime, WorkerProc, tuple[Any, ...]], None]] = {}


NodeRuntime._handlers = {
    P.READY: NodeRuntime._on_ready_msg,
    P.DONE: NodeRuntime._on_done,
    P.RECALLED: NodeRuntime._on_recalled,
    P.GEN_ITEM: NodeRuntime._on_gen_item,
    P.SUBMIT: NodeRuntime._on_submit,
    P.ACTOR_SUBMIT: NodeRuntime._on_submit,
    P.REQUEST: NodeRuntime._on_request,
    P.REFS: NodeRuntime._on_refs,
    P.UNPIN: NodeRuntime._on_unpin,
    P.PUT: NodeRuntime._on_put,
    P.HELLO: NodeRuntime._on_hello,
}
