"""The streaming executor: backpressure, ordering, errors, cleanup, progress bars."""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest

import shoal
import shoal.data as sd
from shoal.data._progress import ProgressBars

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def _wait_for_cpus(expected: float, timeout: float = 15.0) -> float:
    deadline = time.monotonic() + timeout
    cpus = shoal.available_resources().get("CPU", 0.0)
    while cpus < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        cpus = shoal.available_resources().get("CPU", 0.0)
    return cpus


def test_held_bytes_stay_under_the_budget(data_context: sd.DataContext) -> None:
    budget = 8 << 20
    data_context.execution_options.resource_limits.object_store_memory = budget
    ds = sd.range(4_000_000).map_batches(lambda b: {"id": b["id"] * 2})  # 32 MiB in, 32 MiB out
    total = 0
    for batch in ds.iter_batches(batch_size=None):
        total += int(batch["id"].sum())
    assert total == 2 * sum(range(4_000_000))
    stats = ds._last_stats
    assert stats.budget_bytes == budget
    (op,) = stats.operators
    assert op.tasks >= 16  # blocks were cut to fit the budget
    # One block may be started past the budget when nothing else runs (progress guarantee).
    assert 0 < stats.peak_held_bytes <= budget + max(op.block_bytes)


def test_output_order_is_dataset_order_whatever_the_task_durations() -> None:
    def jitter(batch):
        time.sleep(float(np.random.default_rng(int(batch["id"][0])).uniform(0, 0.05)))
        return batch

    ds = sd.range(80, override_num_blocks=8).map_batches(jitter)
    assert [r["id"] for r in ds.iter_rows()] == list(range(80))


def bad_udf(batch):
    if batch["id"][0] == 0:
        raise ValueError("boom")
    time.sleep(20)
    return batch


def test_udf_error_names_the_udf_carries_its_traceback_and_stops_everything() -> None:
    ds = sd.range(4, override_num_blocks=4).map_batches(bad_udf)
    start = time.monotonic()
    with pytest.raises(sd.UserCodeException) as info:
        ds.take_all()
    assert time.monotonic() - start < 15
    err = info.value
    assert err.op_name == "MapBatches(bad_udf)"
    assert "the UDF of MapBatches(bad_udf) raised ValueError: boom" in str(err)
    assert 'raise ValueError("boom")' in str(err)  # the remote traceback
    assert isinstance(err.cause, ValueError)
    assert isinstance(err.__cause__, shoal.exceptions.TaskError)
    # The sleeping tasks were cancelled: their CPUs come back, and new work runs.
    assert _wait_for_cpus(2.0) == 2.0
    assert sd.range(3).map_batches(lambda b: b).count() == 3


def _fails_on_odd_blocks(batch):
    if int(batch["id"][0]) // 2 % 2 == 1:  # blocks of two rows: [2, 3] and [6, 7] fail
        raise OSError(f"corrupt block at {int(batch['id'][0])}")
    return batch


@pytest.mark.parametrize("compute", ["tasks", "actors"])
def test_max_errored_blocks_leaves_failed_blocks_out(compute: str) -> None:
    ctx = sd.DataContext.get_current()
    ds = sd.range(10, override_num_blocks=5)
    if compute == "tasks":
        ds = ds.map_batches(_fails_on_odd_blocks)
    else:
        ds = ds.map_batches(lambda b: b, concurrency=1).map_batches(_fails_on_odd_blocks)
    try:
        assert ctx.max_errored_blocks == 0  # Ray's default: the first error stops the run
        with pytest.raises(sd.UserCodeException, match="corrupt block"):
            ds.take_all()
        ctx.max_errored_blocks = 1
        with pytest.raises(sd.UserCodeException, match="corrupt block"):
            ds.take_all()  # two blocks fail, one is allowed
        for limit in (2, -1):
            ctx.max_errored_blocks = limit
            assert [r["id"] for r in ds.take_all()] == [0, 1, 4, 5, 8, 9]  # in order, without the failed
    finally:
        ctx.max_errored_blocks = 0


