"""Consumption: iter_batches options, iter_torch_batches, streaming_split."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import shoal
import shoal.data as sd

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def test_prefetch_does_not_change_results() -> None:
    ds = sd.range(1000, override_num_blocks=7).map_batches(lambda b: {"id": b["id"] + 1})
    expected = list(range(1, 1001))
    for prefetch in (0, 1, 4):
        got = [int(x) for b in ds.iter_batches(batch_size=64, prefetch_batches=prefetch) for x in b["id"]]
        assert got == expected
    with pytest.raises(ValueError, match="prefetch_batches must be an integer >= 0"):
        ds.iter_batches(prefetch_batches=-1)


def _stamp_done(batch):
    time.sleep(0.05)
    return {"id": batch["id"], "done": np.full(len(batch["id"]), time.time())}


def test_prefetching_computes_blocks_while_the_consumer_works() -> None:
    ds = sd.range(40, override_num_blocks=4).map_batches(_stamp_done)
    done, consumed = [], []
    for batch in ds.iter_batches(batch_size=None, prefetch_batches=1):
        done.append(float(batch["done"][0]))
        time.sleep(0.5)  # the consumer's work on this block
        consumed.append(time.time())
    # Each next block was ready before the consumer finished with the one before it.
    assert len(done) == 4
    assert all(done[i + 1] < consumed[i] for i in range(3)), (done, consumed)


def test_batch_formats_and_drop_last() -> None:
    ds = sd.range(10, override_num_blocks=3)
    tables = list(ds.iter_batches(batch_size=4, batch_format="pyarrow"))
    assert [t.num_rows for t in tables] == [4, 4, 2]
    frames = list(ds.iter_batches(batch_size=4, batch_format="pandas", drop_last=True))
    assert [list(f["id"]) for f in frames] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [b.num_rows for b in ds.iter_batches(batch_size=None, batch_format=None)] == [3, 3, 4]
    assert sum(len(b["id"]) for b in ds.iterator().iter_batches(batch_size=3)) == 10


def test_local_shuffle_buffer_is_seeded_and_complete() -> None:
    ds = sd.range(500, override_num_blocks=5)

    def ids(seed: int) -> list[int]:
        batches = ds.iter_batches(batch_size=50, local_shuffle_buffer_size=100, local_shuffle_seed=seed)
        return [int(x) for b in batches for x in b["id"]]

    first = ids(1)
    assert sorted(first) == list(range(500)) and first != list(range(500))
    assert ids(1) == first and ids(2) != first


def test_iter_torch_batches_types_and_collate() -> None:
    torch = pytest.importorskip("torch")
    ds = sd.range_tensor(10, shape=(2,)).add_column("label", lambda df: df["data"].map(lambda a: float(a[0])))
    batches = list(ds.iter_torch_batches(batch_size=4, dtypes={"data": torch.float32}))
    assert [b["data"].shape for b in batches] == [torch.Size([4, 2]), torch.Size([4, 2]), torch.Size([2, 2])]
    assert batches[0]["data"].dtype == torch.float32 and batches[0]["label"].dtype == torch.float64
    assert batches[1]["data"][0].tolist() == [4.0, 4.0]

    def collate(batch):
        return torch.as_tensor(batch["label"].copy()).sum()

    sums = list(ds.iter_torch_batches(batch_size=5, collate_fn=collate))
    assert [float(s) for s in sums] == [10.0, 35.0]


def _consume(it: sd.DataIterator, out: list, index: int) -> None:
    out[index] = [int(x) for b in it.iter_batches(batch_size=7) for x in b["id"]]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("equal", [False, True])
def test_streaming_split_gives_disjoint_parts_over_epochs(equal: bool) -> None:
    ds = sd.range(101, override_num_blocks=6).map_batches(lambda b: b)
    its = ds.streaming_split(2, equal=equal)
    for _epoch in range(2):
        out: list = [None, None]
        threads = [threading.Thread(target=_consume, args=(it, out, i)) for i, it in enumerate(its)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not set(out[0]) & set(out[1])
        seen = sorted(out[0] + out[1])
        if equal:
            assert len(out[0]) == len(out[1]) == 50 and len(seen) == 100
        else:
            assert seen == list(range(101))


# Two consumers must run at once; the inline backend runs tasks one after the other.
@pytest.mark.shoal_backends("local", "cluster")
@pytest.mark.timeout(120)
def test_streaming_split_iterators_work_inside_tasks() -> None:
    @shoal.remote
    def consume(it: sd.DataIterator) -> int:
        return sum(int(b["id"].sum()) for b in it.iter_batches())

    its = sd.range(60, override_num_blocks=4).streaming_split(2, equal=True)
    assert its[1].schema().names == ["id"]
    totals = shoal.get([consume.remote(it) for it in its])
    assert sum(totals) == sum(range(60))
