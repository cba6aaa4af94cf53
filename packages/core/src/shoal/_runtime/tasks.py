"""Records the node runtime keeps for tasks, actors, generators and placement groups."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

from shoal._runtime.resources import Bundle, Grant
from shoal._runtime.wire import TaskWire

if TYPE_CHECKING:
    from shoal._runtime.procs import WorkerProc

__all__ = ["DRIVER", "Actor", "Generator", "PlacementGroup", "Task"]

#: Owner id of the driver process (workers have ids >= 1).
DRIVER = 0

WAITING, READY, RUNNING, FINISHED = "waiting", "ready", "running", "finished"


class Task:
    """A task, actor creation or actor call from submission to completion."""

    __slots__ = (
        "args_id",
        "bundle",
        "cancelled",
        "children",
        "env_key",
        "force_cancelled",
        "forwarded_in",
        "grant",
        "name",
        "owner",
        "pending_deps",
        "pinned",
        "queue_key",
        "retries_left",
        "started",
        "state",
        "wire",
        "worker",
    )

    def __init__(self, wire: TaskWire, owner: int, env_key: str) -> None:
        self.wire = wire
        self.owner = owner
        self.state = WAITING
        self.worker: WorkerProc | None = None
        self.grant: Grant | None = None
        self.retries_left = wire.max_retries
        self.pending_deps = 0
        self.children: list[bytes] = []
        self.cancelled = False
        self.force_cancelled = False
        self.env_key = env_key
        self.pinned: list[bytes] = []
        self.args_id: bytes | None = None
        self.bundle: Bundle | None = None
        self.queue_key: Any = None
        self.name = wire.name
        self.forwarded_in = False  # sent here by another node: never sent on again
        self.started = 0.0  # when its worker began it (time.monotonic)

    @property
    def task_id(self) -> bytes:
        return self.wire.task_id


class Actor:
    """An actor: where it lives, what it has queued, and how often it may restart."""

    def __init__(self, creation: Task | None, opts: dict[str, Any], actor_id: bytes | None = None) -> None:
        self.actor_id: bytes = actor_id if creation is None else creation.wire.actor_id  # type: ignore[assignment]
        self.creation: Task = creation  # type: ignore[assignment]  # None for a stand-in of a remote actor
        self.remote_node: str | None = None  # the node it lives on, when that is not this one
        self.opts = opts
        self.class_name: str = opts["class_name"]
        self.name: str | None = opts["name"]
        self.namespace: str = opts["namespace"]
        self.detached: bool = opts["detached"]
        self.state = "pending"  # pending | alive | restarting | dead
        self.worker: WorkerProc | None = None
        self.grant: Grant | None = None
        self.queue: collections.deque[Task] = collections.deque()
        self.inflight: dict[bytes, Task] = {}
        self.restarts_left: int = opts["max_restarts"]
        self.num_restarts = 0
        self.death_error: BaseException | None = None
        self.handles = 0
        self.handles_seen = False
        self.terminating = False
        self.exiting_call: bytes | None = None
        self.no_restart = False


class Generator:
    """Values a streaming task has yielded so far, handed out by index."""

    __slots__ = ("completion_id", "consumed", "done", "error", "items", "owner", "waiters")

    def __init__(self, owner: int, completion_id: bytes) -> None:
        self.items: list[bytes] = []
        self.done = False
        self.waiters: list[Any] = []
        self.completion_id = completion_id
        self.consumed = 0
        self.owner = owner
        self.error: tuple[Any, ...] | None = None


class PlacementGroup:
    """A gang reservation on this node."""

    def __init__(self, pg_id: bytes, bundles: list[dict[str, float]], strategy: str, name: str, detached: bool):
        self.pg_id = pg_id
        self.bundle_specs = bundles
        self.strategy = strategy
        self.name = name
        self.detached = detached
        self.state = "PENDING"
        self.bundles: list[Bundle | None] = []  # None: the bundle is reserved on another node
        self.bundle_nodes: list[str] = []
        self.ready_ids: list[bytes] = []
        self.reserving = False  # reservations on other nodes are in flight
        self.retry_after = 0.0
        self.owner = True  # False on a node that only holds some bundles for the group's owner
