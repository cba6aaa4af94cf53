"""From a logical plan to physical operators: optimization rules and operator fusion.

Rules, applied to a copy of the plan (datasets share plan nodes):

- limit pushdown: a limit moves below maps that keep the row count, merges
  with other limits, and enters a read, which then launches only the read
  tasks it needs, each cut to its share of rows;
- projection pushdown: ``select_columns`` right after a read whose source
  supports it makes the read load only those columns;
- fusion: consecutive maps with compatible resources run as one task per
  block (read -> map -> map ...); maps next to an actor-pool map run inside
  its actors.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from shoal.data._all_to_all import AllToAllOperator, ZipOperator
from shoal.data._executor import cluster_cpus, memory_budget
from shoal.data._logical import (
    ActorPoolStrategy,
    AllToAll,
    InputData,
    Limit,
    LogicalOp,
    MapOp,
    Read,
    TaskPoolStrategy,
    Union,
    Zip,
)
from shoal.data._operators import (
    ActorPoolMapOperator,
    InputDataOperator,
    LimitOperator,
    MapOperator,
    PhysicalOperator,
    UnionOperator,
)
from shoal.data.context import DataContext
from shoal.data.datasource import ReadTask

__all__ = ["optimize", "plan", "decide_parallelism", "read_tasks_for", "known_rows", "known_schema"]


# -- logical rules -------------------------------------------------------------------


def _copy_map(op: MapOp, new_input: LogicalOp) -> MapOp:
    clone = MapOp.__new__(MapOp)
    clone.__dict__.update(op.__dict__)
    clone.inputs = [new_input]
    return clone


def optimize(op: LogicalOp) -> LogicalOp:
    """A rewritten copy of the plan rooted at ``op``."""
    if isinstance(op, Limit):
        return _push_limit(optimize(op.inputs[0]), op.limit)
    if isinstance(op, MapOp):
        child = optimize(op.inputs[0])
        if op.projection is not None and isinstance(child, Read) and child.datasource.supports_projection_pushdown():
            child = Read(child.datasource.apply_projection(op.projection), child.options, child.limit)
        return _copy_map(op, child)
    if isinstance(op, AllToAll):
        clone = AllToAll(optimize(op.inputs[0]), op.kind, op.name, **op.params)
        return clone
    if isinstance(op, Union):
        return Union([optimize(i) for i in op.inputs])
    if isinstance(op, Zip):
        return Zip([optimize(i) for i in op.inputs])
    return op


def _push_limit(child: LogicalOp, limit: int) -> LogicalOp:
    if isinstance(child, Limit):
        return _push_limit(child.inputs[0], min(limit, child.limit))
    if isinstance(child, MapOp) and child.preserves_rows:
        return _copy_map(child, _push_limit(child.inputs[0], limit))
    if isinstance(child, Read):
        return Read(child.datasource, child.options, limit if child.limit is None else min(limit, child.limit))
    return Limit(child, limit)


# -- reads ----------------------------------------------------------------------------------


def decide_parallelism(requested: int | None, size: int | None, ctx: DataContext, cpus: float, budget: int) -> int:
    """How many read tasks: enough for the CPUs, none bigger than the block size cap."""
    if requested is not None and requested > 0:
        return int(requested)
    min_blocks = ctx.read_op_min_num_blocks or int(2 * cpus)
    # Keep blocks well under the memory budget, so several can be in flight.
    max_block = max(1 << 20, min(ctx.target_max_block_size, budget // max(3, int(3 * cpus))))
    if size is None:
        return max(1, min_blocks)
    by_max = math.ceil(size / max_block)
    by_min = math.ceil(size / max(1, ctx.target_min_block_size))
    return max(1, by_max, min(min_blocks, by_min))


def read_tasks_for(read: Read, ctx: DataContext) -> tuple[list[ReadTask], bool]:
    """The read tasks of a Read, cut to its limit; the flag says whether the limit is exact."""
    cpus = cluster_cpus(ctx)
    parallelism = decide_parallelism(
        read.options.parallelism, read.datasource.estimate_inmemory_data_size(), ctx, cpus, memory_budget(ctx)
    )
    tasks = list(read.datasource.get_read_tasks(parallelism))
    if read.limit is None:
        return tasks, True
    if any(t.metadata.num_rows is None for t in tasks):
        return tasks, False
    out = []
    remaining = read.limit
    for t in tasks:
        if remaining <= 0:
            break
        rows = int(t.metadata.num_rows or 0)
        out.append(t if rows <= remaining else t.with_row_limit(remaining))
        remaining -= min(rows, remaining)
    return out, True


# -- physical planning --------------------------------------------------------------------


def _norm_args(args: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in args.items() if v is not None}
    out.setdefault("num_cpus", 1)
    return out


def _can_fuse(up: PhysicalOperator, op: MapOp) -> bool:
    if type(up) not in (MapOperator, ActorPoolMapOperator) or up.cancelled:
        return False
    assert isinstance(up, MapOperator)
    if up.local_reads:
        return False
    if op.min_rows_per_bundle is not None and (up.is_read or len(up.chain) > 1):
        # A batch size is honoured by bundling input blocks before the task;
        # read tasks and longer chains cannot be re-bundled, so keep it apart.
        return False
    same_args = _norm_args(up.remote_args) == _norm_args(op.remote_args)
    if isinstance(up, ActorPoolMapOperator):
        # A plain task map after an actor map runs inside the actors.
        return isinstance(op.compute, TaskPoolStrategy) and op.compute.size is None and same_args
    if isinstance(op.compute, ActorPoolStrategy):
        return isinstance(up.compute, TaskPoolStrategy) and up.compute.size is None and same_args
    return up.compute == op.compute and same_args


def _fuse(up: MapOperator, op: MapOp) -> MapOperator:
    name = f"{up.name}->{op.name}"
    if isinstance(op.compute, ActorPoolStrategy) and not isinstance(up, ActorPoolMapOperator):
        fused: MapOperator = ActorPoolMapOperator(
            name,
            up.inputs[0] if up.inputs else None,
            [*up.chain, op.transform],
            read_tasks=list(up.read_tasks) if up.is_read else None,
            compute=op.compute,
            remote_args=op.remote_args,
            min_rows_per_bundle=up.min_rows_per_bundle or op.min_rows_per_bundle,
        )
        fused.stats = up.stats
        fused.stats.name = name
        return fused
    up.chain.append(op.transform)
    up.name = name
    up.stats.name = name
    if op.min_rows_per_bundle is not None:
        up.min_rows_per_bundle = max(up.min_rows_per_bundle or 0, op.min_rows_per_bundle)
    return up


def plan(op: LogicalOp, ctx: DataContext) -> list[PhysicalOperator]:
    """Physical operators for an (optimized) plan, in topological order; the last is the output."""
    ops: list[PhysicalOperator] = []
    _plan(op, ctx, ops)
    return ops


def _plan(op: LogicalOp, ctx: DataContext, ops: list[PhysicalOperator]) -> PhysicalOperator:
    if isinstance(op, InputData):
        phys: PhysicalOperator = InputDataOperator(list(op.blocks))
    elif isinstance(op, Read):
        tasks, exact = read_tasks_for(op, ctx)
        phys = MapOperator(
            op.name,
            None,
            [],
            read_tasks=tasks,
            compute=TaskPoolStrategy(op.options.concurrency),
            remote_args=op.options.remote_args,
            local_reads=not op.datasource.supports_distributed_reads,
        )
        if op.limit is not None and not exact:
            ops.append(phys)
            phys = LimitOperator(phys, op.limit)
    elif isinstance(op, MapOp):
        up = _plan(op.inputs[0], ctx, ops)
        if _can_fuse(up, op):
            assert isinstance(up, MapOperator)
            fused = _fuse(up, op)
            ops[-1] = fused
            return fused
        cls = ActorPoolMapOperator if isinstance(op.compute, ActorPoolStrategy) else MapOperator
        phys = cls(
            op.name,
            up,
            [op.transform],
            compute=op.compute,
            remote_args=op.remote_args,
            min_rows_per_bundle=op.min_rows_per_bundle,
        )
    elif isinstance(op, Limit):
        phys = LimitOperator(_plan(op.inputs[0], ctx, ops), op.limit)
    elif isinstance(op, AllToAll):
        phys = AllToAllOperator(op.name, _plan(op.inputs[0], ctx, ops), op.kind, op.params)
    elif isinstance(op, Union):
        phys = UnionOperator([_plan(i, ctx, ops) for i in op.inputs])
    elif isinstance(op, Zip):
        left = _plan(op.inputs[0], ctx, ops)
        right = _plan(op.inputs[1], ctx, ops)
        phys = ZipOperator(left, right)
    else:  # pragma: no cover - every logical operator is handled above
        raise TypeError(f"unknown logical operator {op!r}")
    ops.append(phys)
    return phys


# -- metadata ----------------------------------------------------------------------------------


def known_rows(op: LogicalOp) -> int | None:
    """Rows of a plan's output when metadata tells, without running it."""
    if isinstance(op, InputData):
        return sum(int(m.num_rows or 0) for _, m in op.blocks)
    if isinstance(op, Read):
        tasks, _exact = read_tasks_for(op, DataContext.get_current())
        counts = [t.metadata.num_rows for t in tasks]
        if any(c is None for c in counts):
            return None
        total = sum(int(c or 0) for c in counts)
        return min(total, op.limit) if op.limit is not None else total
    if isinstance(op, (MapOp, AllToAll)) and op.preserves_rows:
        return known_rows(op.inputs[0])
    if isinstance(op, Limit):
        below = known_rows(op.inputs[0])
        return None if below is None else min(below, op.limit)
    if isinstance(op, Union):
        parts = [known_rows(i) for i in op.inputs]
        return None if any(p is None for p in parts) else sum(p or 0 for p in parts)
    return None


def known_schema(op: LogicalOp) -> pa.Schema | None:
    """The schema of a plan's output when metadata tells, without running it."""
    if isinstance(op, InputData):
        schemas = [m.schema for _, m in op.blocks if m.schema is not None and len(m.schema)]
        return schemas[0] if schemas else None
    if isinstance(op, Read):
        for t in read_tasks_for(op, DataContext.get_current())[0][:1]:
            return t.schema
        return None
    if isinstance(op, Limit) or (isinstance(op, AllToAll) and op.preserves_rows):
        return known_schema(op.inputs[0])
    return None
