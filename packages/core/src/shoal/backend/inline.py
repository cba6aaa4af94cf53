"""The ``inline`` backend: tasks and actor methods run in the calling thread, one at a time.

For stepping through remote code with pdb. Arguments and results still go
through serialization, so values are copies and errors are the same as on
the other backends; resources are accounted but not enforced.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal._runtime.errors import task_error
from shoal._runtime.serialization import Serialized, deserialize, serialize, serialize_call_args
from shoal.backend.base import ActorInfo, Backend, RuntimeInfo
from shoal.backend.memory_kv import MemoryKV
from shoal.backend.specs import ActorSpec, ActorTaskSpec, PlacementGroupSpec, SchedulingSpec, TaskSpec
from shoal.config import Config
from shoal.exceptions import (
    ActorDiedError,
    AsyncioActorExit,
    GetTimeoutError,
    ObjectLostError,
    PlacementGroupSchedulingError,
    TaskCancelledError,
)
from shoal.object_ref import ObjectRef, ObjectRefGenerator, new_id
from shoal.util.placement_group import PlacementGroup, PlacementGroupID

__all__ = ["InlineBackend"]


@dataclass
class _Stored:
    value: Serialized | None = None
    error: BaseException | None = None


@dataclass
class _Actor:
    info: ActorInfo
    spec: ActorSpec
    instance: Any = None
    dead_error: BaseException | None = None
    loop: asyncio.AbstractEventLoop | None = None
    loop_thread: threading.Thread | None = None
    handles: int = 0


@dataclass
class _Generator:
    it: Iterator[Any] | None
    name: str
    refs: list[ObjectRef] = field(default_factory=list)
    done_ref: ObjectRef | None = None
    finished: bool = False


@dataclass
class _Frame:
    task_id: str
    task_name: str
    actor_id: str | None = None
    actor_name: str | None = None
    resources: dict[str, float] = field(default_factory=dict)
    placement_group_id: str | None = None


class InlineBackend(MemoryKV, Backend):
    """Runs everything in the calling process, immediately, one call at a time."""

    name = "inline"

    def __init__(self, config: Config) -> None:
        MemoryKV.__init__(self)
        self._config = config
        self._lock = threading.RLock()
        self._objects: dict[bytes, _Stored] = {}
        self._counts: dict[bytes, int] = {}
        self._actors: dict[bytes, _Actor] = {}
        self._named: dict[tuple[str, str], bytes] = {}
        self._generators: dict[bytes, _Generator] = {}
        self._pgs: dict[bytes, dict[str, Any]] = {}
        self._stack = threading.local()
        self._job_id = new_id()[:4].hex()
        self._node_id = new_id().hex()
        self._namespace = config.namespace or f"anonymous-{new_id()[:8].hex()}"
        cpus = config.num_cpus if config.num_cpus is not None else (os.cpu_count() or 1)
        self._resources: dict[str, float] = {"CPU": float(cpus)}
        if config.num_gpus:
            self._resources["GPU"] = float(config.num_gpus)
        self._resources.update(config.resources or {})
        self._resources["memory"] = float(config.object_store_memory or 0) or 2.0**33
        self._resources["object_store_memory"] = float(config.object_store_memory or 2**31)
        self._resources[f"node:{self._node_id}"] = 1.0

    # -- objects ------------------------------------------------------------

    def incref(self, object_id: bytes) -> None:
        self._counts[object_id] = self._counts.get(object_id, 0) + 1

    def decref(self, object_id: bytes) -> None:
        n = self._counts.get(object_id, 0) - 1
        if n > 0:
            self._counts[object_id] = n
        else:
            self._counts.pop(object_id, None)
            self._objects.pop(object_id, None)

    def _store_value(self, value: Any) -> ObjectRef:
        object_id = new_id()
        self._objects[object_id] = _Stored(value=serialize(value))
        return ObjectRef(object_id)

    def _store_error(self, error: BaseException) -> ObjectRef:
        object_id = new_id()
        self._objects[object_id] = _Stored(error=error)
        return ObjectRef(object_id)

    def _load(self, ref: ObjectRef) -> Any:
        stored = self._objects.get(ref._id)
        if stored is None:
            raise ObjectLostError(f"object {ref.hex()} is not in the store (it was freed or never existed)")
        if stored.error is not None:
            raise stored.error
        assert stored.value is not None
        # Read-only views, as the shared-memory store gives.
        buffers = [b.toreadonly() for b in stored.value.buffers]
        return deserialize(stored.value.data, buffers)

    def put(self, value: Any) -> ObjectRef:
        try:
            return self._store_value(value)
        except Exception as e:
            raise TypeError(f"could not serialize the value passed to put(): {e}") from e

    def get(self, refs: Sequence[ObjectRef], timeout: float | None) -> list[Any]:
        out = []
        for ref in refs:
            if ref._id not in self._objects and timeout is not None:
                raise GetTimeoutError(f"get() timed out after {timeout}s waiting for {ref!r}")
            out.append(self._load(ref))
        return out

    def wait(
        self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None, fetch_local: bool
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        ready = [r for r in refs if r._id in self._objects][:num_returns]
        chosen = set(ready)
        return ready, [r for r in refs if r not in chosen]

    def future(self, ref: ObjectRef) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            fut.set_result(self._load(ref))
        except BaseException as e:  # noqa: BLE001 - the error is the result
            fut.set_exception(e)
        return fut

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        # Every task has already run by the time its ref exists: nothing to cancel,
        # as for any finished task on the other backends.
        if ref._id not in self._objects:
            self._objects[ref._id] = _Stored(error=TaskCancelledError(task_id=ref.hex()))

    # -- running user code --------------------------------------------------

    def _frames(self) -> list[_Frame]:
        stack = getattr(self._stack, "frames", None)
        if stack is None:
            stack = self._stack.frames = []
        return stack

    def _resolve_args(self, spec_args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> tuple[Any, ...]:
        """Copy arguments through serialization; top-level refs become their values."""
        ser = serialize_call_args(spec_args, kwargs, name)
        args, kw = deserialize(ser.data, [b.toreadonly() for b in ser.buffers])
        args = tuple(self._load(a) if isinstance(a, ObjectRef) else a for a in args)
        kw = {k: self._load(v) if isinstance(v, ObjectRef) else v for k, v in kw.items()}
        return args, kw

    def _returns(self, result: Any, num_returns: int, name: str) -> list[ObjectRef]:
        if num_returns == 1:
            return [self._store_value(result)]
        if num_returns == 0:
            return []
        try:
            values = list(result)
        except TypeError:
            values = None
        if values is None or len(values) != num_returns:
            got = "a non-iterable" if values is None else f"{len(values)} values"
            err = ValueError(f"{name} returned {got}, but num_returns={num_returns}")
            return [self._store_error(task_error(err, name)) for _ in range(num_returns)]
        return [self._store_value(v) for v in values]

    def _run(self, frame: _Frame, fn: Callable[[], Any]) -> Any:
        frames = self._frames()
        frames.append(frame)
        try:
            return fn()
        finally:
            frames.pop()

    def _should_retry(self, spec: TaskSpec, exc: BaseException, attempt: int) -> bool:
        if spec.max_retries != -1 and attempt >= spec.max_retries:
            return False
        if spec.retry_exceptions is True:
            return True
        if isinstance(spec.retry_exceptions, tuple):
            return isinstance(exc, spec.retry_exceptions)
        return False

    def submit_task(self, spec: TaskSpec) -> list[ObjectRef] | ObjectRefGenerator:
        name = spec.name or spec.function.name
        fn = spec.function.obj
        try:
            args, kwargs = self._resolve_args(spec.args, spec.kwargs, name)
        except TypeError:
            raise
        except BaseException as e:  # noqa: BLE001 - an upstream error becomes this task's result
            return self._fail_all(spec.num_returns, e)
        frame = _Frame(new_id().hex(), name, resources=dict(spec.resources), placement_group_id=_pg_of(spec.scheduling))
        if spec.num_returns in ("streaming", "dynamic"):
            return self._start_generator(frame, lambda: fn(*args, **kwargs), name)
        attempt = 0
        while True:
            try:
                result = self._run(frame, lambda: fn(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - user code may raise anything
                if self._should_retry(spec, e, attempt):
                    attempt += 1
                    continue
                return self._fail_all(spec.num_returns, task_error(e, name))
            return self._returns(result, spec.num_returns, name)  # type: ignore[arg-type]

    def _fail_all(self, num_returns: Any, error: BaseException) -> list[ObjectRef] | ObjectRefGenerator:
        if num_returns in ("streaming", "dynamic"):
            gen_id = new_id()
            self._generators[gen_id] = _Generator(it=None, name="", finished=True)
            self._generators[gen_id].refs.append(self._store_error(error))
            self._generators[gen_id].done_ref = self._store_error(error)
            return ObjectRefGenerator(gen_id, self)
        return [self._store_error(error) for _ in range(num_returns or 1)]

    # -- generators ---------------------------------------------------------

    def _start_generator(self, frame: _Frame, call: Callable[[], Any], name: str) -> ObjectRefGenerator:
        gen_id = new_id()
        try:
            it = self._run(frame, call)
        except BaseException as e:  # noqa: BLE001
            it = None
            err = task_error(e, name)
            g = _Generator(it=None, name=name, finished=True)
            g.refs.append(self._store_error(err))
            g.done_ref = self._store_error(err)
            self._generators[gen_id] = g
            return ObjectRefGenerator(gen_id, self)
        if hasattr(it, "__anext__"):
            it = _sync_iter(it)
        self._generators[gen_id] = _Generator(it=_framed(self, frame, it), name=name)
        return ObjectRefGenerator(gen_id, self)

    def generator_next(self, generator_id: bytes, index: int, timeout: float | None) -> ObjectRef | None:
        g = self._generators[generator_id]
        while len(g.refs) <= index and not g.finished:
            assert g.it is not None
            try:
                value = next(g.it)
            except StopIteration:
                g.finished = True
                g.done_ref = self._store_value(None)
            except BaseException as e:  # noqa: BLE001
                g.finished = True
                err = task_error(e, g.name)
                g.refs.append(self._store_error(err))
                g.done_ref = self._store_error(err)
            else:
                g.refs.append(self._store_value(value))
        if index < len(g.refs):
            return g.refs[index]
        return None

    def generator_completed(self, generator_id: bytes) -> ObjectRef:
        g = self._generators[generator_id]
        while not g.finished:
            self.generator_next(generator_id, len(g.refs), None)
        assert g.done_ref is not None
        return g.done_ref

    def generator_release(self, generator_id: bytes, consumed: int) -> None:
        self._generators.pop(generator_id, None)

    # -- actors -------------------------------------------------------------

    def create_actor(self, spec: ActorSpec) -> ActorInfo:
        namespace = spec.namespace or self._namespace
        if spec.name is not None:
            existing = self._named.get((namespace, spec.name))
            if existing is not None and self._actors[existing].dead_error is None:
                if spec.get_if_exists:
                    return self._actors[existing].info
                raise ValueError(f"an actor named {spec.name!r} already exists in namespace {namespace!r}")
        actor_id = new_id()
        info = ActorInfo(
            actor_id=actor_id,
            class_name=spec.cls.qualname,
            methods=spec.methods,
            is_async=spec.is_async,
            max_task_retries=spec.max_task_retries,
            name=spec.name,
            namespace=namespace,
        )
        actor = _Actor(info=info, spec=spec)
        self._actors[actor_id] = actor
        if spec.name is not None:
            self._named[(namespace, spec.name)] = actor_id
        if spec.is_async:
            actor.loop = asyncio.new_event_loop()
            actor.loop_thread = threading.Thread(
                target=actor.loop.run_forever, name=f"shoal-inline-{spec.cls.qualname}", daemon=True
            )
            actor.loop_thread.start()
        frame = _Frame(
            new_id().hex(),
            f"{spec.cls.qualname}.__init__",
            actor_id.hex(),
            spec.name,
            dict(spec.resources),
            _pg_of(spec.scheduling),
        )
        try:
            args, kwargs = self._resolve_args(spec.args, spec.kwargs, frame.task_name)
            actor.instance = self._run(frame, lambda: spec.cls.obj(*args, **kwargs))
        except TypeError as e:
            if "could not serialize" in str(e):
                self._end_actor(actor, None)
                self._actors.pop(actor_id, None)
                raise
            actor.dead_error = self._creation_error(e, frame.task_name)
        except BaseException as e:  # noqa: BLE001 - constructor errors poison the actor
            actor.dead_error = self._creation_error(e, frame.task_name)
        return info

    def _creation_error(self, e: BaseException, name: str) -> ActorDiedError:
        cause = task_error(e, name)
        err = ActorDiedError(f"The actor died because of an error raised in its creation task:\n{cause}")
        err.__cause__ = cause
        return err

    def actor_info(self, actor_id: bytes) -> ActorInfo:
        return self._actors[actor_id].info

    def submit_actor_task(self, spec: ActorTaskSpec) -> list[ObjectRef] | ObjectRefGenerator:
        actor = self._actors.get(spec.actor_id)
        if actor is None:
            return self._fail_all(spec.num_returns, ActorDiedError("The actor does not exist."))
        if actor.dead_error is not None:
            return self._fail_all(spec.num_returns, actor.dead_error)
        name = spec.name or f"{actor.info.class_name}.{spec.method}"
        if spec.method == "__ray_terminate__":
            err = ActorDiedError("The actor was terminated by __ray_terminate__.")
            self._end_actor(actor, err)
            return self._fail_all(spec.num_returns, err)
        try:
            args, kwargs = self._resolve_args(spec.args, spec.kwargs, name)
        except TypeError:
            raise
        except BaseException as e:  # noqa: BLE001
            return self._fail_all(spec.num_returns, e)
        bound = getattr(actor.instance, spec.method)
        frame = _Frame(
            new_id().hex(),
            name,
            actor.info.actor_id.hex(),
            actor.info.name,
            dict(actor.spec.resources),
            _pg_of(actor.spec.scheduling),
        )
        method_spec = actor.info.methods[spec.method]
        if spec.num_returns in ("streaming", "dynamic"):
            return self._start_generator(frame, lambda: bound(*args, **kwargs), name)
        try:
            if method_spec.is_async:
                assert actor.loop is not None
                fut = asyncio.run_coroutine_threadsafe(_framed_coro(self, frame, bound(*args, **kwargs)), actor.loop)
                result = fut.result()
            else:
                result = self._run(frame, lambda: bound(*args, **kwargs))
        except AsyncioActorExit:
            self._end_actor(actor, ActorDiedError("The actor exited by calling exit_actor()."))
            return self._fail_all(spec.num_returns, ActorDiedError("The actor exited by calling exit_actor()."))
        except BaseException as e:  # noqa: BLE001
            return self._fail_all(spec.num_returns, task_error(e, name))
        return self._returns(result, spec.num_returns, name)  # type: ignore[arg-type]

    def _end_actor(self, actor: _Actor, error: BaseException | None) -> None:
        actor.dead_error = error or ActorDiedError("The actor was killed.")
        if actor.loop is not None:
            actor.loop.call_soon_threadsafe(actor.loop.stop)
            if actor.loop_thread is not None and actor.loop_thread is not threading.current_thread():
                actor.loop_thread.join(timeout=5)
            actor.loop.close() if not actor.loop.is_running() else None
            actor.loop = None
        actor.instance = None
        if actor.info.name is not None:
            key = (actor.info.namespace or self._namespace, actor.info.name)
            if self._named.get(key) == actor.info.actor_id:
                del self._named[key]

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        actor = self._actors.get(actor_id)
        if actor is not None and actor.dead_error is None:
            self._end_actor(actor, ActorDiedError("The actor was killed by shoal.kill()."))

    def actor_handle_count(self, actor_id: bytes, delta: int) -> None:
        actor = self._actors.get(actor_id)
        if actor is None:
            return
        actor.handles += delta
        if actor.handles <= 0 and actor.spec.lifetime != "detached" and actor.dead_error is None:
            self._end_actor(actor, ActorDiedError("The actor was destroyed: all handles to it went out of scope."))

    def get_actor(self, name: str, namespace: str | None) -> ActorInfo:
        actor_id = self._named.get((namespace or self._namespace, name))
        if actor_id is None:
            raise ValueError(
                f"Failed to look up actor with name {name!r} in namespace {namespace or self._namespace!r}"
            )
        return self._actors[actor_id].info

    def list_named_actors(self, all_namespaces: bool) -> list[dict[str, str]]:
        out = []
        for (ns, name), _ in self._named.items():
            if all_namespaces or ns == self._namespace:
                out.append({"name": name, "namespace": ns})
        return out

    # -- cluster ------------------------------------------------------------

    def cluster_resources(self) -> dict[str, float]:
        return dict(self._resources)

    def available_resources(self) -> dict[str, float]:
        # Work never overlaps inline, so nothing is held between calls.
        free = dict(self._resources)
        for pg in self._pgs.values():
            if pg["state"] == "CREATED":
                for bundle in pg["bundles_list"]:
                    for k, v in bundle.items():
                        free[k] = free.get(k, 0.0) - v
        return free

    def nodes(self) -> list[dict[str, Any]]:
        return [
            {
                "NodeID": self._node_id,
                "Alive": True,
                "NodeManagerAddress": "127.0.0.1",
                "NodeManagerHostname": os.uname().nodename,
                "NodeName": "127.0.0.1",
                "Resources": dict(self._resources),
                "alive": True,
            }
        ]

    def runtime_info(self) -> RuntimeInfo:
        frames = self._frames()
        top = frames[-1] if frames else None
        return RuntimeInfo(
            job_id=self._job_id,
            node_id=self._node_id,
            worker_id=f"inline-{os.getpid()}",
            namespace=self._namespace,
            task_id=top.task_id if top else None,
            task_name=top.task_name if top else None,
            actor_id=top.actor_id if top else None,
            actor_name=top.actor_name if top else None,
            assigned_resources=dict(top.resources) if top else {},
            placement_group_id=top.placement_group_id if top else None,
            runtime_env=dict(self._config.values.get("runtime_env") or {}),
        )

    # -- placement groups ---------------------------------------------------

    def create_placement_group(self, spec: PlacementGroupSpec) -> bytes:
        pg_id = new_id()
        free = self.available_resources()
        need: dict[str, float] = {}
        for bundle in spec.bundles:
            for k, v in bundle.items():
                need[k] = need.get(k, 0.0) + v
        fits = all(free.get(k, 0.0) >= v for k, v in need.items())
        if spec.strategy == "STRICT_SPREAD" and len(spec.bundles) > 1:
            fits = False  # one node cannot hold bundles that must be on different nodes
        self._pgs[pg_id] = {
            "placement_group_id": pg_id.hex(),
            "name": spec.name,
            "strategy": spec.strategy,
            "bundles": dict(enumerate(spec.bundles)),
            "bundles_list": spec.bundles,
            "state": "CREATED" if fits else "PENDING",
        }
        return pg_id

    def remove_placement_group(self, pg_id: bytes) -> None:
        pg = self._pgs.get(pg_id)
        if pg is not None:
            pg["state"] = "REMOVED"

    def placement_group_ready(self, pg_id: bytes) -> ObjectRef:
        pg = self._pgs.get(pg_id)
        if pg is None or pg["state"] == "REMOVED":
            return self._store_error(PlacementGroupSchedulingError("the placement group was removed"))
        if pg["state"] == "CREATED":
            return self._store_value(PlacementGroup(PlacementGroupID(pg_id), list(pg["bundles_list"])))
        # Never placeable inline: a ref that never becomes ready.
        return ObjectRef(new_id())

    def placement_group_table(self, pg_id: bytes | None) -> dict[str, Any]:
        if pg_id is not None:
            pg = self._pgs.get(pg_id)
            if pg is None:
                raise ValueError(f"no placement group {pg_id.hex()}")
            return {k: v for k, v in pg.items() if k != "bundles_list"} | {"bundles_list": pg["bundles_list"]}
        return {k.hex(): dict(v) for k, v in self._pgs.items()}

    # -- lifecycle ----------------------------------------------------------

    def shutdown(self) -> None:
        for actor in list(self._actors.values()):
            if actor.dead_error is None:
                self._end_actor(actor, ActorDiedError("shoal was shut down."))
        self._objects.clear()
        self._generators.clear()


def _pg_of(sched: SchedulingSpec) -> str | None:
    if sched.kind == "PLACEMENT_GROUP" and sched.placement_group_id is not None:
        return sched.placement_group_id.hex()
    return None


def _framed(backend: InlineBackend, frame: _Frame, it: Iterator[Any]) -> Iterator[Any]:
    while True:
        try:
            value = backend._run(frame, lambda: next(it))
        except StopIteration:
            return
        yield value


async def _framed_coro(backend: InlineBackend, frame: _Frame, coro: Any) -> Any:
    frames = backend._frames()
    frames.append(frame)
    try:
        return await coro
    finally:
        frames.pop()


def _sync_iter(agen: Any) -> Iterator[Any]:
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.close()
