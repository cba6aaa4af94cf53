"""``Dataset.groupby(key)``: aggregations per group and ``map_groups``.

Results are sorted by key: groups are range-partitioned by key (from a
sample) after each block is reduced to one partial row per group.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from shoal.data import _convert
from shoal.data._args import compute_strategy, remote_args
from shoal.data._logical import AllToAll, MapOp
from shoal.data._partition import SortKey
from shoal.data._transforms import UDF, MapGroupsTransform
from shoal.data.aggregate import AggregateFn, Count, Max, Mean, Min, Std, Sum

if TYPE_CHECKING:
    from shoal.data.dataset import Dataset

__all__ = ["GroupedData"]


class GroupedData:
    """Rows grouped by key columns (no columns: the whole dataset is one group)."""

    def __init__(self, dataset: Dataset, keys: list[str], num_partitions: int | None) -> None:
        self._dataset = dataset
        self._keys = keys
        self._num_partitions = num_partitions

    def __repr__(self) -> str:
        return f"GroupedData(keys={self._keys})"

    def aggregate(self, *aggs: AggregateFn) -> Dataset:
        """One row per group: the key columns, then a column per aggregation (named ``agg.name``)."""
        if not aggs:
            raise ValueError("aggregate needs at least one aggregation")
        for agg in aggs:
            if not isinstance(agg, AggregateFn):
                raise TypeError(f"aggregate expects AggregateFn instances (Sum('x'), Count()...), got {agg!r}")
        names = [a.name for a in aggs]
        dup = {n for n in names if names.count(n) > 1} | (set(names) & set(self._keys))
        if dup:
            raise ValueError(f"aggregate: output column names must be unique, {sorted(dup)} repeat")
        label = ", ".join(names)
        op = AllToAll(
            self._dataset._plan,
            "aggregate",
            f"Aggregate({label})",
            keys=list(self._keys),
            aggs=list(aggs),
            num_partitions=self._num_partitions,
        )
        return self._dataset._with(op)

    def _per_column(self, cls: type, on: str | list[str] | None, **kw: Any) -> Dataset:
        if on is None:
            cols = [c for c in (self._dataset.columns() or []) if c not in self._keys]
        elif isinstance(on, str):
            cols = [on]
        else:
            cols = list(on)
        if not cols:
            raise ValueError(f"{cls.__name__.lower()}: no columns to aggregate")
        return self.aggregate(*[cls(c, **kw) for c in cols])

    def count(self) -> Dataset:
        """Rows per group, in a column ``count()``."""
        return self.aggregate(Count())

    def sum(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Dataset:
        return self._per_column(Sum, on, ignore_nulls=ignore_nulls)

    def min(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Dataset:
        return self._per_column(Min, on, ignore_nulls=ignore_nulls)

    def max(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Dataset:
        return self._per_column(Max, on, ignore_nulls=ignore_nulls)

    def mean(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Dataset:
        return self._per_column(Mean, on, ignore_nulls=ignore_nulls)

    def std(self, on: str | list[str] | None = None, ddof: int = 1, ignore_nulls: bool = True) -> Dataset:
        return self._per_column(Std, on, ddof=ddof, ignore_nulls=ignore_nulls)

    def map_groups(
        self,
        fn: Any,
        *,
        compute: Any = None,
        batch_format: str | None = "default",
        fn_args: Iterable[Any] | None = None,
        fn_kwargs: dict[str, Any] | None = None,
        fn_constructor_args: Iterable[Any] | None = None,
        fn_constructor_kwargs: dict[str, Any] | None = None,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        memory: float | None = None,
        concurrency: int | tuple[int, ...] | None = None,
        **ray_remote_args: Any,
    ) -> Dataset:
        """Apply ``fn`` to each group as one batch; it returns a batch (or yields several)."""
        fmt = _convert.check_batch_format(batch_format)
        udf = UDF(fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)
        args = remote_args(num_cpus, num_gpus, memory, ray_remote_args)
        strategy = compute_strategy(udf, compute, concurrency, args)
        if self._keys:
            # Sorted, range-partitioned blocks: every group lies within one block.
            sort_key = SortKey(self._keys)
            grouped = AllToAll(
                self._dataset._plan,
                "sort",
                f"Sort({', '.join(self._keys)})",
                key=sort_key,
                num_blocks=self._num_partitions,
            )
        else:
            grouped = AllToAll(self._dataset._plan, "repartition", "Repartition", num_blocks=1)
        transform = MapGroupsTransform(f"MapGroups({udf.name})", list(self._keys), udf, fmt)
        return self._dataset._with(MapOp(grouped, transform, compute=strategy, remote_args=args))
