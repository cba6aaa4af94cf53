"""DataParallelTrainer end to end on a shoal runtime: ranks, reports, checkpoints, storage, datasets, callbacks."""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile

import pyarrow.fs
import pytest

import shoal
from shoal import train

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def run_config(tmp_path, name="run", **kwargs):
    return train.RunConfig(name=name, storage_path=str(tmp_path), **kwargs)


def read(path):
    with open(path) as f:
        return f.read()


def write_checkpoint(files):
    d = tempfile.mkdtemp()
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return train.Checkpoint.from_directory(d)


def ranks_and_reports(config):
    ctx = train.get_context()
    assert train.get_checkpoint() is None
    for step in range(config["steps"]):
        checkpoint = None
        if ctx.get_world_rank() == 0 and step % 2 == 1:
            checkpoint = write_checkpoint({"step": str(step)})
        train.report(
            {
                "step": step,
                "rank": ctx.get_world_rank(),
                "world_size": ctx.get_world_size(),
                "local_rank": ctx.get_local_rank(),
                "local_world_size": ctx.get_local_world_size(),
                "node_rank": ctx.get_node_rank(),
                "name": ctx.get_experiment_name(),
                "pid": os.getpid(),
            },
            checkpoint=checkpoint,
        )
    return {"rank0 says": "done"}


class Recorder(train.UserCallback):
    def __init__(self):
        self.reports = []

    def after_report(self, run_context, metrics, checkpoint):
        self.reports.append((run_context.scaling_config.num_workers, metrics, checkpoint))


def test_two_workers_report_with_ranks_and_checkpoints(tmp_path, shoal_backend_name):
    recorder = Recorder()
    trainer = train.DataParallelTrainer(
        ranks_and_reports,
        train_loop_config={"steps": 5},
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=run_config(tmp_path, callbacks=[recorder], checkpoint_config=train.CheckpointConfig(num_to_keep=1)),
    )
    result = trainer.fit()
    assert result.error is None
    assert result.return_value == {"rank0 says": "done"}
    assert result.path == str(tmp_path / "run")
    # Result.metrics are rank 0's latest.
    assert result.metrics["step"] == 4 and result.metrics["rank"] == 0
    # Every step reached the callback once, with every rank's metrics in rank order.
    assert [m[0]["step"] for _, m, _ in recorder.reports] == [0, 1, 2, 3, 4]
    for n, metrics, _ in recorder.reports:
        assert n == 2
        assert [m["rank"] for m in metrics] == [0, 1]
        assert {m["world_size"] for m in metrics} == {2}
        assert [m["local_rank"] for m in metrics] == [0, 1]
        assert {m["local_world_size"] for m in metrics} == {2}
        assert {m["node_rank"] for m in metrics} == {0}
        assert {m["name"] for m in metrics} == {"run"}
    pids = {m["pid"] for _, ms, _ in recorder.reports for m in ms}
    if shoal_backend_name != "inline":  # inline runs actors in this process
        assert len(pids) == 2 and os.getpid() not in pids
    # Checkpoints of steps 1 and 3 were persisted as checkpoint_000001 and _000003;
    # num_to_keep=1 left only the latest.
    ckpts = [c for _, _, c in recorder.reports]
    assert [c is not None for c in ckpts] == [False, True, False, True, False]
    assert ckpts[1].path == str(tmp_path / "run" / "checkpoint_000001")
    assert result.checkpoint.path == str(tmp_path / "run" / "checkpoint_000003")
    with result.checkpoint.as_directory() as d:
        assert read(os.path.join(d, "step")) == "3"
    assert [c.path for c, _ in result.best_checkpoints] == [result.checkpoint.path]
    entries = sorted(os.listdir(tmp_path / "run"))
    assert entries == ["checkpoint_000003", "checkpoint_manager_snapshot.json", "result.json"]
    with open(tmp_path / "run" / "result.json") as f:
        lines = [json.loads(line) for line in f]
    assert [r["step"] for r in lines] == [0, 1, 2, 3, 4] and {r["rank"] for r in lines} == {0}
    assert list(result.metrics_dataframe["step"]) == [3]


