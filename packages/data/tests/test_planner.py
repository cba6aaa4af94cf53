"""Optimization: operator fusion, limit and projection pushdown, metadata-only counts."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import shoal.data as sd
from shoal.data._logical import Limit, MapOp, Read
from shoal.data._planner import optimize, plan

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def _names(ds: sd.Dataset) -> list[str]:
    return [op.name for op in plan(optimize(ds._plan), sd.DataContext.get_current())]


def test_consecutive_maps_fuse_into_the_read() -> None:
    ds = (
        sd.range(100, override_num_blocks=4)
        .map(lambda r: {"id": r["id"] + 1})
        .map_batches(lambda b: {"id": b["id"] * 2})
        .filter(lambda r: r["id"] % 4 == 0)
    )
    assert _names(ds) == ["ReadRange->Map(<lambda>)->MapBatches(<lambda>)->Filter(<lambda>)"]
    assert sorted(r["id"] for r in ds.take_all()) == [x for x in range(2, 202, 2) if x % 4 == 0]
    op_stats = ds._last_stats.operators
    assert len(op_stats) == 1 and op_stats[0].tasks == 4


def test_fusion_stops_at_different_resources_and_all_to_all() -> None:
    ds = sd.range(10).map(lambda r: r).map(lambda r: r, num_cpus=0.5).random_shuffle().map(lambda r: r)
    assert _names(ds) == ["ReadRange->Map(<lambda>)", "Map(<lambda>)", "RandomShuffle", "Map(<lambda>)"]


def test_task_maps_fuse_into_actor_pools() -> None:
    class Add:
        def __call__(self, batch):
            return {"id": batch["id"] + 1}

    ds = sd.range(10).map(lambda r: r).map_batches(Add, concurrency=1).map(lambda r: {"id": -r["id"]})
    assert _names(ds) == ["ReadRange->Map(<lambda>)->MapBatches(Add)->Map(<lambda>)"]
    assert sorted(r["id"] for r in ds.take_all()) == list(range(-10, 0))


def test_limit_moves_below_row_preserving_maps_into_the_read() -> None:
    ds = sd.range(10**9).map(lambda r: {"id": r["id"] * 2}).limit(5)
    optimized = optimize(ds._plan)
    assert isinstance(optimized, MapOp) and isinstance(optimized.inputs[0], Read)
    assert optimized.inputs[0].limit == 5
    start = time.perf_counter()
    assert [r["id"] for r in ds.take_all()] == [0, 2, 4, 6, 8]
    assert time.perf_counter() - start < 10
    (read_stats,) = ds._last_stats.operators
    assert read_stats.tasks == 1 and read_stats.rows == 5
    # A filter changes row counts: the limit stays above it.
    filtered = sd.range(100).filter(lambda r: r["id"] % 2 == 1).limit(3)
    assert isinstance(optimize(filtered._plan), Limit)
    assert [r["id"] for r in filtered.take_all()] == [1, 3, 5]
    assert isinstance(optimize(sd.range(10).limit(5).limit(3)._plan), Read)
    assert sd.range(10).limit(5).limit(3).count() == 3


def test_streaming_limit_stops_reading(tmp_path) -> None:
    for i in range(6):
        pq.write_table(pa.table({"v": np.arange(i * 10, i * 10 + 10)}), tmp_path / f"part{i}.parquet")
    ds = sd.read_parquet(str(tmp_path), override_num_blocks=6).filter(lambda r: True).limit(12)
    assert [r["v"] for r in ds.take_all()] == list(range(12))


def test_select_columns_is_pushed_into_parquet_reads(tmp_path) -> None:
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"], "c": [0.5, 1.5]}), tmp_path / "t.parquet")
    ds = sd.read_parquet(str(tmp_path)).select_columns(["c", "a"])
    read = optimize(ds._plan).inputs[0]
    assert isinstance(read, Read) and read.datasource._columns == ["c", "a"]
    assert ds.take_all() == [{"c": 0.5, "a": 1}, {"c": 1.5, "a": 2}]


def test_count_uses_metadata_without_running() -> None:
    def boom(row):
        raise AssertionError("count() must not run a row-preserving map")

    assert sd.range(10**9).map(boom).count() == 10**9
    assert sd.range(100).sort("id").limit(30).count() == 30
    assert sd.range(10).union(sd.range(5)).count() == 15


def test_resource_arguments_reach_the_tasks() -> None:
    ds = sd.range(40, override_num_blocks=4).map_batches(
        lambda b: b, num_cpus=2, num_gpus=1, memory=1000, max_retries=1
    )
    (read, mapped) = plan(optimize(ds._plan), sd.DataContext.get_current())
    assert mapped.remote_args == {"max_retries": 1, "num_cpus": 2, "num_gpus": 1, "memory": 1000}
    assert read.remote_args == {}
    # A task that needs both CPUs still runs (one at a time) on a 2-CPU runtime.
    assert sd.range(40, override_num_blocks=4).map_batches(lambda b: b, num_cpus=2).count() == 40
