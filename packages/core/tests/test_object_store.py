"""The shared-memory object store: zero-copy reads, freeing, pinning by views, spilling."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import numpy as np
import pytest

import shoal

pytestmark = pytest.mark.shoal_backends("local")

MB = 1 << 20


@pytest.fixture
def small_store() -> Iterator[object]:
    if shoal.is_initialized():
        shoal.shutdown()
    shoal.init(num_cpus=2, object_store_memory=64 * MB)
    try:
        yield shoal._session.backend().node  # type: ignore[attr-defined]
    finally:
        shoal.shutdown()


def _wait_until(cond, timeout: float = 5.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_large_get_is_zero_copy(small_store) -> None:
    a = np.arange(4 * MB, dtype=np.uint8)
    ref = shoal.put(a)
    b = shoal.get(ref)
    c = shoal.get(ref)
    # Both reads view the same shared pages: no copy was made.
    assert not b.flags.owndata and not c.flags.writeable
    assert np.shares_memory(b, b)
    np.testing.assert_array_equal(b, a)


def test_dropping_the_last_ref_frees_the_memory(small_store) -> None:
    node = small_store
    used_before = node.store.used
    ref = shoal.put(np.ones(8 * MB, dtype=np.uint8))
    assert node.store.used >= used_before + 8 * MB
    del ref
    gc.collect()
    with node.lock:
        node.drain_releases()
    assert _wait_until(lambda: node.store.used <= used_before)


def test_a_live_view_keeps_the_object_alive(small_store) -> None:
    node = small_store
    ref = shoal.put(np.full(8 * MB, 7, dtype=np.uint8))
    view = shoal.get(ref)
    del ref
    gc.collect()
    with node.lock:
        node.drain_releases()
    # Allocate and write a lot more: the view's pages must not be reused.
    others = [shoal.put(np.zeros(8 * MB, dtype=np.uint8)) for _ in range(3)]
    assert (view == 7).all()
    used_with_view = node.store.used
    del view
    gc.collect()
    with node.lock:
        node.drain_releases()
    assert _wait_until(lambda: node.store.used < used_with_view)
    del others


def test_objects_spill_to_disk_and_come_back(small_store) -> None:
    node = small_store
    arrays = [np.full(12 * MB, i, dtype=np.uint8) for i in range(10)]  # 120 MB into a 64 MB store
    refs = [shoal.put(a) for a in arrays]
    assert node.objects.spill_count > 0
    for i, ref in enumerate(refs):
        out = shoal.get(ref)
        assert out[0] == i and out[-1] == i
        del out
    assert node.objects.restore_count > 0


def test_task_results_spill_too(small_store) -> None:
    @shoal.remote
    def make(i):
        return np.full(12 * MB, i, dtype=np.uint8)

    refs = [make.remote(i) for i in range(8)]
    for i, ref in enumerate(refs):
        assert int(shoal.get(ref)[123]) == i


def test_object_bigger_than_the_store_is_an_error(small_store) -> None:
    from shoal.exceptions import ObjectStoreFullError

    with pytest.raises(ObjectStoreFullError):
        shoal.put(np.zeros(100 * MB, dtype=np.uint8))
    assert shoal.get(shoal.put(1)) == 1


def test_task_results_are_freed_when_refs_drop(small_store) -> None:
    node = small_store

    @shoal.remote
    def big():
        return np.ones(4 * MB, dtype=np.uint8)

    used_before = node.store.used
    refs = [big.remote() for _ in range(5)]
    shoal.get(refs)
    del refs
    gc.collect()
    with node.lock:
        node.drain_releases()
    assert _wait_until(lambda: node.store.used <= used_before + 0)


def test_returns_that_do_not_fit_together_fail_and_take_nothing(small_store) -> None:
    from shoal.exceptions import ObjectStoreFullError

    node = small_store

    @shoal.remote(num_returns=3, max_retries=0)
    def three(sizes):
        return tuple(np.full(n, 7, dtype=np.uint8) for n in sizes)

    # The returns' space is asked for in one request: two that fit, then one that cannot.
    used_before = node.store.used
    refs = three.remote([20 * MB, 20 * MB, 100 * MB])
    with pytest.raises(ObjectStoreFullError):
        shoal.get(refs[0])
    assert _wait_until(lambda: node.store.used <= used_before)
    a, b, c = three.remote([20 * MB, 20 * MB, 1000])
    assert [int(shoal.get(r)[-1]) for r in (a, b, c)] == [7, 7, 7]


def test_nested_refs_keep_inner_objects_alive(small_store) -> None:
    inner = shoal.put(np.arange(1_000_000))
    outer = shoal.put({"inner": inner})
    del inner
    gc.collect()
    got = shoal.get(outer)["inner"]
    np.testing.assert_array_equal(shoal.get(got), np.arange(1_000_000))


def test_array_held_by_an_actor_stays_valid(small_store) -> None:
    @shoal.remote
    class Holder:
        def __init__(self, arr):
            self.arr = arr

        def total(self):
            return int(self.arr.sum())

    ref = shoal.put(np.ones(4 * MB, dtype=np.uint8))
    h = Holder.remote(ref)
    assert shoal.get(h.total.remote()) == 4 * MB
    del ref
    gc.collect()
    # Churn the store so freed pages would be reused.
    for _ in range(4):
        shoal.put(np.zeros(8 * MB, dtype=np.uint8))
    assert shoal.get(h.total.remote()) == 4 * MB


def test_put_does_not_keep_the_callers_array_alive(small_store) -> None:
    import weakref

    gc.disable()  # what keeps the array alive must be nothing, not "until the collector runs"
    try:
        a = np.ones(2 * MB, dtype=np.uint8)
        alive = weakref.ref(a)
        ref = shoal.put(a)
        del a
        assert alive() is None
        assert int(shoal.get(ref).sum()) == 2 * MB
    finally:
        gc.enable()


def test_a_returned_array_is_freed_in_the_worker_once_stored(small_store) -> None:
    @shoal.remote
    class Maker:
        def __init__(self) -> None:
            gc.disable()
            self.alive = None

        def make(self) -> np.ndarray:
            import weakref

            a = np.ones(2 * MB, dtype=np.uint8)
            self.alive = weakref.ref(a)
            return a

        def still_alive(self) -> bool:
            return self.alive is not None and self.alive() is not None

    m = Maker.remote()
    out = shoal.get(m.make.remote())
    assert int(out.sum()) == 2 * MB
    assert shoal.get(m.still_alive.remote()) is False
