"""Blocks and their metadata.

A block is a ``pyarrow.Table`` held in shoal's object store. Its
:class:`BlockMetadata` (rows, bytes, schema, input files, execution timing)
travels separately, so the executor can plan and count without fetching
blocks. :class:`BlockAccessor` gives custom datasources and datasinks a
uniform view of a block.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from shoal.data import _convert

__all__ = ["Block", "BlockMetadata", "BlockExecStats", "BlockAccessor"]

Block = pa.Table


@dataclass
class BlockExecStats:
    """Timing of the task that produced a block."""

    wall_time_s: float = 0.0
    cpu_time_s: float = 0.0
    #: Process that ran the task (for "tasks per worker" in stats).
    pid: int | None = None

    @staticmethod
    def timer() -> _StatsTimer:
        return _StatsTimer()


class _StatsTimer:
    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def build(self) -> BlockExecStats:
        import os

        return BlockExecStats(time.perf_counter() - self._wall, time.process_time() - self._cpu, os.getpid())


@dataclass
class BlockMetadata:
    """What is known about a block without reading it; any field may be None when unknown."""

    num_rows: int | None = None
    size_bytes: int | None = None
    exec_stats: BlockExecStats | None = None
    input_files: list[str] | None = field(default=None)
    schema: pa.Schema | None = None

    @staticmethod
    def of(
        block: pa.Table, exec_stats: BlockExecStats | None = None, input_files: list[str] | None = None
    ) -> BlockMetadata:
        """The metadata of a block at hand."""
        return BlockMetadata(block.num_rows, block.nbytes, exec_stats, input_files, block.schema)


class BlockAccessor:
    """A uniform view of one block: sizes, slices, rows and conversions."""

    def __init__(self, block: pa.Table) -> None:
        if not isinstance(block, pa.Table):
            block = _convert.batch_to_block(block, "the block")
        self._table = block

    @staticmethod
    def for_block(block: Any) -> BlockAccessor:
        """An accessor for a pyarrow Table (or a pandas DataFrame / dict batch, converted)."""
        return BlockAccessor(block)

    def num_rows(self) -> int:
        return self._table.num_rows

    def size_bytes(self) -> int:
        return self._table.nbytes

    def schema(self) -> pa.Schema:
        return self._table.schema

    def column_names(self) -> list[str]:
        return list(self._table.column_names)

    def slice(self, start: int, end: int, copy: bool = False) -> pa.Table:
        """Rows ``[start, end)``; ``copy=True`` gives a table that owns its buffers."""
        out = self._table.slice(start, max(0, end - start))
        return _convert.compact(out) if copy else out

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        return iter(_convert.rows_of(self._table))

    def to_arrow(self) -> pa.Table:
        return self._table

    def to_pandas(self) -> Any:
        return _convert.table_to_pandas(self._table)

    def to_numpy(self, columns: str | list[str] | None = None) -> Any:
        """One column as an ndarray, or several as a dict of ndarrays."""
        if isinstance(columns, str):
            return _convert.column_to_numpy(self._table.column(columns))
        table = self._table if columns is None else self._table.select(columns)
        return _convert.table_to_numpy(table)

    def to_batch_format(self, batch_format: str | None) -> Any:
        return _convert.block_to_batch(self._table, _convert.check_batch_format(batch_format))

    def get_metadata(
        self, input_files: list[str] | None = None, exec_stats: BlockExecStats | None = None
    ) -> BlockMetadata:
        return BlockMetadata.of(self._table, exec_stats, input_files)
