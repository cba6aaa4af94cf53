# mypy: disable-error-code="misc"
# (mixin methods annotate self as the NodeRuntime they are mixed into)
"""The processes a node runtime talks to: its worker pool, and drivers connected over a local socket.

Workers are started per job and runtime environment (the "env key"), kept
idle between tasks, and retired when too many are idle. Drivers of the
``cluster`` backend connect to ``<session>/node.sock``; the first bytes they
send are a raw (unpickled) token handshake, so a peer without the token never
reaches a deserializer.
"""

from __future__ import annotations

import collections
import functools
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shoal._runtime import protocol as P
from shoal._runtime.procs import LogPump, WorkerProc, spawn_worker
from shoal._runtime.tasks import Task
from shoal.exceptions import TaskCancelledError, WorkerCrashedError
from shoal.object_ref import new_id

if TYPE_CHECKING:
    from shoal._runtime.node import NodeRuntime

__all__ = ["Job", "ProcessPool", "HANDSHAKE_MAGIC", "encode_handshake"]

MAX_STARTING = 4  # workers starting at once, per kind
_MAX_IDLE_EXTRA = 2  # idle task workers kept beyond the CPU count
HANDSHAKE_MAGIC = b"SHOAL1"


def encode_handshake(token: str, pid: int) -> bytes:
    """The raw first bytes a driver sends: magic, token and pid, without pickle."""
    tok = token.encode()
    return HANDSHAKE_MAGIC + len(tok).to_bytes(2, "little") + tok + pid.to_bytes(4, "little")


@dataclass
class Job:
    """A driver's job: its namespace and default runtime environment."""

    job_id: str
    namespace: str
    runtime_env: dict[str, Any] = field(default_factory=dict)


def env_key_of(job_id: str, runtime_env: dict[str, Any] | None) -> str:
    if not runtime_env:
        return job_id
    return job_id + "|" + repr(sorted((k, repr(v)) for k, v in runtime_env.items()))


