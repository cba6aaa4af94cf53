"""Running a write: the datasink's callbacks around the write tasks."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import pyarrow as pa

import shoal
from shoal.data.datasource import Datasink, TaskContext, WriteResult

if TYPE_CHECKING:
    from shoal.data.dataset import Dataset

__all__ = ["run_write"]


def write_results(tables: list[pa.Table]) -> tuple[int, int, list[Any]]:
    rows = size = 0
    returns: list[Any] = []
    for t in tables:
        if t.num_rows == 0:
            continue
        rows += int(t.column("num_rows")[0].as_py())
        size += int(t.column("size_bytes")[0].as_py())
        returns.append(pickle.loads(t.column("write_return")[0].as_py()))
    return rows, size, returns


def run_write(source: Dataset, write_ds: Dataset, datasink: Datasink) -> None:
    """Run a write: ``on_write_start``, the write tasks, then ``on_write_complete`` or ``on_write_failed``."""
    datasink.on_write_start()
    if datasink.skips_write:
        datasink.on_write_complete(WriteResult(0, 0, []))
        return
    try:
        if datasink.supports_distributed_writes:
            tables = [shoal.get(ref) for ref, _ in write_ds._iter_refs()]
            source._last_stats = write_ds._last_stats
        else:
            blocks = [shoal.get(ref) for ref, _ in source._iter_refs()]
            result = datasink.write(iter(blocks), TaskContext(0, f"Write{datasink.get_name()}"))
            tables = [
                pa.table(
                    {
                        "num_rows": [sum(b.num_rows for b in blocks)],
                        "size_bytes": [sum(b.nbytes for b in blocks)],
                        "write_return": pa.array([pickle.dumps(result)], pa.binary()),
                    }
                )
            ]
    except Exception as e:
        datasink.on_write_failed(e)
        raise
    rows, size, returns = write_results(tables)
    datasink.on_write_complete(WriteResult(rows, size, returns))
