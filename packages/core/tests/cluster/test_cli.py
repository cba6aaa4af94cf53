"""`shoal start`, `shoal status` and `shoal stop` as a user runs them (with a private HOME)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.timeout(180), pytest.mark.shoal_backends("cluster")]


def _shoal(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_start_status_stop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    head = _shoal(home, "start", "--head", "--port", "0", "--num-cpus", "1", "--temp-dir", str(tmp_path / "t"))
    assert head.returncode == 0, head.stderr
    assert "shoal head started at 127.0.0.1:" in head.stdout
    address = head.stdout.split("started at ", 1)[1].split()[0]
    try:
        node = _shoal(home, "start", "--address", address, "--num-cpus", "1", "--resources", '{"accel": 2}')
        assert node.returncode == 0, node.stderr
        status = _shoal(home, "status", "--address", address)
        assert status.returncode == 0, status.stderr
        assert "2 node(s) alive" in status.stdout
        assert "accel: 0 / 2" in status.stdout
        token = home / ".shoal" / f"token-{address.replace(':', '-')}"
        assert token.stat().st_mode & 0o777 == 0o600
    finally:
        records = json.loads((home / ".shoal" / "processes.json").read_text())
        stop = _shoal(home, "stop")
    assert stop.returncode == 0
    pids = [r["pid"] for r in records]
    assert len(pids) == 2
    deadline = time.time() + 15
    while time.time() < deadline and any(psutil.pid_exists(p) for p in pids):
        time.sleep(0.1)
    assert not any(psutil.pid_exists(p) for p in pids)
    again = _shoal(home, "stop")
    assert "no shoal processes" in again.stdout


def test_start_needs_head_or_address(tmp_path: Path) -> None:
    out = _shoal(tmp_path, "start")
    assert out.returncode == 2
    assert "--head" in out.stderr
