"""The logical plan: what a Dataset computes, as a DAG of operators.

Datasets are immutable; each transformation returns a new Dataset whose plan
adds one operator on top of its parent's. The optimizer (``_planner``)
rewrites plans and turns them into physical operators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shoal.data._transforms import MapTransform
from shoal.data.block import BlockMetadata
from shoal.data.datasource import Datasource

__all__ = [
    "LogicalOp",
    "InputData",
    "Read",
    "MapOp",
    "Limit",
    "AllToAll",
    "Union",
    "Zip",
    "TaskPoolStrategy",
    "ActorPoolStrategy",
]


class TaskPoolStrategy:
    """Run a map with tasks, at most ``size`` at a time (None: as many as the CPUs allow)."""

    def __init__(self, size: int | None = None) -> None:
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"TaskPoolStrategy size must be a positive integer or None, got {size!r}")
        self.size = size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskPoolStrategy) and other.size == self.size

    def __hash__(self) -> int:
        return hash(("task", self.size))

    def __repr__(self) -> str:
        return f"TaskPoolStrategy(size={self.size})"


class ActorPoolStrategy:
    """Run a map on a pool of actors, between ``min_size`` and ``max_size`` of them."""

    def __init__(
        self,
        *,
        size: int | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        initial_size: int | None = None,
        max_tasks_in_flight_per_actor: int | None = None,
    ) -> None:
        def check(name: str, v: Any) -> None:
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"ActorPoolStrategy {name} must be a positive integer, got {v!r}")

        for name, v in (("size", size), ("min_size", min_size), ("max_size", max_size)):
            check(name, v)
        check("initial_size", initial_size)
        check("max_tasks_in_flight_per_actor", max_tasks_in_flight_per_actor)
        if size is not None:
            if min_size is not None or max_size is not None:
                raise ValueError("ActorPoolStrategy takes either size or min_size/max_size, not both")
            min_size = max_size = size
        min_size = min_size or 1
        if max_size is not None and max_size < min_size:
            raise ValueError(f"ActorPoolStrategy max_size ({max_size}) is below min_size ({min_size})")
        self.min_size = min_size
        self.max_size = max_size
        self.initial_size = max(min_size, initial_size or min_size)
        if self.max_size is not None and self.initial_size > self.max_size:
            raise ValueError(f"ActorPoolStrategy initial_size ({initial_size}) is above max_size ({max_size})")
        self.max_tasks_in_flight_per_actor = max_tasks_in_flight_per_actor

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorPoolStrategy) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash(("actor", self.min_size, self.max_size))

    def __repr__(self) -> str:
        return f"ActorPoolStrategy(min_size={self.min_size}, max_size={self.max_size})"


class LogicalOp:
    """A node of the plan."""

    def __init__(self, name: str, inputs: list[LogicalOp]) -> None:
        self.name = name
        self.inputs = inputs

    def describe(self) -> str:
        return self.name


class InputData(LogicalOp):
    """Blocks already in the object store (from_items, materialize...)."""

    def __init__(self, blocks: list[tuple[Any, BlockMetadata]], stats: Any = None) -> None:
        super().__init__("InputData", [])
        self.blocks = blocks
        #: The stats of the execution that produced these blocks, if any.
        self.stats = stats


@dataclass
class ReadOptions:
    parallelism: int | None = None
    concurrency: int | None = None
    remote_args: dict[str, Any] = field(default_factory=dict)


class Read(LogicalOp):
    """Read a datasource; ``limit`` is set when the optimizer pushes a limit into the read."""

    def __init__(self, datasource: Datasource, options: ReadOptions, limit: int | None = None) -> None:
        super().__init__(f"Read{datasource.get_name()}", [])
        self.datasource = datasource
        self.options = options
        self.limit = limit


class MapOp(LogicalOp):
    """A map-like operator: one transform applied to the blocks, fusable with its neighbours."""

    def __init__(
        self,
        input_op: LogicalOp,
        transform: MapTransform,
        *,
        compute: TaskPoolStrategy | ActorPoolStrategy | None = None,
        remote_args: dict[str, Any] | None = None,
        preserves_rows: bool = False,
        min_rows_per_bundle: int | None = None,
        projection: list[str] | None = None,
    ) -> None:
        super().__init__(transform.name, [input_op])
        self.transform = transform
        self.compute = compute or TaskPoolStrategy()
        self.remote_args = dict(remote_args or {})
        #: Same number of rows out as in (a limit may move below it).
        self.preserves_rows = preserves_rows
        self.min_rows_per_bundle = min_rows_per_bundle
        #: For select_columns: the columns, so the optimizer can push them into a read.
        self.projection = projection


class Limit(LogicalOp):
    def __init__(self, input_op: LogicalOp, limit: int) -> None:
        super().__init__(f"limit={limit}", [input_op])
        self.limit = limit


class AllToAll(LogicalOp):
    """An operator that needs all of its input: shuffle, sort, repartition, aggregate."""

    def __init__(self, input_op: LogicalOp, kind: str, name: str, **params: Any) -> None:
        super().__init__(name, [input_op])
        self.kind = kind
        self.params = params

    @property
    def preserves_rows(self) -> bool:
        return self.kind in ("random_shuffle", "sort", "repartition", "randomize_block_order")


class Union(LogicalOp):
    def __init__(self, inputs: list[LogicalOp]) -> None:
        super().__init__("Union", inputs)


class Zip(LogicalOp):
    def __init__(self, inputs: list[LogicalOp]) -> None:
        super().__init__("Zip", inputs)
