"""End to end on one machine: `cloud` backend, `local` provider, real head and node agents, real autoscaler.

One cluster for the module (min_workers=0 everywhere): the head offers only
CPU, so every custom resource below exists only on a worker type that the
autoscaler has to launch. The idle timeout is 3 s and the autoscaler runs a
round every 0.5 s, so each scale-up and scale-down takes seconds. Every
process of the cluster also exits with this test process (``exit_with_pid``).
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import shoal
from shoal.autoscaler import AutoscalerSettings, AutoscalerStatus, load_cluster_config, request_resources
from shoal.autoscaler._head import HeadConnection
from shoal.autoscaler.cluster_state import read_published_status
from shoal.autoscaler.config import ClusterConfig
from shoal.autoscaler.launcher import ClusterEndpoint, down, running_cluster
from shoal.autoscaler.node_provider import TAG_NODE_TYPE
from shoal.autoscaler.providers.local import LocalNodeProvider
from shoal.cli import main as shoal_cli

pytestmark = pytest.mark.timeout(90)

FAKE_KEY = "sk-live-0123456789abcdefXYZ"


@dataclass
class LiveCluster:
    config: ClusterConfig
    endpoint: ClusterEndpoint
    provider: LocalNodeProvider
    token: str

    def workers(self, node_type: str) -> list[str]:
        return [n.node_id for n in self.provider.non_terminated_nodes({TAG_NODE_TYPE: node_type})]

    def status(self) -> AutoscalerStatus:
        with HeadConnection(self.endpoint.address, self.endpoint.token_path) as head:
            doc = read_published_status(head)
        assert doc is not None
        return AutoscalerStatus.from_dict(doc["status"])

    def states(self, node_type: str) -> dict[str, int]:
        return self.status().counts().get(node_type, {})


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    """Poll until ``predicate()`` is true; returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCluster]:
    tmp = tmp_path_factory.mktemp("e2e")
    raw = {
        "cluster_name": "e2e",
        "provider": {
            "type": "local",
            "state_dir": str(tmp / "state"),
            "object_store_memory": "64MiB",
            "terminate_grace_s": 3,
            "exit_with_pid": os.getpid(),
        },
        "head_node_type": "head",
        "max_workers": 6,
        "idle_timeout_minutes": 0.05,
        "available_node_types": {
            "head": {"resources": {"CPU": 1}},
            "accel_worker": {"resources": {"CPU": 2, "accel": 2}, "max_workers": 2},
            "actor_worker": {"resources": {"CPU": 1, "zz": 1}, "max_workers": 1},
            "pg_worker": {"resources": {"CPU": 1, "pgres": 1}, "max_workers": 2},
            "floor_worker": {"resources": {"CPU": 1, "floor": 1}, "max_workers": 1},
            # Starts, then exits before joining: a transient failure each time.
            "vanish_worker": {
                "resources": {"CPU": 1, "vanish": 1},
                "max_workers": 1,
                "node_config": {"command": [sys.executable, "-c", "import sys; sys.exit(3)"]},
            },
            # Cannot start at all: a config error.
            "badcmd_worker": {
                "resources": {"CPU": 1, "badcmd": 1},
                "max_workers": 1,
                "node_config": {"command": [str(tmp / "no-such-agent")], "env": {"SERVICE_API_KEY": FAKE_KEY}},
            },
        },
    }
    path = tmp / "cluster.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_cluster_config(path)
    settings = AutoscalerSettings(listing_grace_s=1.0, backoff_base_s=1.0, backoff_max_s=4.0, launch_timeout_s=30.0)
    try:
        info = shoal.init(backend="cloud", cluster_config=path, autoscaler_interval_s=0.5, autoscaler_settings=settings)
        assert info["backend"] == "cloud"
        endpoint = running_cluster(config)
        assert endpoint is not None
        token = Path(endpoint.token_path).read_text().strip()
        yield LiveCluster(config, endpoint, LocalNodeProvider(config.provider, "e2e"), token)
    finally:
        shoal.shutdown()
        down(config, echo=lambda s: None)


