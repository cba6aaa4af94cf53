"""Aggregations for ``Dataset.aggregate`` and ``GroupedData.aggregate``.

The built-ins (:class:`Count`, :class:`Sum`, :class:`Min`, :class:`Max`,
:class:`Mean`, :class:`Std`, :class:`AbsMax`) are computed with Arrow's
vectorized hash aggregation in two phases: a partial state per block, then a
merge of the partial states of each group. :class:`AggregateFn` runs any
Python accumulator in the same two phases, one group at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shoal.data._numpy_arrow import to_arrow, to_numpy

__all__ = ["AbsMax", "AggregateFn", "Count", "Max", "Mean", "Min", "Quantile", "Std", "Sum", "Unique"]

# One hash-aggregation of pyarrow: (input column or [] for count_all, function, options, output name).
ArrowSpec = tuple[Any, str, Any, str]


class AggregateFn:
    """An aggregation defined by Python callables.

    ``init(key)`` makes an accumulator for a group, ``accumulate_row(acc, row)``
    or ``accumulate_block(acc, block)`` folds data into it, ``merge(a, b)``
    combines two accumulators, and ``finalize(acc)`` gives the result
    (the accumulator itself if omitted). ``name`` names the output column.
    """

    def __init__(
        self,
        init: Callable[[Any], Any],
        merge: Callable[[Any, Any], Any],
        name: str,
        accumulate_row: Callable[[Any, dict[str, Any]], Any] | None = None,
        accumulate_block: Callable[[Any, pa.Table], Any] | None = None,
        finalize: Callable[[Any], Any] | None = None,
    ) -> None:
        if (accumulate_row is None) == (accumulate_block is None):
            raise ValueError("AggregateFn needs exactly one of accumulate_row and accumulate_block")
        if not isinstance(name, str) or not name:
            raise ValueError(f"AggregateFn needs a non-empty name, got {name!r}")
        for arg, fn in (("init", init), ("merge", merge)):
            if not callable(fn):
                raise TypeError(f"AggregateFn argument {arg!r} must be callable, got {fn!r}")
        self.init = init
        self.merge = merge
        self.name = name
        self.accumulate_row = accumulate_row
        self.accumulate_block = accumulate_block
        self.finalize = finalize if finalize is not None else (lambda acc: acc)

    def _validate(self, schema: pa.Schema | None) -> None:
        """Check the columns this aggregation reads exist (built-ins only)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class _ArrowAgg(AggregateFn):
    """A built-in aggregation: vectorized partial states merged per group."""

    _label = ""

    def __init__(self, on: str | None, ignore_nulls: bool, alias_name: str | None) -> None:
        if on is not None and not isinstance(on, str):
            raise TypeError(f"{type(self).__name__}: 'on' must be a column name, got {on!r}")
        self.on = on
        self.ignore_nulls = bool(ignore_nulls)
        self.name = alias_name or f"{self._label}({on or ''})"
        self.accumulate_row = None
        self.accumulate_block = None

    def _validate(self, schema: pa.Schema | None) -> None:
        if self.on is not None and schema is not None and self.on not in schema.names:
            raise ValueError(f"{self.name}: no column {self.on!r} in the dataset (columns: {schema.names})")

    def _opts(self) -> pc.ScalarAggregateOptions:
        return pc.ScalarAggregateOptions(skip_nulls=self.ignore_nulls, min_count=1 if self.ignore_nulls else 0)

    # The three phases; p is a prefix that keeps this aggregation's state columns apart.
    def partial_specs(self, p: str) -> list[ArrowSpec]:
        raise NotImplementedError(f"{type(self).__name__} must implement partial_specs()")  # each built-in aggregation

    def merge_specs(self, p: str) -> list[ArrowSpec]:
        raise NotImplementedError(f"{type(self).__name__} must implement merge_specs()")  # each built-in aggregation

    def finalize_arrow(self, merged: pa.Table, p: str) -> pa.Array:
        raise NotImplementedError(f"{type(self).__name__} must implement finalize_arrow()")  # each built-in aggregation

    def custom_merge(self) -> bool:
        """True when merging needs :meth:`merge_numpy` (per-partial broadcasting) instead of Arrow."""
        return False

    def merge_numpy(self, partial: pa.Table, gid: np.ndarray, groups: int, p: str) -> pa.Array:
        """Final values from partial rows sorted by group (``gid``: each row's group)."""
        raise NotImplementedError(f"{type(self).__name__} must implement merge_numpy()")  # each built-in aggregation


