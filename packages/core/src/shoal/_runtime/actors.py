"""Actors and placement groups of one node runtime: placement, call queues, restarts, death."""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from shoal._runtime import protocol as P
from shoal._runtime.procs import WorkerProc, kill_worker
from shoal._runtime.tasks import RUNNING, WAITING, Actor, PlacementGroup, Task
from shoal._runtime.values import encode_error, encode_value
from shoal._runtime.wire import CREATE
from shoal.backend.base import ActorInfo
from shoal.backend.specs import PlacementGroupSpec
from shoal.exceptions import (
    ActorDiedError,
    PendingCallsLimitExceeded,
    PlacementGroupSchedulingError,
    TaskCancelledError,
)
from shoal.object_ref import new_id
from shoal.util.placement_group import PlacementGroup as PlacementGroupHandle
from shoal.util.placement_group import PlacementGroupID

if TYPE_CHECKING:
    from shoal._runtime.node import NodeRuntime

__all__ = ["ActorManager"]


class PeerFits:
    @staticmethod
    def fits(pool: dict[str, float], need: dict[str, float]) -> bool:
        for k, v in need.items():
            if v > 0 and pool.get(k, 0.0) + 1e-9 < v:
                return False
        return True


def _creation_error_message(payload: tuple[Any, ...]) -> str:
    import pickle

    try:
        cause = pickle.loads(payload[1])
    except Exception:  # noqa: BLE001 - describe what we can
        return "The actor died because of an error raised in its creation task."
    return f"The actor died because of an error raised in its creation task, {cause}"


