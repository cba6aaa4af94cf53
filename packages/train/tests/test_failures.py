"""Worker failures: restarts from the latest checkpoint, TrainingFailedError past max_failures, cleanup."""

from __future__ import annotations

import os
import signal
import tempfile
import time

import psutil
import pytest

from shoal import train

pytestmark = [pytest.mark.usefixtures("shoal_runtime"), pytest.mark.shoal_backends("local")]


def read(path):
    with open(path) as f:
        return f.read()


def gone(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


class Exceptions(train.UserCallback):
    def __init__(self):
        self.seen = []
        self.steps = []  # (step, checkpoint path) as registered, failures as "failed"

    def after_report(self, run_context, metrics, checkpoint):
        self.steps.append((metrics[0].get("step"), checkpoint.path if checkpoint else None))

    def after_exception(self, run_context, worker_exceptions):
        self.seen.append(worker_exceptions)
        self.steps.append("failed")


def dies_once(config):
    """Rank 1 kills its own process at step 3 of the first attempt; checkpoints every step."""
    rank = train.get_context().get_world_rank()
    start = 0
    checkpoint = train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            start = int(read(os.path.join(d, "next")))
    for step in range(start, config["steps"]):
        if rank == 1 and step == 3 and checkpoint is None:
            os.kill(os.getpid(), signal.SIGKILL)
        ckpt = None
        if rank == 0:
            d = tempfile.mkdtemp()
            with open(os.path.join(d, "next"), "w") as f:
                f.write(str(step + 1))
            ckpt = train.Checkpoint.from_directory(d)
        train.report({"step": step, "started_at": start, "pid": os.getpid()}, checkpoint=ckpt)


def test_killed_worker_restarts_from_latest_checkpoint(tmp_path):
    callback = Exceptions()
    result = train.DataParallelTrainer(
        dies_once,
        train_loop_config={"steps": 6},
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=train.RunConfig(
            name="r",
            storage_path=str(tmp_path),
            failure_config=train.FailureConfig(max_failures=1),
            callbacks=[callback],
        ),
    ).fit()
    assert result.error is None
    # The restart resumed from the last step registered before the failure (the
    # report rank 1 had not handed over when it died is lost with it).
    failed_at = callback.steps.index("failed")
    last_step, last_checkpoint = callback.steps[failed_at - 1]
    assert 0 <= last_step <= 2
    assert last_checkpoint == str(tmp_path / "r" / f"checkpoint_{last_step:06d}")
    assert [s for s, _ in callback.steps[failed_at + 1 :]] == list(range(last_step + 1, 6))
    assert result.metrics["step"] == 5 and result.metrics["started_at"] == last_step + 1
    assert result.checkpoint.path == str(tmp_path / "r" / "checkpoint_000005")
    assert len(callback.seen) == 1
    (failures,) = callback.seen
    assert list(failures) == [1]
    assert isinstance(failures[1], train.WorkerDiedError)
    assert "rank 1" in str(failures[1])
    names = sorted(n for n in os.listdir(tmp_path / "r") if n.startswith("checkpoint_0"))
    assert names == [f"checkpoint_{i:06d}" for i in range(6)]


def record_pid(directory):
    with open(os.path.join(directory, str(os.getpid())), "w"):
        pass


def recorded_pids(directory):
    return sorted(int(n) for n in os.listdir(directory))


def always_dies(config):
    rank = train.get_context().get_world_rank()
    record_pid(config["pid_dir"])
    train.report({"rank": rank})
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    while True:
        time.sleep(0.05)


def test_failures_beyond_max_failures_raise_naming_the_worker(tmp_path):
    os.mkdir(tmp_path / "pids")
    trainer = train.DataParallelTrainer(
        always_dies,
        train_loop_config={"pid_dir": str(tmp_path / "pids")},
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=train.RunConfig(
            name="r", storage_path=str(tmp_path), failure_config=train.FailureConfig(max_failures=1)
        ),
    )
    with pytest.raises(train.TrainingFailedError) as info:
        trainer.fit()
    err = info.value
    assert isinstance(err, train.WorkerGroupError)
    assert list(err.worker_failures) == [1]
    died = err.worker_failures[1]
    assert isinstance(died, train.WorkerDiedError) and died.rank == 1
    assert "rank 1" in str(err) and "died" in str(err) and "max_failures=1" in str(err)
    assert died.pid in recorded_pids(tmp_path / "pids")
    # Two attempts (the first and one restart), each with its own two processes, all gone now.
    pids = recorded_pids(tmp_path / "pids")
    assert len(pids) == 4
    assert all(gone(pid) for pid in pids)


def raises_on_rank_1(config):
    rank = train.get_context().get_world_rank()
    record_pid(config["pid_dir"])
    train.report({})
    if rank == 1:
        raise ValueError("bad batch on rank 1")
    while True:  # rank 0 would run forever: the driver has to stop it
        time.sleep(0.05)


def test_exception_on_one_rank_surfaces_with_its_traceback_and_stops_the_others(tmp_path):
    os.mkdir(tmp_path / "pids")
    callback = Exceptions()
    trainer = train.DataParallelTrainer(
        raises_on_rank_1,
        train_loop_config={"pid_dir": str(tmp_path / "pids")},
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=train.RunConfig(name="r", storage_path=str(tmp_path), callbacks=[callback]),
    )
    start = time.monotonic()
    with pytest.raises(train.TrainingFailedError) as info:
        trainer.fit()
    assert time.monotonic() - start < 20
    err = info.value
    assert list(err.worker_failures) == [1]
    cause = err.worker_failures[1]
    assert isinstance(cause, ValueError) and str(cause) == "bad batch on rank 1"
    assert 'raise ValueError("bad batch on rank 1")' in cause.traceback_str
    assert "raises_on_rank_1" in cause.traceback_str
    assert "_worker.py" not in cause.traceback_str, "shoal.train's own frames are left out"
    assert "[rank 1" in str(err) and "bad batch on rank 1" in str(err)
    assert len(callback.seen) == 1 and list(callback.seen[0]) == [1]
    pids = recorded_pids(tmp_path / "pids")
    assert len(pids) == 2 and all(gone(pid) for pid in pids)
