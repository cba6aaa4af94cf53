"""Grouped aggregation of numeric columns by numpy over group ids.

Arrow's ``Table.group_by`` runs its query engine, whose import loads pandas
(about 40 MB in every worker that groups). Here keys become group ids with
Arrow's ``unique``/``index_in`` kernels, and the built-in aggregations
(counts, sum, min, max, mean, variance) of integer and float columns are
numpy reductions over those ids, with Arrow's null, NaN and type rules.
Anything else (string minimums, say) returns ``None`` and the caller uses
Arrow's engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.data._numpy_arrow import to_arrow, to_numpy
from shoal.data._partition import _split_by_ids

__all__ = ["group_by", "split_by_keys"]

# A spec: (column or [], Arrow function name, options, output name).
Spec = tuple[Any, str, Any, str]

_VALUE_FUNCS = frozenset({"sum", "min", "max", "mean", "variance"})


def group_by(table: pa.Table, keys: Sequence[str], specs: Sequence[Spec], ordered: bool = True) -> pa.Table | None:
    """Keys + one column per spec; None when unsupported.

    Groups come in order of first appearance, or in any order when not ``ordered``.
    """
    plans = []
    for col, func, opts, name in specs:
        if func == "count_all":
            plans.append((col, func, None, name))
            continue
        decoded = _decode(func, opts)
        if decoded is None or (func != "count" and not _numeric(table.schema.field(col).type)):
            return None
        plans.append((col, func, decoded, name))
    try:
        grouping = _Grouping.of(table, keys, ordered)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # key types the hash kernels do not take (dictionaries, structs, lists)
    columns: dict[str, Any] = dict(zip(keys, grouping.key_columns, strict=True))
    for col, func, decoded, name in plans:
        if func == "count_all":
            columns[name] = grouping.output(grouping.sizes.astype(np.int64, copy=False), None)
        elif func == "count":
            columns[name] = grouping.output(_count(table.column(col), grouping, decoded), None)
        else:
            out, null = _reduce(table.column(col), grouping, func, *decoded)
            columns[name] = grouping.output(out, null, table.schema.field(col).type if func in ("min", "max") else None)
    return pa.table(columns)


def split_by_keys(table: pa.Table, keys: Sequence[str]) -> list[tuple[tuple[Any, ...], pa.Table]]:
    """The rows of each distinct combination of ``keys`` (first appearance first), with its key values."""
    grouping = _Grouping.of(table, keys, ordered=True)
    values = [column.to_pylist() for column in grouping.key_columns]
    parts = _split_by_ids(table, grouping.ids, grouping.slots)
    return [(tuple(v[slot] for v in values), rows) for slot, rows in enumerate(parts)]


class _Grouping:
    """Each row's slot (``ids``), the number of slots, and which slots are groups.

    Slots are the groups themselves, numbered by first appearance, except for an
    unordered grouping by one integer column of small range: there the values are
    the slots (no hashing), and ``keep`` marks the values present.
    """

    def __init__(
        self,
        ids: np.ndarray,
        slots: int,
        key_columns: list[Any],
        sizes: np.ndarray | None = None,
        keep: np.ndarray | None = None,
    ) -> None:
        self.ids = ids
        self.slots = slots
        self.key_columns = key_columns
        self._sizes = sizes
        self.keep = keep

    @property
    def sizes(self) -> np.ndarray:
        """Rows per slot."""
        if self._sizes is None:
            self._sizes = _sums(self.ids, None, self.slots)
        return self._sizes

    @classmethod
    def of(cls, table: pa.Table, keys: Sequence[str], ordered: bool) -> _Grouping:
        if table.num_rows == 0:
            return cls(np.zeros(0, dtype=np.intp), 0, [table.column(k).combine_chunks() for k in keys])
        if not ordered and len(keys) == 1:
            direct = cls._direct(table.column(keys[0]))
            if direct is not None:
                return direct
        return cls._hashed(table, keys)

    @classmethod
    def _direct(cls, column: pa.ChunkedArray) -> _Grouping | None:
        typ = column.type
        if not pa.types.is_integer(typ) or column.null_count:
            return None
        values = to_numpy(column)
        base = min(0, int(values.min()))
        slots = int(values.max()) - base + 1
        if slots > max(4 * len(values), 1 << 16):
            return None  # sparse keys: hashing is cheaper than that many slots
        ids = values if base == 0 and values.dtype == np.intp else (values.astype(np.int64) - base).astype(np.intp)
        sizes = _sums(ids, None, slots)
        present = np.flatnonzero(sizes) + base
        return cls(ids, slots, [to_arrow(present.astype(values.dtype))], sizes, keep=sizes > 0)

    @classmethod
    def _hashed(cls, table: pa.Table, keys: Sequence[str]) -> _Grouping:
        uniques = []
        combined: np.ndarray | None = None
        for k in keys:
            column = table.column(k)
            values = pc.call_function("unique", [column])
            codes = to_numpy(pc.call_function("index_in", [column], pc.SetLookupOptions(values, skip_nulls=False)))
            codes = codes.astype(np.intp)
            uniques.append(values)
            if combined is None:
                combined = codes
            else:
                if combined.max() >= (1 << 62) // max(1, len(values)):
                    combined = np.unique(combined, return_inverse=True)[1].astype(np.intp)
                combined = combined * len(values) + codes
        assert combined is not None
        if len(keys) == 1:
            # ``unique`` lists values in order of first appearance, so the codes are group ids.
            return cls(combined, len(uniques[0]), [uniques[0]])
        _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        rows = to_arrow(first[order].astype(np.int64))
        key_columns = [table.column(k).take(rows).combine_chunks() for k in keys]
        return cls(rank[inverse.reshape(-1)].astype(np.intp), len(order), key_columns)

    def output(self, values: np.ndarray, null: np.ndarray | None, typ: pa.DataType | None = None) -> pa.Array:
        """One value per group as an Arrow array (``null`` marks nulls; ``typ`` is cast to)."""
        if self.keep is not None:
            values = values[self.keep]
            null = null[self.keep] if null is not None else None
        result = to_arrow(values, mask=null)
        return result.cast(typ) if typ is not None and result.type != typ else result


def _candidates(func: str) -> list[tuple[Any, Any]]:
    """(options, what they say) for every option value this module handles."""
    if func == "count":
        return [(pc.CountOptions(mode=m), m) for m in ("only_valid", "only_null", "all")]
    flags = [(skip, n) for skip in (True, False) for n in (0, 1)]
    if func == "variance":
        return [(pc.VarianceOptions(ddof=0, skip_nulls=skip, min_count=n), (skip, n)) for skip, n in flags]
    return [(pc.ScalarAggregateOptions(skip_nulls=skip, min_count=n), (skip, n)) for skip, n in flags]


def _decode(func: str, opts: Any) -> Any:
    """A count's mode, or (skip_nulls, min_count); None for options or functions not handled here.

    pyarrow's option objects do not expose their fields, only equality.
    """
    if func != "count" and func not in _VALUE_FUNCS:
        return None
    if opts is None:
        return "only_valid" if func == "count" else (True, 1)
    for candidate, meaning in _candidates(func):
        if opts == candidate:
            return meaning
    return None


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _sums(ids: np.ndarray, values: np.ndarray | None, slots: int) -> np.ndarray:
    """Per-slot sums of ``values`` (float64), or row counts (int64) when None.

    Not ``np.bincount``: it copies read-only inputs, and Arrow's memory is read-only.
    """
    out = np.zeros(slots, dtype=np.int64 if values is None else np.float64)
    np.add.at(out, ids, 1 if values is None else values)
    return out


def _validity(column: pa.ChunkedArray) -> np.ndarray | None:
    """True where a value is set; None when none is null."""
    if column.null_count == 0:
        return None
    return to_numpy(pc.is_valid(column))


def _count(column: pa.ChunkedArray, grouping: _Grouping, mode: str) -> np.ndarray:
    ids, slots = grouping.ids, grouping.slots
    valid = _validity(column)
    if mode == "all" or (valid is None and mode == "only_valid"):
        counts = grouping.sizes
    elif valid is None:
        counts = np.zeros(slots, dtype=np.int64)
    else:
        counts = _sums(ids[valid if mode == "only_valid" else ~valid], None, slots)
    return counts.astype(np.int64, copy=False)


def _reduce(
    column: pa.ChunkedArray, grouping: _Grouping, func: str, skip_nulls: bool, min_count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-slot values and null mask of ``func`` over ``column``."""
    slots = grouping.slots
    typ = column.type
    valid = _validity(column)
    if valid is None:
        values = to_numpy(column)
        ids = grouping.ids
        nulls = None
        counts = grouping.sizes
    else:
        values = to_numpy(pc.fill_null(column, 0))[valid]
        ids = grouping.ids[valid]
        nulls = _sums(grouping.ids[~valid], None, slots)
        counts = _sums(ids, None, slots)
    is_float = pa.types.is_floating(typ)
    if func == "sum":
        if is_float:
            out: np.ndarray = _sums(ids, values, slots)
        else:
            acc = np.uint64 if pa.types.is_unsigned_integer(typ) else np.int64
            out = np.zeros(slots, dtype=acc)
            np.add.at(out, ids, values.astype(acc, copy=False))
    elif func in ("min", "max"):
        if is_float:
            # Arrow's min/max pass over NaN; a group of only NaN gives NaN.
            out = np.full(slots, np.nan, dtype=values.dtype)
            (np.fmin if func == "min" else np.fmax).at(out, ids, values)
        else:
            info = np.iinfo(values.dtype)
            out = np.full(slots, info.max if func == "min" else info.min, dtype=values.dtype)
            (np.minimum if func == "min" else np.maximum).at(out, ids, values)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = _sums(ids, values, slots) / counts
            if func == "mean":
                out = mean
            else:
                dev = values - mean[ids]
                out = _sums(ids, dev * dev, slots) / counts
            out = out.astype(np.float64, copy=False)
    null = counts < min_count
    if func in ("min", "max"):
        null |= counts == 0  # nothing to pick (a mean of nothing is NaN, as in Arrow)
    if not skip_nulls and nulls is not None:
        null |= nulls > 0
    return out, null
