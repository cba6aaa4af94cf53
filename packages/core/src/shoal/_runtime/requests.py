"""Requests a worker sends to its node runtime (``REQUEST`` messages) and how they are answered."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shoal._runtime import protocol as P
from shoal._runtime.objects import REMOTE, SPILLED
from shoal._runtime.values import encode_error
from shoal._runtime.wire import TaskWire
from shoal.exceptions import ObjectLostError, ShoalError

if TYPE_CHECKING:
    from shoal._runtime.node import NodeRuntime
    from shoal._runtime.procs import WorkerProc

__all__ = ["handle_request", "wait_for_objects"]


def wait_for_objects(
    node: NodeRuntime,
    ids: list[bytes],
    num_ready: int,
    timeout: float | None,
    on_done: Callable[[bool], None],
    on_block: Callable[[], None] | None = None,
    on_unblock: Callable[[], None] | None = None,
    fetch: bool = True,
) -> Callable[[], None]:
    """Call ``on_done(True)`` once ``num_ready`` of ``ids`` are ready, or ``on_done(False)`` on timeout.

    ``on_block``/``on_unblock`` bracket the wait when it does not finish at once.
    Without ``fetch``, a value that exists on another node counts as ready (and is
    not copied here). Returns a function that abandons the wait (without calling ``on_done``).
    """
    objects = node.objects
    unique = list(dict.fromkeys(ids))
    if node.peers is not None and fetch:
        # Values on other nodes are fetched first (a pull may also fail at once).
        for i in unique:
            if objects.is_remote(i):
                node.peers.pull(i)
    ready = sum(1 for i in unique if objects.settled(i, fetch))
    if ready >= num_ready:
        on_done(True)
        return _nothing
    state = {"ready": ready, "done": False}
    waiters: list[tuple[bytes, Callable[[], None]]] = []

    def finish(ok: bool, notify: bool = True) -> None:
        if state["done"]:
            return
        state["done"] = True
        for oid, cb in waiters:
            objects.remove_waiter(oid, cb)
        if on_unblock is not None:
            on_unblock()
        if notify:
            on_done(ok)

    def arrived() -> None:
        state["ready"] += 1
        if state["ready"] >= num_ready:
            finish(True)

    arrived.remote_ok = not fetch  # type: ignore[attr-defined]  # see ObjectTable.set_remote
    for oid in unique:
        if not objects.settled(oid, fetch):
            cb = arrived
            objects.add_waiter(oid, cb)
            waiters.append((oid, cb))
    if on_block is not None:
        on_block()
    if timeout is not None:
        node.add_timer(timeout, lambda: finish(False))
    return lambda: finish(False, notify=False)


def _nothing() -> None:
    pass


def _payloads_for(node: NodeRuntime, w: WorkerProc, ids: list[bytes]) -> list[tuple[Any, ...]]:
    out = []
    for oid in ids:
        obj = node.objects.objects.get(oid)
        if obj is None or obj.payload is None:
            out.append(encode_error(ObjectLostError(f"object {oid.hex()} was freed or never existed", oid.hex())))
            continue
        payload = node.objects.readable_payload(oid)
        if payload[0] == P.SHM:
            node.pin_for(w, oid)
        out.append(payload)
    return out


def _portable_for(node: NodeRuntime, w: WorkerProc, ids: list[bytes]) -> list[tuple[Any, list[bytes]]]:
    from shoal._runtime.peers import portable_payload

    out: list[tuple[Any, list[bytes]]] = []
    for oid in ids:
        obj = node.objects.objects.get(oid)
        if obj is None or obj.payload is None:
            err = encode_error(ObjectLostError(f"object {oid.hex()} was freed or never existed", oid.hex()))
            out.append((err, []))
            continue
        contained = list(obj.contained or [])
        for cid in contained:
            node.objects.incref(cid)
            node.add_hold(w.worker_id, cid)
        out.append((portable_payload(node, oid, w.conn), contained))
    return out


_KEPT_HERE: tuple[tuple[Any, ...], list[bytes]] = ((REMOTE, None), [])


def _in_shared_memory(node: NodeRuntime, object_id: bytes) -> bool:
    obj = node.objects.objects.get(object_id)
    return obj is not None and obj.payload is not None and obj.payload[0] in (P.SHM, SPILLED)


def _submit_and_get(node: NodeRuntime, w: WorkerProc, args: Any, reply: Callable[[Any], None]) -> None:
    """From a peer node: run a task or actor call, and send its results back once they exist."""
    wire, extra = args
    wire = TaskWire._make(wire)
    node.submit_from_peer(w, wire, extra)
    ids = wire.return_ids
    objects = node.objects

    keep = bool(extra.get("keep"))

    def send_results() -> None:
        if w.state == "dead":
            return  # the peer's holds were released when its link went
        sent = [i for i in ids if not (keep and _in_shared_memory(node, i))]
        if len(sent) == len(ids):
            reply(_portable_for(node, w, ids))
        else:
            # Results in shared memory stay here, held for the peer until it frees or pulls them.
            values = dict(zip(sent, _portable_for(node, w, sent), strict=True))
            reply([values.get(i, _KEPT_HERE) for i in ids])
        # Results sent went whole (inline, or as raw frames pinned until written), so the
        # peer's hold on them ends here rather than with a message of its own.
        node._on_refs(w, (P.REFS, [(i, -1) for i in sent], []))

    # The return objects were made here by the submit: none is remote, so no pulls.
    pending = [i for i in ids if i in objects.objects and not objects.is_ready(i)]
    if not pending:
        send_results()
        return
    left = len(pending)

    def arrived() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            send_results()

    for oid in pending:
        objects.add_waiter(oid, arrived)


def _blocker(node: NodeRuntime, w: WorkerProc) -> tuple[Callable[[], None], Callable[[], None]]:
    """Lend a blocked task's CPU to others, and take it back when it runs again."""

    def block() -> None:
        w.blocked += 1
        if w.blocked == 1 and w.grant is not None and w.actor is None:
            node.resources.lend_cpu(w.grant)
            node.recall_queued(w)
            node.dispatch()

    def unblock() -> None:
        w.blocked = max(0, w.blocked - 1)
        if w.blocked == 0 and w.grant is not None:
            node.resources.reclaim_cpu(w.grant)

    return block, unblock


