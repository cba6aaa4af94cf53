"""Block-level grouped aggregation: partial states per block, then merge and finalize.

``partial_aggregate`` turns a block into one row per group holding each
aggregation's partial state; ``merge_aggregate`` combines partial rows of
the same group (from many blocks) into the final values, sorted by key.
Built-in aggregations are vectorized (numpy over group ids, else Arrow's
hash aggregation); :class:`~shoal.data.aggregate.AggregateFn` runs per group.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.data import _hashagg
from shoal.data._convert import array_from_values, concat_blocks, rows_of
from shoal.data._numpy_arrow import to_arrow, to_numpy
from shoal.data._partition import SortKey, sort_table
from shoal.data.aggregate import AggregateFn, _ArrowAgg

__all__ = ["partial_aggregate", "merge_aggregate", "group_offsets", "iter_groups", "unique_values"]


def _prefix(i: int) -> str:
    return f"__agg{i}_"


def _spec_tuple(col: Any, func: str, opts: Any) -> tuple[Any, ...]:
    return (col, func) if opts is None else (col, func, opts)


def _group_by(table: pa.Table, keys: Sequence[str], specs: list[tuple[Any, str, Any, str]], ordered: bool) -> pa.Table:
    """Hash aggregation; output columns renamed to keys + the specs' names.

    ``ordered`` keeps groups in order of first appearance (single-threaded).
    """
    if not keys:
        return _aggregate_all(table, specs)
    out = _hashagg.group_by(table, keys, specs, ordered)
    if out is not None:
        return out
    out = table.group_by(list(keys), use_threads=not ordered).aggregate([_spec_tuple(c, f, o) for c, f, o, _ in specs])
    return out.rename_columns([*keys, *[name for *_, name in specs]])


def _aggregate_all(table: pa.Table, specs: list[tuple[Any, str, Any, str]]) -> pa.Table:
    """The one-row result of aggregating without keys, by Arrow's scalar kernels.

    ``Table.group_by`` would load Arrow's query engine, and with it pandas
    (~40 MB per worker), for what a kernel call per column does.
    """
    columns: dict[str, pa.Array] = {}
    for col, func, opts, name in specs:
        if func == "count_all":
            columns[name] = to_arrow(np.array([table.num_rows], dtype=np.int64))
        else:
            columns[name] = pa.repeat(pc.call_function(func, [table.column(col)], opts), 1)
    if not columns:
        # Still the one row: Python aggregations add their states to it.
        return pa.table({"_": [0]}).drop_columns(["_"])
    return pa.table(columns)


def group_offsets(sorted_table: pa.Table, keys: Sequence[str]) -> np.ndarray:
    """Start offsets of each group (plus the end) in a table sorted by ``keys``."""
    if not keys:
        return np.array([0, sorted_table.num_rows])
    if sorted_table.num_rows == 0:
        return np.array([0])
    sizes = _group_by(sorted_table.select(list(keys)), keys, [([], "count_all", None, "__n")], True)
    return np.concatenate([[0], np.cumsum(to_numpy(sizes.column("__n")))])


def _key_of(table: pa.Table, keys: Sequence[str], row: int) -> Any:
    if not keys:
        return None
    values = tuple(table.column(k)[row].as_py() for k in keys)
    return values[0] if len(values) == 1 else values


def iter_groups(sorted_table: pa.Table, keys: Sequence[str]) -> Iterator[pa.Table]:
    """The groups of a table sorted by ``keys``, as slices."""
    offsets = group_offsets(sorted_table, keys)
    for a, b in itertools.pairwise(offsets):
        yield sorted_table.slice(int(a), int(b - a))


def _accumulate(agg: AggregateFn, key: Any, group: pa.Table) -> Any:
    acc = agg.init(key)
    if agg.accumulate_block is not None:
        return agg.accumulate_block(acc, group)
    assert agg.accumulate_row is not None
    for row in rows_of(group):
        acc = agg.accumulate_row(acc, row)
    return acc


def partial_aggregate(table: pa.Table, keys: Sequence[str], aggs: Sequence[AggregateFn]) -> pa.Table:
    """One row per group of ``table``: the key columns and every aggregation's partial state."""
    keys = list(keys)
    arrow_aggs = [(i, a) for i, a in enumerate(aggs) if isinstance(a, _ArrowAgg)]
    py_aggs = [(i, a) for i, a in enumerate(aggs) if not isinstance(a, _ArrowAgg)]
    specs = [s for i, a in arrow_aggs for s in a.partial_specs(_prefix(i))]
    if not py_aggs:
        return _group_by(table, keys, specs, ordered=False)
    # Python accumulators walk the groups in sorted order; the Arrow states
    # are computed in that same order so that the rows line up.
    if keys:
        table = sort_table(table, SortKey(keys))
    out = _group_by(table, keys, specs, ordered=True)
    offsets = group_offsets(table, keys)
    for i, agg in py_aggs:
        states = []
        for a, b in itertools.pairwise(offsets):
            group = table.slice(int(a), int(b - a))
            states.append(pickle.dumps(_accumulate(agg, _key_of(table, keys, int(a)), group)))
        out = out.append_column(f"{_prefix(i)}py", pa.array(states, pa.binary()))
    return out


def merge_aggregate(partials: Sequence[pa.Table], keys: Sequence[str], aggs: Sequence[AggregateFn]) -> pa.Table:
    """Final values per group from partial states, sorted by key; columns: keys, then each ``agg.name``."""
    keys = list(keys)
    table = concat_blocks([p for p in partials if p.num_rows > 0])
    if table.num_columns == 0:
        return table
    if keys:
        table = sort_table(table, SortKey(keys), presorted_runs=True)
    specs: list[tuple[Any, str, Any, str]] = [([], "count_all", None, "__rows")]
    for i, agg in enumerate(aggs):
        if isinstance(agg, _ArrowAgg) and not agg.custom_merge():
            specs.extend(agg.merge_specs(_prefix(i)))
    merged = _group_by(table, keys, specs, ordered=True)
    sizes = to_numpy(merged.column("__rows"))
    groups = len(sizes)
    gid = np.repeat(np.arange(groups), sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    columns: dict[str, Any] = {k: merged.column(k) for k in keys}
    for i, agg in enumerate(aggs):
        p = _prefix(i)
        if isinstance(agg, _ArrowAgg):
            custom = agg.custom_merge()
            values = agg.merge_numpy(table, gid, groups, p) if custom else agg.finalize_arrow(merged, p)
        else:
            states = table.column(f"{p}py").to_pylist()
            out = []
            for g in range(groups):
                acc = pickle.loads(states[offsets[g]])
                for j in range(offsets[g] + 1, offsets[g + 1]):
                    acc = agg.merge(acc, pickle.loads(states[j]))
                out.append(agg.finalize(acc))
            values = out
        if agg.name in columns:
            raise ValueError(f"two aggregations (or a key and an aggregation) are both named {agg.name!r}")
        columns[agg.name] = values

    return pa.table({name: array_from_values(v, name) for name, v in columns.items()})


def unique_values(table: pa.Table, column: str) -> pa.Array:
    """Distinct values of a column, in order of first appearance."""
    return table.column(column).unique()
