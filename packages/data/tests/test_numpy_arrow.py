"""numpy <-> Arrow conversion of numeric columns without pandas."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from shoal.data._numpy_arrow import binary_array, to_arrow, to_numpy

NUMERIC = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"]


@pytest.mark.parametrize("dtype", NUMERIC)
def test_numbers_round_trip_without_copies(dtype: str) -> None:
    values = np.arange(10).astype(dtype)
    arr = to_arrow(values)
    assert arr.equals(pa.array(values))
    assert arr.buffers()[1].address == values.ctypes.data
    back = to_numpy(arr)
    assert back.dtype == values.dtype
    np.testing.assert_array_equal(back, values)
    assert back.ctypes.data == values.ctypes.data
    assert not back.flags.writeable


def test_booleans_are_packed_and_unpacked() -> None:
    values = np.array([True, False, True, True, False, False, False, True, True, False, True])
    arr = to_arrow(values)
    assert arr.equals(pa.array(values))
    np.testing.assert_array_equal(to_numpy(arr), values)
    np.testing.assert_array_equal(to_numpy(arr.slice(3, 6)), values[3:9])


def test_strided_and_byteswapped_input() -> None:
    values = np.arange(20, dtype=np.int64)
    assert to_arrow(values[::3]).to_pylist() == list(range(0, 20, 3))
    swapped = np.arange(5, dtype=">i4")
    assert to_arrow(swapped).to_pylist() == [0, 1, 2, 3, 4]


def test_explicit_types() -> None:
    values = np.arange(4, dtype=np.int64)
    assert to_arrow(values, pa.int64()).type == pa.int64()
    # A different type is a cast, as pa.array does it.
    assert to_arrow(values, pa.float64()).to_pylist() == [0.0, 1.0, 2.0, 3.0]
    assert to_arrow(np.array(["a", "b"]), pa.string()).to_pylist() == ["a", "b"]


def test_other_values_go_to_pyarrow() -> None:
    assert to_arrow([1, None, 3]).to_pylist() == [1, None, 3]
    assert to_arrow(np.array(["x", "y"])).to_pylist() == ["x", "y"]
    stamps = np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[s]")
    assert to_arrow(stamps).equals(pa.array(stamps))


def test_sliced_and_chunked_arrays() -> None:
    arr = pa.array(np.arange(100, dtype=np.float64))
    np.testing.assert_array_equal(to_numpy(arr.slice(10, 5)), np.arange(10, 15, dtype=np.float64))
    chunked = pa.chunked_array([arr.slice(0, 3), arr.slice(50, 2)])
    np.testing.assert_array_equal(to_numpy(chunked), [0.0, 1.0, 2.0, 50.0, 51.0])
    assert to_numpy(pa.array(np.array([], dtype=np.int32))).dtype == np.int32


def test_nulls_follow_pyarrow() -> None:
    arr = pa.array([1, None, 3])
    out = to_numpy(arr)
    assert out.dtype == np.float64
    assert out[0] == 1 and np.isnan(out[1]) and out[2] == 3
    assert list(to_numpy(pa.array(["a", None]))) == ["a", None]


@pytest.mark.timeout(120)
def test_numpy_pipelines_do_not_load_pandas(tmp_path: Path) -> None:
    # About 40 MB per process: workers of numpy / Arrow pipelines must not pay it.
    script = textwrap.dedent(
        """
        import sys
        import shoal, shoal.data as sd
        shoal.init(num_cpus=2)
        sd.DataContext.get_current().enable_progress_bars = False
        ds = sd.range(10_000).map_batches(lambda b: {"id": b["id"] * 2})
        assert ds.sum("id") == 2 * sum(range(10_000))
        rows = 0
        for batch in ds.iter_batches(batch_size=100, batch_format="numpy"):
            rows += len(batch["id"])
        assert rows == 10_000
        assert sd.range(1000).random_shuffle(seed=1).sort("id").take(3) == [{"id": 0}, {"id": 1}, {"id": 2}]
        ds.write_parquet(sys.argv[1])
        assert sd.read_parquet(sys.argv[1]).sum("id") == 2 * sum(range(10_000))
        grouped = ds.map_batches(lambda b: {"k": b["id"] % 3, "v": b["id"]}).groupby("k")
        sums = grouped.sum("v").take_all()
        assert [r["k"] for r in sums] == [0, 1, 2]
        assert sum(r["sum(v)"] for r in sums) == 2 * sum(range(10_000))
        assert [r["mean(v)"] for r in grouped.mean("v").take_all()][0] > 0

        @shoal.remote
        def has_pandas():
            return "pandas" in sys.modules

        print(sorted(set(shoal.get([has_pandas.remote() for _ in range(8)]))), "pandas" in sys.modules)
        shoal.shutdown()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "parquet")], capture_output=True, text=True, timeout=100
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[False]", "False"], out.stdout


@pytest.mark.timeout(120)
def test_workers_that_map_batches_load_no_file_or_asyncio_modules() -> None:
    # pyarrow's file system / format modules (with ssl), asyncio and importlib.metadata cost
    # a worker ~9 MB together; a pipeline that reads no files needs none of them.
    script = textwrap.dedent(
        """
        import sys
        import shoal, shoal.data as sd
        shoal.init(num_cpus=2)
        sd.DataContext.get_current().enable_progress_bars = False
        ds = sd.range(100_000, override_num_blocks=8).map_batches(lambda b: {"id": b["id"] + 1})
        assert ds.sum("id") == sum(range(1, 100_001))
        assert ds.groupby("id").count().count() == 100_000

        @shoal.remote
        def loaded():
            names = ("pyarrow.fs", "pyarrow.parquet", "pyarrow.csv", "ssl", "asyncio", "importlib.metadata")
            return [n for n in names if n in sys.modules]

        print(sorted({m for found in shoal.get([loaded.remote() for _ in range(8)]) for m in found}))
        shoal.shutdown()
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]"], out.stdout


def test_masks_become_nulls() -> None:
    values = np.array([1.5, 2.5, 3.5])
    mask = np.array([False, True, False])
    assert to_arrow(values, mask=mask).to_pylist() == [1.5, None, 3.5]
    assert to_arrow(values, mask=np.zeros(3, dtype=bool)).null_count == 0
    assert to_arrow(np.array([True, False]), mask=np.array([True, False])).to_pylist() == [None, False]


def test_binary_arrays() -> None:
    values = [b"", b"abc", b"\x00\xff", b"z" * 1000]
    arr = binary_array(values)
    assert arr.equals(pa.array(values, pa.binary()))
    assert binary_array([]).to_pylist() == []