def test_tasks_launch_workers_complete_and_workers_go_when_idle(cluster: LiveCluster) -> None:
    assert cluster.workers("accel_worker") == []
    head_node = shoal.get_runtime_context().get_node_id()

    @shoal.remote(resources={"accel": 1}, num_cpus=1)
    def where(i: int) -> tuple[int, str]:
        time.sleep(0.3)
        return i, shoal.get_runtime_context().get_node_id()

    refs = [where.remote(i) for i in range(8)]
    launched_in = wait_until(lambda: cluster.workers("accel_worker"), 10, "accel workers to be launched")
    assert launched_in < 5
    results = shoal.get(refs, timeout=60)
    assert [i for i, _ in results] == list(range(8))
    ran_on = {node for _, node in results}
    assert head_node not in ran_on and 1 <= len(ran_on) <= 2  # only launched workers have "accel"
    # 8 tasks of 1 accel on 2-accel nodes: 4 nodes would fit them all at once, max_workers caps it at 2.
    wait_until(lambda: cluster.states("accel_worker") == {"running": 2}, 5, "the status to show both running")

    wait_until(lambda: not cluster.workers("accel_worker"), 30, "idle accel workers to be terminated")
    wait_until(lambda: cluster.states("accel_worker") == {"terminated": 2}, 5, "the status to catch up")
    reasons = [n.reason for n in cluster.status().nodes if n.node_type == "accel_worker"]
    assert all(re.search(r"terminated: idle for \d+s \(idle_timeout_minutes=0.05\)", r) for r in reasons), reasons


def test_an_actor_drives_scale_up(cluster: LiveCluster) -> None:
    @shoal.remote(num_cpus=0, resources={"zz": 1})
    class Pinger:
        def ping(self) -> str:
            return "pong"

    actor = Pinger.remote()
    wait_until(lambda: cluster.workers("actor_worker"), 10, "an actor worker to be launched")
    assert shoal.get(actor.ping.remote(), timeout=30) == "pong"
    wait_until(lambda: cluster.states("actor_worker") == {"running": 1}, 5, "the status to show it running")
    shoal.kill(actor)
    wait_until(lambda: not cluster.workers("actor_worker"), 30, "the idle actor worker to be terminated")


def test_a_placement_group_drives_scale_up_and_is_placed_there(cluster: LiveCluster) -> None:
    from shoal.util.placement_group import placement_group, remove_placement_group
    from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    @shoal.remote(num_cpus=0, resources={"pgres": 1})
    def node_of_bundle() -> str:
        return shoal.get_runtime_context().get_node_id()

    head_node = shoal.get_runtime_context().get_node_id()
    pg = placement_group([{"pgres": 1}, {"pgres": 1}], strategy="STRICT_SPREAD")
    try:
        wait_until(lambda: len(cluster.workers("pg_worker")) == 2, 10, "two pg workers to be launched")
        rows = [d for d in cluster.status().demand if d.kind == "placement_group"]
        assert [(r.shape, r.count) for r in rows] == [({"pgres": 1.0}, 2)]
        assert shoal.get(pg.ready(), timeout=30)
        nodes = shoal.get(
            [
                node_of_bundle.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote()
                for i in range(2)
            ],
            timeout=30,
        )
        assert len(set(nodes)) == 2 and head_node not in nodes  # one bundle on each launched node
        wait_until(lambda: cluster.states("pg_worker") == {"running": 2}, 5, "the status to show both running")
    finally:
        remove_placement_group(pg)
    wait_until(lambda: not cluster.workers("pg_worker"), 30, "idle pg workers to be terminated")


def test_request_resources_keeps_a_node_until_cleared(cluster: LiveCluster) -> None:
    request_resources(bundles=[{"floor": 1}])
    try:
        wait_until(lambda: cluster.states("floor_worker") == {"running": 1}, 15, "a floor worker to join")
        time.sleep(5)  # well past the 3 s idle timeout: the floor keeps it
        assert cluster.states("floor_worker") == {"running": 1}
    finally:
        request_resources()
    wait_until(lambda: not cluster.workers("floor_worker"), 30, "the floor worker to go once the request is cleared")


