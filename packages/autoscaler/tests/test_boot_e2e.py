"""`shoal up` through boot scripts, end to end: nothing starts an agent but the scripts themselves.

The ``scripted`` provider (tests/scripted_boot_provider.py) plays a cloud
whose machines run their user data at boot, here, each with its own home.
``shoal up`` must make the token, boot the head with its script, find it at
its address, start the autoscaler, and the autoscaler must boot workers with
scripts that join the head; ``shoal down`` must leave nothing running.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal.autoscaler import AutoscalerError, AutoscalerSettings, validate_cluster_config
from shoal.autoscaler.launcher import down, up
from shoal.autoscaler.node_provider import NODE_KIND_HEAD, TAG_NODE_KIND, TAG_NODE_TYPE

pytestmark = pytest.mark.timeout(110)

TESTS = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def scripted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Register the ``scripted`` provider for this process and the autoscaler it starts."""
    site = tmp_path / "site"
    dist = site / "shoal_scripted_provider-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shoal-scripted-provider\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(
        "[shoal.autoscaler.node_providers]\nscripted = scripted_boot_provider:ScriptedBootProvider\n"
    )
    path = f"{site}:{TESTS}"
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.syspath_prepend(str(site))
    return tmp_path


def make_config(tmp: Path, **provider: Any):
    marker = tmp / "setup-ran"
    return validate_cluster_config(
        {
            "cluster_name": "booted",
            "provider": {"type": "scripted", "state_dir": str(tmp / "state"), "head_port": free_port(), **provider},
            "head_node_type": "head",
            "max_workers": 2,
            "idle_timeout_minutes": 0.05,
            "setup_commands": [f"echo setup >> {marker}"],
            "head_setup_commands": [f"echo head-setup >> {marker}"],
            "worker_setup_commands": [f"echo worker-setup >> {marker}"],
            "available_node_types": {
                "head": {"resources": {"CPU": 1}},
                "gadget_worker": {"resources": {"CPU": 1, "gadget": 1}, "max_workers": 2},
            },
        }
    )


def test_up_boots_head_and_workers_from_scripts_and_down_stops_them(scripted: Path) -> None:
    from scripted_boot_provider import ScriptedBootProvider

    config = make_config(scripted)
    provider = ScriptedBootProvider(config.provider, "booted")
    settings = AutoscalerSettings(listing_grace_s=1.0, launch_timeout_s=60.0)
    lines: list[str] = []
    try:
        endpoint = up(config, provider=provider, interval_s=0.5, settings=settings, echo=lines.append)
        assert endpoint.address == f"127.0.0.1:{config.provider['head_port']}"
        token_path = Path(endpoint.token_path)
        assert token_path.stat().st_mode & 0o777 == 0o600
        token = token_path.read_text()
        assert token and all(token not in line for line in lines)
        (head,) = provider.non_terminated_nodes({TAG_NODE_KIND: NODE_KIND_HEAD})
        assert "shoal start --host" in (provider.root / head.node_id / "user-data").read_text()
        assert "waiting for it to boot" in lines[1]
        # The head's boot log holds what its commands printed, never the token.
        assert token not in (provider.root / head.node_id / "boot.log").read_text()

        shoal.init(address=endpoint.address, token_path=endpoint.token_path)

        @shoal.remote(num_cpus=1, resources={"gadget": 1})
        def on_gadget(i: int) -> tuple[int, str]:
            return i, shoal.get_runtime_context().get_node_id()

        results = shoal.get([on_gadget.remote(i) for i in range(4)], timeout=60)
        assert [i for i, _ in results] == [0, 1, 2, 3]
        assert shoal.get_runtime_context().get_node_id() not in {n for _, n in results}
        workers = provider.non_terminated_nodes({TAG_NODE_TYPE: "gadget_worker"})
        assert 1 <= len(workers) <= 2
        worker_script = (provider.root / workers[0].node_id / "user-data").read_text()
        assert f"export BOOT_HEAD_ADDRESS={endpoint.address}" in worker_script
        ran = (scripted / "setup-ran").read_text().split()
        assert ran[:2] == ["setup", "head-setup"] and ran[2:4] == ["setup", "worker-setup"]
        shoal.shutdown()

        idle_gone = lambda: not provider.non_terminated_nodes({TAG_NODE_TYPE: "gadget_worker"})  # noqa: E731
        wait_until(idle_gone, 40, "idle workers to be terminated")
    finally:
        shoal.shutdown()
        done = down(config, provider=provider, echo=lambda s: None)
    assert head.node_id in done
    assert provider.non_terminated_nodes() == []
    assert not (Path(config.provider["state_dir"]) / "booted" / "token").exists()


def test_a_head_that_never_answers_is_terminated_and_reported(scripted: Path) -> None:
    from scripted_boot_provider import ScriptedBootProvider

    config = validate_cluster_config(
        {
            **_raw(make_config(scripted, head_start_timeout_s=3)),
            "head_start_commands": ["sleep 1"],  # boots, but starts no agent
        }
    )
    provider = ScriptedBootProvider(config.provider, "booted")
    with pytest.raises(AutoscalerError) as info:
        up(config, provider=provider, echo=lambda s: None)
    message = str(info.value)
    assert f"did not answer at 127.0.0.1:{config.provider['head_port']} within 3s" in message
    assert "boot log is /var/log/shoal-boot.log" in message and "the head node was terminated" in message
    assert provider.non_terminated_nodes() == []
    assert not (Path(config.provider["state_dir"]) / "booted" / "token").exists()


def _raw(config) -> dict[str, Any]:
    from shoal.autoscaler.launcher import config_to_raw

    return config_to_raw(config)
