"""The built-in file formats: parquet, CSV, JSON (lines), text, numpy and binary files."""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from shoal.data import _convert, _paths
from shoal.data._lazy import LazyModule
from shoal.data._partitioning import partition_values
from shoal.data.block import BlockAccessor, BlockMetadata
from shoal.data.datasource import BlockBasedFileDatasink, FileBasedDatasource, ReadTask, TaskContext

if TYPE_CHECKING:
    import pyarrow.csv as pacsv
    import pyarrow.fs as pafs
    import pyarrow.json as pajson
    import pyarrow.parquet as pq
else:
    pacsv = LazyModule("pyarrow.csv")
    pafs = LazyModule("pyarrow.fs")
    pajson = LazyModule("pyarrow.json")
    pq = LazyModule("pyarrow.parquet")

__all__ = [
    "ParquetDatasource",
    "CSVDatasource",
    "JSONDatasource",
    "TextDatasource",
    "NumpyDatasource",
    "BinaryDatasource",
    "ParquetDatasink",
    "CSVDatasink",
    "JSONDatasink",
    "NumpyDatasink",
]

# Parquet footers are read in the driver to split files by row groups and to
# know row counts, up to this many files; beyond it files are grouped by size.
_MAX_FOOTERS = 64


class ParquetDatasource(FileBasedDatasource):
    """Parquet files; reads only ``columns`` when given, and splits big files by row groups."""

    _FILE_EXTENSIONS = ["parquet"]

    def __init__(self, paths: Any, *, columns: list[str] | None = None, **kwargs: Any) -> None:
        self._arrow_args = kwargs.pop("arrow_parquet_args", {})
        super().__init__(paths, **kwargs)
        if columns is not None and (isinstance(columns, str) or not all(isinstance(c, str) for c in columns)):
            raise TypeError(f"columns must be a list of column names, got {columns!r}")
        self._columns = list(columns) if columns is not None else None
        self._footers: dict[str, pq.FileMetaData] | None = None
        # Columns named by directories, not stored in the files: never asked of pyarrow.
        self._path_keys: set[str] = set()
        if self._partitioning is not None:
            for path, _ in self._files:
                self._path_keys.update(partition_values(self._partitioning, path))

    def _file_columns(self) -> list[str] | None:
        if self._columns is None:
            return None
        return [c for c in self._columns if c not in self._path_keys]

    def _add_path_columns(self, block: pa.Table, path: str) -> pa.Table:
        block = super()._add_path_columns(block, path)
        if self._columns is None:
            return block
        return block.select([*self._columns, *(["path"] if self._include_paths else [])])

    def _open_input_source(self, filesystem: pafs.FileSystem, path: str) -> pa.NativeFile:
        return filesystem.open_input_file(path)

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        yield from self._row_groups(pq.ParquetFile(f, **self._arrow_args), None)

    def _row_groups(self, pf: pq.ParquetFile, groups: list[int] | None) -> Iterator[pa.Table]:
        """The row groups one by one: a fused transform downstream frees each before the next
        is decoded, where reading the whole file would hold all of them at once."""
        columns = self._file_columns()
        if pf.metadata.num_row_groups == 0:
            yield pf.read(columns=columns)
            return
        for g in range(pf.metadata.num_row_groups) if groups is None else groups:
            yield pf.read_row_group(g, columns=columns)

    def supports_projection_pushdown(self) -> bool:
        return True

    def apply_projection(self, columns: list[str]) -> ParquetDatasource:
        clone = copy.copy(self)
        if self._columns is not None:
            missing = [c for c in columns if c not in self._columns]
            if missing:
                raise ValueError(f"columns {missing} were not read (read_parquet columns={self._columns})")
        clone._columns = list(columns)
        return clone

    def _load_footers(self) -> dict[str, pq.FileMetaData]:
        if self._footers is None:
            footers = {}
            if len(self._files) <= _MAX_FOOTERS:
                for path, _ in self._files:
                    with self._filesystem.open_input_file(path) as f:
                        footers[path] = pq.ParquetFile(f).metadata
            self._footers = footers
        return self._footers

    def _column_fraction(self, md: pq.FileMetaData) -> float:
        if self._columns is None or md.num_columns == 0:
            return 1.0
        return max(0.05, min(1.0, len(self._columns) / md.num_columns))

    def estimate_inmemory_data_size(self) -> int | None:
        footers = self._load_footers()
        if not footers:
            return super().estimate_inmemory_data_size()
        total = 0.0
        for md in footers.values():
            frac = self._column_fraction(md)
            total += sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups)) * frac
        return int(total)

    def _read_pieces(self, pieces: list[tuple[str, list[int] | None]]) -> Iterator[pa.Table]:
        for path, groups in pieces:
            with self._filesystem.open_input_file(path) as f:
                for table in self._row_groups(pq.ParquetFile(f, **self._arrow_args), groups):
                    yield self._add_path_columns(table, path)

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        footers = self._load_footers()
        if not footers:
            return super().get_read_tasks(parallelism)
        # (path, row group, rows, bytes) units, balanced into ~parallelism tasks.
        units = []
        for path, _ in self._files:
            md = footers[path]
            frac = self._column_fraction(md)
            for g in range(md.num_row_groups):
                rg = md.row_group(g)
                units.append((path, g, rg.num_rows, int(rg.total_byte_size * frac)))
        if not units:
            return []
        total = sum(u[3] for u in units) or 1
        target = total / max(1, parallelism)
        tasks: list[ReadTask] = []
        current: list[tuple[str, int, int, int]] = []

        def flush() -> None:
            if not current:
                return
            pieces: list[tuple[str, list[int] | None]] = []
            for path, g, _, _ in current:
                if pieces and pieces[-1][0] == path:
                    groups = pieces[-1][1]
                    assert groups is not None
                    groups.append(g)
                else:
                    pieces.append((path, [g]))
            rows = sum(u[2] for u in current)
            size = sum(u[3] for u in current)
            files = sorted({u[0] for u in current})

            def read(pieces: list[tuple[str, list[int] | None]] = pieces) -> Iterator[pa.Table]:
                return self._read_pieces(pieces)

            tasks.append(ReadTask(read, BlockMetadata(rows, size, input_files=files)))
            current.clear()

        acc = 0
        for unit in units:
            if current and acc + unit[3] > target * 1.5:
                flush()
                acc = 0
            current.append(unit)
            acc += unit[3]
            if acc >= target:
                flush()
                acc = 0
        flush()
        return tasks