class ActorManager:
    """The actor directory and placement groups; the node runtime's lock is held by callers."""

    def __init__(self, node: NodeRuntime) -> None:
        self.node = node
        self.actors: dict[bytes, Actor] = {}
        self.named: dict[tuple[str, str], bytes] = {}
        self.pending: list[Actor] = []
        self.placement_groups: dict[bytes, PlacementGroup] = {}

    # -- directory ------------------------------------------------------------

    def info(self, actor: Actor) -> ActorInfo:
        opts = actor.opts
        return ActorInfo(
            actor_id=actor.actor_id,
            class_name=actor.class_name,
            methods=opts["methods"],
            is_async=opts["is_async"],
            max_task_retries=opts["max_task_retries"],
            name=actor.name,
            namespace=actor.namespace,
        )

    def get_named(self, name: str, namespace: str | None) -> ActorInfo:
        ns = namespace or self.node.namespace
        actor_id = self.named.get((ns, name))
        if actor_id is None and self.node.directory is not None:
            found = self.node.directory.lookup(ns, name)
            if found is not None:
                remote_id, node_id, info = found
                if remote_id in self.actors and self.actors[remote_id].state != "dead":
                    return self.info(self.actors[remote_id])
                self.add_proxy(remote_id, node_id, info)
                return info
        if actor_id is None:
            raise ValueError(
                f"Failed to look up actor with name {name!r} in namespace {ns!r}: no live actor has "
                "that name (it may have died, or live in another namespace)"
            )
        return self.info(self.actors[actor_id])

    def actor_info(self, actor_id: bytes) -> ActorInfo:
        actor = self.actors.get(actor_id)
        if actor is None:
            raise ValueError(f"no actor with id {actor_id.hex()}")
        return self.info(actor)

    def list_named(self, all_namespaces: bool, namespace: str | None = None) -> list[dict[str, str]]:
        current = namespace or self.node.namespace
        return [{"name": name, "namespace": ns} for (ns, name) in self.named if all_namespaces or ns == current]

    def pending_creations(self) -> list[Actor]:
        return list(self.pending)

    # -- creation -------------------------------------------------------------

    def create(self, wire: Any, owner: int, job_id: str | None = None) -> ActorInfo:
        opts = dict(wire.actor_opts)
        name = opts["name"]
        namespace = opts["namespace"]
        node = self.node
        if name is not None:
            existing_id = self.named.get((namespace, name))
            if existing_id is not None:
                existing = self.actors[existing_id]
                if opts["get_if_exists"]:
                    return self.info(existing)
                raise ValueError(
                    f"an actor named {name!r} already exists in namespace {namespace!r}; "
                    "use get_if_exists=True or shoal.get_actor() to reuse it"
                )
        task = node.register_task(wire, owner, job_id)
        actor = Actor(task, opts)
        # Names are cluster-wide: the head's directory decides who gets one.
        if (
            name is not None
            and node.directory is not None
            and job_id is None
            and not node.directory.register(namespace, name, actor.actor_id, self.info(actor))
        ):
            node.release_task(task)
            found = node.directory.lookup(namespace, name)
            if found is not None and opts["get_if_exists"]:
                self.add_proxy(found[0], found[1], found[2])
                return found[2]
            raise ValueError(
                f"an actor named {name!r} already exists in namespace {namespace!r}; "
                "use get_if_exists=True or shoal.get_actor() to reuse it"
            )
        self.actors[actor.actor_id] = actor
        if name is not None:
            self.named[(namespace, name)] = actor.actor_id
        node.start_task(task)
        return self.info(actor)

    def creation_ready(self, task: Task) -> None:
        actor = self.actors.get(task.wire.actor_id)  # type: ignore[arg-type]
        if actor is None:
            return
        if task.wire.actor_id not in self.actors:
            return
        self.pending.append(actor)
        self.node.dispatch()

    def place_pending(self) -> None:
        node = self.node
        for actor in list(self.pending):
            task = actor.creation
            if actor.state == "dead":
                self.pending.remove(actor)
                continue
            bundle = node.bundle_for(task)
            if bundle == "removed":
                self.pending.remove(actor)
                self._die(actor, ActorDiedError("The actor's placement group was removed."))
                continue
            if bundle is False:
                continue
            if isinstance(bundle, tuple):
                self.pending.remove(actor)
                actor.state = "pending"
                node.peers.forward(task, bundle[1])
                continue
            need = task.wire.resources
            # Ray's rule: an actor needs one CPU to be placed even if it holds none afterwards.
            check = need if (need.get("CPU", 0.0) > 0 or bundle is not None) else {**need, "CPU": 1.0}
            local_fits = node.resources.fits(check, bundle)
            if node.peers is not None and bundle is None and not task.forwarded_in:
                target = node.peers.choose(check, task.wire.scheduling, local_fits)
                if target is not None and target != node.node_id:
                    self.pending.remove(actor)
                    actor.state = "pending"
                    node.peers.forward(task, target)
                    continue
                if target is None:
                    continue
            if not local_fits:
                continue
            w = node.idle_worker(task.env_key)
            if w is None:
                node.need_worker(task.env_key)
                continue
            self.pending.remove(actor)
            self._start_on(actor, w, bundle)

    def _start_on(self, actor: Actor, w: WorkerProc, bundle: Any) -> None:
        node = self.node
        task = actor.creation
        wire = task.wire
        actor.grant = node.resources.acquire(wire.resources, bundle)
        actor.worker = w
        w.state = "actor"
        w.actor = actor
        w.grant = None
        task.state = RUNNING
        task.worker = w
        deps = node.dep_payloads(task, w)
        args = node.args_payload(task, w)
        from shoal._runtime.node import placement_of

        pg_id, capture = placement_of(wire.scheduling)
        opts = dict(actor.opts)
        opts["restarted"] = actor.num_restarts > 0
        opts.pop("methods", None)
        ctx = (wire.resources, actor.grant.gpu_ids, pg_id, capture, False)
        cls_bytes = node.functions.get(wire.fn_id)  # type: ignore[arg-type]
        w.conn.send((P.CREATE_ACTOR, wire.task_id, actor.actor_id, wire.fn_id, cls_bytes, args, deps, opts, ctx))
        # Keep a warm worker ready for plain tasks.
        node.need_worker(task.env_key)

    def creation_failed(self, task: Task, payload: tuple[Any, ...]) -> None:
        actor = self.actors.get(task.wire.actor_id)  # type: ignore[arg-type]
        if actor is None or actor.state == "dead":
            return
        if actor in self.pending:
            self.pending.remove(actor)
        if payload[0] == P.ERROR:
            err = ActorDiedError(_creation_error_message(payload), actor_id=actor.actor_id.hex())
        else:
            err = ActorDiedError("The actor could not be created.", actor_id=actor.actor_id.hex())
        self._die(actor, err)

    # -- calls --------------------------------------------------------------

    def enqueue_call(self, task: Task) -> None:
        node = self.node
        actor = self.actors.get(task.wire.actor_id)  # type: ignore[arg-type]
        if actor is None:
            node.fail_task(task, ActorDiedError("The actor does not exist or has been destroyed."))
            return
        if not task.name or task.name.startswith("."):
            task.name = f"{actor.class_name}{task.name}"
        if actor.state == "dead":
            node.fail_task(task, actor.death_error or ActorDiedError("The actor is dead."))
            return
        limit = actor.opts.get("max_pending_calls", -1)
        if limit > 0 and len(actor.queue) + len(actor.inflight) >= limit:
            node.fail_task(
                task,
                PendingCallsLimitExceeded(
                    f"the actor {actor.class_name} already has {limit} pending calls (max_pending_calls)"
                ),
            )
            return
        task.state = WAITING
        missing = [d for d in set(task.wire.deps) if not node.objects.is_ready(d)]
        task.pending_deps = len(missing)
        if node.peers is not None:
            for dep in missing:
                if node.objects.is_remote(dep):
                    node.peers.pull(dep)
        for dep in missing:
            if not node.objects.add_waiter(dep, functools.partial(self._call_dep_arrived, task, actor)):
                task.pending_deps -= 1
        actor.queue.append(task)
        self.pump(actor)

    def _call_dep_arrived(self, task: Task, actor: Actor) -> None:
        task.pending_deps -= 1
        if task.pending_deps <= 0:
            self.pump(actor)

    def pump(self, actor: Actor) -> None:
        """Send queued calls, in submission order, whose arguments are ready."""
        if actor.state != "alive":
            return
        node = self.node
        if actor.remote_node is not None:
            self._pump_remote(actor)
            return
        if actor.worker is None:
            return
        w = actor.worker
        queue = actor.queue
        while queue:
            task = queue[0]
            if task.cancelled:
                queue.popleft()
                continue
            if task.pending_deps > 0:
                break
            queue.popleft()
            err = node.dep_error(task)
            if err is not None:
                node.fail_task_payload(task, err)
                continue
            wire = task.wire
            deps = node.dep_payloads(task, w)
            args = node.args_payload(task, w)
            task.state = RUNNING
            task.worker = w
            actor.inflight[wire.task_id] = task
            w.conn.queue(
                (
                    P.ACTOR_CALL,
                    wire.task_id,
                    wire.method,
                    args,
                    deps,
                    wire.return_ids,
                    wire.num_returns,
                    task.name,
                )
            )
        w.conn.flush_soon()
        if actor.terminating and not queue and not actor.inflight:
            self._finish_out_of_scope(actor)

    def _pump_remote(self, actor: Actor) -> None:
        node = self.node
        queue = actor.queue
        while queue:
            task = queue[0]
            if task.cancelled:
                queue.popleft()
                continue
            if task.pending_deps > 0:
                break
            queue.popleft()
            err = node.dep_error(task)
            if err is not None:
                node.fail_task_payload(task, err)
                continue
            try:
                node.peers.forward(task, actor.remote_node)
            except Exception as e:  # noqa: BLE001 - the node is gone: the call fails, not the runtime
                node.fail_task(task, ActorDiedError(f"cannot reach the actor's node: {e}", actor.actor_id.hex()))

    def add_proxy(self, actor_id: bytes, node_id: str, info: ActorInfo | None = None) -> Actor:
        """A stand-in for an actor that lives on another node, so calls can queue and be forwarded."""
        actor = self.actors.get(actor_id)
        if actor is not None:
            return actor
        opts = {
            "class_name": info.class_name if info else "Actor",
            "name": info.name if info else None,
            "namespace": info.namespace if info else "",
            "detached": True,  # its lifetime is decided where it lives
            "max_restarts": 0,
            "max_task_retries": info.max_task_retries if info else 0,
            "max_pending_calls": -1,
            "methods": info.methods if info else {},
            "is_async": info.is_async if info else False,
        }
        actor = Actor(None, opts, actor_id=actor_id)
        actor.remote_node = node_id
        actor.state = "alive"
        self.actors[actor_id] = actor
        if self.node.peers is not None:
            self.node.peers.remote_actors[actor_id] = node_id
        return actor

    def call_done(
        self,
        actor: Actor,
        w: WorkerProc,
        task_id: bytes,
        task: Task | None,
        results: Any,
        error: Any,
        retryable: bool,
    ) -> None:
        node = self.node
        if task is not None and task.wire.kind == CREATE:
            if error is not None:
                node.fail_task_payload(task, error)
                return
            task.state = "alive"
            actor.state = "alive"
            self.pump(actor)
            return
        task = actor.inflight.pop(task_id, None)
        if task is None:
            return
        if results is None and error is None:
            # exit_actor(): the worker is leaving; this call and the rest fail.
            actor.no_restart = True
            self._die(actor, ActorDiedError("The actor exited by calling exit_actor().", actor.actor_id.hex()))
            node.fail_task(task, actor.death_error)  # type: ignore[arg-type]
            return
        if error is not None:
            node.fail_task_payload(task, error)
        else:
            gen = node.generators.get(task_id)
            if gen is not None:
                node._gen_done(task, gen, None)
            else:
                for rid, (payload, contained) in zip(task.wire.return_ids, results, strict=True):
                    node.store_result(w.worker_id, rid, payload, contained)
            node.release_task(task)
        if actor.terminating and not actor.queue and not actor.inflight:
            self._finish_out_of_scope(actor)

    def cancel_call(self, task: Task, force: bool) -> None:
        node = self.node
        actor = self.actors.get(task.wire.actor_id)  # type: ignore[arg-type]
        if force:
            raise ValueError("force=True is not supported for actor tasks")
        if actor is None:
            return
        if task in actor.queue:
            actor.queue.remove(task)
            task.cancelled = True
            node.fail_task(task, TaskCancelledError(f"task {task.name} was cancelled", task_id=task.task_id.hex()))
            self.pump(actor)
        elif task.task_id in actor.inflight and actor.worker is not None:
            task.cancelled = True
            from shoal._runtime.node import interrupt

            interrupt(actor.worker, task.task_id)

    # -- lifetime -------------------------------------------------------------

    def handle_delta(self, actor_id: bytes, delta: int) -> None:
        actor = self.actors.get(actor_id)
        if actor is None:
            return
        actor.handles += delta
        if delta > 0:
            actor.handles_seen = True
        if actor.remote_node is not None and self.node.peers is not None:
            self.node.peers.handle_delta(actor_id, delta)
        if actor.handles <= 0 and actor.handles_seen and not actor.detached and actor.state != "dead":
            actor.terminating = True
            if not actor.queue and not actor.inflight:
                self._finish_out_of_scope(actor)

    def _finish_out_of_scope(self, actor: Actor) -> None:
        self._die(
            actor,
            ActorDiedError(
                "The actor was destroyed because all handles to it went out of scope.", actor.actor_id.hex()
            ),
            graceful=True,
        )

    def kill(self, actor_id: bytes, no_restart: bool) -> None:
        actor = self.actors.get(actor_id)
        if actor is None or actor.state == "dead":
            return
        if actor.remote_node is not None and self.node.peers is not None:
            self.node.peers.kill_remote(actor_id, no_restart)
            if no_restart or actor.creation is None:
                actor.no_restart = True
                self._die(actor, ActorDiedError("The actor was killed by shoal.kill().", actor.actor_id.hex()))
            return
        if no_restart or actor.restarts_left == 0:
            actor.no_restart = True
            self._die(actor, ActorDiedError("The actor was killed by shoal.kill().", actor.actor_id.hex()))
            return
        if actor.worker is not None:
            kill_worker(actor.worker)

    def worker_died(self, actor: Actor, w: WorkerProc | None) -> None:
        """The actor's process (or, with ``w`` None, its node) is gone: restart it or let it die."""
        node = self.node
        if actor.creation is None:
            self._die(actor, ActorDiedError("The node the actor lived on died.", actor.actor_id.hex()))
            return
        if actor.grant is not None:
            node.resources.release(actor.grant)
            actor.grant = None
        actor.worker = None
        inflight = list(actor.inflight.values())
        actor.inflight.clear()
        if actor.state == "dead":
            for t in inflight:
                node.fail_task(t, actor.death_error or ActorDiedError("The actor is dead."))
            return
        creating = actor.creation.state == RUNNING
        if not actor.no_restart and actor.restarts_left != 0:
            if actor.restarts_left > 0:
                actor.restarts_left -= 1
            actor.num_restarts += 1
            actor.state = "restarting"
            retry = actor.opts.get("max_task_retries", 0)
            for t in reversed(inflight):
                left = t.retries_left if t.retries_left is not None else retry
                if left != 0:
                    t.retries_left = left - 1 if left > 0 else left
                    t.state = WAITING
                    actor.queue.appendleft(t)
                else:
                    node.fail_task(
                        t,
                        ActorDiedError(
                            f"The actor died while running {t.name} and is restarting; the call was not retried "
                            "(set max_task_retries to retry calls).",
                            actor.actor_id.hex(),
                        ),
                    )
            actor.creation.state = WAITING
            self.pending.append(actor)
            node.dispatch()
            return
        if creating:
            how = "while being created"
        elif w is None:
            how = "because its node died"
        else:
            code = w.proc.returncode if w.proc is not None else None
            how = f"unexpectedly (pid={w.pid}, exit code {code})"
        self._die(actor, ActorDiedError(f"The actor died {how} and will not be restarted.", actor.actor_id.hex()))
        for t in inflight:
            node.fail_task(t, actor.death_error)  # type: ignore[arg-type]

    def _die(self, actor: Actor, error: ActorDiedError, graceful: bool = False) -> None:
        node = self.node
        actor.state = "dead"
        actor.death_error = error
        if actor in self.pending:
            self.pending.remove(actor)
        if actor.name is not None and self.named.get((actor.namespace, actor.name)) == actor.actor_id:
            del self.named[(actor.namespace, actor.name)]
        for t in list(actor.queue):
            node.fail_task(t, error)
        actor.queue.clear()
        for t in list(actor.inflight.values()):
            node.fail_task(t, error)
        actor.inflight.clear()
        w = actor.worker
        if w is not None:
            if graceful:
                w.conn.send((P.EXIT,))
            else:
                kill_worker(w)
        if actor.grant is not None and w is None:
            node.resources.release(actor.grant)
            actor.grant = None
        creation = actor.creation
        if creation is not None and creation.state != "finished":
            node.release_task(creation)
        if actor.name is not None and node.directory is not None and actor.creation is not None:
            node.directory.remove(actor.namespace, actor.name, actor.actor_id)
        node.dispatch()

    # -- placement groups -------------------------------------------------

    def create_placement_group(self, spec: PlacementGroupSpec) -> bytes:
        pg_id = new_id()
        pg = PlacementGroup(pg_id, spec.bundles, spec.strategy, spec.name, spec.lifetime == "detached")
        self.placement_groups[pg_id] = pg
        self.try_reserve(pg)
        return pg_id

    def try_reserve(self, pg: PlacementGroup) -> None:
        if pg.state != "PENDING" or pg.reserving or not pg.owner:
            return
        node = self.node
        if node.peers is not None and len(node.peers.nodes()) > 1:
            if time.monotonic() >= pg.retry_after:
                self._reserve_across_nodes(pg)
            return
        if pg.strategy == "STRICT_SPREAD" and len(pg.bundle_specs) > 1:
            return  # one node cannot hold bundles that must be on different nodes
        total: dict[str, float] = {}
        for b in pg.bundle_specs:
            for k, v in b.items():
                total[k] = total.get(k, 0.0) + v
        res = self.node.resources
        if not res.fits(total):
            return
        pg.bundles = [res.reserve_bundle(b) for b in pg.bundle_specs]
        pg.bundle_nodes = [self.node.node_id] * len(pg.bundles)
        self._created_group(pg)

    def _created_group(self, pg: PlacementGroup) -> None:
        pg.state = "CREATED"
        ready, pg.ready_ids = pg.ready_ids, []
        for object_id in ready:
            self._set_pg_ready(object_id, pg)
        self.node.dispatch()

    # -- placement groups across nodes ------------------------------------------

    def _plan(self, pg: PlacementGroup) -> list[str] | None:
        """A node for every bundle under the group's strategy, from the cluster view; None if none fits."""
        node = self.node
        peers = node.peers
        me = node.node_id
        pools: dict[str, dict[str, float]] = {me: dict(node.resources.free)}
        order = [me]
        for n in peers.nodes():
            if n["node_id"] != me:
                pools[n["node_id"]] = peers._available(n)
                order.append(n["node_id"])
        fits = PeerFits.fits
        specs = pg.bundle_specs

        def take(pool: dict[str, float], need: dict[str, float]) -> None:
            for k, v in need.items():
                pool[k] = pool.get(k, 0.0) - v

        if pg.strategy in ("STRICT_PACK", "PACK"):
            total: dict[str, float] = {}
            for b in specs:
                for k, v in b.items():
                    total[k] = total.get(k, 0.0) + v
            for nid in order:
                if fits(pools[nid], total):
                    return [nid] * len(specs)
            if pg.strategy == "STRICT_PACK":
                return None
        plan: list[str] = []
        used: set[str] = set()
        for i, b in enumerate(specs):
            if pg.strategy in ("STRICT_SPREAD", "SPREAD"):
                rotated = order[i % len(order) :] + order[: i % len(order)]
                candidates = [nid for nid in rotated if nid not in used] + (
                    [nid for nid in rotated if nid in used] if pg.strategy == "SPREAD" else []
                )
            else:
                candidates = order
            chosen = next((nid for nid in candidates if fits(pools[nid], b)), None)
            if chosen is None:
                return None
            take(pools[chosen], b)
            used.add(chosen)
            plan.append(chosen)
        return plan

    def _reserve_across_nodes(self, pg: PlacementGroup) -> None:
        node = self.node
        plan = self._plan(pg)
        if plan is None:
            return
        me = node.node_id
        res = node.resources
        pg.bundle_nodes = plan
        pg.bundles = [
            res.reserve_bundle(b) if where == me else None for b, where in zip(pg.bundle_specs, plan, strict=True)
        ]
        parts: dict[str, list[tuple[int, dict[str, float]]]] = {}
        for i, where in enumerate(plan):
            if where != me:
                parts.setdefault(where, []).append((i, pg.bundle_specs[i]))
        if not parts:
            self._created_group(pg)
            return
        pg.reserving = True
        answers: dict[str, bool] = {}

        def answered(where: str, ok: bool, result: Any) -> None:
            answers[where] = bool(ok and result)
            if len(answers) < len(parts):
                return
            pg.reserving = False
            if pg.state == "REMOVED":
                self._release_remote_parts(pg, [w for w, good in answers.items() if good])
                return
            if all(answers.values()):
                self._created_group(pg)
                return
            # Some node could not hold its share after all: undo and try again a little later.
            for bundle in pg.bundles:
                if bundle is not None:
                    res.release_bundle(bundle)
            self._release_remote_parts(pg, [w for w, good in answers.items() if good])
            pg.bundles, pg.bundle_nodes = [], []
            pg.retry_after = time.monotonic() + 0.5

        for where, bundles in parts.items():
            try:
                link = node.peers.link(where)
            except Exception as e:  # noqa: BLE001 - that node is gone: the answer is no
                answered(where, False, e)
                continue
            link.request(
                "reserve_bundles",
                (pg.pg_id, pg.strategy, pg.name, len(pg.bundle_specs), bundles),
                functools.partial(answered, where),
            )

    def _release_remote_parts(self, pg: PlacementGroup, nodes: list[str]) -> None:
        for where in nodes:
            try:
                self.node.peers.link(where).request("remove_placement_group", pg.pg_id, lambda ok, r: None)
            except Exception:  # noqa: BLE001 - a dead node holds nothing any more
                pass

    def reserve_part(
        self, pg_id: bytes, strategy: str, name: str, count: int, bundles: list[tuple[int, dict[str, float]]]
    ) -> bool:
        """Hold some bundles of a group owned by another node (all of them, or none)."""
        res = self.node.resources
        total: dict[str, float] = {}
        for _, b in bundles:
            for k, v in b.items():
                total[k] = total.get(k, 0.0) + v
        if not res.fits(total):
            return False
        pg = self.placement_groups.get(pg_id)
        if pg is None:
            pg = PlacementGroup(pg_id, [{} for _ in range(count)], strategy, name, False)
            pg.owner = False
            pg.bundles = [None] * count
            pg.bundle_nodes = [""] * count
            self.placement_groups[pg_id] = pg
        for i, b in bundles:
            pg.bundle_specs[i] = b
            pg.bundles[i] = res.reserve_bundle(b)
            pg.bundle_nodes[i] = self.node.node_id
        pg.state = "CREATED"
        self.node.dispatch()
        return True

    def _set_pg_ready(self, object_id: bytes, pg: PlacementGroup) -> None:
        # As in Ray, the ready ref resolves to the group's handle.
        handle = PlacementGroupHandle(PlacementGroupID(pg.pg_id), list(pg.bundle_specs))
        node = self.node
        node.objects.set_ready(object_id, encode_value(handle, node.max_inline, node.allocate_for_driver)[0], None)

    @property
    def pending_groups(self) -> bool:
        return any(pg.state == "PENDING" for pg in self.placement_groups.values())

    def retry_pending_groups(self) -> None:
        for pg in list(self.placement_groups.values()):
            if pg.state == "PENDING":
                self.try_reserve(pg)

    def placement_group_ready(self, pg_id: bytes, owner: int) -> bytes:
        node = self.node
        object_id = new_id()
        node.objects.create(object_id, 1)
        node.add_hold(owner, object_id)
        pg = self.placement_groups.get(pg_id)
        if pg is None or pg.state == "REMOVED":
            node.objects.set_ready(
                object_id,
                encode_error(PlacementGroupSchedulingError("the placement group was removed")),
                None,
            )
        elif pg.state == "CREATED":
            self._set_pg_ready(object_id, pg)
        else:
            pg.ready_ids.append(object_id)
        return object_id

    def remove_placement_group(self, pg_id: bytes) -> None:
        node = self.node
        pg = self.placement_groups.get(pg_id)
        if pg is None or pg.state == "REMOVED":
            return
        was_created = pg.state == "CREATED"
        pg.state = "REMOVED"
        for actor in list(self.actors.values()):
            if actor.creation is None:
                continue
            sched = actor.creation.wire.scheduling
            if sched is not None and sched[0] == "PLACEMENT_GROUP" and sched[3] == pg_id and actor.state != "dead":
                actor.no_restart = True
                self._die(actor, ActorDiedError("The actor's placement group was removed.", actor.actor_id.hex()))
        for task in list(node.tasks.values()):
            sched = task.wire.scheduling
            if sched is not None and sched[0] == "PLACEMENT_GROUP" and sched[3] == pg_id:
                node.cancel_task(task, force=True, recursive=False)
        if was_created or pg.bundles:
            for bundle in pg.bundles:
                if bundle is not None:
                    node.resources.release_bundle(bundle)
        if pg.owner and node.peers is not None:
            self._release_remote_parts(pg, sorted({w for w in pg.bundle_nodes if w and w != node.node_id}))
        pg.bundles = []
        for object_id in pg.ready_ids:
            node.objects.set_ready(
                object_id,
                encode_error(PlacementGroupSchedulingError("the placement group was removed")),
                None,
            )
        pg.ready_ids = []
        node.dispatch()

    def placement_group_table(self, pg_id: bytes | None) -> dict[str, Any]:
        def describe(pg: PlacementGroup) -> dict[str, Any]:
            return {
                "placement_group_id": pg.pg_id.hex(),
                "name": pg.name,
                "strategy": pg.strategy,
                "state": pg.state,
                "bundles": {i: dict(b) for i, b in enumerate(pg.bundle_specs)},
                "bundles_to_node_id": dict(enumerate(pg.bundle_nodes)),
                "bundles_list": [dict(b) for b in pg.bundle_specs],
                "is_detached": pg.detached,
            }

        if pg_id is not None:
            pg = self.placement_groups.get(pg_id)
            if pg is None:
                raise ValueError(f"no placement group with id {pg_id.hex()}")
            return describe(pg)
        return {pg.pg_id.hex(): describe(pg) for pg in self.placement_groups.values()}
