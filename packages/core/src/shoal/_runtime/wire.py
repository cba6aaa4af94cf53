"""The one description of a task that a node runtime accepts, from the driver or from a worker."""

from __future__ import annotations

from typing import Any, NamedTuple

import cloudpickle

from shoal._runtime.values import Allocator, encode_call
from shoal.backend.specs import ActorSpec, ActorTaskSpec, SchedulingSpec, TaskSpec
from shoal.object_ref import new_id

__all__ = ["CALL", "CREATE", "STREAM", "TASK", "TaskWire", "call_wire", "create_wire", "task_wire"]

TASK = 0
CREATE = 1
CALL = 2
STREAM = -1  # num_returns of a streaming generator task


class TaskWire(NamedTuple):
    task_id: bytes
    kind: int
    fn_id: bytes | None
    fn_bytes: bytes | None
    name: str
    args: tuple[Any, ...]
    deps: list[bytes]
    contained: list[bytes]
    return_ids: list[bytes]
    num_returns: int
    resources: dict[str, float]
    max_retries: int
    retry_exceptions: Any  # bool, or cloudpickled tuple of exception types
    scheduling: tuple[Any, ...] | None
    runtime_env: dict[str, Any] | None
    actor_id: bytes | None
    method: str | None
    actor_opts: dict[str, Any] | None
    parent: bytes | None
    max_calls: int = 0
    handles: tuple[bytes, ...] = ()


def _scheduling(spec: SchedulingSpec, inherited_pg: bytes | None) -> tuple[Any, ...] | None:
    if spec.kind == "DEFAULT":
        if inherited_pg is not None:
            return ("PLACEMENT_GROUP", None, False, inherited_pg, -1, True)
        return None
    return (
        spec.kind,
        spec.node_id,
        spec.soft,
        spec.placement_group_id,
        spec.bundle_index,
        spec.capture_child_tasks,
    )


def _num_returns(n: Any) -> int:
    return STREAM if n in ("streaming", "dynamic") else int(n)


def task_wire(
    spec: TaskSpec,
    max_inline: int,
    allocate: Allocator,
    parent: bytes | None,
    inherited_pg: bytes | None,
    send_function: bool,
) -> TaskWire:
    name = spec.name or spec.function.name
    args, deps, contained, handles = encode_call(spec.args, spec.kwargs, name, max_inline, allocate)
    num_returns = _num_returns(spec.num_returns)
    retry = spec.retry_exceptions
    return TaskWire(
        task_id=new_id(),
        kind=TASK,
        fn_id=spec.function.callable_id,
        fn_bytes=spec.function.pickled if send_function else None,
        name=name,
        args=args,
        deps=deps,
        contained=contained,
        return_ids=[new_id() for _ in range(num_returns)] if num_returns > 0 else [],
        num_returns=num_returns,
        resources=spec.resources,
        max_retries=spec.max_retries,
        retry_exceptions=retry if isinstance(retry, bool) else cloudpickle.dumps(retry),
        scheduling=_scheduling(spec.scheduling, inherited_pg),
        runtime_env=spec.runtime_env,
        actor_id=None,
        method=None,
        actor_opts=None,
        parent=parent,
        max_calls=spec.max_calls,
        handles=tuple(handles),
    )


def create_wire(
    spec: ActorSpec,
    namespace: str,
    max_inline: int,
    allocate: Allocator,
    parent: bytes | None,
    inherited_pg: bytes | None,
) -> TaskWire:
    name = f"{spec.cls.qualname}.__init__"
    args, deps, contained, handles = encode_call(spec.args, spec.kwargs, name, max_inline, allocate)
    opts = {
        "class_name": spec.cls.qualname,
        "name": spec.name,
        "namespace": spec.namespace or namespace,
        "detached": spec.lifetime == "detached",
        "get_if_exists": spec.get_if_exists,
        "max_restarts": spec.max_restarts,
        "max_task_retries": spec.max_task_retries,
        "max_concurrency": spec.max_concurrency,
        "max_pending_calls": spec.max_pending_calls,
        "is_async": spec.is_async,
        "methods": spec.methods,
        "restarted": False,
    }
    return TaskWire(
        task_id=new_id(),
        kind=CREATE,
        fn_id=spec.cls.callable_id,
        fn_bytes=spec.cls.pickled,
        name=name,
        args=args,
        deps=deps,
        contained=contained,
        return_ids=[],
        num_returns=0,
        resources=spec.resources,
        max_retries=0,
        retry_exceptions=False,
        scheduling=_scheduling(spec.scheduling, inherited_pg),
        runtime_env=spec.runtime_env,
        actor_id=new_id(),
        method=None,
        actor_opts=opts,
        parent=parent,
        handles=tuple(handles),
    )


def call_wire(
    spec: ActorTaskSpec, class_name: str, max_inline: int, allocate: Allocator, parent: bytes | None
) -> TaskWire:
    name = spec.name or f"{class_name}.{spec.method}"
    args, deps, contained, handles = encode_call(spec.args, spec.kwargs, name, max_inline, allocate)
    num_returns = _num_returns(spec.num_returns)
    return TaskWire(
        task_id=new_id(),
        kind=CALL,
        fn_id=None,
        fn_bytes=None,
        name=name,
        args=args,
        deps=deps,
        contained=contained,
        return_ids=[new_id() for _ in range(num_returns)] if num_returns > 0 else [],
        num_returns=num_returns,
        resources={},
        max_retries=spec.max_task_retries,
        retry_exceptions=False,
        scheduling=None,
        runtime_env=None,
        actor_id=spec.actor_id,
        method=spec.method,
        actor_opts=None,
        parent=parent,
        handles=tuple(handles),
    )