def test_errors_outside_udfs_are_not_blamed_on_them() -> None:
    with pytest.raises(ValueError, match="sort key column 'x' is not in the dataset") as info:
        sd.range(4).map(lambda r: r).sort("x").take_all()
    assert not isinstance(info.value, sd.UserCodeException)


class Identity:
    def __call__(self, batch):
        return batch


def test_stopping_early_releases_actor_pools_and_tasks() -> None:
    it = sd.range(1000, override_num_blocks=20).map_batches(Identity, concurrency=2).iter_batches(batch_size=10)
    first = next(it)
    assert first["id"].tolist() == list(range(10))
    it.close()
    assert _wait_for_cpus(2.0) == 2.0


def test_stats_report_operators_rows_and_times() -> None:
    ds = sd.range(1000, override_num_blocks=4).map_batches(lambda b: b).random_shuffle(seed=1)
    assert ds.stats() == ""
    ds.take_all()
    text = ds.stats()
    assert "Operator 1 ReadRange->MapBatches(<lambda>): 4 tasks executed, 4 blocks produced" in text
    assert "Operator 2 RandomShuffle" in text and "* Stage shuffle_map" in text
    assert "* Output num rows per block: 250 min, 250 max, 250 mean, 1000 total" in text
    assert "Dataset throughput" in text
    # Time per operator: its wall time, and the remote time of its tasks.
    assert re.search(r"Operator 1 .*4 blocks produced in \d+(\.\d+)?(us|ms|s)\n", text)
    assert re.search(r"Operator 2 RandomShuffle: .* produced in \d+(\.\d+)?(us|ms|s)\n", text)
    assert re.search(r"\* Remote wall time: [\d.]+(us|ms|s) min, .* total", text)
    assert re.search(r"\(1000 rows in [\d.]+(us|ms|s);", text)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_draw_on_a_terminal_only() -> None:
    tty = _Tty()
    bars = ProgressBars(["ReadRange", "Sort"], enabled=True, stream=tty)
    bars.update([(1, 4, 100), (0, None, 0)], force=True)
    bars.update([(4, 4, 400), (2, 4, 400)], force=True)
    out = tty.getvalue()
    assert "ReadRange: [#####---------------] 1/4 blocks, 100 rows" in out
    assert "Sort: [##########----------] 2/4 blocks, 400 rows" in out
    assert "\x1b[2F" in out  # the second draw moved back over the first
    plain = io.StringIO()
    ProgressBars(["ReadRange"], enabled=True, stream=plain).update([(1, 1, 1)], force=True)
    assert plain.getvalue() == ""
    off = _Tty()
    ProgressBars(["ReadRange"], enabled=False, stream=off).update([(1, 1, 1)], force=True)
    assert off.getvalue() == ""


def test_pipelines_draw_one_bar_per_operator_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    assert len(sd.range(100, override_num_blocks=4).map(lambda r: r).sort("id").take_all()) == 100
    # The last frame, drawn when execution ends, has each operator's final counts.
    last = tty.getvalue().rsplit("\x1b[2F", 1)[-1]
    assert last.splitlines() == [
        "\x1b[2KReadRange->Map(<lambda>): [####################] 4/4 blocks, 100 rows",
        "\x1b[2KSort(id): [####################] 1/1 blocks, 100 rows",
    ]


def test_pipelines_are_quiet_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert sd.DataContext.get_current().enable_progress_bars
    sd.range(100, override_num_blocks=3).map(lambda r: r).sort("id").take_all()
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_existing_blocks_enter_the_pipeline_within_the_budget(data_context: sd.DataContext) -> None:
    source = sd.range(2_000_000, override_num_blocks=8).materialize()  # 8 blocks of 2 MB
    budget = 5 << 20
    data_context.execution_options.resource_limits.object_store_memory = budget
    ds = source.map_batches(lambda b: {"id": b["id"] + 1})
    assert sum(int(b["id"][-1]) for b in ds.iter_batches(batch_size=None)) == sum((i + 1) * 250_000 for i in range(8))
    stats = ds._last_stats
    (op,) = stats.operators
    assert op.tasks == 8
    assert stats.peak_held_bytes <= budget + max(op.block_bytes)