def _arrow_csv_error(path: str, f_reopen: Any, kwargs: dict[str, Any], error: Exception) -> Exception:
    """Re-parse single-threaded to learn the line of a malformed row."""
    found: list[Any] = []

    def handler(row: Any) -> str:
        found.append(row)
        return "error"

    read_options = copy.copy(kwargs.get("read_options") or pacsv.ReadOptions())
    read_options.use_threads = False
    parse_options = copy.copy(kwargs.get("parse_options") or pacsv.ParseOptions())
    parse_options.invalid_row_handler = handler
    try:
        with f_reopen() as f:
            pacsv.read_csv(
                f,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=kwargs.get("convert_options"),
            )
    except (pa.ArrowInvalid, ValueError):
        pass
    msg = str(error)
    if found and found[0].number is not None:
        row = found[0]
        return ValueError(
            f"malformed CSV row in {path}, line {row.number}: expected {row.expected_columns} columns, "
            f"got {row.actual_columns}: {row.text!r}"
        )
    m = re.search(r"Row #(\d+)", msg)
    where = f", line {m.group(1)}" if m else ""
    return ValueError(f"cannot read CSV file {path}{where}: {msg}")


class CSVDatasource(FileBasedDatasource):
    """CSV files, parsed by pyarrow (``read_options``, ``parse_options``, ``convert_options``)."""

    # As Ray Data: a directory's other files (notes, logs) are not read as CSV.
    _FILE_EXTENSIONS = ["csv", "csv.gz", "csv.br", "csv.zst", "csv.lz4"]

    def __init__(self, paths: Any, *, arrow_csv_args: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(paths, **kwargs)
        self._csv_args = dict(arrow_csv_args or {})
        unknown = set(self._csv_args) - {"read_options", "parse_options", "convert_options"}
        if unknown:
            raise TypeError(f"read_csv got unexpected arguments {sorted(unknown)}")

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        try:
            table = pacsv.read_csv(f, **self._csv_args)
        except pa.ArrowInvalid as e:
            raise _arrow_csv_error(
                path, lambda: self._open_input_source(self._filesystem, path), self._csv_args, e
            ) from None
        yield table


def _json_error(path: str, data: bytes, error: Exception) -> Exception:
    for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError as e:
            return ValueError(f"malformed JSON in {path}, line {lineno}: {e.args[0] if e.args else e}: {line[:200]!r}")
    m = re.search(r"in row (\d+)", str(error))
    where = f", line {int(m.group(1)) + 1}" if m else ""
    return ValueError(f"cannot read JSON file {path}{where}: {error}")


class JSONDatasource(FileBasedDatasource):
    """JSON lines files (one object per line), or files holding one JSON array of objects."""

    _FILE_EXTENSIONS = [f"{e}{c}" for e in ("json", "jsonl") for c in ("", ".gz", ".br", ".zst", ".lz4")]

    def __init__(
        self, paths: Any, *, lines: bool = False, arrow_json_args: dict[str, Any] | None = None, **kwargs: Any
    ):
        super().__init__(paths, **kwargs)
        self._lines = lines
        self._json_args = dict(arrow_json_args or {})
        unknown = set(self._json_args) - {"read_options", "parse_options"}
        if unknown:
            raise TypeError(f"read_json got unexpected arguments {sorted(unknown)}")

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        data = f.read()
        if not self._lines and data.lstrip()[:1] == b"[":
            try:
                records = json.loads(data)
            except ValueError as e:
                raise ValueError(f"malformed JSON in {path}: {e}") from None
            yield _convert.rows_to_block(records, f"record of {path}")
            return
        try:
            table = pajson.read_json(io.BytesIO(data), **self._json_args)
        except pa.ArrowInvalid as e:
            raise _json_error(path, data, e) from None
        yield table


class TextDatasource(FileBasedDatasource):
    """Text files: one row per line, in a column ``text``."""

    def __init__(self, paths: Any, *, encoding: str = "utf-8", drop_empty_lines: bool = True, **kwargs: Any):
        super().__init__(paths, **kwargs)
        self._encoding = encoding
        self._drop_empty = drop_empty_lines

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        lines = f.read().decode(self._encoding).splitlines()
        if self._drop_empty:
            lines = [line for line in lines if line.strip()]
        yield pa.table({"text": pa.array(lines, pa.string())})


class NumpyDatasource(FileBasedDatasource):
    """``.npy`` files: one row per element of the first axis, in a column ``data``."""

    _FILE_EXTENSIONS = ["npy"]

    def __init__(
        self, paths: Any, *, allow_pickle: bool = False, numpy_load_args: dict[str, Any] | None = None, **kwargs: Any
    ):
        super().__init__(paths, **kwargs)
        self._load_args = {"allow_pickle": allow_pickle, **(numpy_load_args or {})}

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        arr = np.load(io.BytesIO(f.read()), **self._load_args)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        yield pa.table({"data": _convert.array_from_values(arr, "data")})


class BinaryDatasource(FileBasedDatasource):
    """Whole files as bytes: one row per file, in a column ``bytes``."""

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        yield pa.table({"bytes": pa.array([f.read()], pa.binary())})


# -- sinks ---------------------------------------------------------------------------


def _args_with(args: dict[str, Any], args_fn: Callable[[], dict[str, Any]] | None) -> dict[str, Any]:
    """Writer keyword arguments: the fixed ones, then what ``args_fn`` returns in the write task."""
    if args_fn is None:
        return args
    extra = args_fn()
    if not isinstance(extra, dict):
        raise TypeError(f"the writer's args function must return a dict, got {type(extra).__name__}")
    return {**args, **extra}


def _hive_value(value: Any) -> str:
    # pyarrow's own name for a null partition value
    return "__HIVE_DEFAULT_PARTITION__" if value is None else str(value)


class ParquetDatasink(BlockBasedFileDatasink):
    """Parquet files: one per write task, or per task and ``col=value`` directory with
    ``partition_cols``, split further into files of at most ``max_rows_per_file`` rows."""

    def __init__(
        self,
        path: str,
        *,
        partition_cols: Sequence[str] | None = None,
        arrow_parquet_args: dict[str, Any] | None = None,
        arrow_parquet_args_fn: Callable[[], dict[str, Any]] | None = None,
        max_rows_per_file: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(path, file_format="parquet", **kwargs)
        if max_rows_per_file is not None and (
            isinstance(max_rows_per_file, bool) or not isinstance(max_rows_per_file, int) or max_rows_per_file < 1
        ):
            raise ValueError(f"max_rows_per_file must be a positive integer, got {max_rows_per_file!r}")
        self._max_rows = max_rows_per_file
        if partition_cols is not None and (
            isinstance(partition_cols, str) or not partition_cols or not all(isinstance(c, str) for c in partition_cols)
        ):
            raise TypeError(f"partition_cols must be a non-empty list of column names, got {partition_cols!r}")
        if arrow_parquet_args_fn is not None and not callable(arrow_parquet_args_fn):
            raise TypeError(f"arrow_parquet_args_fn must be callable, got {arrow_parquet_args_fn!r}")
        self._partition_cols = list(partition_cols or [])
        self._args = dict(arrow_parquet_args or {})
        self._args_fn = arrow_parquet_args_fn

    def write_block_to_file(self, block: BlockAccessor, file: pa.NativeFile) -> None:
        pq.write_table(block.to_arrow(), file, **_args_with(self._args, self._args_fn))

    def write(self, blocks: Iterable[pa.Table], ctx: TaskContext) -> Any:
        table = _convert.concat_blocks(list(blocks))
        if table.num_rows == 0:
            return None
        written = []
        for directory, rows in self._directories(table):
            name = self.filename_for(ctx, rows)
            step = self._max_rows or rows.num_rows
            for k, start in enumerate(range(0, rows.num_rows, step)):
                target = _paths.join_path(directory, name if k == 0 else _numbered(name, k))
                with self._filesystem.open_output_stream(target, **self._open_stream_args) as f:
                    self.write_block_to_file(BlockAccessor(rows.slice(start, step)), f)
                written.append(target)
        return written

    def _directories(self, table: pa.Table) -> list[tuple[str, pa.Table]]:
        """Where the rows go: the path itself, or a ``col=value`` directory per partition."""
        cols = self._partition_cols
        if not cols:
            return [(self.path, table)]
        from shoal.data._hashagg import split_by_keys

        missing = [c for c in cols if c not in table.column_names]
        if missing:
            raise ValueError(f"write_parquet: partition_cols {missing} are not columns (columns: {table.column_names})")
        if len(set(cols)) == table.num_columns:
            raise ValueError("write_parquet: partition_cols cannot be every column (the files would be empty)")
        out = []
        for key, rows in split_by_keys(table, cols):
            directory = self.path
            for col, value in zip(cols, key, strict=True):
                directory = _paths.join_path(directory, f"{col}={_hive_value(value)}")
            _paths.make_dirs(self._filesystem, directory)
            out.append((directory, rows.drop_columns(cols)))
        return out


def _numbered(name: str, k: int) -> str:
    """``name`` with ``_k`` before its extension: the k-th further file of one write task."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_{k:06d}.{ext}" if dot else f"{name}_{k:06d}"


class CSVDatasink(BlockBasedFileDatasink):
    def __init__(
        self,
        path: str,
        *,
        arrow_csv_args: dict[str, Any] | None = None,
        arrow_csv_args_fn: Callable[[], dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(path, file_format="csv", **kwargs)
        if arrow_csv_args_fn is not None and not callable(arrow_csv_args_fn):
            raise TypeError(f"arrow_csv_args_fn must be callable, got {arrow_csv_args_fn!r}")
        self._args = dict(arrow_csv_args or {})
        self._args_fn = arrow_csv_args_fn

    def write_block_to_file(self, block: BlockAccessor, file: pa.NativeFile) -> None:
        table = block.to_arrow()
        for name, t in zip(table.column_names, table.schema.types, strict=True):
            if _convert.is_tensor_type(t) or pa.types.is_nested(t):
                raise ValueError(f"write_csv: column {name!r} holds {t}, which CSV cannot represent")
        pacsv.write_csv(table, file, **_args_with(self._args, self._args_fn))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"value of type {type(value).__name__} is not JSON serializable")


class JSONDatasink(BlockBasedFileDatasink):
    """JSON lines: one object per row."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__(path, file_format="json", **kwargs)

    def write_block_to_file(self, block: BlockAccessor, file: pa.NativeFile) -> None:
        out = io.StringIO()
        for row in _convert.rows_of(block.to_arrow()):
            out.write(json.dumps(row, default=_json_default, separators=(",", ":")))  # compact, as Ray writes
            out.write("\n")
        file.write(out.getvalue().encode("utf-8"))


class NumpyDatasink(BlockBasedFileDatasink):
    """One ``.npy`` file per write task holding one column."""

    def __init__(self, path: str, *, column: str, **kwargs: Any) -> None:
        if not isinstance(column, str):
            raise TypeError(f"write_numpy: column must be a column name, got {column!r}")
        super().__init__(path, file_format="npy", **kwargs)
        self._column = column

    def write_block_to_file(self, block: BlockAccessor, file: pa.NativeFile) -> None:
        table = block.to_arrow()
        if self._column not in table.column_names:
            raise ValueError(f"write_numpy: no column {self._column!r} (columns: {table.column_names})")
        buf = io.BytesIO()
        np.save(buf, _convert.column_to_numpy(table.column(self._column)), allow_pickle=False)
        file.write(buf.getvalue())


def read_task_rows(tasks: Sequence[ReadTask]) -> int | None:
    """Total rows of read tasks when every one knows its count."""
    counts = [t.metadata.num_rows for t in tasks]
    return None if any(c is None for c in counts) else int(sum(c for c in counts if c is not None))
