"""Short tasks queued on a busy worker: order, blocking parents, cancel and crashes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal.exceptions import TaskCancelledError, WorkerCrashedError
from shoal.testing.plugin import runtime

pytestmark = pytest.mark.shoal_backends("local", "cluster")


@pytest.fixture(scope="module")
def one_cpu(shoal_backend_name: str) -> Iterator[None]:
    """One CPU: a second task can only wait in the node's queue or be queued on the busy worker."""
    with runtime(shoal_backend_name, num_cpus=1):
        yield


@shoal.remote
def step(x: Any, sleep: float = 0.0, log: str | None = None, die: bool = False) -> Any:
    if sleep:
        time.sleep(sleep)
    if die:
        os._exit(1)
    if log is not None:
        with open(log, "a") as f:
            f.write(f"{x}\n")
    return x


@shoal.remote
def fan(n: int) -> int:
    return sum(shoal.get([step.remote(i) for i in range(n)]))


def _warm() -> None:
    # Runs of a few hundred microseconds make both functions count as short.
    for _ in range(3):
        assert shoal.get([step.remote(i) for i in range(20)]) == list(range(20))
        assert shoal.get([fan.remote(0) for _ in range(20)]) == [0] * 20


@pytest.mark.timeout(60)
def test_results_keep_their_values_and_order(one_cpu: None) -> None:
    _warm()
    assert shoal.get([step.remote(i) for i in range(500)]) == list(range(500))


@pytest.mark.timeout(60)
def test_a_task_waiting_for_tasks_queued_behind_it_gets_them(one_cpu: None) -> None:
    # fan's children are queued on fan's own (busy) worker; when fan blocks in get
    # the worker hands them back, so they run elsewhere instead of never.
    _warm()
    # A worker pickles ``step`` as a function of its own: warm that one up too.
    for _ in range(10):
        assert shoal.get(fan.remote(2), timeout=30) == 1
    assert shoal.get([fan.remote(5) for _ in range(4)], timeout=30) == [10] * 4


@pytest.mark.timeout(60)
@pytest.mark.parametrize("force", [False, True])
def test_cancelling_a_queued_task_leaves_the_running_one_alone(one_cpu: None, tmp_path: Path, force: bool) -> None:
    _warm()
    log = str(tmp_path / "ran.txt")
    first = step.options(max_retries=0).remote("a", 0.5, log)  # a killed worker would fail it
    queued = step.remote("b", 0.0, log)
    last = step.remote("c", 0.0, log)
    time.sleep(0.1)
    shoal.cancel(queued, force=force)
    with pytest.raises(TaskCancelledError):
        shoal.get(queued, timeout=30)
    assert shoal.get([first, last], timeout=30) == ["a", "c"]
    assert Path(log).read_text().split() == ["a", "c"]


@pytest.mark.timeout(60)
def test_tasks_queued_behind_a_crash_still_run(one_cpu: None) -> None:
    _warm()
    doomed = step.options(max_retries=0).remote("x", 0.3, die=True)
    behind = [step.options(max_retries=0).remote(i) for i in range(3)]
    with pytest.raises(WorkerCrashedError):
        shoal.get(doomed, timeout=30)
    # They never started, so they run once on a new worker, retries or not.
    assert shoal.get(behind, timeout=30) == [0, 1, 2]


@pytest.mark.shoal_backends("local")
@pytest.mark.timeout(60)
def test_short_tasks_are_queued_on_the_busy_worker(one_cpu: None) -> None:
    from shoal import _session

    _warm()
    node = _session.backend()._node  # type: ignore[attr-defined]
    first = step.remote("a", 0.5)
    rest = [step.remote(i) for i in range(3)]
    time.sleep(0.1)
    with node.lock:
        queued = [len(w.queued) for w in node.workers.values() if w.kind == "worker"]
    assert max(queued) == 2  # PIPELINE_DEPTH; the third waits in the node's queue
    assert shoal.get([first, *rest], timeout=30) == ["a", 0, 1, 2]
    # The long run made the function count as long: nothing queues behind the next one.
    first = step.remote("b", 0.3)
    rest = [step.remote(i) for i in range(2)]
    time.sleep(0.1)
    with node.lock:
        assert all(not w.queued for w in node.workers.values())
    assert shoal.get([first, *rest], timeout=30) == ["b", 0, 1]


@pytest.mark.timeout(60)
def test_tasks_queued_behind_a_long_one_move_to_a_free_worker(shoal_backend_name: str) -> None:
    # Two CPUs: one queued task lands behind each running one. When the short one ends,
    # the task queued behind the long one is taken back and runs on the free worker.
    with runtime(shoal_backend_name, num_cpus=2):
        _warm()
        long_one = step.remote("long", 2.0)
        short_one = step.remote("short", 0.3)
        queued = [step.remote(i) for i in range(2)]
        ready, _ = shoal.wait(queued, num_returns=2, timeout=1.5)
        assert len(ready) == 2
        assert shoal.get(queued) == [0, 1]
        assert shoal.get([short_one, long_one], timeout=30) == ["short", "long"]