class ProcessPool:
    """Mixin of :class:`~shoal._runtime.node.NodeRuntime`: workers and connected drivers."""

    # -- jobs -----------------------------------------------------------------

    def init_jobs(self: NodeRuntime, job: Job) -> None:
        self.jobs: dict[str, Job] = {job.job_id: job}
        self.job_of: dict[int, str] = {0: job.job_id}
        self.env_specs: dict[str, tuple[str, dict[str, Any]]] = {job.job_id: (job.job_id, job.runtime_env)}
        self.listener: socket.socket | None = None
        self.token: str | None = None

    def job_for(self: NodeRuntime, owner: int) -> Job:
        return self.jobs[self.job_of.get(owner, self.job_id)]

    def env_key(self: NodeRuntime, owner: int, runtime_env: dict[str, Any] | None, job_id: str | None = None) -> str:
        """The worker kind a task of ``owner`` needs: its job, and its runtime env (or the job's)."""
        job = self.jobs[job_id] if job_id is not None else self.job_for(owner)
        renv = runtime_env if runtime_env is not None else job.runtime_env
        key = env_key_of(job.job_id, renv)
        if key not in self.env_specs:
            self.env_specs[key] = (job.job_id, dict(renv or {}))
        return key

    # -- workers --------------------------------------------------------------

    def _spawn(self: NodeRuntime, env_key: str) -> None:
        if threading.current_thread() is not self.thread:
            self.want_workers[env_key] = self.want_workers.get(env_key, 0) + 1
            self.wake()
            return
        worker_id = next(self._worker_ids)
        job_id, renv = self.env_specs.get(env_key, (self.job_id, {}))
        log_file = None
        if not self.log_to_driver:
            os.makedirs(os.path.join(self.session_dir, "logs"), exist_ok=True)
            log_file = os.path.join(self.session_dir, "logs", f"worker-{worker_id}.log")
        env_vars = dict(renv.get("env_vars") or {})
        w, _ = spawn_worker(
            worker_id, env_key, env_vars, renv.get("working_dir"), self.spin_us, self.log_to_driver, log_file
        )
        w.conn.on_pending = self.wake
        w.conn.batch = self
        self.workers[worker_id] = w
        self.holds[worker_id] = w.holds
        self.job_of[worker_id] = job_id
        self.starting[env_key] = self.starting.get(env_key, 0) + 1
        self._watch(w.conn.fd, functools.partial(self._on_readable, w))
        if self.log_to_driver:
            assert w.proc is not None
            for stream, is_err in ((w.proc.stdout, False), (w.proc.stderr, True)):
                assert stream is not None
                pump = LogPump(stream.fileno(), is_err, functools.partial(self._log_label, w))
                w.pumps.append(pump)
                self._watch(stream.fileno(), functools.partial(self._on_log, pump))

    def _watch(self: NodeRuntime, fd: int, handler: Callable[[], None]) -> None:
        self.by_fd[fd] = handler
        import select

        self._epoll.register(fd, select.EPOLLIN)

    def _unwatch(self: NodeRuntime, fd: int) -> None:
        if self.by_fd.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def _on_log(self: NodeRuntime, pump: LogPump) -> None:
        if not pump.read():
            self._unwatch(pump.fd)

    def _log_label(self: NodeRuntime, w: WorkerProc) -> str:
        # Output is read after the fact: name it after the last task the worker started.
        name = w.actor.class_name if w.actor is not None else (w.last_task_name or "worker")
        return f"({name} pid={w.pid})"

    def _on_readable(self: NodeRuntime, w: WorkerProc) -> None:
        msgs = w.conn.receive()
        if msgs:
            handlers = self._handlers
            for msg in msgs:
                if w.state == "hello" and msg[0] != P.HELLO:
                    w.conn.close()
                    break
                handler = handlers.get(msg[0])
                if handler is None:
                    continue
                handler(self, w, msg)
        if w.conn.closed:
            self._on_worker_exit(w)
        elif w.conn.pending_output:
            w.conn.flush_soon()

    def idle_worker(self: NodeRuntime, env_key: str) -> WorkerProc | None:
        pool = self.idle.get(env_key)
        while pool:
            w = pool.pop()
            if w.state == "idle":
                return w
        return None

    def need_worker(self: NodeRuntime, env_key: str, demand: int = MAX_STARTING) -> None:
        """Ask for one more worker of this kind unless enough are already starting.

        ``demand`` is how many waiting tasks could start now: workers already
        starting for them are enough (a worker started beyond that would sit idle
        for the rest of the session, holding memory).
        """
        if self.starting.get(env_key, 0) + self.want_workers.get(env_key, 0) >= min(MAX_STARTING, demand):
            return
        self.want_workers[env_key] = self.want_workers.get(env_key, 0) + 1
        if threading.current_thread() is not self.thread:
            self.wake()

    def make_idle(self: NodeRuntime, w: WorkerProc) -> None:
        w.state = "idle"
        w.task = None
        w.grant = None
        if w.retire or self.job_of.get(w.worker_id) not in self.jobs:
            self.retire_worker(w)
            return
        pool = self.idle.setdefault(w.env_key, [])
        cpus = self.resources.total.get("CPU", 1)
        if len(pool) >= cpus + _MAX_IDLE_EXTRA:
            self.retire_worker(w)
            return
        pool.append(w)

    def retire_worker(self: NodeRuntime, w: WorkerProc) -> None:
        w.state = "retiring"
        w.conn.send((P.EXIT,))

    def _on_ready_msg(self: NodeRuntime, w: WorkerProc, msg: tuple[Any, ...]) -> None:
        self.starting[w.env_key] = max(0, self.starting.get(w.env_key, 0) - 1)
        job = self.job_for(w.worker_id)
        info = {
            "max_inline": self.max_inline,
            "job_id": job.job_id,
            "node_id": self.node_id,
            "namespace": job.namespace,
            "worker_id": f"{self.node_id[:8]}-{w.worker_id}",
            "runtime_env": job.runtime_env,
        }
        w.conn.send((P.REPLY, 0, True, ("info", info)))
        self.make_idle(w)
        self.dispatch()

    def _release_peer(self: NodeRuntime, w: WorkerProc) -> None:
        """Drop everything a worker or driver held: refs, actor handles, views, allocations."""
        for object_id, n in w.holds.items():
            self.objects.decref(object_id, n)
        w.holds.clear()
        for actor_id, n in w.handle_holds.items():
            self.actors.handle_delta(actor_id, -n)
        w.handle_holds.clear()
        for object_id, n in w.pins.items():
            for _ in range(n):
                self.objects.unpin(object_id)
        w.pins.clear()
        for alloc in w.allocs.values():
            self.store.free(alloc)
        w.allocs.clear()

    def _on_worker_exit(self: NodeRuntime, w: WorkerProc) -> None:
        if w.state == "dead":
            return
        was_starting = w.state == "starting"
        w.state = "dead"
        self._unwatch(w.conn.fd)
        w.conn.close()
        self.workers.pop(w.worker_id, None)
        self.holds.pop(w.worker_id, None)
        if w.kind == "client":
            self._on_client_exit(w)
            return
        self.job_of.pop(w.worker_id, None)
        if was_starting:
            self.starting[w.env_key] = max(0, self.starting.get(w.env_key, 0) - 1)
        pool = self.idle.get(w.env_key)
        if pool and w in pool:
            pool.remove(w)
        try:
            if w.proc is not None:
                w.proc.wait(timeout=1)
        except Exception:  # noqa: BLE001 - a stuck zombie must not stop the node
            pass
        for pump in w.pumps:
            self._unwatch(pump.fd)
        w.close_output()
        self._release_peer(w)
        if w.grant is not None and w.task is not None and w.actor is None:
            self.resources.release(w.grant)
            w.grant = None
        task = w.task
        self.leave_pipeline(w)
        queued, w.queued = list(w.queued), collections.deque()
        if task is not None and w.actor is None:
            w.task = None
            self._task_worker_died(task, w)
        for later in queued:
            # Tasks run in order and each DONE was read before the EOF: these never started.
            self.requeue_unstarted(later, w)
        if w.actor is not None:
            self.actors.worker_died(w.actor, w)
        self.dispatch()

    def _task_worker_died(self: NodeRuntime, task: Task, w: WorkerProc) -> None:
        from shoal._runtime.wire import STREAM

        if task.force_cancelled or task.cancelled:
            self.fail_task(task, TaskCancelledError(f"task {task.name} was cancelled", task_id=task.task_id.hex()))
            return
        if task.retries_left != 0 and task.wire.num_returns != STREAM:
            if task.retries_left > 0:
                task.retries_left -= 1
            self._requeue(task)
            return
        code = w.proc.returncode if w.proc is not None else None
        self.fail_task(
            task,
            WorkerCrashedError(
                f"the worker running {task.name} (pid={w.pid}) died unexpectedly (exit code {code}) "
                "and no retries were left"
            ),
        )

    # -- connected drivers ------------------------------------------------

    def listen(self: NodeRuntime, path: str, token: str) -> None:
        """Accept driver connections on a Unix socket only this user can reach."""
        if os.path.exists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        sock.listen(64)
        sock.setblocking(False)
        self.listener = sock
        self.token = token
        with self.lock:
            self._watch(sock.fileno(), self._on_accept)

    def _on_accept(self: NodeRuntime) -> None:
        assert self.listener is not None
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            conn.setblocking(False)
            state = {"buf": b""}
            self._watch(conn.fileno(), functools.partial(self._on_handshake, conn, state))

    def _on_handshake(self: NodeRuntime, conn: socket.socket, state: dict[str, Any]) -> None:
        from shoal._cluster.auth import tokens_match

        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        buf = state["buf"] + data
        need = len(HANDSHAKE_MAGIC) + 2
        if not data or (len(buf) >= len(HANDSHAKE_MAGIC) and not buf.startswith(HANDSHAKE_MAGIC)):
            self._reject(conn)
            return
        if len(buf) < need:
            state["buf"] = buf
            return
        n = int.from_bytes(buf[len(HANDSHAKE_MAGIC) : need], "little")
        if len(buf) < need + n + 4:
            if len(buf) > 8192:
                self._reject(conn)
            else:
                state["buf"] = buf
            return
        token = buf[need : need + n]
        pid = int.from_bytes(buf[need + n : need + n + 4], "little")
        rest = buf[need + n + 4 :]
        if self.token is None or not tokens_match(token, self.token):
            self._reject(conn)
            return
        self._unwatch(conn.fileno())
        self._add_client(conn, pid, rest)

    def _reject(self: NodeRuntime, conn: socket.socket) -> None:
        self._unwatch(conn.fileno())
        try:
            conn.sendall(b"SHOAL-DENIED")
        except OSError:
            pass
        conn.close()

    def _add_client(self: NodeRuntime, conn: socket.socket, pid: int, rest: bytes) -> None:
        worker_id = next(self._worker_ids)
        w = WorkerProc(worker_id, None, P.NonBlockingConnection(conn), "", state="hello", kind="client", client_pid=pid)
        w.conn.on_pending = self.wake
        w.conn.batch = self
        self.workers[worker_id] = w
        self.holds[worker_id] = w.holds
        self._watch(w.conn.fd, functools.partial(self._on_readable, w))
        if rest:
            for msg in w.conn.feed(rest):
                self._handlers[msg[0]](self, w, msg)

    def _on_hello(self: NodeRuntime, w: WorkerProc, msg: tuple[Any, ...]) -> None:
        """A connected driver says which job it runs: its namespace and runtime env."""
        if w.kind != "client" or w.state != "hello":
            return
        _, config = msg
        job_id = new_id()[:4].hex()
        namespace = config.get("namespace") or f"anonymous-{new_id()[8:].hex()}"
        job = Job(job_id, namespace, dict(config.get("runtime_env") or {}))
        self.jobs[job_id] = job
        self.job_of[w.worker_id] = job_id
        w.state = "client"
        info = {
            "max_inline": self.max_inline,
            "job_id": job_id,
            "node_id": self.node_id,
            "namespace": namespace,
            "worker_id": f"driver-{w.client_pid}",
            "runtime_env": job.runtime_env,
        }
        w.conn.send((P.REPLY, 0, True, ("info", info)))

    # -- peer nodes -----------------------------------------------------------

    def add_peer(self: NodeRuntime, conn: Any) -> WorkerProc:
        """Another node (or a remote driver) opened a link to this one."""
        worker_id = next(self._worker_ids)
        w = WorkerProc(worker_id, None, conn, "", state="client", kind="peer")
        self.workers[worker_id] = w
        self.holds[worker_id] = w.holds
        return w

    def handle_peer_messages(self: NodeRuntime, w: WorkerProc, msgs: list[tuple[Any, ...]]) -> None:
        handlers = self._handlers
        for msg in msgs:
            handler = handlers.get(msg[0])
            if handler is not None and msg[0] not in (P.READY, P.DONE, P.GEN_ITEM, P.HELLO, P.RECALLED):
                handler(self, w, msg)
        self.dispatch()

    def drop_peer(self: NodeRuntime, w: WorkerProc) -> None:
        if w.state == "dead":
            return
        w.state = "dead"
        self.workers.pop(w.worker_id, None)
        self.holds.pop(w.worker_id, None)
        self._release_peer(w)
        self.dispatch()

    def _on_client_exit(self: NodeRuntime, w: WorkerProc) -> None:
        self._release_peer(w)
        job_id = self.job_of.pop(w.worker_id, None)
        if job_id is not None and job_id in self.jobs and job_id != self.job_id:
            del self.jobs[job_id]
            # The job's idle workers leave now, busy ones after their task.
            for other in list(self.workers.values()):
                if other.kind == "worker" and self.job_of.get(other.worker_id) == job_id:
                    if other.state == "idle":
                        pool = self.idle.get(other.env_key)
                        if pool and other in pool:
                            pool.remove(other)
                        self.retire_worker(other)
                    elif other.actor is None:
                        other.retire = True
        self.dispatch()