def handle_request(node: NodeRuntime, w: WorkerProc, req_id: int, op: str, args: Any) -> None:
    """Answer one request; the reply may come later (get, wait, generator_next)."""

    def reply(result: Any) -> None:
        node.reply(w, req_id, True, result)

    try:
        if op == "submit_and_get":  # first: one per task or actor call forwarded by a peer node
            _submit_and_get(node, w, args, reply)
        elif op == "alloc":
            reply(node.allocate_for_worker(w, args))
        elif op == "alloc_many":
            reply(node.allocate_many_for_worker(w, args))
        elif op == "get":
            ids, timeout = args
            block, unblock = _blocker(node, w)
            wait_for_objects(
                node,
                ids,
                len(set(ids)),
                timeout,
                lambda ok: reply(_payloads_for(node, w, ids) if ok else None),
                block,
                unblock,
            )
        elif op == "wait":
            ids, num_returns, timeout, *more = args
            fetch = more[0] if more else True
            block, unblock = _blocker(node, w)

            def done(ok: bool) -> None:
                ready = [i for i in ids if node.objects.settled(i, fetch)]
                reply(ready[:num_returns])

            wait_for_objects(node, ids, num_returns, timeout, done, block, unblock, fetch)
        elif op == "create_actor":
            reply(node.actors.create(args, w.worker_id))
        elif op == "kill_actor":
            node.actors.kill(*args)
            reply(None)
        elif op == "get_actor":
            name, namespace = args
            reply(node.actors.get_named(name, namespace or node.job_for(w.worker_id).namespace))
        elif op == "actor_info":
            reply(node.actors.actor_info(args))
        elif op == "list_named_actors":
            reply(node.actors.list_named(args, node.job_for(w.worker_id).namespace))
        elif op == "cancel":
            node.cancel(*args)
            reply(None)
        elif op == "cluster_resources":
            reply(node.cluster_resources())
        elif op == "available_resources":
            reply(node.available_resources())
        elif op == "local_available":
            reply(node.local_available())
        elif op == "nodes":
            reply(node.all_nodes())
        elif op == "create_placement_group":
            reply(node.actors.create_placement_group(args))
        elif op == "remove_placement_group":
            node.actors.remove_placement_group(args)
            reply(None)
        elif op == "placement_group_ready":
            reply(node.actors.placement_group_ready(args, w.worker_id))
        elif op == "placement_group_table":
            reply(node.actors.placement_group_table(args))
        elif op == "generator_next":
            gen_id, index, timeout = args
            node.generator_next(gen_id, index, w.worker_id, reply, timeout)
        elif op == "generator_completed":
            reply(node.generator_completed(args, w.worker_id))
        elif op == "generator_release":
            node.generator_release(*args)
        elif op == "reserve_bundles":
            reply(node.actors.reserve_part(*args))
        elif op == "get_with_refs":
            # From a peer node: values as bytes, and a hold for the peer on each nested ref.
            ids, timeout = args
            wait_for_objects(node, ids, len(set(ids)), timeout, lambda ok: reply(_portable_for(node, w, ids)))
        elif op == "generator_item":
            gen_id, index = args
            node.generator_item_for_peer(gen_id, index, w, reply)
        elif op == "create_actor_forwarded":
            wire, extra = args
            job_id = node.peers.accept_extra(w.worker_id, extra) if node.peers is not None else None
            reply(node.actors.create(wire, w.worker_id, job_id=job_id))
        else:
            raise ShoalError(f"unknown request {op!r}")
    except Exception as e:  # noqa: BLE001 - the error goes back to the caller
        if req_id:
            node.reply(w, req_id, False, e)
