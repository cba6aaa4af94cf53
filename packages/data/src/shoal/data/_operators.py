"""Physical operators of the streaming executor.

Each operator receives blocks (an ObjectRef and its BlockMetadata), launches
shoal tasks when the executor lets it, reacts to finished tasks and emits
blocks downstream in dataset order. Decisions (what to launch, what is
ready) are the executor's; operators only report what they could do and
hold. Names: ``RefMeta`` is a ``(ObjectRef, BlockMetadata)`` pair.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

import shoal
from shoal.data import _tasks
from shoal.data._convert import compact
from shoal.data._logical import ActorPoolStrategy, TaskPoolStrategy
from shoal.data._stats import OpStats
from shoal.data._transforms import MapTransform
from shoal.data.block import BlockMetadata
from shoal.data.context import DataContext
from shoal.data.datasource import ReadTask

__all__ = [
    "RefMeta",
    "PhysicalOperator",
    "InputDataOperator",
    "MapOperator",
    "ActorPoolMapOperator",
    "LimitOperator",
    "UnionOperator",
]

RefMeta = tuple[Any, BlockMetadata]


def _bytes(meta: BlockMetadata) -> int:
    return int(meta.size_bytes or 0)


def cancel_quietly(ref: Any) -> None:
    try:
        shoal.cancel(ref)
    except Exception:  # noqa: BLE001 - the task may be finished or its worker gone
        pass


@dataclass
class _Task:
    """A launched task: its output refs and the input blocks it keeps alive."""

    index: int
    block_ref: Any
    meta_ref: Any
    inputs: list[RefMeta]
    est_bytes: int
    meta: BlockMetadata | None = None
    actor: Any = None
    started: float = field(default_factory=time.perf_counter)
    failed: bool = False  # it raised, and the executor went on without its block


class PhysicalOperator:
    """Base of the executor's operators."""

    #: Whether the blocks this operator holds count against the memory budget
    #: (an all-to-all operator must hold all of its input, whatever the budget).
    counts_toward_budget = True

    def __init__(self, name: str, inputs: Sequence[PhysicalOperator]) -> None:
        self.name = name
        self.inputs = list(inputs)
        self.downstream: tuple[PhysicalOperator, int] | None = None
        self.outputs: deque[RefMeta] = deque()
        self.inputs_done = [False] * len(self.inputs)
        self.stats = OpStats(name)
        self.cancelled = False
        self.completion_signalled = False
        self.cluster_cpus = 1.0

    # -- inputs and outputs ---------------------------------------------------
    def add_input(self, item: RefMeta, index: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement add_input()")  # sources take none

    def input_done(self, index: int) -> None:
        self.inputs_done[index] = True

    def all_inputs_done(self) -> bool:
        return all(self.inputs_done)

    def accepts_input(self, index: int) -> bool:
        """Whether the executor may run the operator feeding input ``index`` now."""
        return True

    def wants_input(self, index: int, fits_budget: bool) -> bool:
        """Whether one more already-existing block should be queued here now."""
        return True

    def has_output(self) -> bool:
        return bool(self.outputs)

    def pop_output(self) -> RefMeta:
        item = self.outputs.popleft()
        self.stats.record_output(item[1])
        return item

    def configure(self, ctx: DataContext, cluster_cpus: float) -> None:
        """Take the execution's settings (called once, before anything runs)."""
        self.cluster_cpus = cluster_cpus

    # -- work ----------------------------------------------------------------
    def has_work(self) -> bool:
        """A task could be launched now."""
        return False

    def dispatch(self) -> None:
        """Launch one task."""

    def num_active(self) -> int:
        return 0

    def max_active(self) -> int:
        return 1

    def active_refs(self) -> list[Any]:
        return []

    def on_ready(self, ref: Any) -> None:
        """A ref from ``active_refs`` is ready."""

    def completed(self) -> bool:
        """No further output will come (outputs may still be queued)."""
        return self.all_inputs_done() and self.num_active() == 0 and not self.has_work()

    def held_bytes(self) -> int:
        """Bytes of blocks this operator keeps alive (queued inputs, task inputs, outputs)."""
        return sum(_bytes(m) for _, m in self.outputs)

    def est_task_output(self) -> int:
        return 0

    def pending_output_bytes(self) -> int:
        """Estimated bytes of outputs of tasks still running."""
        return 0

    def progress(self) -> tuple[int, int | None]:
        """(blocks done, blocks expected if known) for the progress bar."""
        return self.stats.blocks, None

    def on_completed(self) -> None:
        """Called once when the operator completed: release resources (actors)."""

    def cancel(self) -> None:
        """Stop: no more tasks, cancel running ones, drop queued blocks."""
        self.cancelled = True
        self.outputs.clear()

    def shutdown(self) -> None:
        """Release everything (normal end or error)."""


class InputDataOperator(PhysicalOperator):
    """Blocks that already exist."""

    def __init__(self, blocks: list[RefMeta]) -> None:
        super().__init__("Input", [])
        self.outputs.extend(blocks)
        self._total = len(blocks)

    def add_input(self, item: RefMeta, index: int) -> None:  # pragma: no cover - has no inputs
        raise AssertionError("InputDataOperator has no inputs")

    def progress(self) -> tuple[int, int | None]:
        return self._total - len(self.outputs), self._total

    def held_bytes(self) -> int:
        # These blocks existed before the execution; they count once handed on.
        return 0


class MapOperator(PhysicalOperator):
    """Runs a chain of fused transforms with tasks, one task per input bundle or read task."""

    def __init__(
        self,
        name: str,
        input_op: PhysicalOperator | None,
        chain: list[MapTransform],
        *,
        read_tasks: list[ReadTask] | None = None,
        compute: TaskPoolStrategy | ActorPoolStrategy | None = None,
        remote_args: dict[str, Any] | None = None,
        min_rows_per_bundle: int | None = None,
        local_reads: bool = False,
    ) -> None:
        super().__init__(name, [input_op] if input_op is not None else [])
        self.chain = list(chain)
        self.read_tasks: deque[ReadTask] = deque(read_tasks or [])
        self.is_read = read_tasks is not None
        self.compute = compute or TaskPoolStrategy()
        self.remote_args = dict(remote_args or {})
        self.min_rows_per_bundle = min_rows_per_bundle
        self.local_reads = local_reads
        self._queue: deque[RefMeta] = deque()
        self._queued_rows = 0
        self._pending: deque[_Task] = deque()
        self._by_ref: dict[Any, _Task] = {}
        self._next_index = 0
        self._total_tasks = len(self.read_tasks) if self.is_read else None
        self._out_bytes = 0
        self._out_count = 0
        self._chain_ref: Any = None
        self._fn: Any = None
        cpus = self.remote_args.get("num_cpus")
        self._cpus = float(cpus) if cpus is not None else 1.0
        self.tasks_per_cpu = 2

    def configure(self, ctx: DataContext, cluster_cpus: float) -> None:
        super().configure(ctx, cluster_cpus)
        self.tasks_per_cpu = ctx.max_tasks_in_flight_per_cpu

    @property
    def uses_udf(self) -> bool:
        return any(t.udf is not None for t in self.chain)

    # -- inputs ------------------------------------------------------------------
    def add_input(self, item: RefMeta, index: int) -> None:
        if self.cancelled:
            return
        self._queue.append(item)
        self._queued_rows += int(item[1].num_rows or 0)

    def wants_input(self, index: int, fits_budget: bool) -> bool:
        if not self._queue:
            return True
        if self.min_rows_per_bundle is not None and self._queued_rows < self.min_rows_per_bundle:
            return True  # a bundle must be able to form
        # Enough queued to keep every task slot busy, if memory allows.
        return fits_budget and len(self._queue) < self.max_active()

    def _bundle_ready(self) -> bool:
        if not self._queue:
            return False
        if self.min_rows_per_bundle is None or self.all_inputs_done():
            return True
        return self._queued_rows >= self.min_rows_per_bundle

    def has_work(self) -> bool:
        if self.cancelled:
            return False
        if self.is_read:
            return bool(self.read_tasks)
        return self._bundle_ready()

    def _take_bundle(self) -> list[RefMeta]:
        bundle = [self._queue.popleft()]
        rows = int(bundle[0][1].num_rows or 0)
        target = self.min_rows_per_bundle
        while target is not None and rows < target and self._queue:
            item = self._queue.popleft()
            bundle.append(item)
            rows += int(item[1].num_rows or 0)
        self._queued_rows -= rows
        return bundle

    # -- launching -----------------------------------------------------------------
    def max_active(self) -> int:
        if isinstance(self.compute, TaskPoolStrategy) and self.compute.size is not None:
            return self.compute.size
        per_task = self._cpus if self._cpus > 0 else 0.5
        return max(1, math.ceil(self.cluster_cpus / per_task) * self.tasks_per_cpu)

    def num_active(self) -> int:
        return len(self._by_ref)

    def _remote(self) -> Any:
        if self._fn is None:
            opts = {k: v for k, v in self.remote_args.items() if v is not None}
            opts.setdefault("name", self.name)
            self._fn = _tasks.remote_fn("run_map", 2).options(**opts)
            self._chain_ref = shoal.put(self.chain)
        return self._fn

    def _submit(self, index: int, payload: ReadTask | None, blocks: list[Any]) -> tuple[Any, Any, Any]:
        if self.local_reads:
            block, meta = _tasks.run_map(self.chain, index, payload, *[shoal.get(b) for b in blocks])
            return shoal.put(block), shoal.put(meta), None
        block_ref, meta_ref = self._remote().remote(self._chain_ref, index, payload, *blocks)
        return block_ref, meta_ref, None

    def est_task_output(self) -> int:
        if self._out_count:
            return self._out_bytes // self._out_count
        if self.is_read and self.read_tasks:
            return int(self.read_tasks[0].metadata.size_bytes or 0)
        if self._queue:
            return _bytes(self._queue[0][1])
        return 0

    def dispatch(self) -> None:
        self.stats.mark_started()
        index = self._next_index
        self._next_index += 1
        est = self.est_task_output()
        if self.is_read:
            payload: ReadTask | None = self.read_tasks.popleft()
            inputs: list[RefMeta] = []
        else:
            payload = None
            inputs = self._take_bundle()
        block_ref, meta_ref, actor = self._submit(index, payload, [r for r, _ in inputs])
        task = _Task(index, block_ref, meta_ref, inputs, est, actor=actor)
        self._pending.append(task)
        self._by_ref[meta_ref] = task
        self.stats.tasks += 1

    # -- results ---------------------------------------------------------------------
    def active_refs(self) -> list[Any]:
        return list(self._by_ref)

    def on_ready(self, ref: Any) -> None:
        """Take a finished task's result; if the task raised, drop the task and re-raise.

        The executor may go on without that block (``DataContext.max_errored_blocks``).
        """
        task = self._by_ref.pop(ref)
        self._task_finished(task)
        task.inputs = []  # let the store free the inputs
        try:
            task.meta = shoal.get(ref)
        except BaseException:
            task.failed = True
            task.meta = BlockMetadata(0, 0)
            self._emit_in_order()
            raise
        self._out_bytes += _bytes(task.meta)
        self._out_count += 1
        self.stats.record_task(task.meta)
        self._emit_in_order()

    def _emit_in_order(self) -> None:
        while self._pending and self._pending[0].meta is not None:
            done = self._pending.popleft()
            assert done.meta is not None
            if not done.failed:
                self.outputs.append((done.block_ref, done.meta))

    def _task_finished(self, task: _Task) -> None:
        """Hook for actor pools (one fewer call in flight on that actor)."""

    def held_bytes(self) -> int:
        total = super().held_bytes() + sum(_bytes(m) for _, m in self._queue)
        for task in self._pending:
            total += sum(_bytes(m) for _, m in task.inputs)
            if task.meta is not None:
                total += _bytes(task.meta)
        return total

    def pending_output_bytes(self) -> int:
        return sum(t.est_bytes for t in self._pending if t.meta is None)

    def completed(self) -> bool:
        if self.cancelled:
            return True
        return self.all_inputs_done() and not self._pending and not self.has_work()

    def progress(self) -> tuple[int, int | None]:
        return self.stats.tasks - len(self._by_ref), self._total_tasks

    def cancel(self) -> None:
        super().cancel()
        for ref in list(self._by_ref):
            cancel_quietly(ref)
        self._by_ref.clear()
        self._pending.clear()
        self._queue.clear()
        self.read_tasks.clear()
        self.shutdown()

    def shutdown(self) -> None:
        for ref in list(self._by_ref):
            cancel_quietly(ref)
        self._chain_ref = None


class ActorPoolMapOperator(MapOperator):
    """Runs the fused transforms on a pool of actors that construct the class UDFs once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert isinstance(self.compute, ActorPoolStrategy)
        self.pool: ActorPoolStrategy = self.compute
        self._actors: list[Any] = []
        self._in_flight: dict[int, int] = {}
        self.max_in_flight_per_actor = 2
        #: CPUs the executor keeps free for the other operators still running.
        self.cpus_reserved_by_others = 0.0

    def configure(self, ctx: DataContext, cluster_cpus: float) -> None:
        super().configure(ctx, cluster_cpus)
        self.max_in_flight_per_actor = ctx.max_tasks_in_flight_per_actor

    def _per_actor(self) -> int:
        return self.pool.max_tasks_in_flight_per_actor or self.max_in_flight_per_actor

    def _start_actor(self) -> None:
        opts: dict[str, Any] = {k: v for k, v in self.remote_args.items() if v is not None}
        opts.setdefault("num_cpus", 1)
        actor = _tasks.map_worker_class().options(**opts).remote(self.chain)
        self._actors.append(actor)
        self._in_flight[len(self._actors) - 1] = 0

    def _max_size(self) -> int:
        per_actor = self._cpus if self._cpus > 0 else 1.0
        # Actors hold their CPUs for the whole run: leave what the other running
        # operators' tasks need, or those would wait forever for a CPU (and the
        # pool for their blocks). At least one actor always runs.
        fits = max(1, int((self.cluster_cpus - self.cpus_reserved_by_others) // per_actor))
        wanted = self.pool.max_size if self.pool.max_size is not None else int(self.cluster_cpus // per_actor)
        return max(1, min(wanted, fits))

    def max_active(self) -> int:
        return self._max_size() * self._per_actor()

    def _pick_actor(self) -> int:
        if not self._actors:
            for _ in range(min(self.pool.initial_size, self._max_size())):
                self._start_actor()
        best = min(range(len(self._actors)), key=lambda i: self._in_flight[i])
        if self._in_flight[best] > 0 and len(self._actors) < self._max_size():
            # Every actor has work queued: scale up while there is more input.
            self._start_actor()
            best = len(self._actors) - 1
        return best

    def _submit(self, index: int, payload: ReadTask | None, blocks: list[Any]) -> tuple[Any, Any, Any]:
        i = self._pick_actor()
        self._in_flight[i] += 1
        block_ref, meta_ref = self._actors[i].process.remote(index, payload, *blocks)
        return block_ref, meta_ref, i

    def _task_finished(self, task: _Task) -> None:
        if task.actor is not None:
            self._in_flight[task.actor] -= 1

    def on_completed(self) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        super().shutdown()
        actors, self._actors = self._actors, []
        for actor in actors:
            try:
                shoal.kill(actor)
            except Exception:  # noqa: BLE001 - already dead
                pass
        self._in_flight.clear()


class LimitOperator(PhysicalOperator):
    """Passes the first ``limit`` rows, cutting the last block."""

    def __init__(self, input_op: PhysicalOperator, limit: int) -> None:
        super().__init__(f"limit={limit}", [input_op])
        self.remaining = limit

    @property
    def satisfied(self) -> bool:
        return self.remaining <= 0

    def add_input(self, item: RefMeta, index: int) -> None:
        if self.remaining <= 0:
            return
        rows = item[1].num_rows
        if rows is None:
            rows = len(shoal.get(item[0]))
        if rows <= self.remaining:
            self.outputs.append(item)
            self.remaining -= rows
            return
        # Cut here rather than in a task: the piece is small, and a task could
        # wait behind actors holding every CPU.
        piece = compact(shoal.get(item[0]).slice(0, self.remaining))
        self.remaining = 0
        self.outputs.append((shoal.put(piece), BlockMetadata.of(piece)))

    def completed(self) -> bool:
        return self.all_inputs_done() or self.satisfied


def _same_columns(a: pa.Schema, b: pa.Schema) -> bool:
    """The same names with the same types, in any order (blocks are combined by column name)."""
    if a.equals(b):
        return True
    if sorted(a.names) != sorted(b.names) or len(set(a.names)) != len(a.names):
        return False
    return all(f.type.equals(b.field(f.name).type) for f in a)


class UnionOperator(PhysicalOperator):
    """Outputs of its inputs one after the other, refusing blocks whose schema differs."""

    def __init__(self, inputs: Sequence[PhysicalOperator]) -> None:
        super().__init__("Union", inputs)
        self._buffers: list[deque[RefMeta]] = [deque() for _ in inputs]
        self._current = 0
        self._schema: Any = None
        self._schema_from = 0

    def _check_schema(self, meta: BlockMetadata, index: int) -> None:
        schema = meta.schema
        if schema is None or len(schema) == 0 or not meta.num_rows:
            return
        if self._schema is None:
            self._schema, self._schema_from = schema, index
            return
        if not _same_columns(schema, self._schema):
            (i, a), (j, b) = sorted([(index, schema), (self._schema_from, self._schema)], key=lambda p: p[0])
            raise ValueError(
                f"union: the datasets' schemas differ: dataset {i} has {_schema_str(a)} but dataset {j} "
                f"has {_schema_str(b)}; union needs the same column names and types"
            )

    def add_input(self, item: RefMeta, index: int) -> None:
        self._check_schema(item[1], index)
        self._buffers[index].append(item)
        self._advance()

    def input_done(self, index: int) -> None:
        super().input_done(index)
        self._advance()

    def _advance(self) -> None:
        while self._current < len(self._buffers):
            buf = self._buffers[self._current]
            while buf:
                self.outputs.append(buf.popleft())
            if not self.inputs_done[self._current]:
                return
            self._current += 1

    def accepts_input(self, index: int) -> bool:
        # Run the inputs in order, so the ones waiting their turn do not fill memory.
        return index <= self._current

    def held_bytes(self) -> int:
        return super().held_bytes() + sum(_bytes(m) for buf in self._buffers for _, m in buf)


def _schema_str(schema: Any) -> str:
    return "{" + ", ".join(f"{f.name}: {f.type}" for f in schema) + "}"
