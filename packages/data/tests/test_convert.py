"""Block conversions (no runtime): batches, rows, tensors, compaction."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shoal.data import _convert


def test_numpy_batch_round_trip_keeps_dtypes_and_tensor_shapes() -> None:
    batch = {
        "x": np.arange(4),
        "t": np.arange(24, dtype=np.float32).reshape(4, 2, 3),
        "s": np.array(["a", "b", "c", "d"]),
    }
    table = _convert.batch_to_block(batch)
    assert table.num_rows == 4
    assert _convert.is_tensor_type(table.schema.field("t").type)
    back = _convert.table_to_numpy(table)
    np.testing.assert_array_equal(back["x"], batch["x"])
    assert back["t"].shape == (4, 2, 3) and back["t"].dtype == np.float32
    np.testing.assert_array_equal(back["t"], batch["t"])
    assert list(back["s"]) == ["a", "b", "c", "d"]


def test_numpy_views_are_read_only_unless_writable_requested() -> None:
    table = pa.table({"x": np.arange(5)})
    assert not _convert.table_to_numpy(table)["x"].flags.writeable
    arr = _convert.table_to_numpy(table, writable=True)["x"]
    arr += 1  # a copy: the table is unchanged
    assert table.column("x").to_pylist() == [0, 1, 2, 3, 4]


def test_batch_to_block_rejects_bad_batches_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="'a' has 2 rows but 'b' has 3"):
        _convert.batch_to_block({"a": np.arange(2), "b": np.arange(3)})
    with pytest.raises(ValueError, match="must be a dict of columns"):
        _convert.batch_to_block([1, 2, 3])
    with pytest.raises(TypeError, match="different shapes"):
        _convert.batch_to_block({"t": [np.zeros((2, 2)), np.zeros((3, 3))]})


def test_pandas_batches_with_tensor_cells() -> None:
    df = pd.DataFrame({"a": [1, 2], "img": [np.zeros((2, 2)), np.ones((2, 2))]})
    table = _convert.batch_to_block(df)
    assert table.column_names == ["a", "img"]
    out = _convert.table_to_pandas(table)
    assert list(out["a"]) == [1, 2]
    np.testing.assert_array_equal(out["img"][1], np.ones((2, 2)))


def test_rows_round_trip_with_missing_keys_and_tensors() -> None:
    rows = [{"a": 1, "v": np.zeros(3)}, {"a": 2, "b": "x", "v": np.ones(3)}]
    table = _convert.rows_to_block(rows)
    assert table.column_names == ["a", "v", "b"]
    back = _convert.rows_of(table)
    assert back[0]["b"] is None and back[1]["b"] == "x"
    np.testing.assert_array_equal(back[1]["v"], np.ones(3))
    with pytest.raises(ValueError, match="must be a dict, got int"):
        _convert.rows_to_block([{"a": 1}, 5])


def test_compact_makes_slices_pickle_small() -> None:
    big = pa.table({"a": np.arange(1_000_000)})
    piece = big.slice(10, 100)
    assert len(pickle.dumps(piece, protocol=5)) > 4_000_000  # pyarrow pickles the parent buffer
    small = _convert.compact(piece)
    assert len(pickle.dumps(small, protocol=5)) < 10_000
    assert small.column("a").to_pylist() == list(range(10, 110))


def test_concat_blocks_widens_null_columns_and_names_schema_conflicts() -> None:
    a = pa.table({"x": pa.array([None, None], pa.null())})
    b = pa.table({"x": pa.array([1, 2])})
    assert _convert.concat_blocks([a, b, pa.table({})]).column("x").to_pylist() == [None, None, 1, 2]
    with pytest.raises(ValueError, match="different schemas"):
        _convert.concat_blocks([pa.table({"x": [1]}), pa.table({"x": ["s"]})])


def test_check_batch_format() -> None:
    assert _convert.check_batch_format("default") == "numpy"
    assert _convert.check_batch_format(None) == "pyarrow"
    with pytest.raises(ValueError, match="batch_format must be one of"):
        _convert.check_batch_format("arrow")
