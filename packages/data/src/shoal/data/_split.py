"""Splitting datasets: by row indices (``split``, ``split_at_indices``) and while streaming.

``streaming_split`` runs one execution in a coordinator actor; each of the
``n`` iterators asks it for its next block. With ``equal=True`` every block
is cut into ``n`` equal slices (leftover rows carried into the next block),
so all consumers receive the same number of rows.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

import shoal
from shoal.data import _tasks
from shoal.data._all_to_all import plan_slices
from shoal.data._convert import concat_blocks
from shoal.data._partition import slice_table
from shoal.data.block import BlockMetadata
from shoal.data.context import DataContext
from shoal.data.iterator import DataIterator

if TYPE_CHECKING:
    from shoal.data.dataset import Dataset, MaterializedDataset

__all__ = ["split_at_rows", "make_split_iterators"]


def _slice_blocks(blocks: list[tuple[Any, BlockMetadata]], start: int, end: int) -> list[tuple[Any, BlockMetadata]]:
    rows = [int(m.num_rows or 0) for _, m in blocks]
    out = []
    fn = _tasks.remote_fn("slice_concat", 2)
    for i, a, b in plan_slices(rows, start, end):
        if a == 0 and b == rows[i]:
            out.append(blocks[i])
        else:
            block_ref, meta_ref = fn.remote([(0, a, b)], blocks[i][0])
            out.append((block_ref, shoal.get(meta_ref)))
    return out


def split_at_rows(mat: MaterializedDataset, indices: list[int]) -> list[MaterializedDataset]:
    from shoal.data._logical import InputData
    from shoal.data.dataset import MaterializedDataset

    blocks = list(mat._blocks)
    total = sum(int(m.num_rows or 0) for _, m in blocks)
    bounds = [0, *[min(i, total) for i in indices], total]
    out = []
    for a, b in itertools.pairwise(bounds):
        out.append(MaterializedDataset(InputData(_slice_blocks(blocks, a, max(a, b)))))
    return out


class SplitCoordinator:
    """The actor behind ``streaming_split``: runs the dataset and deals its blocks to ``n`` consumers."""

    def __init__(self, dataset: Dataset, n: int, equal: bool, context: DataContext) -> None:
        self._context = context
        self._dataset = dataset
        self._n = n
        self._equal = equal
        self._lock = threading.RLock()
        self._epoch = -1
        self._registered: dict[int, set[int]] = {}
        self._queues: list[deque[Any]] = [deque() for _ in range(n)]
        self._refs: Generator[Any, None, None] | None = None
        self._exhausted = False
        self._carry: Any = None

    def start_epoch(self, split: int, epoch: int) -> bool:
        """Register ``split`` for ``epoch``; True once all splits did (the epoch then starts)."""
        with self._lock:
            self._registered.setdefault(epoch, set()).add(split)
            if epoch > self._epoch and len(self._registered[epoch]) == self._n:
                self._start(epoch)
            return epoch <= self._epoch

    def _start(self, epoch: int) -> None:
        if self._refs is not None:
            self._refs.close()
        self._epoch = epoch
        self._registered.pop(epoch - 1, None)
        self._queues = [deque() for _ in range(self._n)]
        self._refs = self._dataset._iter_refs(self._context)
        self._exhausted = False
        self._carry = None

    def next(self, split: int, epoch: int) -> list[Any] | None:
        """``[block ref, metadata]`` for ``split``, or None when its part of the epoch is over."""
        with self._lock:
            if epoch != self._epoch:
                return None
            queue = self._queues[split]
            while not queue and not self._exhausted:
                self._pull(split)
            return list(queue.popleft()) if queue else None

    def _pull(self, split: int) -> None:
        assert self._refs is not None
        try:
            ref, meta = next(self._refs)
        except StopIteration:
            self._exhausted = True
            return
        if not self._equal:
            # Whoever asks gets the block: fast consumers take more.
            self._queues[split].append((ref, meta))
            return
        table = shoal.get(ref)
        if self._carry is not None:
            table = concat_blocks([self._carry, table])
        per = table.num_rows // self._n
        for i in range(self._n):
            piece = slice_table(table, i * per, (i + 1) * per)
            self._queues[i].append((shoal.put(piece), BlockMetadata.of(piece)))
        rest = table.num_rows - per * self._n
        self._carry = slice_table(table, per * self._n, table.num_rows) if rest else None

    def stats(self) -> str:
        return self._dataset.stats()

    def schema(self) -> Any:
        return self._dataset.schema()


class _SplitIterator(DataIterator):
    """One of the ``n`` iterators of ``streaming_split``; picklable into tasks and actors."""

    def __init__(self, coordinator: Any, index: int, n: int) -> None:
        self._coordinator = coordinator
        self._index = index
        self._n = n
        self._epoch = 0

    def _iter_refs(self) -> Iterator[Any]:
        epoch = self._epoch
        self._epoch += 1
        delay = 0.001
        # The barrier: wait until every split began this epoch.
        while not shoal.get(self._coordinator.start_epoch.remote(self._index, epoch)):
            time.sleep(delay)
            delay = min(0.05, delay * 2)
        while True:
            item = shoal.get(self._coordinator.next.remote(self._index, epoch))
            if item is None:
                return
            yield item[0], item[1]

    def _stats(self) -> str:
        return str(shoal.get(self._coordinator.stats.remote()))

    def schema(self) -> Any:
        """The schema of the dataset being split."""
        return shoal.get(self._coordinator.schema.remote())

    def __repr__(self) -> str:
        return f"DataIterator(split {self._index} of {self._n})"


def stratified_split(mat: MaterializedDataset, column: str, test_fraction: float) -> tuple[pa.Table, pa.Table]:
    """Train and test rows: of each class of ``column`` (first seen first), its last
    ``int(count * test_fraction)`` rows go to test, the rest (in order) to train."""
    from shoal.data._hashagg import split_by_keys

    table = concat_blocks([shoal.get(ref) for ref, _ in mat._blocks])
    if column not in table.column_names:
        raise ValueError(f"train_test_split: stratify column {column!r} is not one of {table.column_names}")
    train, test = [], []
    for _, rows in split_by_keys(table, [column]):
        cut = rows.num_rows - int(rows.num_rows * test_fraction)
        train.append(rows.slice(0, cut))
        test.append(rows.slice(cut))
    return concat_blocks(train), concat_blocks(test)


def make_split_iterators(dataset: Dataset, n: int, equal: bool) -> list[DataIterator]:
    cls = shoal.remote(num_cpus=0)(SplitCoordinator)
    coordinator = cls.remote(dataset, n, equal, DataContext.get_current())
    return [_SplitIterator(coordinator, i, n) for i in range(n)]
