"""Sorting and partitioning of blocks (no runtime)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from shoal.data import _partition
from shoal.data._partition import SortKey


def test_sort_indices_numeric_strings_nulls_and_multi_key() -> None:
    t = pa.table({"a": [3, 1, 2], "s": ["b", None, "a"]})
    assert t.take(_partition.sort_indices(t, SortKey("a"))).column("a").to_pylist() == [1, 2, 3]
    assert t.take(_partition.sort_indices(t, SortKey("a", True))).column("a").to_pylist() == [3, 2, 1]
    assert t.take(_partition.sort_indices(t, SortKey("s"))).column("s").to_pylist() == ["a", "b", None]
    m = pa.table({"k": [1, 0, 1, 0], "v": [1, 2, 3, 4]})
    out = _partition.sort_table(m, SortKey(["k", "v"], [False, True]))
    assert out.to_pylist() == [{"k": 0, "v": 4}, {"k": 0, "v": 2}, {"k": 1, "v": 3}, {"k": 1, "v": 1}]


def test_sort_key_validation() -> None:
    with pytest.raises(ValueError, match="descending has 1 values"):
        SortKey(["a", "b"], [True])
    with pytest.raises(ValueError, match="not in the dataset"):
        SortKey("z").check(pa.schema([("a", pa.int64())]))


@pytest.mark.parametrize("descending", [False, True])
def test_range_partition_parts_are_sorted_and_ordered(descending: bool) -> None:
    rng = np.random.default_rng(0)
    t = pa.table({"k": rng.integers(0, 1000, 5000), "v": np.arange(5000)})
    key = SortKey("k", descending)
    bounds = _partition.compute_boundaries([_partition.sample_keys(t, "k", 200, 1)], 4, descending)
    assert len(bounds) == 3 and list(bounds) == sorted(bounds)
    parts = _partition.range_partition(t, key, bounds, sort=True)
    assert len(parts) == 4 and sum(p.num_rows for p in parts) == 5000
    joined = np.concatenate([p.column("k").to_numpy() for p in parts])
    expected = np.sort(t.column("k").to_numpy())
    np.testing.assert_array_equal(joined, expected[::-1] if descending else expected)
    # Parts own their buffers (they go to the object store).
    assert all(p.get_total_buffer_size() <= p.nbytes + 64 for p in parts if p.num_rows)


def test_range_partition_unsorted_keeps_equal_keys_together_and_nulls_last() -> None:
    t = pa.table({"k": [5, None, 1, 5, 9, 1]})
    parts = _partition.range_partition(t, SortKey("k"), np.array([2, 6]), sort=False)
    assert [sorted(p.column("k").to_pylist(), key=str) for p in parts] == [[1, 1], [5, 5], [9, None]]


def test_random_partition_sends_each_row_to_one_seeded_random_part() -> None:
    t = pa.table({"v": np.arange(3000)})
    parts = _partition.random_partition(t, 3, [7, 0])
    again = _partition.random_partition(t, 3, [7, 0])
    other = _partition.random_partition(t, 3, [8, 0])
    values = np.concatenate([p.column("v").to_numpy() for p in parts])
    assert sorted(values) == list(range(3000))
    # Uniform parts: each holds about a third, a different mix of the rows for another seed.
    assert all(850 < p.num_rows < 1150 for p in parts)
    assert [p.column("v").to_pylist() for p in parts] == [p.column("v").to_pylist() for p in again]
    assert [p.column("v").to_pylist() for p in parts] != [p.column("v").to_pylist() for p in other]
    # Rows keep their order within a part (the reduce side permutes), and parts own their buffers.
    assert all(np.all(np.diff(p.column("v").to_numpy()) > 0) for p in parts)
    assert all(p.get_total_buffer_size() <= p.nbytes + 64 for p in parts)
    assert _partition.random_partition(t, 1, [7, 0]) == [t]


def test_slice_table_copies() -> None:
    t = pa.table({"v": np.arange(100_000)})
    s = _partition.slice_table(t, 5, 8)
    assert s.column("v").to_pylist() == [5, 6, 7]
    assert s.get_total_buffer_size() < 1000