def test_launch_failures_back_off_and_show_in_status(cluster: LiveCluster, capsys: pytest.CaptureFixture) -> None:
    @shoal.remote(num_cpus=0, resources={"vanish": 1})
    def vanish() -> None:
        pass

    @shoal.remote(num_cpus=0, resources={"badcmd": 1})
    def badcmd() -> None:
        pass

    refs = [vanish.remote(), badcmd.remote()]
    try:

        def failures() -> dict[str, Any]:
            return {f.node_type: f for f in cluster.status().launch_failures}

        wait_until(lambda: "vanish_worker" in failures() and failures()["vanish_worker"].total_failures >= 3, 30, "")
        status = cluster.status()
        vanish_f, bad_f = failures()["vanish_worker"], failures()["badcmd_worker"]
        assert vanish_f.category == "transient" and vanish_f.last_error == "node vanished before joining"
        assert bad_f.category == "config" and "cannot start" in bad_f.last_error

        # Backoff bounds the attempts: each vanished node is noticed 1 s after its launch, then the
        # next waits 1 s, 2 s, 4 s, 4 s... (the maximum); a config error waits the maximum at once.
        def launch_times(node_type: str) -> list[float]:
            pattern = rf"t=([\d.]+) \S+ launch-\d+: launch 1 x {node_type} "
            return [float(m.group(1)) for e in status.recent_events if (m := re.match(pattern, e))]

        vanish_gaps = [b - a for a, b in itertools.pairwise(launch_times("vanish_worker"))]
        assert len(vanish_gaps) >= 2, status.format()
        # Each gap is the 1 s listing grace plus the backoff (rounds every 0.5 s add some slack).
        for n, gap in enumerate(vanish_gaps):
            backoff = min(2.0**n, 4.0)
            # Never sooner than the backoff; later only by round slack (more on a loaded machine).
            assert 1.0 + backoff - 0.1 <= gap <= 1.0 + backoff + 3.0, (vanish_gaps, status.format())
        bad_gaps = [b - a for a, b in itertools.pairwise(launch_times("badcmd_worker"))]
        assert all(4.0 - 0.1 <= g <= 4.0 + 3.0 for g in bad_gaps), bad_gaps
        assert vanish_f.total_failures == len(vanish_gaps) + 1 or vanish_f.total_failures == len(vanish_gaps)

        def badcmd_row_explains_the_backoff() -> bool:
            rows = [d for d in cluster.status().demand if d.shape == {"badcmd": 1.0}]
            return bool(rows) and rows[0].unserved == 1 and "badcmd_worker: launch backoff after" in rows[0].reason

        wait_until(badcmd_row_explains_the_backoff, 10, "the demand row to explain the backoff")

        assert (
            shoal_cli(["status", "--address", cluster.endpoint.address, "--token-path", cluster.endpoint.token_path])
            == 0
        )
        out = capsys.readouterr().out
        assert "Autoscaler (cluster e2e), reported" in out
        assert "Launch failures:" in out and "vanish_worker:" in out and "badcmd_worker:" in out
        assert re.search(r"badcmd_worker: \d+ failure\(s\)", out)
        assert cluster.token not in out and FAKE_KEY not in out
    finally:
        for ref in refs:
            shoal.cancel(ref)


def test_no_token_or_secret_in_logs(cluster: LiveCluster) -> None:
    state = Path(cluster.endpoint.state_dir)
    logs = list(state.glob("*.log"))
    names = {p.name for p in logs}
    assert "monitor.log" in names and any(n.startswith("local-") for n in names)  # the autoscaler's and agents' logs
    for log in logs:
        text = log.read_text(errors="replace")
        assert cluster.token not in text, log
        assert FAKE_KEY not in text, log
    assert f"autoscaler for cluster 'e2e': head {cluster.endpoint.address}" in (state / "monitor.log").read_text()
