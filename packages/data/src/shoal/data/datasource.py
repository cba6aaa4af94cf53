"""Custom sources and sinks: :class:`Datasource`, :class:`ReadTask`, :class:`Datasink`.

A Datasource plans a read as a list of :class:`ReadTask` s; each runs in a
task and yields blocks. A Datasink writes the blocks of a dataset from many
tasks and is told when all of them finished (or one failed).
:class:`FileBasedDatasource` and :class:`BlockBasedFileDatasink` do the
path handling for file formats: subclass them and implement one method.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from shoal.data import _convert, _paths
from shoal.data._lazy import LazyModule
from shoal.data._partitioning import Partitioning, add_partition_columns, partition_values
from shoal.data.block import BlockAccessor, BlockMetadata

if TYPE_CHECKING:
    import pyarrow.fs as pafs
else:
    pafs = LazyModule("pyarrow.fs")

__all__ = [
    "Datasource",
    "ReadTask",
    "Datasink",
    "WriteResult",
    "TaskContext",
    "FileBasedDatasource",
    "BlockBasedFileDatasink",
    "Partitioning",
    "SaveMode",
    "FilenameProvider",
]


class ReadTask:
    """One unit of a read: a function yielding blocks, and what is known of them beforehand."""

    def __init__(
        self,
        read_fn: Callable[[], Iterable[Any]],
        metadata: BlockMetadata,
        schema: pa.Schema | None = None,
        per_task_row_limit: int | None = None,
    ) -> None:
        if not callable(read_fn):
            raise TypeError(f"ReadTask needs a callable read_fn, got {read_fn!r}")
        self._read_fn = read_fn
        self.metadata = metadata
        self.schema = schema if schema is not None else metadata.schema
        self.per_task_row_limit = per_task_row_limit

    @property
    def read_fn(self) -> Callable[[], Iterable[Any]]:
        return self._read_fn

    def with_row_limit(self, limit: int) -> ReadTask:
        """A copy that stops after ``limit`` rows."""
        current = self.per_task_row_limit
        return ReadTask(self._read_fn, self.metadata, self.schema, limit if current is None else min(current, limit))

    def __call__(self) -> Iterator[pa.Table]:
        """Run the read: its blocks as pyarrow Tables, cut at ``per_task_row_limit``."""
        remaining = self.per_task_row_limit
        for out in self._read_fn():
            block = _convert.batch_to_block(out, "a block yielded by a ReadTask")
            if remaining is not None:
                if remaining <= 0:
                    return
                if block.num_rows > remaining:
                    block = block.slice(0, remaining)
                remaining -= block.num_rows
            yield block

    def __repr__(self) -> str:
        return f"ReadTask(num_rows={self.metadata.num_rows}, size_bytes={self.metadata.size_bytes})"


class Datasource:
    """A source of data: subclass and implement :meth:`get_read_tasks`."""

    def get_name(self) -> str:
        """The name shown in stats and progress bars (``Read<name>``)."""
        name = type(self).__name__
        return name[: -len("Datasource")] if name.endswith("Datasource") and name != "Datasource" else name

    def estimate_inmemory_data_size(self) -> int | None:
        """Bytes the data will take in memory, if known (used to choose the number of blocks)."""
        return None

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        """About ``parallelism`` read tasks that together read everything."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_read_tasks(parallelism)")

    @property
    def supports_distributed_reads(self) -> bool:
        """False runs the read tasks in the driver process (for sources only it can reach)."""
        return True

    def supports_projection_pushdown(self) -> bool:
        """True if :meth:`apply_projection` can read only some columns."""
        return False

    def apply_projection(self, columns: list[str]) -> Datasource:
        """A copy of this source that reads only ``columns``."""
        raise NotImplementedError(f"{type(self).__name__} does not support projection pushdown")


class SaveMode(str, Enum):  # noqa: UP042 - str() shows the member, as Ray's does
    """What a write does when its path already exists (Ray's ``SaveMode``)."""

    CREATE = "create"  # error if the path exists
    APPEND = "append"  # add files beside what is there (the default)
    OVERWRITE = "overwrite"  # delete what is there first
    IGNORE = "ignore"  # write nothing
    ERROR = "error"  # error if the path exists
    UPSERT = "upsert"  # table formats only

    @classmethod
    def parse(cls, mode: SaveMode | str) -> SaveMode:
        if isinstance(mode, cls):
            return mode
        if isinstance(mode, str):
            try:
                return cls(mode.lower())
            except ValueError:
                pass
        choices = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"mode must be a SaveMode or one of {choices}, got {mode!r}")


@dataclass
class TaskContext:
    """What a task knows about itself: its index within its operator and the operator's name."""

    task_idx: int
    op_name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class WriteResult:
    """The outcome of a write, given to :meth:`Datasink.on_write_complete`."""

    num_rows: int
    size_bytes: int
    write_returns: list[Any]