def merged_checkpoint_from_every_rank():
    rank = train.get_context().get_world_rank()
    train.report({"rank": rank}, checkpoint=write_checkpoint({f"shard-{rank}": str(rank)}))
    train.report({"rank": rank}, checkpoint=write_checkpoint({f"shard-{rank}": "again"}), checkpoint_dir_name="named")


def test_checkpoints_from_all_ranks_are_merged(tmp_path):
    result = train.DataParallelTrainer(
        merged_checkpoint_from_every_rank,
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=run_config(tmp_path),
    ).fit()
    first, _ = result.best_checkpoints[0]
    assert sorted(os.listdir(first.path)) == ["shard-0", "shard-1"]
    assert result.checkpoint.path == str(tmp_path / "run" / "named")
    with result.checkpoint.as_directory() as d:
        assert {n: read(os.path.join(d, n)) for n in os.listdir(d)} == {"shard-0": "again", "shard-1": "again"}


def counts_from_checkpoint(config):
    start = 0
    checkpoint = train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            start = int(read(os.path.join(d, "next")))
    for step in range(start, start + config["steps"]):
        checkpoint = write_checkpoint({"next": str(step + 1)}) if train.get_context().get_world_rank() == 0 else None
        train.report({"step": step, "resumed_from": start}, checkpoint=checkpoint)


def test_same_name_resumes_and_resume_from_checkpoint(tmp_path):
    def fit(**kwargs):
        return train.DataParallelTrainer(
            counts_from_checkpoint,
            train_loop_config={"steps": 2},
            scaling_config=train.ScalingConfig(num_workers=2),
            **kwargs,
        ).fit()

    first = fit(run_config=run_config(tmp_path, name="a"))
    assert first.metrics == {"step": 1, "resumed_from": 0}
    # Running again under the same name picks up the run's latest checkpoint,
    # and new checkpoint names continue the count.
    second = fit(run_config=run_config(tmp_path, name="a"))
    assert second.metrics == {"step": 3, "resumed_from": 2}
    assert second.checkpoint.path == str(tmp_path / "a" / "checkpoint_000003")
    assert len(second.best_checkpoints) == 4
    # A fresh run starts from resume_from_checkpoint.
    third = fit(run_config=run_config(tmp_path, name="b"), resume_from_checkpoint=first.checkpoint)
    assert third.metrics == {"step": 3, "resumed_from": 2}
    assert third.checkpoint.path == str(tmp_path / "b" / "checkpoint_000001")


def reports_to_another_filesystem():
    train.report({"x": 1}, checkpoint=write_checkpoint({"weights": "w"}))


def test_storage_on_a_pyarrow_filesystem(tmp_path):
    fs = pyarrow.fs.SubTreeFileSystem(str(tmp_path), pyarrow.fs.LocalFileSystem())
    result = train.DataParallelTrainer(
        reports_to_another_filesystem,
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=train.RunConfig(name="remote", storage_path="bucket/prefix", storage_filesystem=fs),
    ).fit()
    assert result.path == "bucket/prefix/remote"
    assert result.checkpoint.path == "bucket/prefix/remote/checkpoint_000000"
    assert result.checkpoint.filesystem.equals(fs)
    with result.checkpoint.as_directory() as d:
        assert read(os.path.join(d, "weights")) == "w"
    assert (tmp_path / "bucket" / "prefix" / "remote" / "checkpoint_000000" / "weights").exists()
    assert train.Result.from_path("bucket/prefix/remote", storage_filesystem=fs).metrics == {"x": 1}


