"""Cutting blocks into batches (no runtime)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from shoal.data._batching import ShuffleBuffer, iter_batches


def _blocks(sizes: list[int]) -> list[pa.Table]:
    out, start = [], 0
    for n in sizes:
        out.append(pa.table({"v": np.arange(start, start + n)}))
        start += n
    return out


@pytest.mark.parametrize("fmt", ["numpy", "pandas", "pyarrow"])
def test_batches_cross_block_boundaries(fmt: str) -> None:
    batches = list(iter_batches(_blocks([4, 4, 2]), 3, fmt))
    lengths = [len(b) if fmt != "numpy" else len(b["v"]) for b in batches]
    assert lengths == [3, 3, 3, 1]
    values = [int(x) for b in batches for x in (b["v"] if fmt != "pyarrow" else b.column("v").to_pylist())]
    assert values == list(range(10))


def test_drop_last_and_whole_blocks() -> None:
    assert [len(b["v"]) for b in iter_batches(_blocks([4, 4, 2]), 3, "numpy", drop_last=True)] == [3, 3, 3]
    assert [len(b["v"]) for b in iter_batches(_blocks([4, 0, 2]), None, "numpy")] == [4, 2]


def test_writable_batches_are_copies() -> None:
    blocks = _blocks([5])
    (batch,) = iter_batches(blocks, None, "numpy", writable=True)
    batch["v"][:] = 0
    assert blocks[0].column("v").to_pylist() == [0, 1, 2, 3, 4]


def test_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        list(iter_batches(_blocks([3]), 0, "numpy"))


def test_shuffle_buffer_permutes_every_row_once() -> None:
    buf = ShuffleBuffer(min_rows=20, batch_size=5, seed=3)
    out = []
    for block in _blocks([10, 10, 10, 10]):
        out.extend(buf.add(block))
    out.extend(buf.finish())
    values = [v for t in out for v in t.column("v").to_pylist()]
    assert sorted(values) == list(range(40))
    assert values != list(range(40))
