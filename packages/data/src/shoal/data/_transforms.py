"""Block transforms: what map-like operators do to the blocks of one task.

Each transform maps an iterator of blocks to an iterator of blocks, so that
consecutive operators fuse into one task by chaining transforms. A UDF that
raises is marked with the operator's name, which the executor uses to report
which UDF failed.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from shoal.data import _convert
from shoal.data._aggops import iter_groups
from shoal.data._batching import iter_batches
from shoal.data._expr import compile_predicate
from shoal.data._numpy_arrow import binary_array, to_arrow
from shoal.data.datasource import Datasink, TaskContext

__all__ = [
    "TransformContext",
    "MapTransform",
    "UDF",
    "BatchMapTransform",
    "RowMapTransform",
    "FlatMapTransform",
    "FilterTransform",
    "ExprFilterTransform",
    "SampleTransform",
    "ProjectTransform",
    "AddColumnTransform",
    "MapGroupsTransform",
    "WriteTransform",
    "UDF_MARK",
    "udf_name",
]

#: Attribute set on an exception raised by user code, naming the operator.
UDF_MARK = "_shoal_data_udf"


@dataclass
class TransformContext:
    """Per task: its index, and the process's instances of callable-class UDFs."""

    task_idx: int = 0
    op_name: str = ""
    instances: dict[str, Any] = field(default_factory=dict)


def udf_name(fn: Any) -> str:
    """How an operator names its UDF: ``<lambda>``, a function's or a class's name."""
    return getattr(fn, "__name__", None) or type(fn).__name__


def _mark(error: BaseException, op_name: str) -> None:
    try:
        if not hasattr(error, UDF_MARK):
            setattr(error, UDF_MARK, op_name)
    except (AttributeError, TypeError):  # pragma: no cover - exceptions with __slots__
        pass


class UDF:
    """A user function or callable class with its extra arguments."""

    def __init__(
        self,
        fn: Any,
        fn_args: Iterable[Any] | None = None,
        fn_kwargs: Mapping[str, Any] | None = None,
        fn_constructor_args: Iterable[Any] | None = None,
        fn_constructor_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"expected a function or a callable class, got {fn!r}")
        self.fn = fn
        self.is_class = inspect.isclass(fn)
        if self.is_class and not callable(getattr(fn, "__call__", None)):  # noqa: B004
            raise TypeError(f"class {fn.__name__} must define __call__ to be used as a UDF")
        if not self.is_class and (fn_constructor_args or fn_constructor_kwargs):
            raise ValueError("fn_constructor_args and fn_constructor_kwargs apply only to callable classes")
        self.args = tuple(fn_args or ())
        self.kwargs = dict(fn_kwargs or {})
        self.ctor_args = tuple(fn_constructor_args or ())
        self.ctor_kwargs = dict(fn_constructor_kwargs or {})
        self.key = uuid.uuid4().hex
        self.name = udf_name(fn)

    def resolve(self, ctx: TransformContext, op_name: str) -> Callable[..., Any]:
        """The callable to call: the function, or this process's instance of the class."""
        if not self.is_class:
            return self.fn
        inst = ctx.instances.get(self.key)
        if inst is None:
            try:
                inst = self.fn(*self.ctor_args, **self.ctor_kwargs)
            except Exception as e:
                _mark(e, op_name)
                raise
            ctx.instances[self.key] = inst
        return inst

    def is_generator(self) -> bool:
        target = self.fn.__call__ if self.is_class else self.fn
        return inspect.isgeneratorfunction(target)


class MapTransform:
    """A step of a fused map task."""

    #: Name of the operator, e.g. ``MapBatches(add_one)``.
    name: str = ""
    #: The UDF, if this step runs user code.
    udf: UDF | None = None

    def apply(self, blocks: Iterator[pa.Table], ctx: TransformContext) -> Iterator[pa.Table]:
        raise NotImplementedError(f"{type(self).__name__} must implement apply()")  # one subclass per map kind

    def init_instances(self, ctx: TransformContext) -> None:
        """Construct callable-class UDFs now (actors do this at start)."""
        if self.udf is not None and self.udf.is_class:
            self.udf.resolve(ctx, self.name)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self.udf is not None
        try:
            return fn(*args, *self.udf.args, **self.udf.kwargs)
        except Exception as e:
            _mark(e, self.name)
            raise


def _generated(transform: MapTransform, result: Any) -> Iterator[Any]:
    """The outputs of a UDF call: one value, or each value a generator yields."""
    if inspect.isgenerator(result):
        try:
            yield from result
        except Exception as e:
            _mark(e, transform.name)
            raise
    else:
        yield result