class Count(_ArrowAgg):
    """Number of rows (or of non-null values of ``on`` when ``ignore_nulls``)."""

    _label = "count"

    def __init__(self, on: str | None = None, ignore_nulls: bool = False, alias_name: str | None = None) -> None:
        super().__init__(on, ignore_nulls, alias_name)

    def partial_specs(self, p: str) -> list[ArrowSpec]:
        if self.on is None:
            return [([], "count_all", None, f"{p}n")]
        mode = "only_valid" if self.ignore_nulls else "all"
        return [(self.on, "count", pc.CountOptions(mode=mode), f"{p}n")]

    def merge_specs(self, p: str) -> list[ArrowSpec]:
        return [(f"{p}n", "sum", None, f"{p}n")]

    def finalize_arrow(self, merged: pa.Table, p: str) -> pa.Array:
        return pc.fill_null(merged[f"{p}n"], 0).cast(pa.int64())


class _Simple(_ArrowAgg):
    """Aggregations whose partial and merge step are the same function."""

    _func = ""

    def __init__(self, on: str | None = None, ignore_nulls: bool = True, alias_name: str | None = None) -> None:
        if on is None:
            raise ValueError(f"{type(self).__name__} needs a column: {type(self).__name__}(on='column')")
        super().__init__(on, ignore_nulls, alias_name)

    def partial_specs(self, p: str) -> list[ArrowSpec]:
        return [(self.on, self._func, self._opts(), f"{p}v")]

    def merge_specs(self, p: str) -> list[ArrowSpec]:
        return [(f"{p}v", self._func, self._opts(), f"{p}v")]

    def finalize_arrow(self, merged: pa.Table, p: str) -> pa.Array:
        return merged[f"{p}v"]


class Sum(_Simple):
    """Sum of a column; None for a group with no values."""

    _label = "sum"
    _func = "sum"


class Min(_Simple):
    """Smallest value of a column."""

    _label = "min"
    _func = "min"


class Max(_Simple):
    """Largest value of a column."""

    _label = "max"
    _func = "max"


class AbsMax(_ArrowAgg):
    """Largest absolute value of a column."""

    _label = "abs_max"

    def __init__(self, on: str | None = None, ignore_nulls: bool = True, alias_name: str | None = None) -> None:
        if on is None:
            raise ValueError("AbsMax needs a column: AbsMax(on='column')")
        super().__init__(on, ignore_nulls, alias_name)

    def partial_specs(self, p: str) -> list[ArrowSpec]:
        return [(self.on, "min", self._opts(), f"{p}lo"), (self.on, "max", self._opts(), f"{p}hi")]

    def merge_specs(self, p: str) -> list[ArrowSpec]:
        return [(f"{p}lo", "min", self._opts(), f"{p}lo"), (f"{p}hi", "max", self._opts(), f"{p}hi")]

    def finalize_arrow(self, merged: pa.Table, p: str) -> pa.Array:
        return pc.max_element_wise(pc.abs(merged[f"{p}lo"]), pc.abs(merged[f"{p}hi"]))


class Mean(_ArrowAgg):
    """Arithmetic mean of a column (float64)."""

    _label = "mean"

    def __init__(self, on: str | None = None, ignore_nulls: bool = True, alias_name: str | None = None) -> None:
        if on is None:
            raise ValueError("Mean needs a column: Mean(on='column')")
        super().__init__(on, ignore_nulls, alias_name)

    def partial_specs(self, p: str) -> list[ArrowSpec]:
        opts = pc.ScalarAggregateOptions(skip_nulls=self.ignore_nulls, min_count=0)
        return [
            (self.on, "sum", opts, f"{p}s"),
            (self.on, "count", pc.CountOptions(mode="only_valid"), f"{p}n"),
        ]

    def merge_specs(self, p: str) -> list[ArrowSpec]:
        opts = pc.ScalarAggregateOptions(skip_nulls=self.ignore_nulls, min_count=0)
        return [(f"{p}s", "sum", opts, f"{p}s"), (f"{p}n", "sum", None, f"{p}n")]

    def finalize_arrow(self, merged: pa.Table, p: str) -> pa.Array:
        n = to_numpy(merged[f"{p}n"]).astype(np.float64)
        s = merged[f"{p}s"].cast(pa.float64())
        null = np.asarray(to_numpy(pc.is_null(s)), dtype=bool) | (n == 0)
        values = np.nan_to_num(to_numpy(s)) / np.where(n == 0, 1.0, n)
        return to_arrow(values, mask=null)


