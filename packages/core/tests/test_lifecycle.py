"""init, shutdown, implicit init, and cleanup of processes and shared memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import shoal
from shoal.testing import shm_segments


@pytest.fixture(autouse=True)
def _no_runtime():
    if shoal.is_initialized():
        shoal.shutdown()
    yield
    if shoal.is_initialized():
        shoal.shutdown()


@pytest.mark.shoal_backends("inline", "local")
def test_first_use_initializes_implicitly(shoal_backend_name: str) -> None:
    os.environ["SHOAL_BACKEND"] = shoal_backend_name
    try:
        assert not shoal.is_initialized()
        assert shoal.get(shoal.put(3)) == 3
        assert shoal.is_initialized()
    finally:
        del os.environ["SHOAL_BACKEND"]


@pytest.mark.shoal_backends("inline", "local")
def test_shutdown_twice_is_fine(shoal_backend_name: str) -> None:
    shoal.init(backend=shoal_backend_name, num_cpus=1)
    shoal.shutdown()
    shoal.shutdown()
    assert not shoal.is_initialized()


@pytest.mark.shoal_backends("inline", "local")
def test_init_returns_a_description(shoal_backend_name: str) -> None:
    info = shoal.init(backend=shoal_backend_name, num_cpus=1, namespace="described")
    assert info["backend"] == shoal_backend_name
    assert info["namespace"] == "described"
    assert shoal.get_runtime_context().namespace == "described"


def test_init_unknown_keyword() -> None:
    from shoal.exceptions import ConfigError

    with pytest.raises(ConfigError, match="num_cpu"):
        shoal.init(num_cpu=2)


@pytest.mark.shoal_backends("local")
def test_shutdown_leaves_no_processes_or_segments() -> None:
    before = shm_segments()
    shoal.init(num_cpus=2)

    @shoal.remote
    class A:
        def pid(self):
            return os.getpid()

    @shoal.remote
    def pid():
        return os.getpid()

    pids = shoal.get([pid.remote() for _ in range(4)])
    actor = A.remote()
    pids.append(shoal.get(actor.pid.remote()))
    shoal.shutdown()
    for p in set(pids):
        assert not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE
    assert shm_segments() == before
    assert not [c for c in psutil.Process().children() if c.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.shoal_backends("local")
@pytest.mark.timeout(60)
def test_workers_exit_when_the_driver_is_killed(tmp_path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, time, shoal
            shoal.init(num_cpus=2)

            @shoal.remote
            class A:
                def pid(self):
                    return os.getpid()

            @shoal.remote
            def pid():
                return os.getpid()

            pids = set(shoal.get([pid.remote() for _ in range(4)]))
            pids.add(shoal.get(A.remote().pid.remote()))
            print(" ".join(map(str, sorted(pids))), flush=True)
            time.sleep(60)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        worker_pids = [int(p) for p in line.split()]
        assert worker_pids
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.time() + 5
        alive = worker_pids
        while time.time() < deadline:
            alive = [p for p in worker_pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
            if not alive:
                break
            time.sleep(0.1)
        assert not alive, f"workers {alive} outlived their killed driver"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


@pytest.mark.shoal_backends("local")
def test_a_burst_at_startup_starts_no_more_workers_than_cpus() -> None:
    # The workers started with init are still starting when the burst arrives:
    # they are enough for it, and extra ones would stay idle holding memory.
    shoal.init(num_cpus=2)

    @shoal.remote
    def pid() -> int:
        time.sleep(0.01)
        return os.getpid()

    pids = set(shoal.get([pid.remote() for _ in range(40)]))
    workers = [c for c in psutil.Process().children() if c.status() != psutil.STATUS_ZOMBIE]
    assert len(pids) <= 2
    assert len(workers) == 2, [c.cmdline() for c in workers]