class _OutputCollector:
    """Gathers UDF outputs of one task into one block, concatenating numpy columns once."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._dicts: list[dict[str, np.ndarray]] = []
        self._tables: list[pa.Table] = []

    def add(self, out: Any) -> None:
        if isinstance(out, Mapping):
            if all(isinstance(v, np.ndarray) and v.ndim >= 1 for v in out.values()) and not self._tables:
                if self._dicts and list(out) != list(self._dicts[0]):
                    self._flush_dicts()
                self._dicts.append(dict(out))
                return
            self._flush_dicts()
            self._tables.append(_convert.batch_to_block(out, self._what))
            return
        if isinstance(out, pa.Table) or _convert._is_pandas_frame(out):
            self._flush_dicts()
            self._tables.append(_convert.batch_to_block(out, self._what))
            return
        # ValueError, as Ray Data raises for a UDF's output of the wrong kind.
        raise ValueError(
            f"{self._what} is a {type(out).__name__}; it must be a dict of numpy arrays, "
            "a pandas.DataFrame or a pyarrow.Table"
        )

    def _flush_dicts(self) -> None:
        if not self._dicts:
            return
        if len(self._dicts) == 1:
            merged = self._dicts[0]
        else:
            keys = list(self._dicts[0])
            merged = {k: np.concatenate([d[k] for d in self._dicts]) for k in keys}
        self._tables.append(_convert.batch_to_block(merged, self._what))
        self._dicts = []

    def blocks(self) -> Iterator[pa.Table]:
        self._flush_dicts()
        yield from self._tables
        self._tables = []


class BatchMapTransform(MapTransform):
    """``map_batches``: the UDF gets batches of ``batch_size`` rows in ``batch_format``."""

    def __init__(self, name: str, udf: UDF, batch_size: int | None, batch_format: str, zero_copy_batch: bool) -> None:
        self.name = name
        self.udf = udf
        self.batch_size = batch_size
        self.batch_format = batch_format
        self.writable = not zero_copy_batch

    def apply(self, blocks: Iterator[pa.Table], ctx: TransformContext) -> Iterator[pa.Table]:
        assert self.udf is not None
        fn = self.udf.resolve(ctx, self.name)
        out = _OutputCollector(f"the value returned by the UDF of {self.name}")
        for batch in iter_batches(blocks, self.batch_size, self.batch_format, writable=self.writable):
            for result in _generated(self, self._call(fn, batch)):
                out.add(result)
        yield from out.blocks()


class RowMapTransform(MapTransform):
    """``map``: one dict row in, one dict row out."""

    def __init__(self, name: str, udf: UDF) -> None:
        self.name = name
        self.udf = udf

    def apply(self, blocks: Iterator[pa.Table], ctx: TransformContext) -> Iterator[pa.Table]:
        assert self.udf is not None
        fn = self.udf.resolve(ctx, self.name)
        for block in blocks:
            rows = [self._call(fn, row) for row in _convert.rows_of(block)]
            if rows:
                yield _convert.rows_to_block(rows, f"row returned by the UDF of {self.name}")


class FlatMapTransform(MapTransform):
    """``flat_map``: one dict row in, a list of dict rows out."""

    def __init__(self, name: str, udf: UDF) -> None:
        self.name = name
        self.udf = udf

    def apply(self, blocks: Iterator[pa.Table], ctx: TransformContext) -> Iterator[pa.Table]:
        assert self.udf is not None
        fn = self.udf.resolve(ctx, self.name)
        for block in blocks:
            rows: list[Any] = []
            for row in _convert.rows_of(block):
                result = self._call(fn, row)
                if isinstance(result, Mapping):
                    raise TypeError(f"the UDF of {self.name} returned a dict; flat_map UDFs return a list of dict rows")
                if inspect.isgenerator(result):
                    rows.extend(_generated(self, result))
                elif isinstance(result, (list, tuple)):
                    rows.extend(result)
                else:
                    raise TypeError(
                        f"the UDF of {self.name} returned {type(result).__name__}; "
                        "flat_map UDFs return a list of dict rows"
                    )
            if rows:
                yield _convert.rows_to_block(rows, f"row returned by the UDF of {self.name}")


class FilterTransform(MapTransform):
    """``filter``: keep the rows for which the UDF returns True."""

    def __init__(self, name: str, udf: UDF) -> None:
        self.name = name
        self.udf = udf

    def apply(self, blocks: Iterator[pa.Table], ctx: TransformContext) -> Iterator[pa.Table]:
        assert self.udf is not None
        fn = self.udf.resolve(ctx, self.name)
        for block in blocks:
            keep = np.fromiter((bool(self._call(fn, row)) for row in _convert.rows_of(block)), bool, block.num_rows)
            yield block.filter(pa.array(keep))


class ExprFilterTransform(MapTransform):
    """``filter(expr=...)``: an Arrow predicate, no user code."""

    def __init__(self, name: str, expr: str) -> None:
        self.name = name
        self.expr = expr
        compile_predicate(expr)  # a bad expression fails here, in the driver

    def apply(self, blocks: Iterator[pa.Table], ctx: TransformContext) -> Iterator[pa.Table]:
        predicate = compile_predicate(self.expr)
        for block in blocks:
            if block.num_columns == 0:
                yield block
                continue
            try:
                yield block.filter(predicate)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                raise ValueError(f"filter expr {self.expr!r} cannot be applied to {block.schema}: {e}") from None


class SampleTransform(MapTransform):
    """``random_sample``: each row kept with probability ``fraction``."""

    def __init__(self, name: str, fraction: float, seed: int | None) -> None:
        self.name = name
        self.fraction = fraction
        self.seed = seed

    def apply(self, blocks: Iterator[pa.Table], ctx: TransformContext) -> Iterator[pa.Table]:
        for i, block in enumerate(blocks):
            # Seeded per task and block, so that blocks draw different rows.
            rng = np.random.default_rng(None if self.seed is None else [self.seed, ctx.task_idx, i])
            yield block.filter(pa.array(rng.random(block.num_rows) < self.fraction))


class ProjectTransform(MapTransform):
    """``select_columns``, ``drop_columns`` and ``rename_columns``: vectorized, no user code."""

    def __init__(self, name: str, kind: str, arg: Any) -> None:
        self.name = name
        self.kind = kind
        self.arg = arg

    def apply(self, blocks: Iterator[pa.Table], ctx: TransformContext) -> Iterator[pa.Table]:
        for block in blocks:
            if block.num_columns == 0 and block.num_rows == 0:
                yield block
                continue
            names = block.column_names
            if self.kind == "select":
                missing = [c for c in self.arg if c not in names]
                if missing:
                    raise ValueError(f"select_columns: columns {missing} are not in the dataset (columns: {names})")
                yield block.select(self.arg)
            elif self.kind == "drop":
                missing = [c for c in self.arg if c not in names]
                if missing:
                    raise ValueError(f"drop_columns: columns {missing} are not in the dataset (columns: {names})")
                yield block.drop_columns(self.arg)
            else:
                mapping: dict[str, str] = self.arg
                missing = [c for c in mapping if c not in names]
                if missing:
                    raise ValueError(f"rename_columns: columns {missing} are not in the dataset (columns: {names})")
                yield block.rename_columns([mapping.get(c, c) for c in names])


class AddColumnTransform(MapTransform):
    """``add_column``: the UDF computes a column from a batch; an existing column is replaced."""

    def __init__(self, name: str, column: str, udf: UDF, batch_format: str) -> None:
        self.name = name
        self.column = column
        self.udf = udf
        self.batch_format = batch_format

    def apply(self, blocks: Iterator[pa.Table], ctx: TransformContext) -> Iterator[pa.Table]:
        assert self.udf is not None
        fn = self.udf.resolve(ctx, self.name)
        for block in blocks:
            if block.num_rows == 0:
                continue
            values = self._call(fn, _convert.block_to_batch(block, self.batch_format))
            arr = _convert.array_from_values(values, self.column)
            if len(arr) != block.num_rows:
                raise ValueError(
                    f"the UDF of {self.name} returned {len(arr)} values for a batch of {block.num_rows} rows"
                )
            if self.column in block.column_names:
                block = block.set_column(block.column_names.index(self.column), self.column, arr)
            else:
                block = block.append_column(self.column, arr)
            yield block


class MapGroupsTransform(MapTransform):
    """``map_groups``: the UDF gets each group (rows with the same key) as one batch."""

    def __init__(self, name: str, keys: list[str], udf: UDF, batch_format: str) -> None:
        self.name = name
        self.keys = keys
        self.udf = udf
        self.batch_format = batch_format

    def apply(self, blocks: Iterator[pa.Table], ctx: TransformContext) -> Iterator[pa.Table]:
        assert self.udf is not None
        fn = self.udf.resolve(ctx, self.name)
        out = _OutputCollector(f"the value returned by the UDF of {self.name}")
        for block in blocks:
            # Blocks come sorted and range-partitioned by key: a group never spans blocks.
            for group in iter_groups(block, self.keys):
                if group.num_rows == 0:
                    continue
                batch = _convert.block_to_batch(group, self.batch_format)
                for result in _generated(self, self._call(fn, batch)):
                    out.add(result)
        yield from out.blocks()


class WriteTransform(MapTransform):
    """Writes the task's blocks with a datasink; yields one row describing the write."""

    def __init__(self, name: str, datasink: Datasink) -> None:
        self.name = name
        self.datasink = datasink

    def apply(self, blocks: Iterator[pa.Table], ctx: TransformContext) -> Iterator[pa.Table]:
        import pickle

        blocks_list = [b for b in blocks if b.num_rows > 0]
        rows = sum(b.num_rows for b in blocks_list)
        size = sum(b.nbytes for b in blocks_list)
        result = self.datasink.write(iter(blocks_list), TaskContext(ctx.task_idx, self.name))
        yield pa.table(
            {
                "num_rows": to_arrow(np.array([rows], dtype=np.int64)),
                "size_bytes": to_arrow(np.array([size], dtype=np.int64)),
                "write_return": binary_array([pickle.dumps(result)]),
            }
        )


def apply_chain(chain: list[MapTransform], blocks: Iterator[pa.Table], ctx: TransformContext) -> list[pa.Table]:
    it: Iterator[pa.Table] = blocks
    for transform in chain:
        it = transform.apply(it, ctx)
    return list(it)
