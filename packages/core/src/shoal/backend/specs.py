"""Plain, typed descriptions of work that cross the backend seam.

The public API builds these from ``.remote()`` calls and options; every
backend consumes them. They hold only Python data (and the user's arguments,
which each backend serializes its own way), never backend objects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "STREAMING",
    "ActorMethodSpec",
    "ActorSpec",
    "ActorTaskSpec",
    "CallableDescriptor",
    "PlacementGroupSpec",
    "Resources",
    "SchedulingSpec",
    "TaskSpec",
]

#: ``num_returns`` value of a task whose results are streamed as they are yielded.
STREAMING: Literal["streaming"] = "streaming"

#: A resource request: ``{"CPU": 1.0, "GPU": 0.0, "memory": 0.0, "my_res": 2.0}``.
Resources = dict[str, float]


@dataclass(eq=False)
class CallableDescriptor:
    """A function or class sent to workers once and cached by ``callable_id``.

    ``pickled`` is filled lazily (cloudpickle is slow) and ``callable_id`` is
    the hash of those bytes, so two processes agree on an id without talking.
    """

    obj: Any
    module: str
    qualname: str
    _pickled: bytes | None = field(default=None, repr=False)
    _callable_id: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(cls, obj: Any) -> CallableDescriptor:
        return cls(obj, getattr(obj, "__module__", "?") or "?", getattr(obj, "__qualname__", repr(obj)))

    @property
    def pickled(self) -> bytes:
        if self._pickled is None:
            from shoal._runtime.serialization import dumps_callable

            self._pickled = dumps_callable(self.obj)
        return self._pickled

    @property
    def callable_id(self) -> bytes:
        if self._callable_id is None:
            self._callable_id = hashlib.blake2b(self.pickled, digest_size=16).digest()
        return self._callable_id

    @property
    def name(self) -> str:
        return self.qualname


@dataclass
class SchedulingSpec:
    """Where work may run: a strategy name plus its parameters."""

    kind: Literal["DEFAULT", "SPREAD", "NODE_AFFINITY", "PLACEMENT_GROUP"] = "DEFAULT"
    node_id: str | None = None
    soft: bool = False
    placement_group_id: bytes | None = None
    bundle_index: int = -1
    capture_child_tasks: bool = False


@dataclass
class TaskSpec:
    """One call of a remote function."""

    function: CallableDescriptor
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    resources: Resources
    num_returns: int | Literal["streaming", "dynamic"] = 1
    max_retries: int = 3
    retry_exceptions: bool | tuple[type[BaseException], ...] = False
    max_calls: int = 0
    name: str | None = None
    scheduling: SchedulingSpec = field(default_factory=SchedulingSpec)
    runtime_env: dict[str, Any] | None = None


@dataclass
class ActorMethodSpec:
    """What the runtime must know about one actor method without the class."""

    num_returns: int | Literal["streaming"] = 1
    is_async: bool = False
    is_generator: bool = False
    concurrency_group: str | None = None


@dataclass
class ActorSpec:
    """Creation of one actor."""

    cls: CallableDescriptor
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    resources: Resources
    methods: dict[str, ActorMethodSpec]
    is_async: bool = False
    max_restarts: int = 0
    max_task_retries: int = 0
    max_concurrency: int = 1
    max_pending_calls: int = -1
    name: str | None = None
    namespace: str | None = None
    lifetime: Literal["detached"] | None = None
    get_if_exists: bool = False
    scheduling: SchedulingSpec = field(default_factory=SchedulingSpec)
    runtime_env: dict[str, Any] | None = None


@dataclass
class ActorTaskSpec:
    """One method call on an actor."""

    actor_id: bytes
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    num_returns: int | Literal["streaming"] = 1
    max_task_retries: int = 0
    name: str | None = None


@dataclass
class PlacementGroupSpec:
    """A gang reservation of resource bundles."""

    bundles: list[Resources]
    strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    name: str = ""
    lifetime: Literal["detached"] | None = None
