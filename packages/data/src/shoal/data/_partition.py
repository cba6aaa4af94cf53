"""Block-level sorting, range partitioning and random partitioning.

Plain functions over pyarrow Tables (numpy fast paths where Arrow is slower),
used by the map and reduce tasks of sort, groupby and random_shuffle. Every
table these functions return owns its buffers (no slices of a larger table),
because they go to the object store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.data._convert import compact
from shoal.data._numpy_arrow import to_arrow, to_numpy

__all__ = [
    "SortKey",
    "sort_indices",
    "sort_table",
    "sample_keys",
    "compute_boundaries",
    "range_partition",
    "random_partition",
    "random_permute",
    "slice_table",
]


class SortKey:
    """Columns to sort by and a direction per column."""

    def __init__(self, key: str | Sequence[str], descending: bool | Sequence[bool] = False) -> None:
        columns = [key] if isinstance(key, str) else list(key)
        if not columns or not all(isinstance(c, str) for c in columns):
            raise ValueError(f"sort key must be a column name or a non-empty list of names, got {key!r}")
        if isinstance(descending, bool):
            desc = [descending] * len(columns)
        else:
            desc = [bool(d) for d in descending]
            if len(desc) != len(columns):
                raise ValueError(f"descending has {len(desc)} values but the sort key has {len(columns)} columns")
        self.columns = columns
        self.descending = desc

    def arrow_keys(self) -> list[tuple[str, str]]:
        return [(c, "descending" if d else "ascending") for c, d in zip(self.columns, self.descending, strict=True)]

    def check(self, schema: pa.Schema) -> None:
        for c in self.columns:
            if c not in schema.names:
                raise ValueError(f"sort key column {c!r} is not in the dataset (columns: {schema.names})")

    def __repr__(self) -> str:
        return f"SortKey({self.columns}, descending={self.descending})"


def _numeric(col: pa.ChunkedArray) -> bool:
    t = col.type
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)) and col.null_count == 0


def sort_indices(table: pa.Table, key: SortKey, *, presorted_runs: bool = False) -> np.ndarray:
    """Row order that sorts ``table`` by ``key`` (nulls last).

    A single numeric key without nulls goes through numpy, which sorts
    several times faster than Arrow here; ``presorted_runs`` picks a merge
    sort, which is linear-ish on concatenated sorted runs.
    """
    if len(key.columns) == 1 and _numeric(table.column(key.columns[0])):
        values = to_numpy(table.column(key.columns[0]))
        if values.dtype.kind == "f" and np.isnan(values).any():
            return to_numpy(pc.sort_indices(table, sort_keys=key.arrow_keys()))
        idx = np.argsort(values, kind="stable" if presorted_runs else "quicksort")
        return idx[::-1] if key.descending[0] else idx
    return to_numpy(pc.sort_indices(table, sort_keys=key.arrow_keys()))


def sort_table(table: pa.Table, key: SortKey, *, presorted_runs: bool = False) -> pa.Table:
    if table.num_rows <= 1:
        return table
    return table.take(to_arrow(sort_indices(table, key, presorted_runs=presorted_runs)))


def _key_values(col: pa.ChunkedArray) -> np.ndarray:
    """Non-null values of a key column as a numpy array usable with searchsorted."""
    return to_numpy(col.drop_null() if col.null_count else col)


def sample_keys(table: pa.Table, column: str, n: int, seed: int | None = None) -> np.ndarray:
    """Up to ``n`` values of ``column`` drawn at random (nulls left out)."""
    values = _key_values(table.column(column))
    if len(values) <= n:
        return values.copy()
    rng = np.random.default_rng(seed)
    return values[rng.choice(len(values), size=n, replace=False)]


def compute_boundaries(samples: list[np.ndarray], num_partitions: int, descending: bool) -> np.ndarray:
    """``num_partitions - 1`` split points from samples of the first key column (always ascending)."""
    samples = [s for s in samples if len(s)]
    if num_partitions <= 1 or not samples:
        return np.array([])
    allv = np.sort(np.concatenate(samples), kind="stable")
    cuts = [allv[min(len(allv) - 1, (len(allv) * i) // num_partitions)] for i in range(1, num_partitions)]
    return np.array(cuts, dtype=allv.dtype)


def _partition_ids(col: pa.ChunkedArray, boundaries: np.ndarray, descending: bool) -> np.ndarray:
    """The partition of each row: ascending ranges by ``boundaries``, nulls in the last."""
    p = len(boundaries) + 1
    n = len(col)
    ids = np.full(n, p - 1, dtype=np.int64)
    valid = None if col.null_count == 0 else to_numpy(pc.is_valid(col))
    values = _key_values(col)
    part = np.searchsorted(boundaries, values, side="right") if len(boundaries) else np.zeros(len(values), np.int64)
    if descending:
        part = (p - 1) - part
    if valid is None:
        ids[:] = part
    else:
        ids[valid] = part
    return ids


def _split_by_ids(table: pa.Table, ids: np.ndarray, p: int) -> list[pa.Table]:
    order = np.argsort(ids, kind="stable")
    counts = np.bincount(ids, minlength=p)
    out = []
    start = 0
    for c in counts:
        out.append(table.take(to_arrow(order[start : start + c])) if c else table.schema.empty_table())
        start += c
    return out


def range_partition(table: pa.Table, key: SortKey, boundaries: np.ndarray, *, sort: bool) -> list[pa.Table]:
    """Split ``table`` into ``len(boundaries) + 1`` parts by ranges of the first key column.

    With ``sort`` each part comes out sorted by the whole key (the map side
    of a distributed sort).
    """
    p = len(boundaries) + 1
    col = table.column(key.columns[0])
    if not sort:
        if p == 1:
            return [table]
        return _split_by_ids(table, _partition_ids(col, boundaries, key.descending[0]), p)
    idx = sort_indices(table, key)
    if p == 1:
        return [table.take(to_arrow(idx))]
    # Along the sorted order the first key is monotonic (nulls last), so the
    # parts are runs of idx found by binary search of the boundaries.
    first = table.column(key.columns[0]).take(to_arrow(idx))
    valid = len(first) - first.null_count
    values = _key_values(first.slice(0, valid))
    if key.descending[0]:
        # Descending values: search the reversed (ascending) run, then mirror the cuts.
        inner = sorted(valid - int(c) for c in np.searchsorted(values[::-1], boundaries, side="left"))
    else:
        inner = [int(c) for c in np.searchsorted(values, boundaries, side="left")]
    # The last part also takes the nulls, which sort after every value.
    cuts = [0, *inner, len(idx)]
    return [
        table.take(to_arrow(idx[cuts[i] : cuts[i + 1]])) if cuts[i + 1] > cuts[i] else table.schema.empty_table()
        for i in range(p)
    ]


def _rng(seed: Any) -> np.random.Generator:
    return np.random.default_rng(seed)


def random_partition(table: pa.Table, num_parts: int, seed: Any) -> list[pa.Table]:
    """Send each row of ``table`` to one of ``num_parts`` parts chosen uniformly at random.

    Rows keep their order within a part: the reduce side permutes what it
    receives, and a uniformly random assignment followed by a uniform
    permutation of each part is a uniform shuffle of the whole. Drawing part
    ids and splitting by them costs a third less than permuting here too.
    """
    if num_parts == 1:
        return [table]
    dtype = np.uint8 if num_parts <= 256 else np.int64
    return _split_by_ids(table, _rng(seed).integers(0, num_parts, table.num_rows, dtype=dtype), num_parts)


def random_permute(table: pa.Table, seed: Any) -> pa.Table:
    if table.num_rows <= 1:
        return table
    return table.take(to_arrow(_rng(seed).permutation(table.num_rows)))


def slice_table(table: pa.Table, start: int, end: int) -> pa.Table:
    """Rows ``[start, end)`` as a table that owns its buffers."""
    return compact(table.slice(start, max(0, end - start)))
