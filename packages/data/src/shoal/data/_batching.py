"""Cutting a stream of blocks into batches of a fixed number of rows, in any batch format.

The numpy path converts each block to arrays once and hands out views, so a
batch costs a few dict and slice operations whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from shoal.data._convert import block_to_batch, concat_blocks, table_to_numpy
from shoal.data._numpy_arrow import to_arrow

__all__ = ["iter_batches", "iter_table_batches", "ShuffleBuffer"]


def _check_batch_size(batch_size: Any) -> int | None:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    return int(batch_size)


def iter_table_batches(
    blocks: Iterable[pa.Table], batch_size: int | None, drop_last: bool = False
) -> Iterator[pa.Table]:
    """Tables of exactly ``batch_size`` rows (the last may be short); None yields each block."""
    batch_size = _check_batch_size(batch_size)
    if batch_size is None:
        for block in blocks:
            if block.num_rows:
                yield block
        return
    pending: list[pa.Table] = []
    pending_rows = 0
    for block in blocks:
        n = block.num_rows
        pos = 0
        if pending_rows:
            take = min(batch_size - pending_rows, n)
            pending.append(block.slice(0, take))
            pending_rows += take
            pos = take
            if pending_rows == batch_size:
                yield concat_blocks(pending)
                pending, pending_rows = [], 0
        while n - pos >= batch_size:
            yield block.slice(pos, batch_size)
            pos += batch_size
        if pos < n:
            pending.append(block.slice(pos))
            pending_rows += n - pos
    if pending_rows and not drop_last:
        yield concat_blocks(pending)


def _concat_numpy(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = list(parts[0])
    for p in parts[1:]:
        if list(p) != keys:
            raise ValueError(f"blocks have different columns: {keys} and {list(p)}; cannot batch them together")
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def _iter_numpy(blocks: Iterable[pa.Table], batch_size: int | None, drop_last: bool) -> Iterator[dict[str, np.ndarray]]:
    if batch_size is None:
        for block in blocks:
            if block.num_rows:
                yield table_to_numpy(block)
        return
    pending: list[dict[str, np.ndarray]] = []
    pending_rows = 0
    for block in blocks:
        n = block.num_rows
        if n == 0:
            continue
        cols = table_to_numpy(block)
        pos = 0
        if pending_rows:
            take = min(batch_size - pending_rows, n)
            pending.append({k: v[:take] for k, v in cols.items()})
            pending_rows += take
            pos = take
            if pending_rows == batch_size:
                yield _concat_numpy(pending)
                pending, pending_rows = [], 0
        last = n - batch_size
        if len(cols) == 1:
            # One column (the common case): skip the dict comprehension per batch.
            ((name, arr),) = cols.items()
            for start in range(pos, last + 1, batch_size):
                yield {name: arr[start : start + batch_size]}
        else:
            items = tuple(cols.items())
            for start in range(pos, last + 1, batch_size):
                end = start + batch_size
                yield {k: v[start:end] for k, v in items}
        if pos <= last:
            pos += ((last - pos) // batch_size + 1) * batch_size
        if pos < n:
            pending.append({k: v[pos:] for k, v in cols.items()})
            pending_rows += n - pos
    if pending_rows and not drop_last:
        yield _concat_numpy(pending) if len(pending) > 1 else pending[0]


def iter_batches(
    blocks: Iterable[pa.Table],
    batch_size: int | None,
    batch_format: str,
    *,
    drop_last: bool = False,
    writable: bool = False,
) -> Iterator[Any]:
    """Batches in ``batch_format`` ("numpy", "pandas" or "pyarrow") of ``batch_size`` rows."""
    if batch_format == "numpy":
        batches = _iter_numpy(blocks, _check_batch_size(batch_size), drop_last)
        if not writable:
            yield from batches
            return
        for batch in batches:
            yield {k: v if v.flags.writeable else v.copy() for k, v in batch.items()}
        return
    for table in iter_table_batches(blocks, batch_size, drop_last):
        yield block_to_batch(table, batch_format)


class ShuffleBuffer:
    """Rows buffered and handed out in random order (``local_shuffle_buffer_size``)."""

    def __init__(self, min_rows: int, batch_size: int, seed: int | None) -> None:
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
            raise ValueError(f"local_shuffle_buffer_size must be a positive integer, got {min_rows!r}")
        self._min_rows = min_rows
        self._batch_size = batch_size
        self._rng = np.random.default_rng(seed)
        self._tables: list[pa.Table] = []
        self._rows = 0

    def add(self, block: pa.Table) -> Iterator[pa.Table]:
        """Add a block; yield shuffled tables once enough rows are buffered."""
        if block.num_rows == 0:
            return
        self._tables.append(block)
        self._rows += block.num_rows
        if self._rows >= self._min_rows + self._batch_size:
            yield from self._emit(keep=self._min_rows)

    def finish(self) -> Iterator[pa.Table]:
        yield from self._emit(keep=0)

    def _emit(self, keep: int) -> Iterator[pa.Table]:
        if not self._rows:
            return
        table = concat_blocks(self._tables)
        table = table.take(to_arrow(self._rng.permutation(table.num_rows)))
        out_rows = table.num_rows - keep
        if keep:
            out_rows -= out_rows % self._batch_size
        if out_rows > 0:
            yield table.slice(0, out_rows)
        rest = table.slice(out_rows)
        self._tables = [rest] if rest.num_rows else []
        self._rows = rest.num_rows
