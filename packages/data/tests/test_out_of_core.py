"""A pipeline over ten times more data than the object store runs in bounded memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psutil
import pytest

import shoal
import shoal.data as sd

STORE = 96 << 20
ROWS = 130_000_000  # 8 bytes each: ~1 GiB read, ~1 GiB produced by the map


@pytest.fixture(scope="module")
def small_store(shoal_backend_name: str) -> Iterator[None]:
    if shoal.is_initialized():
        shoal.shutdown()
    shoal.init(backend=shoal_backend_name, num_cpus=2, object_store_memory=STORE)
    try:
        yield
    finally:
        shoal.shutdown()


class _PeakMemory:
    """Peak memory of this process and its children, sampled in a thread.

    Proportional set size (PSS) splits shared pages (the object store's
    shared memory) among the processes that map them, so the sum is the
    physical memory in use; RSS would count a shared page once per process.
    """

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = self._proc.memory_full_info().pss
        for child in self._proc.children(recursive=True):
            try:
                total += child.memory_full_info().pss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(0.01)

    def __enter__(self) -> _PeakMemory:
        self.baseline = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("small_store")
def test_pipeline_ten_times_the_store_runs_in_bounded_memory() -> None:
    budget = sd._executor.memory_budget(sd.DataContext.get_current())
    assert budget == STORE // 4
    ds = sd.range(ROWS).map_batches(lambda b: {"id": b["id"] * 3})
    data_bytes = ROWS * 8
    assert data_bytes >= 10 * STORE
    total = 0
    with _PeakMemory() as mem:
        for batch in ds.iter_batches(batch_size=None, prefetch_batches=1):
            total += int(batch["id"][-1])
    assert total > 0
    stats = ds._last_stats
    (op,) = stats.operators
    assert op.rows == ROWS and op.tasks >= data_bytes // budget
    # The executor's own accounting: never more than the budget plus one block.
    assert stats.peak_held_bytes <= budget + max(op.block_bytes)
    # What the OS saw: well under the data that went through (input and output, 2x data_bytes).
    # Worker processes keep some heap whatever the data size, hence the margin.
    growth = mem.peak - mem.baseline
    assert growth < data_bytes / 2, f"memory grew by {growth / 2**20:.0f} MiB over {data_bytes / 2**20:.0f} MiB of data"
