"""Multi-node work: choosing other nodes, forwarding tasks and actors to them, and moving objects.

Rules that keep reference counting simple across nodes:

* A task is owned by the node it was submitted to. When it runs elsewhere,
  the owner pushes its arguments along and gets its small results back as
  soon as they exist. Results in shared memory stay on the executing node,
  which holds them for the owner until the owner frees them or pulls a copy;
  the owner keeps the task (and its arguments) meanwhile, and runs it again
  if that node dies before then (lineage reconstruction).
* An object table entry whose payload is ``(REMOTE, node_id)`` stands for an
  object that lives on another node, and means "this node holds one
  reference on it there". Reading it pulls a local copy first.
* Actors live on one node; other nodes record where, forward calls there,
  and hold one handle on it while they have handles of their own.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from shoal._runtime import protocol as P
from shoal._runtime.objects import REMOTE
from shoal._runtime.tasks import READY, RUNNING, WAITING, Task
from shoal._runtime.wire import CALL, CREATE, STREAM, TASK
from shoal.exceptions import ActorDiedError, NodeDiedError, ObjectLostError, ObjectReconstructionFailedError
from shoal.object_ref import new_id

if TYPE_CHECKING:
    from shoal._cluster.link import LinkClient
    from shoal._cluster.tcp_link import TcpLinkClient
    from shoal._runtime.actors import Actor
    from shoal._runtime.node import NodeRuntime

__all__ = ["PeerManager", "REMOTE"]

log = logging.getLogger("shoal.peers")

_PIPELINE = 4  # tasks a busy node may have queued per CPU
_NOTHING: dict[str, float] = {}


class PeerManager:
    """Links to other nodes and the bookkeeping of work and objects that cross them."""

    def __init__(self, node: NodeRuntime, token: str, tls: Any = None) -> None:
        self.node = node
        self.token = token
        self.tls = tls  # folder of the cluster's TLS certificate, when TLS is on
        self.links: dict[str, LinkClient | TcpLinkClient] = {}
        self.remote_actors: dict[bytes, str] = {}
        self.remote_handles: dict[bytes, int] = {}
        self.forwarded: dict[bytes, tuple[Task, str]] = {}
        self.forwarded_actors: dict[bytes, tuple[Actor, str]] = {}
        self.pulling: set[bytes] = set()
        self.inflight: dict[str, dict[str, float]] = {}
        self.dead: set[str] = set()  # nodes not to send work to
        self._nodes: list[dict[str, Any]] = []
        self._nodes_of: tuple[Any, int] = (None, -1)  # the view and dead count _nodes was made from
        self.handled_dead: set[str] = set()  # nodes whose death has been dealt with
        self._spread = 0
        self._refreshed = 0.0
        self.queued: dict[str, int] = {}  # tasks forwarded to each node and not back yet
        # Results kept on the node that made them -> the task that can make them again.
        self.lineage: dict[bytes, Task] = {}
        self.lineage_left: dict[bytes, int] = {}  # task id -> how many of its results are kept

    # -- the cluster view --------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        """Live nodes of the cluster view (rebuilt only when the view or the dead set changes)."""
        view = self.node.cluster_view
        if view is not self._nodes_of[0] or len(self.dead) != self._nodes_of[1]:
            self._nodes = [n for n in view if n["alive"] and n["node_id"] not in self.dead]
            self._nodes_of = (view, len(self.dead))  # ``dead`` only grows
        return self._nodes

    def refresh_view(self, force: bool = False) -> bool:
        """Ask the head for the node list now (at most every 0.2 s); True if it was refreshed."""
        now = time.monotonic()
        if (not force and now - self._refreshed < 0.2) or self.node.directory is None:
            return False
        self._refreshed = now
        try:
            self.node.cluster_view = self.node.directory.nodes()
        except Exception as e:  # noqa: BLE001 - the head may be away; heartbeats will catch up
            log.debug("cannot refresh the cluster view: %s", e)
            return False
        return True

    def knows(self, node_id: str) -> bool:
        if any(n["node_id"] == node_id for n in self.nodes()):
            return True
        return self.refresh_view() and any(n["node_id"] == node_id for n in self.nodes())

    def _available(self, n: dict[str, Any]) -> dict[str, float]:
        """What node ``n`` had free, less what was sent there since."""
        avail = dict(n["available"])
        for k, v in self._sent(n).items():
            avail[k] = avail.get(k, 0.0) - v
        return avail

    @staticmethod
    def _fits(pool: dict[str, float], need: dict[str, float]) -> bool:
        for k, v in need.items():
            if v > 0 and pool.get(k, 0.0) + 1e-9 < v:
                return False
        return True

    def feasible_anywhere(self, need: dict[str, float]) -> bool:
        return any(self._fits(n["total"], need) for n in self.nodes())

    def choose(self, need: dict[str, float], sched: tuple[Any, ...] | None, local_fits: bool) -> str | None:
        """Where to run: this node's id, another node's id, or None (nowhere yet)."""
        me = self.node.node_id
        kind = sched[0] if sched is not None else "DEFAULT"
        if kind == "NODE_AFFINITY":
            target = sched[1]  # type: ignore[index]
            if target == me or self.knows(target):
                return target
            return None if not sched[2] else (me if local_fits else self._any_fitting(need))  # type: ignore[index]
        if kind == "SPREAD":
            # Round robin over nodes with room; the turn passes only when a task is placed.
            candidates = [me] + [n["node_id"] for n in self.nodes() if n["node_id"] != me]
            for i in range(len(candidates)):
                target = candidates[(self._spread + i) % len(candidates)]
                ok = local_fits if target == me else self._fits_node(target, need)
                if ok:
                    return target
            return None
        if local_fits:
            return me
        found = self._any_fitting(need)
        if found is None and not self.node.resources.feasible(need) and self.refresh_view():
            found = self._any_fitting(need)
        return found

    def placed(self, sched: tuple[Any, ...] | None) -> None:
        """A task was placed: a SPREAD task moves the round robin on."""
        if sched is not None and sched[0] == "SPREAD":
            self._spread += 1

    def _fits_node(self, node_id: str, need: dict[str, float]) -> bool:
        for n in self.nodes():
            if n["node_id"] == node_id:
                return self._fits_now(n, need)
        return False

    def _sent(self, n: dict[str, Any]) -> dict[str, float]:
        """Resources of the work sent to node ``n`` that its last heartbeat did not show yet."""
        return self.inflight.get(n["node_id"]) or _NOTHING

    def _fits_now(self, n: dict[str, Any], need: dict[str, float]) -> bool:
        """Whether ``need`` fits what node ``n`` had free, less what was sent there since."""
        avail = n["available"]
        sent = self._sent(n)
        for k, v in need.items():
            if v > 0 and avail.get(k, 0.0) - sent.get(k, 0.0) + 1e-9 < v:
                return False
        return True

    def _any_fitting(self, need: dict[str, float]) -> str | None:
        """A node with room now; failing that, one that can queue a few more (pipelining).

        Queueing a bounded number of tasks at a busy node keeps its worker fed without a
        round trip per task, as Ray's worker-lease reuse does.
        """
        me = self.node.node_id
        best = None
        for n in self.nodes():
            if n["node_id"] == me or not self._fits_now(n, need):
                continue
            cpus = n["available"].get("CPU", 0.0) - self._sent(n).get("CPU", 0.0)
            if best is None or cpus > best[1]:
                best = (n["node_id"], cpus)
        if best is not None:
            return best[0]
        queued_best = None
        for n in self.nodes():
            if n["node_id"] == me or not self._fits(n["total"], need):
                continue
            slots = _PIPELINE * max(1.0, n["total"].get("CPU", 1.0))
            queued = self.queued.get(n["node_id"], 0)
            if queued < slots and (queued_best is None or queued / slots < queued_best[1]):
                queued_best = (n["node_id"], queued / slots)
        return queued_best[0] if queued_best else None

    # -- links ----------------------------------------------------------------

    def link(self, node_id: str) -> LinkClient | TcpLinkClient:
        existing = self.links.get(node_id)
        if existing is not None and not existing.closed:
            return existing
        from shoal._cluster.link import LinkClient

        entry = next((n for n in self.node.cluster_view if n["node_id"] == node_id), None)
        if entry is None and node_id not in self.dead and self.refresh_view(force=True):
            entry = next((n for n in self.node.cluster_view if n["node_id"] == node_id), None)
        if entry is None or node_id in self.dead:
            raise NodeDiedError(f"node {node_id[:12]} is not part of the cluster")
        link: LinkClient | TcpLinkClient
        if entry.get("link_address") and self.tls is None:
            from shoal._cluster.tcp_link import TcpLinkClient

            link = TcpLinkClient(self.node, node_id, entry["link_address"], self.token, self.on_link_lost)
        else:
            link = LinkClient(self.node, node_id, entry["address"], self.token, self.on_link_lost, self.tls)
        self.links[node_id] = link
        return link

    def _reserve(self, node_id: str, need: dict[str, float], sign: float) -> None:
        pool = self.inflight.setdefault(node_id, {})
        for k, v in need.items():
            pool[k] = pool.get(k, 0.0) + sign * v
        self.queued[node_id] = max(0, self.queued.get(node_id, 0) + (1 if sign > 0 else -1))

    # -- moving values ----------------------------------------------------------

    def portable(self, object_id: bytes, conn: Any) -> tuple[Any, ...]:
        """A payload of a local object that another node can read, sent over ``conn``."""
        return portable_payload(self.node, object_id, conn)

    def _job_info(self, task: Task) -> tuple[str, str, dict[str, Any]]:
        job = self.node.job_for(task.owner)
        return (job.job_id, job.namespace, job.runtime_env)

    def _locations(self, ids: list[bytes], actor_ids: tuple[bytes, ...]) -> dict[str, dict[bytes, str]]:
        """Where each nested ref and actor handle of a call lives, for the node that runs it."""
        me = self.node.node_id
        objects: dict[bytes, str] = {}
        for oid in ids:
            obj = self.node.objects.objects.get(oid)
            if obj is not None and obj.payload is not None and obj.payload[0] == REMOTE:
                objects[oid] = obj.payload[1]
            else:
                objects[oid] = me
        actors = {aid: self.remote_actors.get(aid, me) for aid in actor_ids}
        return {"objects": objects, "actors": actors}

    def forward(self, task: Task, node_id: str) -> None:
        """Run ``task`` (a task, an actor creation or an actor call) on ``node_id``."""
        node = self.node
        link = self.link(node_id)
        wire = task.wire
        log.debug("forwarding %s %s to node %s", task.name, task.task_id.hex()[-8:], node_id[:8])
        for dep in dict.fromkeys(wire.deps):
            link.send((P.PUT, dep, self.portable(dep, link.conn), []))
        args = wire.args
        if task.args_id is not None:
            args = self.portable(task.args_id, link.conn)
        fn_bytes = node.functions.get(wire.fn_id) if wire.fn_id is not None else None
        sent = wire._replace(args=args, fn_bytes=fn_bytes, parent=None)
        extra: dict[str, Any] = {"job": self._job_info(task)}
        if wire.kind == TASK and wire.num_returns != STREAM:
            extra["keep"] = True  # large results stay there; this node can make them again
        if wire.contained or wire.handles:
            extra["locations"] = self._locations(wire.contained, wire.handles)
        task.state = RUNNING
        self.forwarded[task.task_id] = (task, node_id)
        if wire.kind == CREATE:
            self._reserve(node_id, wire.resources, +1)
            link.request("create_actor_forwarded", (sent, extra), lambda ok, r: self._created(task, node_id, ok, r))
            return
        if wire.kind != CALL:
            self._reserve(node_id, wire.resources, +1)
        # A plain tuple: pickling the named tuple runs Python code at both ends, per call.
        if wire.num_returns == STREAM:
            link.send((P.ACTOR_SUBMIT if wire.kind == CALL else P.SUBMIT, tuple(sent), extra))
        else:
            # One message submits and asks for the results, which come back as soon as they exist
            # (the other node drops its copies once it has sent them).
            link.request("submit_and_get", (tuple(sent), extra), lambda ok, r: self._results(task, node_id, ok, r))
        for dep in dict.fromkeys(wire.deps):
            link.send((P.REFS, [(dep, -1)], []))
        if wire.num_returns == STREAM:
            self._follow_stream(task, node_id, 0)

    def _results(self, task: Task, node_id: str, ok: bool, result: Any) -> None:
        node = self.node
        self.forwarded.pop(task.task_id, None)
        if task.wire.kind != CALL:
            self._reserve(node_id, task.wire.resources, -1)
        if not ok:
            self._forward_failed(task, node_id, result)
            return
        kept = []
        for rid, (payload, contained) in zip(task.wire.return_ids, result, strict=True):
            if payload[0] != REMOTE:
                self.store_pulled(rid, payload, contained, node_id)
            elif node.objects.set_remote(rid, node_id):
                self.lineage[rid] = task
                kept.append(rid)
            else:
                self.release(rid, node_id)  # nobody holds it any more
        if kept:
            self.lineage_left[task.task_id] = len(kept)
        node.release_task(task, keep_lineage=bool(kept))
        for rid in kept:
            entry = node.objects.objects.get(rid)
            if entry is not None and entry.waiters:
                self.pull(rid)  # for whoever waits for it here

    def _drop_lineage(self, object_id: bytes) -> None:
        """A kept result was freed or copied here: its task need not run again for it."""
        task = self.lineage.pop(object_id, None)
        if task is None:
            return
        left = self.lineage_left.get(task.task_id, 1) - 1
        if left > 0:
            self.lineage_left[task.task_id] = left
            return
        self.lineage_left.pop(task.task_id, None)
        self.node.unpin_task(task)

    def _rebuild(self, object_id: bytes, error: Any) -> bool:
        """Run the task that made a lost object again; False if there is no such task."""
        task = self.lineage.get(object_id)
        if task is None:
            return False
        node = self.node
        objects = node.objects
        lost = [r for r in task.wire.return_ids if self.lineage.get(r) is task]
        for rid in lost:
            del self.lineage[rid]
            entry = objects.objects.get(rid)
            if entry is not None:
                entry.payload = None
        self.lineage_left.pop(task.task_id, None)
        if task.retries_left == 0:
            from shoal._runtime.values import encode_error

            msg = (
                f"object {object_id.hex()} was lost ({error}) and cannot be rebuilt: "
                f"its task {task.name} has no retries left (max_retries)"
            )
            for rid in lost:
                objects.set_ready(rid, encode_error(ObjectReconstructionFailedError(msg, rid.hex())), None)
            node.unpin_task(task)
            return True
        log.info("rebuilding %s: running %s again", object_id.hex()[:12], task.name)
        if task.retries_left > 0:
            task.retries_left -= 1
        task.state = WAITING
        task.worker = None
        task.grant = None
        node.tasks[task.task_id] = task
        node.start_task(task)
        return True

    def _follow_stream(self, task: Task, node_id: str, index: int) -> None:
        link = self.link(node_id)

        def got(ok: bool, result: Any) -> None:
            gen = self.node.generators.get(task.task_id)
            if not ok:
                self._forward_failed(task, node_id, result)
                return
            if result is None:
                self.forwarded.pop(task.task_id, None)
                self._reserve(node_id, task.wire.resources, -1)
                if gen is not None:
                    self.node._gen_done(task, gen, None)
                self.node.release_task(task)
                return
            item_id, payload, contained = result
            if gen is not None:
                local_id = new_id()
                self.node.objects.create(local_id, 1)
                self.store_pulled(local_id, payload, contained, node_id)
                gen.items.append(local_id)
                self.node._wake_gen(gen)
            self.release(item_id, node_id)
            self._follow_stream(task, node_id, index + 1)

        link.request("generator_item", (task.task_id, index), got)

    def _forward_failed(self, task: Task, node_id: str, error: Any) -> None:
        """The node running a forwarded task died (or refused it): retry it, or fail it."""
        node = self.node
        log.warning("forwarded task %s on node %s failed: %s", task.name, node_id[:8], error)
        if task.wire.kind == CALL:
            node.fail_task(task, ActorDiedError(f"the actor's node {node_id[:12]} died while running {task.name}"))
            return
        if task.retries_left != 0 and task.wire.num_returns != STREAM and isinstance(error, NodeDiedError):
            if task.retries_left > 0:
                task.retries_left -= 1
            task.state = READY
            node._requeue(task)
            return
        if isinstance(error, BaseException):
            node.fail_task(task, error)
        else:
            node.fail_task(task, NodeDiedError(f"node {node_id[:12]} failed while running {task.name}"))

    # -- actors ------------------------------------------------------------------

    def _created(self, task: Task, node_id: str, ok: bool, result: Any) -> None:
        node = self.node
        self.forwarded.pop(task.task_id, None)
        self._reserve(node_id, task.wire.resources, -1)
        actor = node.actors.actors.get(task.wire.actor_id)  # type: ignore[arg-type]
        if actor is None:
            return
        if not ok:
            if isinstance(result, NodeDiedError) and actor.restarts_left != 0:
                node.actors.worker_died(actor, None)
                return
            node.actors._die(actor, ActorDiedError(f"The actor could not be created on node {node_id[:12]}: {result}"))
            return
        actor.remote_node = node_id
        self.remote_actors[actor.actor_id] = node_id
        actor.state = "alive"
        if actor.name is not None and node.directory is not None:
            # The name points at the node the actor lives on, so it outlives this (owner) node.
            node.directory.relocate(actor.namespace, actor.name, actor.actor_id, node_id, node.actors.info(actor))
        if actor.handles > 0:
            # Handles made before the actor existed: hold it over there too.
            self.handle_delta(actor.actor_id, actor.handles)
        node.actors.pump(actor)

    def forward_call(self, task: Task, node_id: str) -> None:
        self.forward(task, node_id)

    def handle_delta(self, actor_id: bytes, delta: int) -> None:
        """This node's handles on a remote actor changed: hold one handle there while it has any."""
        node_id = self.remote_actors.get(actor_id)
        if node_id is None:
            return
        n = self.remote_handles.get(actor_id, 0)
        m = n + delta
        if m > 0:
            self.remote_handles[actor_id] = m
        else:
            self.remote_handles.pop(actor_id, None)
        if (n <= 0 < m) or (m <= 0 < n):
            try:
                self.link(node_id).send((P.REFS, [], [(actor_id, 1 if m > 0 else -1)]))
            except NodeDiedError:
                pass

    def kill_remote(self, actor_id: bytes, no_restart: bool) -> bool:
        node_id = self.remote_actors.get(actor_id)
        if node_id is None:
            return False
        try:
            self.link(node_id).request("kill_actor", (actor_id, no_restart), lambda ok, r: None)
        except NodeDiedError:
            pass
        return True

    # -- objects -----------------------------------------------------------------

    def store_pulled(self, object_id: bytes, payload: tuple[Any, ...], contained: list[bytes], source: str) -> None:
        """Keep a value that came from ``source``; its nested refs live there (and are held there for us)."""
        node = self.node
        objects = node.objects
        for cid in contained:
            entry = objects.objects.get(cid)
            if entry is None or entry.payload is None:
                mark_remote(node, cid, source)
            else:
                # Already known here: drop the extra hold the source took for us.
                self.release(cid, source)
        node.store_local(object_id, payload, contained or None)

    def pull(self, object_id: bytes) -> None:
        """Fetch a local copy of a REMOTE object (once); waiters fire when it arrives."""
        if object_id in self.pulling:
            return
        entry = self.node.objects.objects.get(object_id)
        if entry is None or entry.payload is None or entry.payload[0] != REMOTE:
            return
        source = entry.payload[1]
        self.pulling.add(object_id)
        try:
            link = self.link(source)
        except NodeDiedError as e:
            self.pulling.discard(object_id)
            self._lost(object_id, e)
            return

        def got(ok: bool, result: Any) -> None:
            self.pulling.discard(object_id)
            if not ok:
                self._lost(object_id, result)
                return
            payload, contained = result[0]
            self.store_pulled(object_id, payload, contained, source)
            # We have our own copy now; the source may drop it.
            self.release(object_id, source)
            self._drop_lineage(object_id)

        link.request("get_with_refs", ([object_id], None), got)

    def _lost(self, object_id: bytes, error: Any) -> None:
        from shoal._runtime.values import encode_error

        entry = self.node.objects.objects.get(object_id)
        if entry is None or entry.payload is None or entry.payload[0] != REMOTE:
            return  # gone, or being made again already
        if self._rebuild(object_id, error):
            return
        entry.payload = None
        msg = f"object {object_id.hex()} lived on a node that is gone ({error})"
        self.node.objects.set_ready(object_id, encode_error(ObjectLostError(msg, object_id.hex())), None)

    def remote_freed(self, object_id: bytes, node_id: str) -> None:
        """This node's entry for an object on ``node_id`` was freed."""
        self._drop_lineage(object_id)
        self.release(object_id, node_id)

    def release(self, object_id: bytes, node_id: str) -> None:
        """Give back this node's hold on an object that lives on ``node_id``."""
        link = self.links.get(node_id)
        if link is not None and not link.closed:
            link.send((P.REFS, [(object_id, -1)], []))

    def accept_extra(self, peer_id: int, extra: dict[str, Any]) -> str | None:
        """A forwarded task's job and the locations of its nested refs and actor handles."""
        node = self.node
        job_id = None
        job = extra.get("job")
        if job is not None:
            job_id, namespace, renv = job
            if job_id not in node.jobs:
                from shoal._runtime.pool import Job

                node.jobs[job_id] = Job(job_id, namespace, dict(renv or {}))
        me = node.node_id
        locations = extra.get("locations")
        if not locations:
            return job_id
        for oid, where in locations.get("objects", {}).items():
            if where == me or oid in node.objects.objects:
                continue
            mark_remote(node, oid, where)
            try:
                self.link(where).send((P.REFS, [(oid, 1)], []))
            except NodeDiedError:
                pass
        for aid, where in locations.get("actors", {}).items():
            if where != me and aid not in node.actors.actors:
                node.actors.add_proxy(aid, where)
        return job_id

    # -- failures -------------------------------------------------------------

    def on_link_lost(self, node_id: str) -> None:
        """A broken link means a dead node (the head will agree within its timeout)."""
        self.links.pop(node_id, None)
        self.dead.add(node_id)

    def on_node_dead(self, node_id: str) -> None:
        """The head says ``node_id`` died: retry or fail what ran there, restart its actors."""
        if node_id in self.handled_dead:
            return
        self.handled_dead.add(node_id)
        self.dead.add(node_id)
        link = self.links.pop(node_id, None)
        if link is not None:
            link.close()
        self.inflight.pop(node_id, None)
        for task, where in list(self.forwarded.values()):
            if where == node_id:
                self.forwarded.pop(task.task_id, None)
                self._forward_failed(task, node_id, NodeDiedError(f"node {node_id[:12]} died"))
        node = self.node
        for actor in list(node.actors.actors.values()):
            if getattr(actor, "remote_node", None) == node_id and actor.state != "dead":
                actor.remote_node = None
                self.remote_actors.pop(actor.actor_id, None)
                node.actors.worker_died(actor, None)
        for oid, entry in list(node.objects.objects.items()):
            if entry.payload is not None and entry.payload[0] == REMOTE and entry.payload[1] == node_id:
                self.pulling.discard(oid)  # a pull from there will not be answered
                self._lost(oid, f"node {node_id[:12]} died")
        node.dispatch()