class Datasink:
    """A destination for ``Dataset.write_datasink``.

    ``on_write_start`` runs once in the driver, ``write`` once per task with
    that task's blocks, then ``on_write_complete`` (or ``on_write_failed``)
    once in the driver.
    """

    def on_write_start(self) -> None:
        """Prepare the destination (create a directory, a table...)."""

    def write(self, blocks: Iterable[pa.Table], ctx: TaskContext) -> Any:
        """Write some blocks; the return value reaches ``on_write_complete``."""
        raise NotImplementedError(f"{type(self).__name__} must implement write(blocks, ctx)")

    def on_write_complete(self, write_result: WriteResult) -> None:
        """Called once after every write task succeeded."""

    def on_write_failed(self, error: Exception) -> None:
        """Called once if a write task failed; the error is raised afterwards."""

    def get_name(self) -> str:
        name = type(self).__name__
        return name[: -len("Datasink")] if name.endswith("Datasink") and name != "Datasink" else name

    @property
    def supports_distributed_writes(self) -> bool:
        """False runs ``write`` in the driver process."""
        return True

    @property
    def min_rows_per_write(self) -> int | None:
        """Give each ``write`` call at least this many rows (None: one block per call)."""
        return None

    @property
    def skips_write(self) -> bool:
        """True (after ``on_write_start``) when there is nothing to write: the dataset is not run."""
        return False


class FileBasedDatasource(Datasource):
    """A datasource reading files: subclass and implement :meth:`_read_stream`.

    ``paths`` are files, directories (read recursively, hidden entries
    skipped), globs, or a list of those, local or on any ``pyarrow.fs``
    filesystem (``s3://...`` picks S3). Files are grouped into at most
    ``parallelism`` read tasks.
    """

    #: Extensions read from directories and globs by default (None: every file).
    _FILE_EXTENSIONS: list[str] | None = None

    def __init__(
        self,
        paths: str | Sequence[str],
        *,
        filesystem: pafs.FileSystem | None = None,
        include_paths: bool = False,
        file_extensions: list[str] | None = None,
        ignore_missing_paths: bool = False,
        shuffle: str | None = None,
        open_stream_args: dict[str, Any] | None = None,
        partitioning: Partitioning | None = None,
    ) -> None:
        if partitioning is not None and not isinstance(partitioning, Partitioning):
            raise TypeError(f"partitioning must be a Partitioning or None, got {type(partitioning).__name__}")
        self._partitioning = partitioning
        if shuffle not in (None, "files"):
            raise ValueError(f"shuffle must be None or 'files', got {shuffle!r}")
        if filesystem is not None and not isinstance(filesystem, pafs.FileSystem):
            raise TypeError(f"filesystem must be a pyarrow.fs.FileSystem, got {type(filesystem).__name__}")
        self._filesystem, resolved = _paths.resolve_filesystem(paths, filesystem)
        exts = file_extensions if file_extensions is not None else self._FILE_EXTENSIONS
        self._files = _paths.expand_paths(
            self._filesystem, resolved, file_extensions=exts, ignore_missing_paths=ignore_missing_paths
        )
        if shuffle == "files":
            random.shuffle(self._files)
        self._include_paths = include_paths
        self._open_stream_args = dict(open_stream_args or {})

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self._filesystem

    @property
    def files(self) -> list[str]:
        """The files this source reads, in order."""
        return [p for p, _ in self._files]

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[Any]:
        """Yield the blocks (tables, DataFrames or dict batches) of one opened file."""
        raise NotImplementedError(f"{type(self).__name__} must implement _read_stream(f, path)")

    def _open_input_source(self, filesystem: pafs.FileSystem, path: str) -> pa.NativeFile:
        return filesystem.open_input_stream(path, **self._open_stream_args)

    def _read_file(self, path: str) -> Iterator[pa.Table]:
        with self._open_input_source(self._filesystem, path) as f:
            for out in self._read_stream(f, path):
                yield self._add_path_columns(_convert.batch_to_block(out, f"a block read from {path}"), path)

    def _add_path_columns(self, block: pa.Table, path: str) -> pa.Table:
        """The partition values the path names, then the path itself when asked for."""
        if self._partitioning is not None:
            block = add_partition_columns(block, partition_values(self._partitioning, path))
        if self._include_paths:
            block = block.append_column("path", pa.array([path] * block.num_rows, pa.string()))
        return block

    def estimate_inmemory_data_size(self) -> int | None:
        sizes = [s for _, s in self._files]
        if any(s is None for s in sizes):
            return None
        return int(sum(s for s in sizes if s is not None))

    def _file_groups(self, parallelism: int) -> list[list[tuple[str, int | None]]]:
        n = max(1, min(parallelism, len(self._files)))
        groups: list[list[tuple[str, int | None]]] = [[] for _ in range(n)]
        per = len(self._files) / n
        for i, item in enumerate(self._files):
            groups[min(n - 1, int(i / per))].append(item)
        return [g for g in groups if g]

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        tasks = []
        for group in self._file_groups(parallelism):
            paths = [p for p, _ in group]
            size = sum(s or 0 for _, s in group)

            def read(paths: list[str] = paths) -> Iterator[pa.Table]:
                for p in paths:
                    yield from self._read_file(p)

            tasks.append(ReadTask(read, BlockMetadata(None, size, input_files=paths)))
        return tasks