def bad_reports(config):
    kind = config["kind"]
    if kind == "metrics":
        train.report([1, 2])
    elif kind == "checkpoint":
        train.report({}, checkpoint="/tmp")
    elif kind == "dataset":
        train.get_dataset_shard("nope")


@pytest.mark.parametrize(
    ("kind", "error", "match"),
    [
        ("metrics", TypeError, "metrics= *.*must be a dict"),
        ("checkpoint", TypeError, "shoal.train.Checkpoint"),
        ("dataset", KeyError, "no dataset named 'nope'"),
    ],
)
def test_misuse_inside_the_function_fails_the_run(tmp_path, kind, error, match):
    trainer = train.DataParallelTrainer(
        bad_reports, train_loop_config={"kind": kind}, run_config=run_config(tmp_path, name=kind)
    )
    with pytest.raises(train.TrainingFailedError) as info:
        trainer.fit()
    (err,) = info.value.worker_failures.values()
    assert isinstance(err, error)
    assert "bad_reports" in err.traceback_str


def test_too_many_workers_for_the_cluster(tmp_path):
    trainer = train.DataParallelTrainer(lambda: None, scaling_config=train.ScalingConfig(num_workers=3))
    with pytest.raises(ValueError, match="cluster has only"):
        trainer.fit()


def placement():
    ctx = shoal.get_runtime_context()
    pg = shoal.util.get_current_placement_group()
    table = shoal.util.placement_group_table(pg)
    train.report({"pg": ctx.get_placement_group_id(), "strategy": table["strategy"], "bundles": table["bundles_list"]})


@pytest.mark.shoal_backends("local")
def test_workers_hold_the_bundles_of_one_placement_group(tmp_path):
    recorder = Recorder()
    train.DataParallelTrainer(
        placement,
        scaling_config=train.ScalingConfig(
            num_workers=2, resources_per_worker={"CPU": 0.5}, placement_strategy="SPREAD"
        ),
        run_config=run_config(tmp_path, callbacks=[recorder]),
    ).fit()
    ((_, metrics, _),) = recorder.reports
    # Both workers run in the same group: one bundle per worker, with the strategy asked for.
    assert metrics[0]["pg"] is not None and metrics[0]["pg"] == metrics[1]["pg"]
    assert [m["strategy"] for m in metrics] == ["SPREAD", "SPREAD"]
    assert metrics[0]["bundles"] == [{"CPU": 0.5}, {"CPU": 0.5}]
    # fit() gives the group back.
    table = shoal.util.placement_group_table()
    assert table[metrics[0]["pg"]]["state"] == "REMOVED"


class FakeTerminal(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def three_steps():
    for step in range(3):
        train.report({"step": step, "loss": 1.0 / (step + 1)})


class SeesConsole(train.UserCallback):
    """Reads the console at each report: the step's line must already be there, later ones not yet."""

    def __init__(self, console):
        self.console = console
        self.seen = []

    def after_report(self, run_context, metrics, checkpoint):
        self.seen.append(self.console.getvalue())


def test_reported_metrics_stream_to_a_terminal(tmp_path, monkeypatch):
    console = FakeTerminal(tty=True)
    monkeypatch.setattr(sys, "stdout", console)
    callback = SeesConsole(console)
    train.DataParallelTrainer(
        three_steps,
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=run_config(tmp_path, name="progress", callbacks=[callback]),
    ).fit()
    monkeypatch.undo()
    assert len(callback.seen) == 3
    for step, text in enumerate(callback.seen):
        assert f"(progress) report {step}: step={step}, loss={1.0 / (step + 1):.6g}" in text
        assert f"report {step + 1}:" not in text
    # Quiet when stdout is not a terminal.
    console = FakeTerminal(tty=False)
    monkeypatch.setattr(sys, "stdout", console)
    train.DataParallelTrainer(three_steps, run_config=run_config(tmp_path, name="quiet")).fit()
    monkeypatch.undo()
    assert "(quiet) report" not in console.getvalue()
