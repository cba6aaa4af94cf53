"""Creating datasets: from Python values, numpy, pandas, Arrow, files, or any Datasource."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

import shoal
from shoal.data import _convert, _tasks
from shoal.data._formats import (
    BinaryDatasource,
    CSVDatasource,
    JSONDatasource,
    NumpyDatasource,
    ParquetDatasource,
    TextDatasource,
)
from shoal.data._logical import InputData, Read, ReadOptions
from shoal.data._range import RangeDatasource
from shoal.data.block import BlockMetadata
from shoal.data.context import DataContext
from shoal.data.dataset import Dataset, MaterializedDataset
from shoal.data.datasource import Datasource, Partitioning

# As in Ray Data: parquet, CSV and JSON reads take ``key=value`` directories as columns.
_HIVE = Partitioning("hive")

__all__ = [
    "range",
    "range_tensor",
    "from_items",
    "from_numpy",
    "from_pandas",
    "from_arrow",
    "from_arrow_refs",
    "read_datasource",
    "read_parquet",
    "read_csv",
    "read_json",
    "read_text",
    "read_numpy",
    "read_binary_files",
]


def _num_blocks(parallelism: int, override_num_blocks: int | None) -> int | None:
    value = override_num_blocks if override_num_blocks is not None else parallelism
    if value is None or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"override_num_blocks must be a positive integer, got {value!r}")
    return value


def _read_args(num_cpus: Any, num_gpus: Any, memory: Any, ray_remote_args: dict[str, Any] | None) -> dict[str, Any]:
    args = dict(ray_remote_args or {})
    for key, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("memory", memory)):
        if value is not None:
            args[key] = value
    return args


def read_datasource(
    datasource: Datasource,
    *,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    ray_remote_args: dict[str, Any] | None = None,
) -> Dataset:
    """A dataset read lazily from a custom :class:`~shoal.data.Datasource`."""
    if not isinstance(datasource, Datasource):
        raise TypeError(f"read_datasource expects a Datasource, got {type(datasource).__name__}")
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    options = ReadOptions(
        _num_blocks(parallelism, override_num_blocks),
        concurrency,
        _read_args(num_cpus, num_gpus, memory, ray_remote_args),
    )
    return Dataset(Read(datasource, options))


def range(
    n: int, *, parallelism: int = -1, concurrency: int | None = None, override_num_blocks: int | None = None
) -> Dataset:
    """Integers ``0..n-1`` in a column ``id``."""
    return read_datasource(
        RangeDatasource(n), parallelism=parallelism, concurrency=concurrency, override_num_blocks=override_num_blocks
    )


def range_tensor(
    n: int,
    *,
    shape: tuple[int, ...] = (1,),
    parallelism: int = -1,
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
) -> Dataset:
    """Tensors of ``shape`` filled with ``i`` for ``i`` in ``0..n-1``, in a column ``data``."""
    return read_datasource(
        RangeDatasource(n, tensor_shape=tuple(shape)),
        parallelism=parallelism,
        concurrency=concurrency,
        override_num_blocks=override_num_blocks,
    )


def _put_tables(tables: list[pa.Table]) -> MaterializedDataset:
    blocks = []
    for t in tables:
        t = _convert.compact(t)
        blocks.append((shoal.put(t), BlockMetadata.of(t)))
    return MaterializedDataset(InputData(blocks))


def _split_count(rows: int, size: int, requested: int | None) -> int:
    if requested is not None:
        return max(1, min(requested, rows)) if rows else 1
    ctx = DataContext.get_current()
    cpus = float(shoal.cluster_resources().get("CPU", 1.0))
    by_size = math.ceil(size / max(1, ctx.target_min_block_size))
    by_max = math.ceil(size / max(1, ctx.target_max_block_size))
    return max(1, by_max, min(int(2 * cpus), by_size, rows))


def _split_table(table: pa.Table, n: int) -> list[pa.Table]:
    bounds = np.linspace(0, table.num_rows, n + 1).astype(np.int64)
    return [table.slice(int(a), int(b - a)) for a, b in itertools.pairwise(bounds)]


def from_items(
    items: list[Any], *, parallelism: int = -1, override_num_blocks: int | None = None
) -> MaterializedDataset:
    """A dataset of Python values: dicts become rows, anything else a row ``{"item": value}``."""
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise TypeError(f"from_items expects a list, got {type(items).__name__}")
    requested = _num_blocks(parallelism, override_num_blocks)
    rows = [item if isinstance(item, dict) else {"item": item} for item in items]
    if not rows:
        return _put_tables([])
    table = _convert.rows_to_block(rows, "item")
    return _put_tables(_split_table(table, _split_count(len(rows), table.nbytes, requested)))


def from_numpy(ndarrays: np.ndarray | list[np.ndarray]) -> MaterializedDataset:
    """One row per element of the first axis, in a column ``data`` (one block per array)."""
    arrays = [ndarrays] if isinstance(ndarrays, np.ndarray) else list(ndarrays)
    for a in arrays:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"from_numpy expects ndarrays, got {type(a).__name__}")
    return _put_tables([_convert.ndarray_to_block(a) for a in arrays])


def from_pandas(dfs: Any, override_num_blocks: int | None = None) -> MaterializedDataset:
    """A dataset of one or more pandas DataFrames (one block each, or ``override_num_blocks``)."""
    frames = dfs if isinstance(dfs, (list, tuple)) else [dfs]
    tables = []
    for df in frames:
        if not _convert._is_pandas_frame(df):
            raise TypeError(f"from_pandas expects pandas DataFrames, got {type(df).__name__}")
        tables.append(_convert.batch_to_block(df))
    if override_num_blocks is not None:
        table = _convert.concat_blocks(tables)
        return _put_tables(_split_table(table, _split_count(table.num_rows, table.nbytes, override_num_blocks)))
    return _put_tables(tables)


def from_arrow(tables: pa.Table | list[pa.Table], *, override_num_blocks: int | None = None) -> MaterializedDataset:
    """A dataset of one or more pyarrow Tables (one block each, or ``override_num_blocks``)."""
    items = tables if isinstance(tables, (list, tuple)) else [tables]
    for t in items:
        if not isinstance(t, pa.Table):
            raise TypeError(f"from_arrow expects pyarrow Tables, got {type(t).__name__}")
    if override_num_blocks is not None:
        table = _convert.concat_blocks(list(items))
        return _put_tables(_split_table(table, _split_count(table.num_rows, table.nbytes, override_num_blocks)))
    return _put_tables(list(items))


def _from_value_refs(refs: Any, what: str) -> MaterializedDataset:
    refs = refs if isinstance(refs, (list, tuple)) else [refs]
    if not all(isinstance(r, shoal.ObjectRef) for r in refs):
        raise TypeError(f"{what} expects ObjectRefs, got {[type(r).__name__ for r in refs]}")
    fn = _tasks.remote_fn("value_to_block", 2)
    pairs = [fn.remote(r) for r in refs]
    metas = shoal.get([m for _, m in pairs])
    return MaterializedDataset(InputData([(b, m) for (b, _), m in zip(pairs, metas, strict=True)]))


def from_pandas_refs(dfs: Any) -> MaterializedDataset:
    """A dataset of pandas DataFrames already in the object store (converted where they are)."""
    return _from_value_refs(dfs, "from_pandas_refs")


def from_numpy_refs(ndarrays: Any) -> MaterializedDataset:
    """A dataset of ndarrays already in the object store: one row per element of the first axis."""
    return _from_value_refs(ndarrays, "from_numpy_refs")


def from_arrow_refs(tables: Any) -> MaterializedDataset:
    """A dataset of pyarrow Tables already in the object store."""
    refs = tables if isinstance(tables, (list, tuple)) else [tables]
    tables = shoal.get(list(refs))
    return MaterializedDataset(InputData([(r, BlockMetadata.of(t)) for r, t in zip(refs, tables, strict=True)]))


def _file_read(
    cls: type,
    paths: Any,
    *,
    filesystem: Any,
    parallelism: int,
    override_num_blocks: int | None,
    num_cpus: Any = None,
    num_gpus: Any = None,
    memory: Any = None,
    concurrency: int | None = None,
    ray_remote_args: dict[str, Any] | None = None,
    **source_args: Any,
) -> Dataset:
    source = cls(paths, filesystem=filesystem, **source_args)
    return read_datasource(
        source,
        parallelism=parallelism,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        memory=memory,
        concurrency=concurrency,
        override_num_blocks=override_num_blocks,
        ray_remote_args=ray_remote_args,
    )


def read_parquet(
    paths: str | list[str],
    *,
    filesystem: Any = None,
    columns: list[str] | None = None,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    include_paths: bool = False,
    file_extensions: list[str] | None = None,
    ignore_missing_paths: bool = False,
    shuffle: str | None = None,
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    partitioning: Partitioning | None = _HIVE,
    ray_remote_args: dict[str, Any] | None = None,
    **arrow_parquet_args: Any,
) -> Dataset:
    """Parquet files (paths: files, directories, globs; local or ``s3://``...), reading only ``columns``."""
    return _file_read(
        ParquetDatasource, paths, filesystem=filesystem, parallelism=parallelism,
        override_num_blocks=override_num_blocks, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
        concurrency=concurrency, ray_remote_args=ray_remote_args, columns=columns, include_paths=include_paths,
        file_extensions=file_extensions, ignore_missing_paths=ignore_missing_paths, shuffle=shuffle,
        partitioning=partitioning,
        arrow_parquet_args=arrow_parquet_args,
    )  # fmt: skip


def read_csv(
    paths: str | list[str],
    *,
    filesystem: Any = None,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    arrow_open_stream_args: dict[str, Any] | None = None,
    include_paths: bool = False,
    ignore_missing_paths: bool = False,
    shuffle: str | None = None,
    file_extensions: list[str] | None = None,
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    partitioning: Partitioning | None = _HIVE,
    ray_remote_args: dict[str, Any] | None = None,
    **arrow_csv_args: Any,
) -> Dataset:
    """CSV files; ``read_options``, ``parse_options`` and ``convert_options`` go to pyarrow.csv."""
    return _file_read(
        CSVDatasource, paths, filesystem=filesystem, parallelism=parallelism,
        override_num_blocks=override_num_blocks, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
        concurrency=concurrency, ray_remote_args=ray_remote_args, include_paths=include_paths,
        file_extensions=file_extensions, ignore_missing_paths=ignore_missing_paths, shuffle=shuffle,
        partitioning=partitioning,
        open_stream_args=arrow_open_stream_args, arrow_csv_args=arrow_csv_args,
    )  # fmt: skip


def read_json(
    paths: str | list[str],
    *,
    lines: bool = False,
    filesystem: Any = None,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    arrow_open_stream_args: dict[str, Any] | None = None,
    include_paths: bool = False,
    ignore_missing_paths: bool = False,
    shuffle: str | None = None,
    file_extensions: list[str] | None = None,
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    partitioning: Partitioning | None = _HIVE,
    ray_remote_args: dict[str, Any] | None = None,
    **arrow_json_args: Any,
) -> Dataset:
    """JSON lines files (one object per line); a file holding a JSON array of objects also works."""
    return _file_read(
        JSONDatasource, paths, filesystem=filesystem, parallelism=parallelism,
        override_num_blocks=override_num_blocks, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
        concurrency=concurrency, ray_remote_args=ray_remote_args, include_paths=include_paths,
        file_extensions=file_extensions, ignore_missing_paths=ignore_missing_paths, shuffle=shuffle,
        partitioning=partitioning,
        open_stream_args=arrow_open_stream_args, lines=lines, arrow_json_args=arrow_json_args,
    )  # fmt: skip


def read_text(
    paths: str | list[str],
    *,
    encoding: str = "utf-8",
    drop_empty_lines: bool = True,
    filesystem: Any = None,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    arrow_open_stream_args: dict[str, Any] | None = None,
    include_paths: bool = False,
    ignore_missing_paths: bool = False,
    shuffle: str | None = None,
    file_extensions: list[str] | None = None,
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    partitioning: Partitioning | None = None,
    ray_remote_args: dict[str, Any] | None = None,
) -> Dataset:
    """Text files, one row per line in a column ``text``."""
    return _file_read(
        TextDatasource, paths, filesystem=filesystem, parallelism=parallelism,
        override_num_blocks=override_num_blocks, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
        concurrency=concurrency, ray_remote_args=ray_remote_args, include_paths=include_paths,
        file_extensions=file_extensions, ignore_missing_paths=ignore_missing_paths, shuffle=shuffle,
        partitioning=partitioning,
        open_stream_args=arrow_open_stream_args, encoding=encoding, drop_empty_lines=drop_empty_lines,
    )  # fmt: skip


def read_numpy(
    paths: str | list[str],
    *,
    filesystem: Any = None,
    parallelism: int = -1,
    arrow_open_stream_args: dict[str, Any] | None = None,
    include_paths: bool = False,
    ignore_missing_paths: bool = False,
    shuffle: str | None = None,
    file_extensions: list[str] | None = None,
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    partitioning: Partitioning | None = None,
    allow_pickle: bool = False,
    **numpy_load_args: Any,
) -> Dataset:
    """``.npy`` files: one row per element of the first axis, in a column ``data``."""
    return _file_read(
        NumpyDatasource, paths, filesystem=filesystem, parallelism=parallelism,
        override_num_blocks=override_num_blocks, concurrency=concurrency, include_paths=include_paths,
        file_extensions=file_extensions, ignore_missing_paths=ignore_missing_paths, shuffle=shuffle,
        partitioning=partitioning,
        open_stream_args=arrow_open_stream_args, allow_pickle=allow_pickle, numpy_load_args=numpy_load_args,
    )  # fmt: skip


def read_binary_files(
    paths: str | list[str],
    *,
    include_paths: bool = False,
    filesystem: Any = None,
    parallelism: int = -1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    arrow_open_stream_args: dict[str, Any] | None = None,
    ignore_missing_paths: bool = False,
    shuffle: str | None = None,
    file_extensions: list[str] | None = None,
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    partitioning: Partitioning | None = None,
    ray_remote_args: dict[str, Any] | None = None,
) -> Dataset:
    """Whole files as bytes, one row per file in a column ``bytes`` (and ``path`` with ``include_paths``)."""
    return _file_read(
        BinaryDatasource, paths, filesystem=filesystem, parallelism=parallelism,
        override_num_blocks=override_num_blocks, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
        concurrency=concurrency, ray_remote_args=ray_remote_args, include_paths=include_paths,
        file_extensions=file_extensions, ignore_missing_paths=ignore_missing_paths, shuffle=shuffle,
        partitioning=partitioning,
        open_stream_args=arrow_open_stream_args,
    )  # fmt: skip
