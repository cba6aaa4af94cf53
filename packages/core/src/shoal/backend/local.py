"""The ``local`` backend: shoal's runtime embedded in the driver process.

A :class:`~shoal._runtime.node.NodeRuntime` runs in this process (an I/O
thread plus direct calls under its lock) and owns a pool of worker
processes and a shared-memory object store. This is what ``shoal.init()``
starts when nothing else is configured.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import psutil

from shoal._runtime import protocol as P
from shoal._runtime.node import NodeRuntime
from shoal._runtime.requests import wait_for_objects
from shoal._runtime.serialization import serialize
from shoal._runtime.tasks import DRIVER
from shoal._runtime.values import decode_payload, encode_error, encode_serialized
from shoal._runtime.wire import STREAM, call_wire, create_wire, task_wire
from shoal.backend.base import ActorInfo, Backend, RuntimeInfo
from shoal.backend.memory_kv import MemoryKV
from shoal.backend.specs import ActorSpec, ActorTaskSpec, PlacementGroupSpec, TaskSpec
from shoal.config import Config
from shoal.exceptions import GetTimeoutError, ObjectLostError
from shoal.object_ref import ObjectRef, ObjectRefGenerator, new_id

__all__ = ["LocalBackend"]


def _default_store_memory() -> int:
    # Ray's default: 30% of the machine's memory.
    return int(psutil.virtual_memory().total * 0.3)


def _detect_gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() not in ("", "-1")])
    try:
        return len([d for d in os.listdir("/dev") if d.startswith("nvidia") and d[6:].isdigit()])
    except OSError:
        return 0


class LocalBackend(MemoryKV, Backend):
    """Tasks and actors in worker processes on this machine, objects in shared memory."""

    name = "local"

    def __init__(self, config: Config) -> None:
        MemoryKV.__init__(self)
        cpus = config.num_cpus if config.num_cpus is not None else (os.cpu_count() or 1)
        gpus = config.num_gpus if config.num_gpus is not None else _detect_gpus()
        store = config.object_store_memory or _default_store_memory()
        resources: dict[str, float] = {"CPU": float(cpus)}
        if gpus:
            resources["GPU"] = float(gpus)
        resources["memory"] = float(int(psutil.virtual_memory().available * 0.7))
        resources["object_store_memory"] = float(store)
        resources.update(config.resources or {})
        resources["node:127.0.0.1"] = 1.0
        resources["node:__internal_head__"] = 1.0
        self._job_id = new_id()[:4].hex()
        self._node_id = new_id().hex() + new_id()[:12].hex()
        self._namespace = config.namespace or f"anonymous-{new_id()[8:].hex()}"
        os.makedirs(config.temp_dir, exist_ok=True)
        self._session_dir = tempfile.mkdtemp(prefix="session-", dir=config.temp_dir)
        spill_dir = config.spill_dir or os.path.join(self._session_dir, "spill")
        self._max_inline = int(config.max_inline_bytes)
        self._runtime_env = dict(config.values.get("runtime_env") or {})
        self._node = NodeRuntime(
            node_id=self._node_id,
            job_id=self._job_id,
            namespace=self._namespace,
            resources=resources,
            store_capacity=store,
            session_dir=self._session_dir,
            spill_dir=spill_dir,
            max_inline=self._max_inline,
            spin_us=int(config.worker_spin_us),
            log_to_driver=bool(config.log_to_driver),
            job_runtime_env=self._runtime_env,
            prestart=max(1, int(cpus)),
        )
        self._ref_lock = threading.Lock()
        self._local_refs: dict[bytes, int] = {}
        self._created: set[bytes] = set()
        self._sent_functions: set[bytes] = set()
        self._closed = False
        self._spin_s = int(config.worker_spin_us) / 1e6
        self._callbacks: concurrent.futures.ThreadPoolExecutor | None = None
        self._node.start()

    # -- reference tracking -------------------------------------------------

    def incref(self, object_id: bytes) -> None:
        with self._ref_lock:
            n = self._local_refs.get(object_id, 0)
            self._local_refs[object_id] = n + 1
            if n == 0:
                if object_id in self._created:
                    self._created.discard(object_id)
                else:
                    self._node.releases.append((object_id, 1))

    def decref(self, object_id: bytes) -> None:
        with self._ref_lock:
            n = self._local_refs.get(object_id, 0) - 1
            if n > 0:
                self._local_refs[object_id] = n
                return
            self._local_refs.pop(object_id, None)
        self._node.releases.append((object_id, -1))

    def _new_refs(self, ids: list[bytes]) -> list[ObjectRef]:
        with self._ref_lock:
            for oid in ids:
                if oid not in self._local_refs:
                    self._created.add(oid)
        return [ObjectRef(oid) for oid in ids]

    # -- tasks and actors ---------------------------------------------------

    def submit_task(self, spec: TaskSpec) -> list[ObjectRef] | ObjectRefGenerator:
        fn_id = spec.function.callable_id
        first = fn_id not in self._sent_functions
        wire = task_wire(spec, self._max_inline, self._node.allocate_for_driver, None, None, first)
        self._sent_functions.add(fn_id)
        node = self._node
        with node.lock:
            node.drain_releases()
            node.submit(wire, DRIVER)
        refs = self._new_refs(wire.return_ids)
        if wire.num_returns == STREAM:
            return ObjectRefGenerator(wire.task_id, self)
        return refs

    def create_actor(self, spec: ActorSpec) -> ActorInfo:
        wire = create_wire(spec, self._namespace, self._max_inline, self._node.allocate_for_driver, None, None)
        with self._node.lock:
            return self._node.actors.create(wire, DRIVER)

    def submit_actor_task(self, spec: ActorTaskSpec) -> list[ObjectRef] | ObjectRefGenerator:
        wire = call_wire(spec, "", self._max_inline, self._node.allocate_for_driver, None)
        node = self._node
        with node.lock:
            node.drain_releases()
            node.submit(wire, DRIVER)
        refs = self._new_refs(wire.return_ids)
        if wire.num_returns == STREAM:
            return ObjectRefGenerator(wire.task_id, self)
        return refs

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        with self._node.lock:
            self._node.actors.kill(actor_id, no_restart)

    def get_actor(self, name: str, namespace: str | None) -> ActorInfo:
        with self._node.lock:
            return self._node.actors.get_named(name, namespace)

    def actor_info(self, actor_id: bytes) -> ActorInfo:
        with self._node.lock:
            return self._node.actors.actor_info(actor_id)

    def list_named_actors(self, all_namespaces: bool) -> list[dict[str, str]]:
        with self._node.lock:
            return self._node.actors.list_named(all_namespaces)

    def actor_handle_count(self, actor_id: bytes, delta: int) -> None:
        if self._closed:
            return
        with self._node.lock:
            self._node.actors.handle_delta(actor_id, delta)

    # -- objects ------------------------------------------------------------

    def put(self, value: Any) -> ObjectRef:
        try:
            ser = serialize(value)
        except Exception as e:
            raise TypeError(f"could not serialize the value passed to put(): {e}") from e
        payload, contained = encode_serialized(ser, self._max_inline, self._node.allocate_for_driver), ser.refs
        object_id = new_id()
        node = self._node
        with node.lock:
            node.objects.create(object_id, 1)
            node.add_hold(DRIVER, object_id)
            node.store_result(DRIVER, object_id, payload, contained)
        return self._new_refs([object_id])[0]

    def _payloads(self, ids: list[bytes]) -> list[tuple[tuple[Any, ...], bytes]]:
        node = self._node
        out = []
        for oid in ids:
            obj = node.objects.objects.get(oid)
            if obj is None or obj.payload is None:
                out.append(
                    (
                        encode_error(ObjectLostError(f"object {oid.hex()} was freed or never existed", oid.hex())),
                        oid,
                    )
                )
                continue
            payload = node.objects.readable_payload(oid)
            if payload[0] == P.SHM:
                node.objects.pin(oid)
            out.append((payload, oid))
        return out

    def _decode(self, payload: tuple[Any, ...], oid: bytes) -> Any:
        if payload[0] == P.SHM:
            unpins = self._node.unpins
            return decode_payload(payload, lambda: unpins.append(oid))
        return decode_payload(payload)

    def get(self, refs: Sequence[ObjectRef], timeout: float | None) -> list[Any]:
        ids = [r._id for r in refs]
        node = self._node
        event = threading.Event()
        result = {"ok": False}

        def done(ok: bool) -> None:
            result["ok"] = ok
            event.set()

        with node.lock:
            node.drain_releases()
            abandon = wait_for_objects(node, ids, len(set(ids)), None, done)
            producers = node.producers(ids) if not event.is_set() and self._spin_s else ()
        if producers:
            self._spin_for(event, producers, timeout)
        if not event.is_set() and not event.wait(timeout):
            with node.lock:
                abandon()
                # Late arrival between the timeout and taking the lock still counts.
                missing = sum(1 for i in ids if not node.objects.is_ready(i))
                if missing:
                    raise GetTimeoutError(
                        f"get() timed out after {timeout}s: {missing} of {len(ids)} objects are not ready"
                    )
        with node.lock:
            payloads = self._payloads(ids)
        return [self._decode(p, oid) for p, oid in payloads]

    def _spin_for(self, event: threading.Event, producers: list[Any], timeout: float | None) -> None:
        """Read the producing workers' replies ourselves for a short while.

        A reply that arrives within the spin window is handled on this thread, sparing two
        thread wake-ups (the I/O thread's and ours), which cost tens of microseconds each on
        virtual machines. After the window the I/O thread takes over as usual.
        """
        node = self._node
        window = self._spin_s if timeout is None else min(self._spin_s, timeout)
        end = time.perf_counter() + window
        lock = node.lock
        while not event.is_set():
            for w in producers:
                if lock.acquire(blocking=False):
                    try:
                        if w.state != "dead":
                            node.poll_worker(w)
                    finally:
                        lock.release()
            if time.perf_counter() > end:
                return

    def wait(
        self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None, fetch_local: bool
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        ids = [r._id for r in refs]
        node = self._node
        event = threading.Event()
        with node.lock:
            node.drain_releases()
            wait_for_objects(node, ids, num_returns, timeout, lambda ok: event.set(), fetch=fetch_local)
        event.wait()
        with node.lock:
            ready_ids = {i for i in ids if node.objects.settled(i, fetch_local)}
        ready = [r for r in refs if r._id in ready_ids][:num_returns]
        chosen = {r._id for r in ready}
        return ready, [r for r in refs if r._id not in chosen]

    def future(self, ref: ObjectRef) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        node = self._node
        oid = ref._id

        def done(ok: bool) -> None:
            # Runs under the node lock, maybe on the I/O thread: the future's own
            # callbacks (user code) run on the callback thread instead.
            payload = self._payloads([oid])[0]
            self._callback_pool().submit(self._resolve, fut, payload)

        with node.lock:
            wait_for_objects(node, [oid], 1, None, done)
        return fut

    def _callback_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        pool = self._callbacks
        if pool is None:
            pool = self._callbacks = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shoal-callbacks")
        return pool

    def _resolve(self, fut: concurrent.futures.Future[Any], payload: tuple[tuple[Any, ...], bytes]) -> None:
        from shoal._runtime.worker_backend import _settle

        if fut.done():
            return  # cancelled by its caller
        try:
            value = self._decode(*payload)
        except BaseException as e:  # noqa: BLE001 - the error is the result
            _settle(fut, error=e)
        else:
            _settle(fut, value=value)

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        with self._node.lock:
            self._node.cancel(ref._id, force, recursive)

    def generator_next(self, generator_id: bytes, index: int, timeout: float | None) -> ObjectRef | None:
        node = self._node
        event = threading.Event()
        box: list[bytes | None] = []

        def reply(object_id: bytes | None) -> None:
            box.append(object_id)
            event.set()

        with node.lock:
            node.generator_next(generator_id, index, DRIVER, reply, timeout)
        event.wait()
        object_id = box[0]
        if object_id is None:
            return None
        if object_id == b"timeout":
            raise GetTimeoutError(f"no value from the generator within {timeout}s")
        return self._new_refs([object_id])[0]

    def generator_completed(self, generator_id: bytes) -> ObjectRef:
        with self._node.lock:
            object_id = self._node.generator_completed(generator_id, DRIVER)
        return self._new_refs([object_id])[0]

    def generator_release(self, generator_id: bytes, consumed: int) -> None:
        if self._closed:
            return
        with self._node.lock:
            self._node.generator_release(generator_id, consumed)

    # -- cluster ------------------------------------------------------------

    def cluster_resources(self) -> dict[str, float]:
        with self._node.lock:
            return self._node.cluster_resources()

    def available_resources(self) -> dict[str, float]:
        with self._node.lock:
            return self._node.available_resources()

    def nodes(self) -> list[dict[str, Any]]:
        with self._node.lock:
            return [self._node.node_info()]

    def runtime_info(self) -> RuntimeInfo:
        return RuntimeInfo(
            job_id=self._job_id,
            node_id=self._node_id,
            worker_id=f"driver-{os.getpid()}",
            namespace=self._namespace,
            runtime_env=dict(self._runtime_env),
        )

    # -- placement groups ---------------------------------------------------

    def create_placement_group(self, spec: PlacementGroupSpec) -> bytes:
        with self._node.lock:
            return self._node.actors.create_placement_group(spec)

    def remove_placement_group(self, pg_id: bytes) -> None:
        with self._node.lock:
            self._node.actors.remove_placement_group(pg_id)

    def placement_group_ready(self, pg_id: bytes) -> ObjectRef:
        with self._node.lock:
            object_id = self._node.actors.placement_group_ready(pg_id, DRIVER)
        return self._new_refs([object_id])[0]

    def placement_group_table(self, pg_id: bytes | None) -> dict[str, Any]:
        with self._node.lock:
            return self._node.actors.placement_group_table(pg_id)

    # -- lifecycle ----------------------------------------------------------

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._node.shutdown()
        if self._callbacks is not None:
            self._callbacks.shutdown(wait=False)
        import shutil

        shutil.rmtree(self._session_dir, ignore_errors=True)

    @property
    def node(self) -> NodeRuntime:
        """The embedded node runtime (for tests and benchmarks)."""
        return self._node

    def __repr__(self) -> str:
        return f"LocalBackend(node={self._node_id[:8]}, host={socket.gethostname()})"
