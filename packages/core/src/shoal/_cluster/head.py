"""The head service: node membership and failure detection, the cluster view, a KV store, and jobs.

State that must survive a head restart (the KV store, named detached actors
recorded in it, and jobs) is kept in an embedded SQLite database; node
membership is rebuilt from the nodes' heartbeats, which ask a head that does
not know them to re-register.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc

from shoal._cluster.jobs import JobManager
from shoal._cluster.proto import cluster_pb2 as pb
from shoal._cluster.proto import cluster_pb2_grpc as pb_grpc

__all__ = ["HeadState", "HeadServicer", "HEARTBEAT_INTERVAL_S", "NODE_TIMEOUT_S"]

log = logging.getLogger("shoal.head")

HEARTBEAT_INTERVAL_S = 0.5
NODE_TIMEOUT_S = 3.0
_MAX_KEY = 1024
_MAX_VALUE = 64 << 20


class HeadState:
    """Membership, demand and the persistent store; thread-safe."""

    def __init__(self, storage: Path, node_timeout_s: float = NODE_TIMEOUT_S) -> None:
        self.lock = threading.RLock()
        self.node_timeout_s = node_timeout_s
        storage.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(storage / "head.sqlite3", check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (ns TEXT, key TEXT, value BLOB, PRIMARY KEY (ns, key))")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = self.db.execute("SELECT value FROM meta WHERE key = 'cluster_id'").fetchone()
        if row is None:
            self.cluster_id = uuid.uuid4().hex
            self.db.execute("INSERT INTO meta VALUES ('cluster_id', ?)", (self.cluster_id,))
        else:
            self.cluster_id = row[0]
        self.nodes: dict[str, pb.NodeInfo] = {}
        self.demands: dict[str, list[pb.ResourceDemand]] = {}
        self.listeners: list[Callable[[str, str], None]] = []

    # -- membership ---------------------------------------------------------

    def register(self, node: pb.NodeInfo) -> None:
        with self.lock:
            info = pb.NodeInfo()
            info.CopyFrom(node)
            info.alive = True
            info.state = "ALIVE"
            info.last_heartbeat = time.time()
            if not info.available:
                info.available.update(info.total)
            self.nodes[info.node_id] = info
        log.info("node %s registered at %s", node.node_id[:12], node.address)

    def heartbeat(self, request: pb.HeartbeatRequest) -> bool:
        """Record a heartbeat; False if the node is unknown (or was declared dead)."""
        with self.lock:
            node = self.nodes.get(request.node_id)
            if node is None or not node.alive:
                return False
            node.last_heartbeat = time.time()
            node.available.clear()
            node.available.update(request.available)
            self.demands[request.node_id] = list(request.demands)
            return True

    def mark_dead(self, node_id: str, reason: str) -> None:
        with self.lock:
            node = self.nodes.get(node_id)
            if node is None or not node.alive:
                return
            node.alive = False
            node.state = "DEAD"
            node.death_reason = reason
            node.available.clear()
            self.demands.pop(node_id, None)
            listeners = list(self.listeners)
        log.warning("node %s is dead: %s", node_id[:12], reason)
        for listener in listeners:
            listener(node_id, reason)

    def forgive(self, seconds: float) -> None:
        """Move every live node's last heartbeat ``seconds`` later (capped at now).

        For a head that did not run for that long: heartbeats sent meanwhile may still be
        queued, unrecorded, so silence in that gap says nothing about the nodes.
        """
        now = time.time()
        with self.lock:
            for n in self.nodes.values():
                if n.alive:
                    n.last_heartbeat = min(now, n.last_heartbeat + seconds)

    def check_timeouts(self) -> None:
        now = time.time()
        with self.lock:
            late = [n.node_id for n in self.nodes.values() if n.alive and now - n.last_heartbeat > self.node_timeout_s]
        for node_id in late:
            self.mark_dead(node_id, f"no heartbeat for {self.node_timeout_s:.1f}s")

    def node_list(self) -> list[pb.NodeInfo]:
        with self.lock:
            out = []
            for n in self.nodes.values():
                copy = pb.NodeInfo()
                copy.CopyFrom(n)
                out.append(copy)
            return out

    def demand_list(self) -> list[pb.ResourceDemand]:
        with self.lock:
            return [d for demands in self.demands.values() for d in demands]

    # -- key-value store -----------------------------------------------------

    def kv_put(self, ns: str, key: str, value: bytes, overwrite: bool) -> bool:
        with self.lock:
            if not overwrite:
                row = self.db.execute("SELECT 1 FROM kv WHERE ns = ? AND key = ?", (ns, key)).fetchone()
                if row is not None:
                    return False
            self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (ns, key, value))
            return True

    def kv_get(self, ns: str, key: str) -> bytes | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM kv WHERE ns = ? AND key = ?", (ns, key)).fetchone()
        return None if row is None else bytes(row[0])

    def kv_delete(self, ns: str, key: str) -> bool:
        with self.lock:
            cur = self.db.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))
            return cur.rowcount > 0

    def kv_keys(self, ns: str, prefix: str) -> list[str]:
        with self.lock:
            rows = self.db.execute(
                "SELECT key FROM kv WHERE ns = ? AND substr(key, 1, ?) = ?", (ns, len(prefix), prefix)
            )
            return [r[0] for r in rows]

    def close(self) -> None:
        with self.lock:
            self.db.close()


def _check_kv(request: pb.KVRequest, context: grpc.ServicerContext, with_value: bool = False) -> None:
    if not request.key or len(request.key) > _MAX_KEY:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"a key must have 1 to {_MAX_KEY} characters")
    if with_value and len(request.value) > _MAX_VALUE:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"a value may hold at most {_MAX_VALUE} bytes")


class HeadServicer(pb_grpc.HeadServicer):
    """The gRPC face of :class:`HeadState` and the job manager."""

    def __init__(self, state: HeadState, jobs: JobManager) -> None:
        self.state = state
        self.jobs = jobs

    def RegisterNode(self, request: pb.RegisterNodeRequest, context: grpc.ServicerContext) -> pb.RegisterNodeReply:
        node = request.node
        if not node.node_id or not node.address:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a node needs an id and an address")
        self.state.register(node)
        return pb.RegisterNodeReply(cluster_id=self.state.cluster_id, heartbeat_interval_s=HEARTBEAT_INTERVAL_S)

    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatReply:
        known = self.state.heartbeat(request)
        return pb.HeartbeatReply(nodes=self.state.node_list(), reregister=not known)

    def GetClusterInfo(self, request: pb.ClusterInfoRequest, context: grpc.ServicerContext) -> pb.ClusterInfoReply:
        return pb.ClusterInfoReply(
            cluster_id=self.state.cluster_id, nodes=self.state.node_list(), demands=self.state.demand_list()
        )

    def KVPut(self, request: pb.KVRequest, context: grpc.ServicerContext) -> pb.KVReply:
        _check_kv(request, context, with_value=True)
        added = self.state.kv_put(request.ns, request.key, request.value, request.overwrite)
        return pb.KVReply(added=added)

    def KVGet(self, request: pb.KVRequest, context: grpc.ServicerContext) -> pb.KVReply:
        _check_kv(request, context)
        value = self.state.kv_get(request.ns, request.key)
        return pb.KVReply(found=value is not None, value=value or b"")

    def KVDelete(self, request: pb.KVRequest, context: grpc.ServicerContext) -> pb.KVReply:
        _check_kv(request, context)
        return pb.KVReply(found=self.state.kv_delete(request.ns, request.key))

    def KVKeys(self, request: pb.KVRequest, context: grpc.ServicerContext) -> pb.KVReply:
        return pb.KVReply(keys=self.state.kv_keys(request.ns, request.prefix))

    def SubmitJob(self, request: pb.JobSubmitRequest, context: grpc.ServicerContext) -> pb.JobReply:
        if not request.entrypoint.strip():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a job needs an entrypoint command")
        try:
            job = self.jobs.submit(
                request.entrypoint,
                request.submission_id or None,
                dict(request.env_vars),
                request.working_dir or None,
                dict(request.metadata),
            )
        except ValueError as e:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, str(e))
        return pb.JobReply(job=job)

    def GetJob(self, request: pb.JobRequest, context: grpc.ServicerContext) -> pb.JobReply:
        job = self.jobs.get(request.submission_id)
        if job is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no job with submission id {request.submission_id!r}")
        return pb.JobReply(job=job)

    def ListJobs(self, request: pb.JobRequest, context: grpc.ServicerContext) -> pb.JobReply:
        return pb.JobReply(jobs=self.jobs.list())

    def GetJobLogs(self, request: pb.JobRequest, context: grpc.ServicerContext) -> pb.JobReply:
        if self.jobs.get(request.submission_id) is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no job with submission id {request.submission_id!r}")
        data, offset = self.jobs.logs(request.submission_id, max(0, request.offset))
        return pb.JobReply(logs=data, next_offset=offset)

    def StopJob(self, request: pb.JobRequest, context: grpc.ServicerContext) -> pb.JobReply:
        job = self.jobs.stop(request.submission_id)
        if job is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no job with submission id {request.submission_id!r}")
        return pb.JobReply(job=job)


def start_failure_detector(state: HeadState, stop: threading.Event) -> threading.Thread:
    """Check heartbeats every half interval; a check that comes late forgives the delay."""
    period = HEARTBEAT_INTERVAL_S / 2

    def run() -> None:
        last = time.monotonic()
        while not stop.wait(period):
            now = time.monotonic()
            stalled = now - last - period
            last = now
            try:
                if stalled > HEARTBEAT_INTERVAL_S:
                    # This process (or the machine) stalled: judge nobody on that gap.
                    log.warning("the head did not run for %.1fs; node deadlines move on by as much", stalled)
                    state.forgive(stalled)
                else:
                    state.check_timeouts()
            except Exception:
                log.exception("failure detector")

    t = threading.Thread(target=run, name="shoal-failure-detector", daemon=True)
    t.start()
    return t
