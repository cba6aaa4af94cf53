"""A worker's memory housekeeping between tasks."""

from __future__ import annotations

import sys
import types

import pytest

from shoal._runtime import worker

pytestmark = pytest.mark.timeout(30)


def test_housekeeping_skips_a_pyarrow_that_another_thread_is_still_importing(monkeypatch) -> None:
    # A worker's main thread gives memory back when idle; another thread (a train loop,
    # say) may be importing pyarrow at that moment: the module exists but is half-built.
    monkeypatch.setitem(sys.modules, "pyarrow", types.ModuleType("pyarrow"))
    assert worker._arrow_pool() is None
    worker._give_memory_back()
    worker._release_arrow_if_used()


def test_housekeeping_releases_arrow_memory_after_arrow_allocations(monkeypatch) -> None:
    released = []

    class Pool:
        allocations = 5

        def num_allocations(self) -> int:
            return self.allocations

        def release_unused(self) -> None:
            released.append(self.allocations)

    pool = Pool()
    fake = types.ModuleType("pyarrow")
    fake.default_memory_pool = lambda: pool  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyarrow", fake)
    monkeypatch.setattr(worker, "_arrow_allocs", -1)
    worker._release_arrow_if_used()
    worker._release_arrow_if_used()  # nothing allocated since: nothing to release
    pool.allocations = 9
    worker._release_arrow_if_used()
    assert released == [5, 9]
    worker._give_memory_back()
    assert released == [5, 9, 9]
