"""`shoal up` and `shoal down` through core's CLI discovery."""

from __future__ import annotations

import io
import sys

import yaml

from shoal.autoscaler.node_provider import TAG_NODE_KIND
from shoal.autoscaler.providers.local import LocalNodeProvider
from shoal.cli import build_parser, main

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


def test_up_reports_the_missing_backend_and_launches_nothing(tmp_path, capsys) -> None:
    path, cfg = write_config(tmp_path)
    assert main(["up", str(path), "-y"]) == 1
    captured = capsys.readouterr()
    assert "cluster 'clitest' (local): no head; no workers" in captured.out
    assert "needs shoal's 'cluster' backend" in captured.err and "nothing was launched" in captured.err
    assert LocalNodeProvider(cfg["provider"], "clitest").non_terminated_nodes() == []


def test_invalid_config_exits_2_with_paths(tmp_path, capsys) -> None:
    path, _ = write_config(tmp_path, upscaling_speed=-1)
    assert main(["up", str(path)]) == 2
    assert "upscaling_speed: must be > 0, got -1" in capsys.readouterr().err
    assert main(["down", str(tmp_path / "nope.yaml"), "-y"]) == 2
    assert "cannot read cluster config" in capsys.readouterr().err