class FilenameProvider:
    """Names the files a write makes: override :meth:`get_filename_for_task` (Ray's interface).

    Names must be unique per ``(write_uuid, task_index)`` and depend on nothing else.
    """

    def __init__(self, file_format: str | None = None) -> None:
        self.file_format = file_format

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        name = f"{write_uuid}_{task_index:06d}"
        return f"{name}.{self.file_format}" if self.file_format else name

    def get_filename_for_block(self, block: pa.Table | None, write_uuid: str, task_index: int, block_index: int) -> str:
        """Ray's older hook, followed when a subclass overrides it and not the task one."""
        return self.get_filename_for_task(write_uuid, task_index)


def _file_name(provider: FilenameProvider, block: pa.Table | None, write_uuid: str, task_index: int) -> str:
    cls = type(provider)
    if cls.get_filename_for_task is not FilenameProvider.get_filename_for_task:
        name = provider.get_filename_for_task(write_uuid, task_index)
    else:
        name = provider.get_filename_for_block(block, write_uuid, task_index, 0)
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"{cls.__name__} must give a file name without '/', got {name!r}")
    return name


class BlockBasedFileDatasink(Datasink):
    """A datasink writing one file per write task: subclass and implement :meth:`write_block_to_file`."""

    def __init__(
        self,
        path: str,
        *,
        file_format: str,
        filesystem: pafs.FileSystem | None = None,
        try_create_dir: bool = True,
        open_stream_args: dict[str, Any] | None = None,
        min_rows_per_file: int | None = None,
        mode: SaveMode | str = SaveMode.APPEND,
        filename_provider: FilenameProvider | None = None,
    ) -> None:
        if not isinstance(path, str) or not path:
            raise ValueError(f"path must be a non-empty string, got {path!r}")
        self._mode = SaveMode.parse(mode)
        if self._mode is SaveMode.UPSERT:
            raise ValueError("mode=SaveMode.UPSERT needs a table format; file writers append, overwrite or ignore")
        self._skip_write = False
        if filename_provider is not None and not isinstance(filename_provider, FilenameProvider):
            raise TypeError(f"filename_provider must be a FilenameProvider, got {filename_provider!r}")
        self._filenames = filename_provider or FilenameProvider(file_format)
        if min_rows_per_file is not None and (not isinstance(min_rows_per_file, int) or min_rows_per_file < 1):
            raise ValueError(f"min_rows_per_file must be a positive integer, got {min_rows_per_file!r}")
        self._filesystem, (self._path,) = _paths.resolve_filesystem(path, filesystem)
        self._file_format = file_format
        self._try_create_dir = try_create_dir
        self._open_stream_args = dict(open_stream_args or {})
        self._min_rows = min_rows_per_file
        self._uuid = uuid.uuid4().hex[:16]

    @property
    def path(self) -> str:
        return self._path

    @property
    def min_rows_per_write(self) -> int | None:
        return self._min_rows

    @property
    def skips_write(self) -> bool:
        """True when ``mode`` is IGNORE and the path already existed: nothing is written."""
        return self._skip_write

    def on_write_start(self) -> None:
        if self._mode is not SaveMode.APPEND and _paths.exists(self._filesystem, self._path):
            if self._mode in (SaveMode.ERROR, SaveMode.CREATE):
                raise ValueError(
                    f"{self._path} already exists (mode={self._mode.value}); use mode='append' to add files"
                )
            if self._mode is SaveMode.IGNORE:
                self._skip_write = True
                return
            self._filesystem.delete_dir_contents(self._path)  # OVERWRITE
        if self._try_create_dir:
            _paths.make_dirs(self._filesystem, self._path)

    def write_block_to_file(self, block: BlockAccessor, file: pa.NativeFile) -> None:
        """Write one block (all of this task's rows) to an open output stream."""
        raise NotImplementedError(f"{type(self).__name__} must implement write_block_to_file(block, file)")

    def filename_for(self, ctx: TaskContext, block: pa.Table | None = None) -> str:
        return _file_name(self._filenames, block, self._uuid, ctx.task_idx)

    def write(self, blocks: Iterable[pa.Table], ctx: TaskContext) -> Any:
        table = _convert.concat_blocks(list(blocks))
        if table.num_rows == 0:
            return None
        target = _paths.join_path(self._path, self.filename_for(ctx, table))
        with self._filesystem.open_output_stream(target, **self._open_stream_args) as f:
            self.write_block_to_file(BlockAccessor(table), f)
        return target
