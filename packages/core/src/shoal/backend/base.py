"""The abstract :class:`Backend`: everything the public API asks of a runtime."""

from __future__ import annotations

import abc
import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from shoal.backend.specs import ActorMethodSpec, ActorSpec, ActorTaskSpec, PlacementGroupSpec, TaskSpec
    from shoal.config import Config
    from shoal.object_ref import ObjectRef, ObjectRefGenerator

__all__ = ["ActorInfo", "Backend", "RuntimeInfo"]


@dataclass
class ActorInfo:
    """What a handle needs to call an actor: its id and its methods' options."""

    actor_id: bytes
    class_name: str
    methods: dict[str, ActorMethodSpec]
    is_async: bool = False
    max_task_retries: int = 0
    name: str | None = None
    namespace: str | None = None


@dataclass
class RuntimeInfo:
    """Where the calling code runs: ids and the resources assigned to it."""

    job_id: str
    node_id: str
    worker_id: str
    namespace: str
    task_id: str | None = None
    task_name: str | None = None
    actor_id: str | None = None
    actor_name: str | None = None
    assigned_resources: dict[str, float] = field(default_factory=dict)
    gpu_ids: list[int] = field(default_factory=list)
    placement_group_id: str | None = None
    capture_child_tasks: bool = False
    was_restarted: bool = False
    runtime_env: dict[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):
    """A runtime that runs tasks and actors and stores objects.

    The public API (``shoal.remote``, ``shoal.get``, ...) calls only these
    methods. Implementations are registered under a name in the
    ``shoal.backends`` entry-point group and built with the resolved
    :class:`~shoal.config.Config`. Every implementation must give a program
    the same results and errors.
    """

    #: Registry name, e.g. ``"local"``.
    name: ClassVar[str] = ""

    #: Extra keywords this backend takes from ``shoal.init()`` (passed to
    #: ``__init__``), e.g. ``cluster_config`` for ``cloud``. Others are refused.
    init_kwargs: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    def __init__(self, config: Config) -> None:
        """Start (or connect to) the runtime."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop everything this backend started; leave no process or shared memory behind."""

    # -- tasks and actors ---------------------------------------------------

    @abc.abstractmethod
    def submit_task(self, spec: TaskSpec) -> list[ObjectRef] | ObjectRefGenerator:
        """Run a remote function; one ref per return value, or a generator when streaming."""

    @abc.abstractmethod
    def create_actor(self, spec: ActorSpec) -> ActorInfo:
        """Create an actor (or, with ``get_if_exists``, find the named one)."""

    @abc.abstractmethod
    def submit_actor_task(self, spec: ActorTaskSpec) -> list[ObjectRef] | ObjectRefGenerator:
        """Call a method of an actor; calls from one caller run in submission order."""

    @abc.abstractmethod
    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        """Stop an actor at once; pending calls fail with ActorDiedError."""

    @abc.abstractmethod
    def get_actor(self, name: str, namespace: str | None) -> ActorInfo:
        """Find a live named actor; ValueError if there is none."""

    @abc.abstractmethod
    def actor_info(self, actor_id: bytes) -> ActorInfo:
        """What a handle needs to call the actor with this id."""

    @abc.abstractmethod
    def list_named_actors(self, all_namespaces: bool) -> list[dict[str, str]]:
        """Names (and namespaces) of live named actors."""

    def actor_handle_count(self, actor_id: bytes, delta: int) -> None:
        """Count handles of an actor in this process; non-detached actors end with the last one."""

    # -- objects ------------------------------------------------------------

    @abc.abstractmethod
    def put(self, value: Any) -> ObjectRef:
        """Store a value; return its ref."""

    @abc.abstractmethod
    def get(self, refs: Sequence[ObjectRef], timeout: float | None) -> list[Any]:
        """Values of refs, in order; re-raises a stored error; GetTimeoutError on timeout."""

    @abc.abstractmethod
    def wait(
        self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None, fetch_local: bool
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """Split refs into (ready, not ready) once ``num_returns`` are ready or on timeout."""

    @abc.abstractmethod
    def future(self, ref: ObjectRef) -> concurrent.futures.Future[Any]:
        """A future that completes with the ref's value (or its error) once it is available."""

    @abc.abstractmethod
    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        """Cancel the task that produces ``ref``; ``get`` then raises TaskCancelledError."""

    @abc.abstractmethod
    def generator_next(self, generator_id: bytes, index: int, timeout: float | None) -> ObjectRef | None:
        """The ref of a streaming task's ``index``-th value, waiting for it; None at the end."""

    @abc.abstractmethod
    def generator_completed(self, generator_id: bytes) -> ObjectRef:
        """A ref that resolves when the streaming task has finished."""

    def generator_release(self, generator_id: bytes, consumed: int) -> None:
        """The caller dropped the generator; values not yet handed out may be freed."""

    def incref(self, object_id: bytes) -> None:
        """An ObjectRef to ``object_id`` was created in this process."""

    def decref(self, object_id: bytes) -> None:
        """An ObjectRef to ``object_id`` was dropped in this process."""

    # -- cluster ------------------------------------------------------------

    @abc.abstractmethod
    def cluster_resources(self) -> dict[str, float]:
        """Total resources of all live nodes."""

    @abc.abstractmethod
    def available_resources(self) -> dict[str, float]:
        """Resources not held by running work."""

    @abc.abstractmethod
    def nodes(self) -> list[dict[str, Any]]:
        """One dict per node, with Ray's keys (``NodeID``, ``Alive``, ``Resources``, ...)."""

    @abc.abstractmethod
    def runtime_info(self) -> RuntimeInfo:
        """Where the calling code runs."""

    # -- cluster key-value store (for libraries: shoal.experimental.internal_kv)
    # Not abstract: every built-in backend has a store, a third-party one may have none and
    # then fails here with a message rather than at class creation.

    def kv_get(self, namespace: str, key: str) -> bytes | None:
        """The value under ``key``, or None."""
        raise NotImplementedError(f"the {self.name!r} backend has no key-value store here")

    def kv_put(self, namespace: str, key: str, value: bytes, overwrite: bool) -> bool:
        """Store ``value``; False when ``key`` exists and ``overwrite`` is False."""
        raise NotImplementedError(f"the {self.name!r} backend has no key-value store here")

    def kv_delete(self, namespace: str, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        raise NotImplementedError(f"the {self.name!r} backend has no key-value store here")

    def kv_keys(self, namespace: str, prefix: str) -> list[str]:
        """Keys that start with ``prefix``."""
        raise NotImplementedError(f"the {self.name!r} backend has no key-value store here")

    # -- placement groups ---------------------------------------------------

    @abc.abstractmethod
    def create_placement_group(self, spec: PlacementGroupSpec) -> bytes:
        """Reserve bundles; returns the group's id at once, ready later."""

    @abc.abstractmethod
    def remove_placement_group(self, pg_id: bytes) -> None:
        """Release a group's bundles and kill what runs in them."""

    @abc.abstractmethod
    def placement_group_ready(self, pg_id: bytes) -> ObjectRef:
        """A ref that resolves when every bundle of the group is reserved."""

    @abc.abstractmethod
    def placement_group_table(self, pg_id: bytes | None) -> dict[str, Any]:
        """State of one group, or of all groups keyed by hex id."""
