"""The local provider's processes: launch, environment, logs, termination of whole process groups."""

from __future__ import annotations

import json
import sys
import time

import psutil
import pytest

from shoal.autoscaler import NodeLaunchError
from shoal.autoscaler.providers.local import LocalNodeProvider

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def make(tmp_path, command=None, name="demo", **extra):
    cfg = {"type": "local", "command": command or SLEEPER, "state_dir": str(tmp_path), "terminate_grace_s": 2, **extra}
    return LocalNodeProvider(cfg, name)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_node_agent_command_gets_placeholders_and_env(tmp_path) -> None:
    out = tmp_path / "seen"
    script = (
        "import json, os, sys, time; "
        f"open({str(out)!r} + os.environ['SHOAL_AUTOSCALER_NODE_ID'], 'w').write(json.dumps("
        "{'argv': sys.argv[1:], 'type': os.environ['SHOAL_AUTOSCALER_NODE_TYPE'], 'extra': os.environ['EXTRA']})); "
        "print('agent up', flush=True); time.sleep(60)"
    )
    p = make(tmp_path, [sys.executable, "-c", script, "{node_id}", "{cluster_name}", "{resources}", "{num_cpus}"])
    (nid,) = p.create_nodes("cpu", {"env": {"EXTRA": "1"}}, {}, 1, resources={"CPU": 4, "GPU": 0})
    try:
        seen = tmp_path / f"seen{nid}"
        assert wait_for(seen.exists)
        assert wait_for(lambda: "agent up" in (p.state_dir / f"{nid}.log").read_text())
        data = json.loads(seen.read_text())
        assert data == {"argv": [nid, "demo", '{"CPU": 4, "GPU": 0}', "4"], "type": "cpu", "extra": "1"}
    finally:
        p.terminate_nodes([nid])


def test_terminate_kills_the_whole_process_group(tmp_path) -> None:
    spawn_child = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    p = make(tmp_path, [sys.executable, "-c", spawn_child])
    (nid,) = p.create_nodes("cpu", {}, {}, 1)
    rec = json.loads((p.state_dir / "nodes.json").read_text())[nid]
    parent = psutil.Process(rec["pid"])
    assert wait_for(lambda: len(parent.children()) == 1)
    child = parent.children()[0]
    p.terminate_nodes([nid])
    assert not parent.is_running() or parent.status() == psutil.STATUS_ZOMBIE
    assert wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE)
    assert p.non_terminated_nodes() == []


def test_sigterm_ignored_means_sigkill_after_grace(tmp_path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    p = make(tmp_path, [sys.executable, "-c", stubborn], terminate_grace_s=0.5)
    (nid,) = p.create_nodes("cpu", {}, {}, 1)
    assert wait_for(lambda: "ready" in (p.state_dir / f"{nid}.log").read_text())
    start = time.monotonic()
    p.terminate_nodes([nid])
    assert 0.4 < time.monotonic() - start < 5
    assert p.non_terminated_nodes() == []


def test_another_process_finds_the_nodes(tmp_path) -> None:
    first = make(tmp_path)
    ids = first.create_nodes("cpu", {}, {"k": "v"}, 2)
    second = make(tmp_path)  # e.g. `shoal down` in a new process
    assert sorted(n.node_id for n in second.non_terminated_nodes({"k": "v"})) == sorted(ids)
    second.terminate_nodes(ids)
    assert first.non_terminated_nodes() == []
    first.close()


def test_exited_nodes_are_not_listed(tmp_path) -> None:
    p = make(tmp_path, [sys.executable, "-c", "pass"])
    (nid,) = p.create_nodes("cpu", {}, {}, 1)
    assert wait_for(lambda: p.non_terminated_nodes() == [])
    assert nid not in json.loads((p.state_dir / "nodes.json").read_text())


def test_bad_commands_are_config_errors(tmp_path) -> None:
    p = make(tmp_path, [str(tmp_path / "missing-agent")])
    with pytest.raises(NodeLaunchError, match="cannot start") as info:
        p.create_nodes("cpu", {}, {}, 2)
    assert info.value.category == "config"
    p = make(tmp_path, [sys.executable, "{nope}"])
    with pytest.raises(NodeLaunchError, match=r"unknown placeholder \{nope\} in command \(known: cluster_name"):
        p.create_nodes("cpu", {}, {}, 1)
    assert p.non_terminated_nodes() == []


def test_validate_config_names_paths() -> None:
    errs = dict(
        LocalNodeProvider.validate_config(
            {"type": "local", "commnd": "x", "terminate_grace_s": -1, "command": [], "object_store_memory": "lots"},
            {"w": {"env": ["A"], "image": "x"}},
        )
    )
    assert errs["provider.commnd"] == "unknown key for the 'local' provider"
    assert errs["provider.command"] == "must be a non-empty string or list of strings"
    assert errs["provider.object_store_memory"].startswith("must be a size")
    assert errs["provider.terminate_grace_s"] == "must be a number >= 0"
    assert errs["available_node_types.w.node_config.env"] == "must be a mapping of variable name to value"
    assert errs["available_node_types.w.node_config.image"].startswith("unknown key")


def test_builtin_agent_command_carries_the_node_types_resources(tmp_path) -> None:
    p = LocalNodeProvider(
        {"type": "local", "state_dir": str(tmp_path), "object_store_memory": "64MiB", "head_port": 6399}, "demo"
    )
    argv = p._agent_argv("head", {"CPU": 2.5, "GPU": 1, "accel": 2, "memory": 1 << 30})
    assert argv[:3] == [sys.executable, "-m", "shoal._cluster.agent"]

    def flag(name: str) -> str:
        return argv[argv.index(name) + 1]

    assert flag("--num-cpus") == "2" and flag("--num-gpus") == "1"
    # The exact (fractional) CPU count and every other resource travel as JSON.
    assert json.loads(flag("--resources")) == {"CPU": 2.5, "accel": 2, "memory": 1 << 30}
    assert flag("--object-store-memory") == str(64 << 20) and flag("--port") == "6399"
    assert flag("--token-path") == str(p.token_path) and flag("--ready-file") == str(p.head_ready_file)
    assert "--head" in argv and "--address" not in argv
    # A worker needs a running head to join.
    with pytest.raises(NodeLaunchError, match="has no running head to join") as info:
        p.create_nodes("w", {}, {}, 1, resources={"CPU": 1})
    assert info.value.category == "transient"
    assert p.non_terminated_nodes() == []