_BLOB_CHUNK = 4 << 20


def portable_payload(node: NodeRuntime, object_id: bytes, conn: Any) -> tuple[Any, ...]:
    """Shared memory goes as raw frames over ``conn`` (the object stays pinned until sent)."""
    payload = node.objects.readable_payload(object_id)
    if payload[0] != P.SHM:
        return payload
    _, path, offset, size, data_len, spans = payload
    blob_id = new_id()
    node.objects.pin(object_id)

    def chunks() -> Any:
        from shoal._runtime.store import map_readonly

        try:
            m = map_readonly(path, offset, size, None)
            view = memoryview(m)
            try:
                for start in range(0, size, _BLOB_CHUNK):
                    # The connection sends (or copies) each piece before asking for the next,
                    # so no view of the mapping outlives this loop.
                    with view[start : start + _BLOB_CHUNK] as piece:
                        yield piece
            finally:
                view.release()
                m.close()
        finally:
            with node.lock:
                node.objects.unpin(object_id)

    conn.send_blob(blob_id, chunks, size)
    return (P.BLOB, blob_id, data_len, spans)


def to_inline(payload: tuple[Any, ...]) -> tuple[Any, ...]:
    if payload[0] != P.SHM:
        return payload
    from shoal._runtime.store import map_readonly

    _, path, offset, size, data_len, spans = payload
    m = map_readonly(path, offset, size, None)
    try:
        view = memoryview(m)
        data = bytes(view[:data_len])
        buffers = [bytes(view[o : o + n]) for o, n in spans]
        view.release()
    finally:
        m.close()
    return (P.INLINE, data, buffers)


def mark_remote(node: NodeRuntime, object_id: bytes, where: str) -> None:
    """An entry for an object that lives on ``where`` (count 0; refs add to it)."""
    entry = node.objects.objects.get(object_id)
    if entry is None:
        entry = node.objects.create(object_id, 0)
    entry.payload = (REMOTE, where)
