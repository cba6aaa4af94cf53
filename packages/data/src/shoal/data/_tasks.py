"""The functions shoal runs as tasks (and the actor of actor pools) for dataset execution.

Each returns its output block(s) and, for blocks that continue down the
pipeline, a :class:`BlockMetadata` as a second return value, so the driver
learns sizes without fetching blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

import shoal
from shoal.data import _aggops, _partition
from shoal.data._convert import batch_to_block, compact, concat_blocks, ndarray_to_block
from shoal.data._partition import SortKey
from shoal.data._transforms import MapTransform, TransformContext, apply_chain
from shoal.data.aggregate import AggregateFn
from shoal.data.block import BlockExecStats, BlockMetadata
from shoal.data.datasource import ReadTask

__all__ = ["remote_fn", "MapWorker"]


def _finish(tables: list[pa.Table], timer: Any, input_files: list[str] | None = None) -> tuple[pa.Table, BlockMetadata]:
    out = compact(concat_blocks(tables))
    return out, BlockMetadata.of(out, timer.build(), input_files)


def run_map(chain: list[MapTransform], task_idx: int, payload: ReadTask | None, *blocks: pa.Table) -> Any:
    """Read (when ``payload`` is a ReadTask) or take ``blocks``, and run the fused transforms."""
    timer = BlockExecStats.timer()
    ctx = TransformContext(task_idx, chain[-1].name if chain else "")
    return _run_chain(chain, ctx, payload, blocks, timer)


def _run_chain(
    chain: list[MapTransform], ctx: TransformContext, payload: ReadTask | None, blocks: Sequence[pa.Table], timer: Any
) -> tuple[pa.Table, BlockMetadata]:
    if payload is not None:
        source = iter(payload())
        files = payload.metadata.input_files
    else:
        source = iter(blocks)
        files = None
    return _finish(apply_chain(chain, source, ctx), timer, files)


class MapWorker:
    """The actor of an actor pool: constructs class UDFs once, then runs tasks."""

    def __init__(self, chain: list[MapTransform]) -> None:
        self._chain = chain
        self._instances: dict[str, Any] = {}
        ctx = TransformContext(0, "", self._instances)
        for transform in chain:
            transform.init_instances(ctx)

    def ready(self) -> bool:
        return True

    @shoal.method(num_returns=2)
    def process(self, task_idx: int, payload: ReadTask | None, *blocks: pa.Table) -> Any:
        timer = BlockExecStats.timer()
        ctx = TransformContext(task_idx, self._chain[-1].name if self._chain else "", self._instances)
        return _run_chain(self._chain, ctx, payload, blocks, timer)


# -- all-to-all stages ------------------------------------------------------------


def sample(block: pa.Table, column: str, n: int, seed: Any) -> np.ndarray:
    if column not in block.column_names:
        if block.num_columns == 0:
            return np.array([])
        raise ValueError(f"sort key column {column!r} is not in the dataset (columns: {block.column_names})")
    return _partition.sample_keys(block, column, n, seed)


def _parts(parts: list[pa.Table]) -> Any:
    return parts[0] if len(parts) == 1 else tuple(parts)


def sort_map(block: pa.Table, key: SortKey, boundaries: np.ndarray) -> Any:
    if block.num_columns == 0:
        return _parts([block] * (len(boundaries) + 1))
    key.check(block.schema)
    return _parts(_partition.range_partition(block, key, boundaries, sort=True))


def sort_reduce(key: SortKey, *parts: pa.Table) -> tuple[pa.Table, BlockMetadata]:
    timer = BlockExecStats.timer()
    table = concat_blocks(list(parts))
    if table.num_columns:
        key.check(table.schema)
        table = _partition.sort_table(table, key, presorted_runs=len(parts) > 1)
    return _finish([table], timer)


def shuffle_map(block: pa.Table, num_parts: int, seed: Any) -> Any:
    return _parts(_partition.random_partition(block, num_parts, seed))


def shuffle_reduce(seed: Any, *parts: pa.Table) -> tuple[pa.Table, BlockMetadata]:
    timer = BlockExecStats.timer()
    return _finish([_partition.random_permute(concat_blocks(list(parts)), seed)], timer)


def agg_partial(block: pa.Table, keys: list[str], aggs: list[AggregateFn], sample_n: int) -> Any:
    """Partial states of one block, and (a sample of its first-key values, the states' bytes)."""
    if block.num_columns == 0 or block.num_rows == 0:
        return pa.table({}), (np.array([]), 0)
    for k in keys:
        if k not in block.column_names:
            raise ValueError(f"groupby key {k!r} is not in the dataset (columns: {block.column_names})")
    for agg in aggs:
        agg._validate(block.schema)
    for k in keys:
        column = block.column(k)
        if pa.types.is_dictionary(column.type):
            # Grouped by value: Arrow cannot sort dictionary columns, which merging needs.
            block = block.set_column(block.schema.get_field_index(k), k, column.cast(column.type.value_type))
    partial = _aggops.partial_aggregate(block, keys, aggs)
    samples = _partition.sample_keys(partial, keys[0], sample_n, 0) if keys else np.array([])
    return partial, (samples, partial.nbytes)


def agg_partition(partial: pa.Table, keys: list[str], boundaries: np.ndarray) -> Any:
    p = len(boundaries) + 1
    if partial.num_columns == 0:
        return _parts([partial] * p)
    return _parts(_partition.range_partition(partial, SortKey(keys), boundaries, sort=False))


def agg_reduce(keys: list[str], aggs: list[AggregateFn], *partials: pa.Table) -> tuple[pa.Table, BlockMetadata]:
    timer = BlockExecStats.timer()
    return _finish([_aggops.merge_aggregate(list(partials), keys, aggs)], timer)


def slice_concat(spec: list[tuple[int, int, int]], *blocks: pa.Table) -> tuple[pa.Table, BlockMetadata]:
    """Concatenate ``blocks[i][start:end]`` for each ``(i, start, end)`` of ``spec``."""
    timer = BlockExecStats.timer()
    return _finish([blocks[i].slice(a, b - a) for i, a, b in spec], timer)


def zip_blocks(
    left: pa.Table, right_spec: list[tuple[int, int, int]], *right_blocks: pa.Table
) -> tuple[pa.Table, BlockMetadata]:
    """``left`` with the columns of the matching rows of the right side appended."""
    timer = BlockExecStats.timer()
    right = concat_blocks([right_blocks[i].slice(a, b - a) for i, a, b in right_spec])
    out = left
    names = set(left.column_names)
    for i, name in enumerate(right.column_names):
        new = name
        suffix = 1
        while new in names:
            new = f"{name}_{suffix}"
            suffix += 1
        names.add(new)
        out = out.append_column(new, right.column(i))
    return _finish([out], timer)


def to_numpy(block: pa.Table, column: str | None) -> Any:
    from shoal.data._convert import column_to_numpy, table_to_numpy

    if column is not None:
        return column_to_numpy(block.column(column))
    return table_to_numpy(block)


def to_pandas(block: pa.Table) -> Any:
    from shoal.data._convert import block_to_batch

    return block_to_batch(block, "pandas")


def value_to_block(value: Any) -> tuple[pa.Table, BlockMetadata]:
    """A block from a pandas DataFrame or an ndarray already in the object store."""
    if isinstance(value, np.ndarray):
        table = ndarray_to_block(value)
    else:
        table = compact(batch_to_block(value, "a value behind the refs given"))
    return table, BlockMetadata.of(table)


def unique(block: pa.Table, column: str) -> pa.Array:
    if column not in block.column_names:
        if block.num_columns == 0:
            return pa.array([])
        raise ValueError(f"unique: no column {column!r} in the dataset (columns: {block.column_names})")
    return _aggops.unique_values(block, column)


# -- remote wrappers, made on first use ------------------------------------------------

_REMOTE: dict[tuple[str, int], Any] = {}


_FUNCS = {
    "run_map": run_map,
    "sample": sample,
    "sort_map": sort_map,
    "sort_reduce": sort_reduce,
    "shuffle_map": shuffle_map,
    "shuffle_reduce": shuffle_reduce,
    "agg_partial": agg_partial,
    "agg_partition": agg_partition,
    "agg_reduce": agg_reduce,
    "slice_concat": slice_concat,
    "zip_blocks": zip_blocks,
    "to_numpy": to_numpy,
    "to_pandas": to_pandas,
    "unique": unique,
    "value_to_block": value_to_block,
}


def remote_fn(name: str, num_returns: int = 1) -> Any:
    """The remote function ``name`` with ``num_returns`` return values."""
    key = (name, num_returns)
    fn = _REMOTE.get(key)
    if fn is None:
        fn = _REMOTE[key] = shoal.remote(num_returns=num_returns)(_FUNCS[name])
    return fn


def map_worker_class() -> Any:
    fn = _REMOTE.get(("MapWorker", 0))
    if fn is None:
        fn = _REMOTE[("MapWorker", 0)] = shoal.remote(MapWorker)
    return fn
