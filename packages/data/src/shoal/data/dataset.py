"""The :class:`Dataset`: a lazy, immutable plan over blocks, and its transformations and consumers."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

import shoal
from shoal.data import _convert, _tasks
from shoal.data._args import check_count as _check_count
from shoal.data._args import columns_arg as _columns_arg
from shoal.data._args import compute_strategy as _compute
from shoal.data._args import remote_args as _remote_args
from shoal.data._executor import StreamingExecutor
from shoal.data._formats import CSVDatasink, JSONDatasink, NumpyDatasink, ParquetDatasink
from shoal.data._logical import (
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
from shoal.data._partition import SortKey
from shoal.data._planner import known_rows, known_schema, optimize, plan
from shoal.data._schema import Schema
from shoal.data._stats import DatasetStats
from shoal.data._transforms import (
    UDF,
    AddColumnTransform,
    BatchMapTransform,
    ExprFilterTransform,
    FilterTransform,
    FlatMapTransform,
    ProjectTransform,
    RowMapTransform,
    SampleTransform,
    WriteTransform,
)
from shoal.data._write import run_write
from shoal.data.aggregate import AggregateFn, Count, Max, Mean, Min, Std, Sum
from shoal.data.context import DataContext
from shoal.data.datasource import Datasink, FilenameProvider, SaveMode
from shoal.data.iterator import DataIterator, _DatasetIterator

__all__ = ["Dataset", "MaterializedDataset"]


class Dataset:
    """A distributed collection of rows in Arrow blocks, computed lazily and streamed.

    Transformations return new Datasets; consuming one (``take``,
    ``iter_batches``, ``write_parquet``...) runs the plan with the
    streaming executor.
    """

    def __init__(self, plan: LogicalOp) -> None:
        self._plan = plan
        self._last_stats: DatasetStats | None = None

    # -- plumbing ------------------------------------------------------------------------
    def _with(self, op: LogicalOp) -> Dataset:
        return Dataset(op)

    def _executor(self, ctx: DataContext | None = None) -> StreamingExecutor:
        ctx = ctx if ctx is not None else DataContext.get_current()
        ops = plan(optimize(self._plan), ctx)
        parent = self._plan.stats if isinstance(self._plan, InputData) else None
        return StreamingExecutor(ops, ctx, parent)

    def _iter_refs(self, ctx: DataContext | None = None) -> Generator[Any, None, None]:
        executor = self._executor(ctx)
        try:
            yield from executor
        finally:
            executor.shutdown()
            self._last_stats = executor.stats

    def _map(
        self, transform: Any, udf: UDF | None, compute: Any, concurrency: Any, remote_args: dict[str, Any], **kw: Any
    ) -> Dataset:
        strategy = (
            _compute(udf, compute, concurrency, remote_args) if udf is not None else TaskPoolStrategy(concurrency)
        )
        return self._with(MapOp(self._plan, transform, compute=strategy, remote_args=remote_args, **kw))

    # -- transformations ------------------------------------------------------------------
    def map_batches(
        self,
        fn: Any,
        *,
        batch_size: int | None = None,
        compute: Any = None,
        batch_format: str | None = "default",
        zero_copy_batch: bool = True,
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
        """Apply ``fn`` to batches (dict of ndarrays, DataFrame or Table) of ``batch_size`` rows.

        ``batch_size=None`` gives whole blocks. ``fn`` may be a callable class:
        it then runs on a pool of actors (``concurrency=n`` or ``(min, max)``)
        that construct it once with ``fn_constructor_args``.
        """
        if batch_size is not None:
            _check_count(batch_size, "batch_size", 1)
        fmt = _convert.check_batch_format(batch_format)
        udf = UDF(fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)
        args = _remote_args(num_cpus, num_gpus, memory, ray_remote_args)
        transform = BatchMapTransform(f"MapBatches({udf.name})", udf, batch_size, fmt, zero_copy_batch)
        return self._map(transform, udf, compute, concurrency, args, min_rows_per_bundle=batch_size)

    def map(
        self,
        fn: Any,
        *,
        compute: Any = None,
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
        """Apply ``fn`` to each row (a dict); it returns the new row (a dict)."""
        udf = UDF(fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)
        args = _remote_args(num_cpus, num_gpus, memory, ray_remote_args)
        return self._map(RowMapTransform(f"Map({udf.name})", udf), udf, compute, concurrency, args, preserves_rows=True)

    def flat_map(
        self,
        fn: Any,
        *,
        compute: Any = None,
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
        """Apply ``fn`` to each row; it returns a list of rows (dicts)."""
        udf = UDF(fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)
        args = _remote_args(num_cpus, num_gpus, memory, ray_remote_args)
        return self._map(FlatMapTransform(f"FlatMap({udf.name})", udf), udf, compute, concurrency, args)

    def filter(
        self,
        fn: Any = None,
        expr: str | None = None,
        *,
        compute: Any = None,
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
        """Keep the rows for which ``fn(row)`` is true, or those matching ``expr``.

        ``expr`` is a predicate string such as ``"id > 5 and label in ['a', 'b']"``
        (see :mod:`shoal.data._expr` for the grammar), evaluated by Arrow on whole
        blocks instead of calling Python per row.
        """
        if (fn is None) == (expr is None):
            raise ValueError("filter needs exactly one of fn and expr")
        args = _remote_args(num_cpus, num_gpus, memory, ray_remote_args)
        if expr is not None:
            return self._map(ExprFilterTransform(f"Filter({expr})", expr), None, compute, concurrency, args)
        udf = UDF(fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)
        return self._map(FilterTransform(f"Filter({udf.name})", udf), udf, compute, concurrency, args)

    def random_sample(self, fraction: float, *, seed: int | None = None) -> Dataset:
        """About ``fraction`` of the rows, each kept independently with that probability."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise ValueError(f"random_sample: fraction must be between 0 and 1, got {fraction!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"random_sample: seed must be a non-negative integer, got {seed!r}")
        return self._map(SampleTransform("RandomSample", float(fraction), seed), None, None, None, {})

    def add_column(
        self,
        col: str,
        fn: Callable[[Any], Any],
        *,
        batch_format: str | None = "pandas",
        compute: Any = None,
        concurrency: int | None = None,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        memory: float | None = None,
        **ray_remote_args: Any,
    ) -> Dataset:
        """Add (or replace) column ``col`` computed by ``fn`` from each batch."""
        if not isinstance(col, str) or not col:
            raise TypeError(f"add_column: col must be a non-empty column name, got {col!r}")
        fmt = _convert.check_batch_format(batch_format)
        udf = UDF(fn)
        args = _remote_args(num_cpus, num_gpus, memory, ray_remote_args)
        transform = AddColumnTransform(f"AddColumn({col})", col, udf, fmt)
        return self._map(transform, udf, compute, concurrency, args, preserves_rows=True)

    def _project(
        self, name: str, kind: str, arg: Any, concurrency: Any, remote_args: dict[str, Any], **kw: Any
    ) -> Dataset:
        return self._map(
            ProjectTransform(name, kind, arg), None, None, concurrency, remote_args, preserves_rows=True, **kw
        )

    def drop_columns(
        self, cols: list[str], *, compute: Any = None, concurrency: int | None = None, **ray_remote_args: Any
    ) -> Dataset:
        """The dataset without columns ``cols``."""
        cols = _columns_arg(cols, "drop_columns")
        return self._project(f"DropColumns({', '.join(cols)})", "drop", cols, concurrency, ray_remote_args)

    def select_columns(
        self, cols: str | list[str], *, compute: Any = None, concurrency: int | None = None, **ray_remote_args: Any
    ) -> Dataset:
        """Only columns ``cols``, in that order (readers that can, read only these)."""
        cols = _columns_arg(cols, "select_columns")
        return self._project(
            f"SelectColumns({', '.join(cols)})", "select", cols, concurrency, ray_remote_args, projection=cols
        )

    def rename_columns(
        self, names: list[str] | dict[str, str], *, concurrency: int | None = None, **ray_remote_args: Any
    ) -> Dataset:
        """Rename columns: a dict old -> new, or a list of new names for all columns in order."""
        if isinstance(names, Mapping):
            mapping = dict(names)
            if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in mapping.items()):
                raise TypeError(f"rename_columns expects a dict of str -> non-empty str, got {names!r}")
            if len(set(mapping.values())) != len(mapping):
                raise ValueError(f"rename_columns: two columns would get the same name: {mapping}")
        else:
            new = _columns_arg(names, "rename_columns")
            current = self.columns()
            if current is None or len(current) != len(new):
                raise ValueError(f"rename_columns got {len(new)} names for {len(current or [])} columns {current}")
            mapping = dict(zip(current, new, strict=True))
        return self._project("RenameColumns", "rename", mapping, concurrency, ray_remote_args)

    def repartition(
        self,
        num_blocks: int | None = None,
        target_num_rows_per_block: int | None = None,
        *,
        shuffle: bool = False,
    ) -> Dataset:
        """Rearrange into ``num_blocks`` blocks of equal size (order kept unless ``shuffle``)."""
        if (num_blocks is None) == (target_num_rows_per_block is None):
            raise ValueError("repartition needs exactly one of num_blocks and target_num_rows_per_block")
        if num_blocks is not None:
            _check_count(num_blocks, "num_blocks", 1)
        else:
            _check_count(target_num_rows_per_block, "target_num_rows_per_block", 1)
        if shuffle:
            if num_blocks is None:
                raise ValueError("repartition(shuffle=True) needs num_blocks")
            return self.random_shuffle(num_blocks=num_blocks)
        return self._with(
            AllToAll(
                self._plan,
                "repartition",
                "Repartition",
                num_blocks=num_blocks,
                target_num_rows_per_block=target_num_rows_per_block,
            )
        )

    def random_shuffle(
        self, *, seed: int | None = None, num_blocks: int | None = None, **ray_remote_args: Any
    ) -> Dataset:
        """The rows in a random order (the same order for the same ``seed`` and blocks)."""
        if seed is not None:
            _check_count(seed, "seed")
        if num_blocks is not None:
            _check_count(num_blocks, "num_blocks", 1)
        return self._with(AllToAll(self._plan, "random_shuffle", "RandomShuffle", seed=seed, num_blocks=num_blocks))

    def randomize_block_order(self, *, seed: int | None = None) -> Dataset:
        """The same blocks in a random order (cheap; rows within a block keep their order)."""
        if seed is not None:
            _check_count(seed, "seed")
        return self._with(AllToAll(self._plan, "randomize_block_order", "RandomizeBlockOrder", seed=seed))

    def sort(self, key: str | list[str], descending: bool | list[bool] = False) -> Dataset:
        """Sort by one or more columns (nulls last)."""
        sort_key = SortKey(key, descending)
        return self._with(AllToAll(self._plan, "sort", f"Sort({', '.join(sort_key.columns)})", key=sort_key))

    def groupby(self, key: str | list[str] | None, num_partitions: int | None = None) -> Any:
        """Group rows by ``key`` for aggregations and ``map_groups`` (None: one group of everything)."""
        from shoal.data.grouped_data import GroupedData

        keys = [] if key is None else _columns_arg(key, "groupby")
        if num_partitions is not None:
            _check_count(num_partitions, "num_partitions", 1)
        return GroupedData(self, keys, num_partitions)

    def union(self, *other: Dataset) -> Dataset:
        """The rows of this dataset, then those of each of ``other`` (schemas must match)."""
        for o in other:
            if not isinstance(o, Dataset):
                raise TypeError(f"union expects Datasets, got {type(o).__name__}")
        if not other:
            return self
        return self._with(Union([self._plan, *[o._plan for o in other]]))

    def zip(self, *other: Dataset) -> Dataset:
        """Columns of this dataset and of each of ``other`` side by side (same row counts).

        A duplicate column name gets a suffix: ``id``, ``id_1``.
        """
        plan_ = self._plan
        for o in other:
            if not isinstance(o, Dataset):
                raise TypeError(f"zip expects Datasets, got {type(o).__name__}")
            plan_ = Zip([plan_, o._plan])
        return self._with(plan_)

    def limit(self, limit: int) -> Dataset:
        """The first ``limit`` rows."""
        return self._with(Limit(self._plan, _check_count(limit, "limit")))

    # -- aggregation -----------------------------------------------------------------------
    def aggregate(self, *aggs: AggregateFn) -> dict[str, Any]:
        """Aggregate the whole dataset: ``{agg.name: value}``."""
        from shoal.data.grouped_data import GroupedData

        if not aggs:
            raise ValueError("aggregate needs at least one aggregation")
        rows = GroupedData(self, [], None).aggregate(*aggs).take_all()
        if not rows:
            return {a.name: (0 if isinstance(a, Count) else None) for a in aggs}
        return rows[0]

    def _column_agg(self, cls: type, on: str | list[str] | None, **kw: Any) -> Any:
        cols = (self.columns() or []) if on is None else _columns_arg(on, cls.__name__.lower())
        if not cols:
            return None
        result = self.aggregate(*[cls(c, **kw) for c in cols])
        if isinstance(on, str) or (on is None and len(cols) == 1):
            value = next(iter(result.values()))
            return value
        return result

    def sum(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        """Sum of a column (a dict for several columns); None when there are no values."""
        return self._column_agg(Sum, on, ignore_nulls=ignore_nulls)

    def min(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        return self._column_agg(Min, on, ignore_nulls=ignore_nulls)

    def max(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        return self._column_agg(Max, on, ignore_nulls=ignore_nulls)

    def mean(self, on: str | list[str] | None = None, ignore_nulls: bool = True) -> Any:
        return self._column_agg(Mean, on, ignore_nulls=ignore_nulls)

    def std(self, on: str | list[str] | None = None, ddof: int = 1, ignore_nulls: bool = True) -> Any:
        """Standard deviation with ``ddof`` delta degrees of freedom."""
        return self._column_agg(Std, on, ddof=ddof, ignore_nulls=ignore_nulls)

    def unique(self, column: str, ignore_nulls: bool = False) -> list[Any]:
        """Distinct values of ``column``, in order of first appearance."""
        if not isinstance(column, str):
            raise TypeError(f"unique expects a column name, got {column!r}")
        fn = _tasks.remote_fn("unique")
        parts = [fn.remote(ref, column) for ref, _ in self._iter_refs()]
        values = pa.chunked_array([p for p in shoal.get(parts) if len(p)] or [pa.array([])])
        out = values.unique().to_pylist()
        return [v for v in out if v is not None] if ignore_nulls else out

    # -- splitting -----------------------------------------------------------------------------
    def materialize(self) -> MaterializedDataset:
        """Run the plan and keep the blocks in the object store."""
        blocks = list(self._iter_refs())
        return MaterializedDataset(InputData(blocks, self._last_stats))

    def split_at_indices(self, indices: list[int]) -> list[MaterializedDataset]:
        """Split at row ``indices`` (sorted, non-negative): ``len(indices) + 1`` datasets."""
        from shoal.data._split import split_at_rows

        if not isinstance(indices, (list, tuple)) or not all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in indices
        ):
            raise TypeError(f"split_at_indices expects a list of integers, got {indices!r}")
        if any(i < 0 for i in indices):
            raise ValueError(f"indices must be >= 0, got {indices}")
        if list(indices) != sorted(indices):
            raise ValueError(f"indices must be sorted, got {indices}")
        return split_at_rows(self.materialize(), [int(i) for i in indices])

    def split(
        self, n: int, *, equal: bool = False, locality_hints: list[Any] | None = None
    ) -> list[MaterializedDataset]:
        """``n`` disjoint datasets of (nearly) equal size; ``equal`` drops rows to make them exactly equal."""
        from shoal.data._split import split_at_rows

        n = _check_count(n, "n", 1)
        mat = self.materialize()
        total = mat.count()
        if equal:
            per = total // n
            return split_at_rows(mat, [per * i for i in range(1, n + 1)])[:n]
        per = math.ceil(total / n) if total else 0
        return split_at_rows(mat, [min(total, per * i) for i in range(1, n)])

    def split_proportionately(self, proportions: list[float]) -> list[MaterializedDataset]:
        """Split by fractions (summing below 1); the rest forms the last dataset."""
        if not proportions or any(not 0 < p < 1 for p in proportions) or sum(proportions) >= 1:
            raise ValueError(f"proportions must be fractions in (0, 1) summing below 1, got {proportions}")
        mat = self.materialize()
        total = mat.count()
        indices, acc = [], 0.0
        for p in proportions:
            acc += p
            indices.append(int(total * acc))
        return mat.split_at_indices(indices)

    def train_test_split(
        self,
        test_size: float | int,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        stratify: str | None = None,
    ) -> tuple[MaterializedDataset, MaterializedDataset]:
        """Split into train and test datasets; ``test_size`` is a fraction or a row count.

        ``stratify`` names a column whose classes keep their proportions on both sides: of
        each class, the last ``int(count * fraction)`` rows are test rows (as in Ray).
        """
        if stratify is not None and shuffle:
            raise ValueError(
                "train_test_split: shuffle=True and stratify cannot be combined (a stratified split keeps order)"
            )
        ds = self.random_shuffle(seed=seed) if shuffle else self
        mat = ds.materialize()
        total = mat.count()
        if isinstance(test_size, float):
            if not 0 < test_size < 1:
                raise ValueError(f"test_size as a fraction must be in (0, 1), got {test_size}")
            index = int(total * (1 - test_size))
            fraction = test_size
        elif isinstance(test_size, int) and not isinstance(test_size, bool):
            if not 0 < test_size < total:
                raise ValueError(f"test_size as a row count must be in (0, {total}), got {test_size}")
            index = total - test_size
            fraction = test_size / total
        else:
            raise TypeError(f"test_size must be a float or an int, got {test_size!r}")
        if stratify is not None:
            from shoal.data._split import stratified_split
            from shoal.data.read_api import _put_tables

            if not isinstance(stratify, str):
                raise TypeError(f"stratify must be a column name, got {stratify!r}")
            train_rows, test_rows = stratified_split(mat, stratify, fraction)
            return _put_tables([train_rows]), _put_tables([test_rows])
        train, test = mat.split_at_indices([index])
        return train, test

    def streaming_split(
        self, n: int, *, equal: bool = False, locality_hints: list[Any] | None = None
    ) -> list[DataIterator]:
        """``n`` iterators over disjoint parts of one streaming execution (for parallel consumers).

        Consume them concurrently (threads, tasks, actors); every epoch starts
        when all ``n`` began iterating. ``equal`` gives each the same number of
        rows (dropping at most ``n - 1``).
        """
        from shoal.data._split import make_split_iterators

        return make_split_iterators(self, _check_count(n, "n", 1), equal)

    # -- consumption ---------------------------------------------------------------------------
    def size_bytes(self) -> int:
        """In-memory bytes of the dataset's blocks (runs the plan, keeping no block)."""
        return sum(int(m.size_bytes or 0) for _, m in self._iter_refs())

    def count(self) -> int:
        """Number of rows (from metadata when the plan allows, without running it)."""
        known = known_rows(optimize(self._plan))
        if known is not None:
            return known
        return sum(int(m.num_rows or 0) for _, m in self._iter_refs())

    def schema(self, fetch_if_missing: bool = True) -> Schema | None:
        """Column names and types; runs the plan up to its first block if they are not known."""
        known = known_schema(optimize(self._plan))
        if known is not None:
            return Schema(known)
        if not fetch_if_missing:
            return None
        first: pa.Schema | None = None
        refs = self._iter_refs()
        try:
            for _, meta in refs:
                if meta.schema is not None and len(meta.schema):
                    if first is None:
                        first = meta.schema
                    if meta.num_rows:
                        return Schema(meta.schema)
        finally:
            refs.close()
        return Schema(first) if first is not None else None

    def columns(self, fetch_if_missing: bool = True) -> list[str] | None:
        schema = self.schema(fetch_if_missing)
        return None if schema is None else schema.names

    def input_files(self) -> list[str]:
        """The files this dataset reads, each once, in order; [] when it reads none.

        Found in the plan (file datasources and blocks already read), without running it.
        """
        files: dict[str, None] = {}
        stack: list[LogicalOp] = [self._plan]
        while stack:
            op = stack.pop()
            if isinstance(op, Read):
                files.update(dict.fromkeys(getattr(op.datasource, "files", [])))
            elif isinstance(op, InputData):
                files.update(dict.fromkeys(f for _, m in op.blocks for f in m.input_files or []))
            stack.extend(reversed(op.inputs))
        return list(files)

    def _take_blocks(self, limit: int | None) -> list[pa.Table]:
        ds = self.limit(limit) if limit is not None else self
        return [shoal.get(ref) for ref, _ in ds._iter_refs()]

    def take(self, limit: int = 20) -> list[dict[str, Any]]:
        """The first ``limit`` rows as dicts."""
        rows: list[dict[str, Any]] = []
        for block in self._take_blocks(_check_count(limit, "limit")):
            rows.extend(_convert.rows_of(block))
        return rows[:limit]

    def take_batch(self, batch_size: int = 20, *, batch_format: str | None = "default") -> Any:
        """The first ``batch_size`` rows as one batch."""
        fmt = _convert.check_batch_format(batch_format)
        table = _convert.concat_blocks(self._take_blocks(_check_count(batch_size, "batch_size", 1)))
        if table.num_rows == 0:
            raise ValueError("The dataset is empty.")
        return _convert.block_to_batch(table.slice(0, batch_size), fmt)

    def take_all(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every row; ValueError if there are more than ``limit``."""
        rows: list[dict[str, Any]] = []
        for block in self._take_blocks(None if limit is None else _check_count(limit, "limit") + 1):
            rows.extend(_convert.rows_of(block))
        if limit is not None and len(rows) > limit:
            raise ValueError(f"The dataset has more than the given limit of {limit} records.")
        return rows

    def show(self, limit: int = 20) -> None:
        """Print the first ``limit`` rows."""
        for row in self.take(limit):
            print(row)

    def iterator(self) -> DataIterator:
        return _DatasetIterator(self)

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """Rows as dicts, streamed."""
        return self.iterator().iter_rows()

    def iter_batches(
        self,
        *,
        prefetch_batches: int = 1,
        batch_size: int | None = 256,
        batch_format: str | None = "default",
        drop_last: bool = False,
        local_shuffle_buffer_size: int | None = None,
        local_shuffle_seed: int | None = None,
        _collate_fn: Callable[[Any], Any] | None = None,
    ) -> Iterator[Any]:
        """Batches, streamed; see :meth:`DataIterator.iter_batches`."""
        return self.iterator().iter_batches(
            prefetch_batches=prefetch_batches,
            batch_size=batch_size,
            batch_format=batch_format,
            drop_last=drop_last,
            local_shuffle_buffer_size=local_shuffle_buffer_size,
            local_shuffle_seed=local_shuffle_seed,
            _collate_fn=_collate_fn,
        )

    def iter_torch_batches(
        self,
        *,
        prefetch_batches: int = 1,
        batch_size: int | None = 256,
        dtypes: Any = None,
        device: Any = "auto",
        collate_fn: Callable[[dict[str, Any]], Any] | None = None,
        drop_last: bool = False,
        local_shuffle_buffer_size: int | None = None,
        local_shuffle_seed: int | None = None,
        pin_memory: bool = False,
    ) -> Iterator[Any]:
        """Batches of torch tensors (needs torch installed); see :meth:`DataIterator.iter_torch_batches`."""
        return self.iterator().iter_torch_batches(
            prefetch_batches=prefetch_batches,
            batch_size=batch_size,
            dtypes=dtypes,
            device=device,
            collate_fn=collate_fn,
            drop_last=drop_last,
            local_shuffle_buffer_size=local_shuffle_buffer_size,
            local_shuffle_seed=local_shuffle_seed,
            pin_memory=pin_memory,
        )

    def to_pandas(self, limit: int | None = None) -> Any:
        """All rows as one DataFrame; ValueError if there are more than ``limit``."""
        blocks = self._take_blocks(None if limit is None else _check_count(limit, "limit") + 1)
        table = _convert.concat_blocks(blocks)
        if limit is not None and table.num_rows > limit:
            raise ValueError(f"The dataset has more than the given limit of {limit} records.")
        return _convert.table_to_pandas(table)

    def to_arrow_refs(self) -> list[Any]:
        """ObjectRefs of the blocks (pyarrow Tables)."""
        return [ref for ref, _ in self.materialize()._blocks]

    def to_pandas_refs(self) -> list[Any]:
        """ObjectRefs of each block as a pandas DataFrame."""
        fn = _tasks.remote_fn("to_pandas")
        return [fn.remote(ref) for ref, _ in self._iter_refs()]

    def to_numpy_refs(self, *, column: str | None = None) -> list[Any]:
        """ObjectRefs of each block as a dict of ndarrays (or one ndarray of ``column``)."""
        fn = _tasks.remote_fn("to_numpy")
        return [fn.remote(ref, column) for ref, _ in self._iter_refs()]

    def stats(self) -> str:
        """Time, tasks, rows and bytes per operator of the last execution ("" before any)."""
        if self._last_stats is not None:
            return self._last_stats.to_string()
        if isinstance(self._plan, InputData) and self._plan.stats is not None:
            return str(self._plan.stats.to_string())
        return ""

    def _get_stats(self) -> DatasetStats | None:
        return self._last_stats

    # -- writing --------------------------------------------------------------------------------
    def write_datasink(
        self, datasink: Datasink, *, ray_remote_args: dict[str, Any] | None = None, concurrency: int | None = None
    ) -> None:
        """Write every block with ``datasink`` (one ``write`` call per task)."""
        if not isinstance(datasink, Datasink):
            raise TypeError(f"write_datasink expects a Datasink, got {type(datasink).__name__}")
        transform = WriteTransform(f"Write{datasink.get_name()}", datasink)
        op = MapOp(
            self._plan,
            transform,
            compute=TaskPoolStrategy(concurrency),
            remote_args=ray_remote_args,
            min_rows_per_bundle=datasink.min_rows_per_write,
        )
        run_write(self, Dataset(op), datasink)

    def write_parquet(
        self,
        path: str,
        *,
        partition_cols: list[str] | None = None,
        filesystem: Any = None,
        try_create_dir: bool = True,
        arrow_open_stream_args: dict[str, Any] | None = None,
        arrow_parquet_args_fn: Callable[[], dict[str, Any]] | None = None,
        min_rows_per_file: int | None = None,
        max_rows_per_file: int | None = None,
        ray_remote_args: dict[str, Any] | None = None,
        concurrency: int | None = None,
        num_rows_per_file: int | None = None,
        mode: SaveMode | str = SaveMode.APPEND,
        filename_provider: FilenameProvider | None = None,
        **arrow_parquet_args: Any,
    ) -> None:
        """Write parquet files into the directory ``path`` (one file per write task).

        With ``partition_cols``, rows go to hive-style ``col=value`` directories (the
        partition columns are left out of the files: reading the directory gives them back).
        """
        sink = ParquetDatasink(
            path,
            partition_cols=partition_cols,
            arrow_parquet_args=arrow_parquet_args,
            arrow_parquet_args_fn=arrow_parquet_args_fn,
            filesystem=filesystem,
            try_create_dir=try_create_dir,
            open_stream_args=arrow_open_stream_args,
            min_rows_per_file=_min_rows_per_file(min_rows_per_file, num_rows_per_file),
            max_rows_per_file=max_rows_per_file,
            mode=mode,
            filename_provider=filename_provider,
        )
        self.write_datasink(sink, ray_remote_args=ray_remote_args, concurrency=concurrency)

    def write_csv(
        self,
        path: str,
        *,
        filesystem: Any = None,
        try_create_dir: bool = True,
        arrow_open_stream_args: dict[str, Any] | None = None,
        arrow_csv_args_fn: Callable[[], dict[str, Any]] | None = None,
        min_rows_per_file: int | None = None,
        ray_remote_args: dict[str, Any] | None = None,
        concurrency: int | None = None,
        num_rows_per_file: int | None = None,
        mode: SaveMode | str = SaveMode.APPEND,
        filename_provider: FilenameProvider | None = None,
        **arrow_csv_args: Any,
    ) -> None:
        """Write CSV files (with a header) into the directory ``path``."""
        sink = CSVDatasink(
            path,
            arrow_csv_args=arrow_csv_args,
            arrow_csv_args_fn=arrow_csv_args_fn,
            filesystem=filesystem,
            try_create_dir=try_create_dir,
            open_stream_args=arrow_open_stream_args,
            min_rows_per_file=_min_rows_per_file(min_rows_per_file, num_rows_per_file),
            mode=mode,
            filename_provider=filename_provider,
        )
        self.write_datasink(sink, ray_remote_args=ray_remote_args, concurrency=concurrency)

    def write_json(
        self,
        path: str,
        *,
        filesystem: Any = None,
        try_create_dir: bool = True,
        arrow_open_stream_args: dict[str, Any] | None = None,
        min_rows_per_file: int | None = None,
        ray_remote_args: dict[str, Any] | None = None,
        concurrency: int | None = None,
        num_rows_per_file: int | None = None,
        mode: SaveMode | str = SaveMode.APPEND,
        filename_provider: FilenameProvider | None = None,
    ) -> None:
        """Write JSON lines files (one object per row) into the directory ``path``."""
        sink = JSONDatasink(
            path,
            filesystem=filesystem,
            try_create_dir=try_create_dir,
            open_stream_args=arrow_open_stream_args,
            min_rows_per_file=_min_rows_per_file(min_rows_per_file, num_rows_per_file),
            mode=mode,
            filename_provider=filename_provider,
        )
        self.write_datasink(sink, ray_remote_args=ray_remote_args, concurrency=concurrency)

    def write_numpy(
        self,
        path: str,
        *,
        column: str,
        filesystem: Any = None,
        try_create_dir: bool = True,
        arrow_open_stream_args: dict[str, Any] | None = None,
        min_rows_per_file: int | None = None,
        ray_remote_args: dict[str, Any] | None = None,
        concurrency: int | None = None,
        num_rows_per_file: int | None = None,
        mode: SaveMode | str = SaveMode.APPEND,
        filename_provider: FilenameProvider | None = None,
    ) -> None:
        """Write ``column`` as ``.npy`` files into the directory ``path``."""
        sink = NumpyDatasink(
            path,
            column=column,
            filesystem=filesystem,
            try_create_dir=try_create_dir,
            open_stream_args=arrow_open_stream_args,
            min_rows_per_file=_min_rows_per_file(min_rows_per_file, num_rows_per_file),
            mode=mode,
            filename_provider=filename_provider,
        )
        self.write_datasink(sink, ray_remote_args=ray_remote_args, concurrency=concurrency)

    # -- display ------------------------------------------------------------------------------
    def _describe(self, op: LogicalOp, depth: int = 0) -> list[str]:
        pad = "   " * max(0, depth - 1) + ("+- " if depth else "")
        if isinstance(op, (InputData, Read)) or not op.inputs:
            rows = known_rows(op)
            schema = known_schema(op)
            fields = "?" if schema is None else "{" + ", ".join(f"{f.name}: {f.type}" for f in schema) + "}"
            return [f"{pad}Dataset(num_rows={'?' if rows is None else rows}, schema={fields})"]
        lines = [f"{pad}{op.name}"]
        for child in op.inputs:
            lines += self._describe(child, depth + 1)
        return lines

    def __repr__(self) -> str:
        return "\n".join(self._describe(self._plan))

    def __reduce__(self) -> Any:
        return (Dataset, (self._plan,))


def _min_rows_per_file(min_rows_per_file: int | None, num_rows_per_file: int | None) -> int | None:
    """``num_rows_per_file`` is Ray's older name for ``min_rows_per_file``."""
    if num_rows_per_file is None:
        return min_rows_per_file
    if min_rows_per_file is not None:
        raise ValueError("give min_rows_per_file or num_rows_per_file, not both (num_rows_per_file is its old name)")
    warnings.warn(
        "num_rows_per_file is deprecated; use min_rows_per_file",
        DeprecationWarning,
        stacklevel=3,
    )
    return num_rows_per_file


class MaterializedDataset(Dataset):
    """A dataset whose blocks are in the object store: consuming it runs nothing again."""

    def _with(self, op: LogicalOp) -> Dataset:
        return Dataset(op)

    @property
    def _blocks(self) -> list[tuple[Any, Any]]:
        assert isinstance(self._plan, InputData)
        return self._plan.blocks

    def num_blocks(self) -> int:
        return len(self._blocks)

    def size_bytes(self) -> int:
        return sum(int(m.size_bytes or 0) for _, m in self._blocks)

    def __repr__(self) -> str:
        schema = known_schema(self._plan)
        fields = "?" if schema is None else "{" + ", ".join(f"{f.name}: {f.type}" for f in schema) + "}"
        return f"MaterializedDataset(num_blocks={self.num_blocks()}, num_rows={self.count()}, schema={fields})"

    def __reduce__(self) -> Any:
        return (MaterializedDataset, (self._plan,))
