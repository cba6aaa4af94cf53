"""The Backend seen by user code running inside a worker: every call goes to the node runtime."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shoal._runtime import protocol as P
from shoal._runtime.serialization import serialize
from shoal._runtime.values import decode_payload, encode_serialized
from shoal._runtime.wire import STREAM, call_wire, create_wire, task_wire
from shoal.backend.base import ActorInfo, Backend, RuntimeInfo
from shoal.backend.specs import ActorSpec, ActorTaskSpec, PlacementGroupSpec, TaskSpec
from shoal.exceptions import GetTimeoutError
from shoal.object_ref import ObjectRef, ObjectRefGenerator, new_id

if TYPE_CHECKING:
    from shoal._runtime.worker import Worker

__all__ = ["WorkerBackend"]


def _settle(fut: concurrent.futures.Future[Any], value: Any = None, error: BaseException | None = None) -> None:
    """Complete a future unless its caller already cancelled it."""
    try:
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)
    except concurrent.futures.InvalidStateError:
        pass


class WorkerBackend(Backend):
    """Nested API calls from tasks and actors, served by the node runtime over the worker's connection."""

    name = "worker"

    def __init__(self, worker: Worker) -> None:
        self._w = worker
        self._sent_functions: set[bytes] = set()

    # -- helpers ------------------------------------------------------------

    @property
    def _max_inline(self) -> int:
        return int(self._w.info.get("max_inline", 100 * 1024))

    def _parent(self) -> tuple[bytes | None, bytes | None]:
        ctx = self._w.context()
        if ctx is None:
            return None, None
        return ctx.task_id, (ctx.pg_id if ctx.capture_pg else None)

    def _refs(self, return_ids: list[bytes]) -> list[ObjectRef]:
        for rid in return_ids:
            self._w.mark_created(rid)
        return [ObjectRef(rid) for rid in return_ids]

    def _decode_all(self, payloads: list[tuple[Any, ...]], ids: list[bytes]) -> list[Any]:
        # Pins were taken by the runtime when it replied; release them when the views die.
        return [
            decode_payload(p, self._w.unpin_later(oid) if p[0] == P.SHM else None)
            for p, oid in zip(payloads, ids, strict=True)
        ]

    # -- tasks and actors ---------------------------------------------------

    def submit_task(self, spec: TaskSpec) -> list[ObjectRef] | ObjectRefGenerator:
        parent, pg = self._parent()
        fn_id = spec.function.callable_id
        first = fn_id not in self._sent_functions
        wire = task_wire(spec, self._max_inline, self._w.allocate, parent, pg, first)
        self._sent_functions.add(fn_id)
        refs = self._refs(wire.return_ids)
        self._w.send((P.SUBMIT, tuple(wire)))
        if wire.num_returns == STREAM:
            return ObjectRefGenerator(wire.task_id, self)
        return refs

    def create_actor(self, spec: ActorSpec) -> ActorInfo:
        parent, pg = self._parent()
        namespace = self._w.info.get("namespace", "")
        wire = create_wire(spec, namespace, self._max_inline, self._w.allocate, parent, pg)
        info: ActorInfo = self._w.request("create_actor", wire)
        return info

    def submit_actor_task(self, spec: ActorTaskSpec) -> list[ObjectRef] | ObjectRefGenerator:
        parent, _ = self._parent()
        wire = call_wire(spec, "", self._max_inline, self._w.allocate, parent)
        refs = self._refs(wire.return_ids)
        self._w.send((P.ACTOR_SUBMIT, tuple(wire)))
        if wire.num_returns == STREAM:
            return ObjectRefGenerator(wire.task_id, self)
        return refs

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        self._w.request("kill_actor", (actor_id, no_restart))

    def get_actor(self, name: str, namespace: str | None) -> ActorInfo:
        info: ActorInfo = self._w.request("get_actor", (name, namespace))
        return info

    def actor_info(self, actor_id: bytes) -> ActorInfo:
        info: ActorInfo = self._w.request("actor_info", actor_id)
        return info

    def list_named_actors(self, all_namespaces: bool) -> list[dict[str, str]]:
        out: list[dict[str, str]] = self._w.request("list_named_actors", all_namespaces)
        return out

    def actor_handle_count(self, actor_id: bytes, delta: int) -> None:
        self._w.handle_count(actor_id, delta)

    # -- objects ------------------------------------------------------------

    def incref(self, object_id: bytes) -> None:
        self._w.incref(object_id)

    def decref(self, object_id: bytes) -> None:
        self._w.decref(object_id)

    def put(self, value: Any) -> ObjectRef:
        try:
            ser = serialize(value)
        except Exception as e:
            raise TypeError(f"could not serialize the value passed to put(): {e}") from e
        payload, contained = encode_serialized(ser, self._max_inline, self._w.allocate), ser.refs
        object_id = new_id()
        self._w.mark_created(object_id)
        ref = ObjectRef(object_id)
        self._w.send((P.PUT, object_id, payload, contained))
        return ref

    def get(self, refs: Sequence[ObjectRef], timeout: float | None) -> list[Any]:
        ids = [r._id for r in refs]
        payloads = self._w.request("get", (ids, timeout))
        if payloads is None:
            raise GetTimeoutError(f"get() timed out after {timeout}s")
        return self._decode_all(payloads, ids)

    def wait(
        self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None, fetch_local: bool
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        args = ([r._id for r in refs], num_returns, timeout) + (() if fetch_local else (False,))
        ready_ids = set(self._w.request("wait", args))
        ready = [r for r in refs if r._id in ready_ids]
        return ready, [r for r in refs if r._id not in ready_ids]

    def future(self, ref: ObjectRef) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        oid = ref._id

        def done(ok: bool, result: Any) -> None:
            if fut.done():
                return  # the caller gave up on it (cancelled, e.g. by a timeout)
            try:
                if not ok:
                    raise result
                value = self._decode_all(result, [oid])[0]
            except BaseException as e:  # noqa: BLE001 - the error is the result
                _settle(fut, error=e)
            else:
                _settle(fut, value=value)

        self._w.request("get", ([oid], None), callback=done)
        return fut

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        self._w.request("cancel", (ref._id, force, recursive))

    def generator_next(self, generator_id: bytes, index: int, timeout: float | None) -> ObjectRef | None:
        object_id = self._w.request("generator_next", (generator_id, index, timeout))
        if object_id is None:
            return None
        if object_id == b"timeout":
            raise GetTimeoutError(f"no value from the generator within {timeout}s")
        self._w.mark_created(object_id)
        return ObjectRef(object_id)

    def generator_completed(self, generator_id: bytes) -> ObjectRef:
        object_id = self._w.request("generator_completed", generator_id)
        self._w.mark_created(object_id)
        return ObjectRef(object_id)

    def generator_release(self, generator_id: bytes, consumed: int) -> None:
        self._w.send((P.REQUEST, 0, "generator_release", (generator_id, consumed)))

    # -- cluster ------------------------------------------------------------

    def cluster_resources(self) -> dict[str, float]:
        out: dict[str, float] = self._w.request("cluster_resources", None)
        return out

    def available_resources(self) -> dict[str, float]:
        out: dict[str, float] = self._w.request("available_resources", None)
        return out

    def nodes(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._w.request("nodes", None)
        return out

    def runtime_info(self) -> RuntimeInfo:
        w = self._w
        ctx = w.context()
        info = w.info
        return RuntimeInfo(
            job_id=info.get("job_id", ""),
            node_id=info.get("node_id", ""),
            worker_id=info.get("worker_id", str(os.getpid())),
            namespace=info.get("namespace", ""),
            task_id=ctx.task_id.hex() if ctx else None,
            task_name=ctx.name if ctx else None,
            actor_id=w.actor_id.hex() if w.actor_id else None,
            actor_name=w.actor_name,
            assigned_resources=dict(ctx.resources) if ctx else dict(w.actor_resources),
            gpu_ids=list(ctx.gpu_ids) if ctx else list(w.actor_gpu_ids),
            placement_group_id=ctx.pg_id.hex() if ctx and ctx.pg_id else None,
            capture_child_tasks=bool(ctx and ctx.capture_pg),
            was_restarted=w.actor_restarted,
            runtime_env=dict(info.get("runtime_env") or {}),
        )

    # -- placement groups ---------------------------------------------------

    def create_placement_group(self, spec: PlacementGroupSpec) -> bytes:
        pg_id: bytes = self._w.request("create_placement_group", spec)
        return pg_id

    def remove_placement_group(self, pg_id: bytes) -> None:
        self._w.request("remove_placement_group", pg_id)

    def placement_group_ready(self, pg_id: bytes) -> ObjectRef:
        object_id = self._w.request("placement_group_ready", pg_id)
        self._w.mark_created(object_id)
        return ObjectRef(object_id)

    def placement_group_table(self, pg_id: bytes | None) -> dict[str, Any]:
        out: dict[str, Any] = self._w.request("placement_group_table", pg_id)
        return out

    def shutdown(self) -> None:
        raise RuntimeError("shoal.shutdown() cannot be called from inside a task or actor")
