"""Tuner.restore: a killed driver's experiment finishes without rerunning completed trials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from shoal import tune
from shoal.tune.execution._state import latest_state_file

pytestmark = pytest.mark.usefixtures("shoal_runtime")

TRAINABLE = """
import os, tempfile, time
from shoal import tune

def slow_trial(config):
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "i")) as f:
            start = int(f.read())
    with open(config["log"], "a") as f:
        f.write(f"{tune.get_context().get_trial_id()} {start}\\n")
    for i in range(start, 3):
        time.sleep(0.15)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "i"), "w") as f:
                f.write(str(i + 1))
            tune.report({"i": i + 1, "x": config["x"]}, checkpoint=tune.Checkpoint.from_directory(d))
"""

_namespace: dict = {}
exec(TRAINABLE, _namespace)  # the same trainable as the driver script's
slow_trial = _namespace["slow_trial"]

DRIVER = (
    TRAINABLE
    + """
import sys
import shoal
# The killed driver runs on the inline backend so that SIGKILL leaves no worker processes behind.
shoal.init(backend="inline", num_cpus=2)
tune.Tuner(
    slow_trial,
    param_space={"x": tune.grid_search(list(range(6))), "log": sys.argv[2]},
    run_config=tune.RunConfig(name="killed", storage_path=sys.argv[1], verbose=0),
).fit()
"""
)


def _trials_in_state(path: str) -> list[dict]:
    state = latest_state_file(path)
    if state is None:
        return []
    try:
        with open(state) as f:
            return json.load(f)["trial_data"]
    except (OSError, ValueError):
        return []


def _terminated_in_state(path: str) -> set[str]:
    return {t["trial_id"] for t in _trials_in_state(path) if t["status"] == "TERMINATED"}


@pytest.mark.timeout(120)
def test_restore_after_the_driver_is_killed(tmp_path):
    log = tmp_path / "starts.log"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    path = str(tmp_path / "killed")
    try:
        deadline = time.monotonic() + 60
        while len(_terminated_in_state(path)) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the driver made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    done_before = _terminated_in_state(path)
    assert 2 <= len(done_before) < 6
    # Unfinished trials with a checkpoint resume from it.
    resumable = {}
    for t in _trials_in_state(path):
        if t["status"] != "TERMINATED" and t["checkpoints"]:
            with open(os.path.join(t["checkpoints"][-1], "i")) as f:
                resumable[t["trial_id"]] = f.read()

    assert tune.Tuner.can_restore(path)
    grid = tune.Tuner.restore(path, trainable=slow_trial).fit()
    assert len(grid) == 6 and grid.num_terminated == 6
    assert sorted(r.config["x"] for r in grid) == list(range(6))
    assert all(r.metrics["i"] == 3 for r in grid)
    starts = [line.split() for line in log.read_text().splitlines()]
    for trial_id in done_before:
        # Completed before the kill: started exactly once, never again.
        assert [s for s in starts if s[0] == trial_id] == [[trial_id, "0"]]
    for trial_id, step in resumable.items():
        assert [trial_id, step] in starts


def erroring(config):
    flag = config["flag"]
    if os.path.exists(flag):
        raise RuntimeError("flag is set")
    tune.report({"ok": 1})


def test_restore_can_resume_errored_trials(tmp_path):
    flag = tmp_path / "flag"
    flag.touch()
    run_config = tune.RunConfig(name="err", storage_path=str(tmp_path), verbose=0)
    first = tune.Tuner(erroring, param_space={"flag": str(flag)}, run_config=run_config).fit()
    assert first.num_errors == 1
    path = first.experiment_path

    # Without resume_errored, the failed trial stays failed.
    again = tune.Tuner.restore(path, trainable=erroring).fit()
    assert again.num_errors == 1
    assert tune.Tuner.restore(path, trainable=erroring).get_results().num_errors == 1

    flag.unlink()
    fixed = tune.Tuner.restore(path, trainable=erroring, resume_errored=True).fit()
    assert fixed.num_errors == 0 and fixed[0].metrics["ok"] == 1


def test_can_restore_and_bad_paths(tmp_path):
    assert not tune.Tuner.can_restore(tmp_path)
    with pytest.raises(ValueError, match="does not hold an experiment"):
        tune.Tuner.restore(str(tmp_path), trainable=erroring)