class Std(_ArrowAgg):
    """Standard deviation of a column with ``ddof`` delta degrees of freedom (float64).

    Partial states are (count, mean, sum of squared deviations), merged with
    the parallel formula of Chan et al., which stays accurate when the mean is
    large next to the spread.
    """

    _label = "std"

    def __init__(
        self, on: str | None = None, ddof: int = 1, ignore_nulls: bool = True, alias_name: str | None = None
    ) -> None:
        if on is None:
            raise ValueError("Std needs a column: Std(on='column')")
        if isinstance(ddof, bool) or not isinstance(ddof, int) or ddof < 0:
            raise ValueError(f"Std: ddof must be an integer >= 0, got {ddof!r}")
        super().__init__(on, ignore_nulls, alias_name)
        self.ddof = ddof

    def custom_merge(self) -> bool:
        return True

    def partial_specs(self, p: str) -> list[ArrowSpec]:
        return [
            (self.on, "count", pc.CountOptions(mode="only_valid"), f"{p}n"),
            (self.on, "count", pc.CountOptions(mode="only_null"), f"{p}nulls"),
            (self.on, "mean", pc.ScalarAggregateOptions(skip_nulls=True, min_count=1), f"{p}mean"),
            (self.on, "variance", pc.VarianceOptions(ddof=0, skip_nulls=True, min_count=1), f"{p}var"),
        ]

    def merge_numpy(self, partial: pa.Table, gid: np.ndarray, groups: int, p: str) -> pa.Array:
        n_i = to_numpy(partial[f"{p}n"]).astype(np.float64)
        nulls = np.bincount(gid, to_numpy(partial[f"{p}nulls"]), minlength=groups)
        mean_i = np.nan_to_num(to_numpy(partial[f"{p}mean"]).astype(np.float64))
        m2_i = np.nan_to_num(to_numpy(partial[f"{p}var"]).astype(np.float64)) * n_i
        n = np.bincount(gid, n_i, minlength=groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(gid, n_i * mean_i, minlength=groups) / n
            dev = mean_i - np.nan_to_num(mean)[gid]
            m2 = np.bincount(gid, m2_i + n_i * dev * dev, minlength=groups)
            # NaN where there are values but not more than ddof of them (as numpy and Ray).
            std = np.where(n - self.ddof > 0, np.sqrt(np.maximum(m2, 0.0) / np.maximum(n - self.ddof, 1)), np.nan)
        invalid = n == 0
        if not self.ignore_nulls:
            invalid |= nulls > 0
        return to_arrow(std, mask=invalid)


class _ColumnValues(AggregateFn):
    """Aggregations that need a group's values themselves: gathered per block, then merged."""

    def __init__(
        self, label: str, on: str, ignore_nulls: bool, alias_name: str | None, result: Callable[[list[Any]], Any]
    ) -> None:
        if not isinstance(on, str) or not on:
            raise ValueError(f"{type(self).__name__} needs a column: {type(self).__name__}(on='column')")
        self.on = on
        self.ignore_nulls = ignore_nulls
        super().__init__(
            init=lambda key: [],
            merge=lambda a, b: a + b,
            name=alias_name or f"{label}({on})",
            accumulate_block=self._gather,
            finalize=result,
        )

    def _validate(self, schema: pa.Schema | None) -> None:
        if schema is not None and self.on not in schema.names:
            raise ValueError(f"{self.name}: column {self.on!r} is not in the dataset (columns: {schema.names})")

    def _gather(self, acc: list[Any], block: pa.Table) -> list[Any]:
        column = block.column(self.on)
        if self.ignore_nulls:
            column = column.drop_null()
        acc.extend(column.to_pylist())
        return acc


class Quantile(_ColumnValues):
    """The ``q``-quantile of a column, interpolated linearly between the nearest values."""

    def __init__(self, on: str, q: float = 0.5, ignore_nulls: bool = True, alias_name: str | None = None) -> None:
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
            raise ValueError(f"Quantile: q must be between 0 and 1, got {q!r}")
        self.q = float(q)
        super().__init__("quantile", on, ignore_nulls, alias_name, self._result)

    def _result(self, values: list[Any]) -> Any:
        if not values or (not self.ignore_nulls and any(v is None for v in values)):
            return None
        return float(np.quantile(np.asarray(values, dtype=np.float64), self.q))


class Unique(_ColumnValues):
    """The distinct values of a column, as a list (sorted when they compare)."""

    def __init__(self, on: str, ignore_nulls: bool = True, alias_name: str | None = None) -> None:
        super().__init__("unique", on, ignore_nulls, alias_name, self._result)

    def _result(self, values: list[Any]) -> Any:
        distinct = list(dict.fromkeys(values))
        try:
            return sorted(distinct, key=lambda v: (v is None, v))
        except TypeError:
            return distinct
