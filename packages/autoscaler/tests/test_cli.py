"""`shoal up` and `shoal down` through core's CLI discovery."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from shoal.autoscaler import HeadStartUnsupportedError, load_cluster_config
from shoal.autoscaler.launcher import down, up
from shoal.autoscaler.node_provider import TAG_NODE_KIND
from shoal.autoscaler.providers.local import LocalNodeProvider
from shoal.autoscaler.simulation import SimulatedProvider, VirtualClock
from shoal.cli import build_parser, main

from .helpers import make_config

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def write_config(tmp_path, **overrides):
    cfg = {
        "cluster_name": "clitest",
        "provider": {"type": "local", "command": SLEEPER, "state_dir": str(tmp_path / "state"), "terminate_grace_s": 2},
        "head_node_type": "head",
        "max_workers": 2,
        "available_node_types": {"head": {"resources": {"CPU": 1}}, "w": {"resources": {"CPU": 1}}},
    }
    cfg.update(overrides)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg


def test_commands_are_discovered() -> None:
    parser = build_parser()
    args = parser.parse_args(["down", "c.yaml", "--workers-only", "-y"])
    assert args.workers_only and args.yes and callable(args.func)
    assert callable(parser.parse_args(["up", "c.yaml"]).func)


def test_down_terminates_workers_then_head(tmp_path, capsys) -> None:
    path, cfg = write_config(tmp_path)
    provider = LocalNodeProvider(cfg["provider"], "clitest")
    (head,) = provider.create_nodes("head", {}, {TAG_NODE_KIND: "head"}, 1)
    workers = provider.create_nodes("w", {}, {}, 2)
    other = LocalNodeProvider(cfg["provider"], "other-cluster")
    (keep,) = other.create_nodes("w", {}, {}, 1)
    try:
        assert main(["down", str(path), "--yes", "--workers-only"]) == 0
        assert [n.node_id for n in provider.non_terminated_nodes()] == [head]
        assert main(["down", str(path), "-y"]) == 0
        assert provider.non_terminated_nodes() == []
        assert [n.node_id for n in other.non_terminated_nodes()] == [keep]  # another cluster is untouched
        out = capsys.readouterr().out
        assert f"terminating 2 worker node(s): {', '.join(sorted(workers))}" in out
        assert f"terminating the head node: {head}" in out
        assert main(["down", str(path), "-y"]) == 0
        assert "has no nodes to terminate" in capsys.readouterr().out
    finally:
        other.terminate_nodes([keep])
        provider.terminate_nodes([head, *workers])


def test_down_wants_confirmation(tmp_path, capsys, monkeypatch) -> None:
    path, _ = write_config(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal
    assert main(["down", str(path)]) == 2
    assert "pass --yes" in capsys.readouterr().err


def test_up_on_a_provider_that_cannot_start_agents_launches_nothing(tmp_path) -> None:
    config = make_config()
    provider = SimulatedProvider(cluster_name="test", clock=VirtualClock())
    out: list[str] = []
    with pytest.raises(HeadStartUnsupportedError, match="on the 'simulated' provider: it neither") as info:
        up(config, provider=provider, echo=out.append)
    assert "nothing was launched" in str(info.value)
    assert out == ["cluster 'test' (local): no head; no workers"]
    assert provider.non_terminated_nodes() == []


def test_up_reports_a_head_that_does_not_start(tmp_path, capsys) -> None:
    crash = [sys.executable, "-c", "import sys; print('agent: cannot bind'); sys.exit(2)"]
    path, cfg = write_config(tmp_path, provider={"type": "local", "command": crash, "state_dir": str(tmp_path / "s")})
    assert main(["up", str(path)]) == 1
    captured = capsys.readouterr()
    assert "started the head node local-" in captured.out
    assert "shoal up: local provider: the head agent exited; its log ends:" in captured.err
    assert "agent: cannot bind" in captured.err
    assert LocalNodeProvider(cfg["provider"], "clitest").non_terminated_nodes() == []
    assert not (tmp_path / "s" / "clitest" / "launcher.json").exists()


@pytest.mark.timeout(60)
def test_up_status_up_again_and_down(tmp_path, capsys) -> None:
    provider_cfg = {"type": "local", "state_dir": str(tmp_path / "s"), "exit_with_pid": os.getpid()}
    path, _ = write_config(tmp_path, provider=provider_cfg)
    provider = LocalNodeProvider(provider_cfg, "clitest")
    state_dir = tmp_path / "s" / "clitest"
    try:
        assert main(["up", str(path), "--interval", "0.5"]) == 0
        out = capsys.readouterr().out
        (head,) = provider.non_terminated_nodes()
        assert f"started the head node {head.node_id} (head)" in out
        record = json.loads((state_dir / "launcher.json").read_text())
        address, token_path = record["head_address"], record["token_path"]
        assert f"head {head.node_id} serving at {address}; autoscaler running (pid {record['monitor']['pid']})" in out
        token = Path(token_path).read_text().strip()
        assert oct(Path(token_path).stat().st_mode & 0o777) == "0o600" and token not in out
        monitor = psutil.Process(record["monitor"]["pid"])

        assert main(["status", "--address", address, "--token-path", token_path]) == 0
        out = capsys.readouterr().out
        assert f"Autoscaler (cluster clitest), reported 0s ago by pid {monitor.pid}" in out
        assert "  head: 1 running\n" in out and token not in out

        # Again: the head stays, the autoscaler restarts (so that config changes apply).
        assert main(["up", str(path), "--interval", "0.5"]) == 0
        out = capsys.readouterr().out
        assert "stopped the previous autoscaler" in out and "started the head node" not in out
        assert not monitor.is_running() or monitor.status() == psutil.STATUS_ZOMBIE
        assert [n.node_id for n in provider.non_terminated_nodes()] == [head.node_id]
        new_monitor = json.loads((state_dir / "launcher.json").read_text())["monitor"]["pid"]
        assert new_monitor != monitor.pid

        assert main(["down", str(path), "-y"]) == 0
        out = capsys.readouterr().out
        assert f"stopped the autoscaler (pid {new_monitor})" in out
        assert f"terminating the head node: {head.node_id}" in out
        assert provider.non_terminated_nodes() == [] and not psutil.pid_exists(new_monitor)
        assert not (state_dir / "launcher.json").exists() and not (state_dir / "head.json").exists()
        assert not Path(token_path).exists()
    finally:
        down(load_cluster_config(path), echo=lambda s: None)


def test_invalid_config_exits_2_with_paths(tmp_path, capsys) -> None:
    path, _ = write_config(tmp_path, upscaling_speed=-1)
    assert main(["up", str(path)]) == 2
    assert "upscaling_speed: must be > 0, got -1" in capsys.readouterr().err
    assert main(["down", str(tmp_path / "nope.yaml"), "-y"]) == 2
    assert "cannot read cluster config" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_the_autoscaler_stops_when_its_head_is_gone(tmp_path, capsys) -> None:
    provider_cfg = {"type": "local", "state_dir": str(tmp_path / "s"), "exit_with_pid": os.getpid()}
    path, _ = write_config(tmp_path, provider=provider_cfg)
    config = load_cluster_config(path)
    try:
        endpoint = up(config, interval_s=0.2, echo=lambda s: None)
        monitor = psutil.Process(endpoint.monitor_pid)
        LocalNodeProvider(provider_cfg, "clitest").terminate_nodes([endpoint.head_node_id])  # not `shoal down`
        monitor.wait(timeout=20)
        log = (tmp_path / "s" / "clitest" / "monitor.log").read_text()
        assert f"the head node {endpoint.head_node_id} is gone (no longer listed by the provider): stopping" in log
    finally:
        down(config, echo=lambda s: None)
