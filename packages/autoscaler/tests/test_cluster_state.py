"""HeadClusterState: the head's view translated for the autoscaler (no processes: a fake head)."""

from __future__ import annotations

import json
from typing import Any

from shoal.autoscaler import AutoscalerStatus, NodeStatus, PlacementGroupDemand, ResourceDemand
from shoal.autoscaler._head import HeadDemand, HeadNode
from shoal.autoscaler._redact import Redactor
from shoal.autoscaler._status_cli import format_published
from shoal.autoscaler.cluster_state import HeadClusterState, HeadRequestChannel, read_published_status
from shoal.autoscaler.node_provider import AgentInfo, NodeProvider, ProviderNode
from shoal.autoscaler.simulation import VirtualClock


class FakeHead:
    """Stands in for HeadConnection: a node list, demand, and a KV dict holding JSON text."""

    secret = "tok-abcdef123456"

    def __init__(self) -> None:
        self.nodes: list[HeadNode] = []
        self.demands: list[HeadDemand] = []
        self.kv: dict[str, bytes] = {}
        self.reads = 0

    def add(self, node_id: str, pid: int, total: dict[str, float], used: dict[str, float] | None = None) -> None:
        avail = {k: v - (used or {}).get(k, 0.0) for k, v in total.items()}
        avail = {k: v for k, v in avail.items() if v > 0}  # as the head reports: used-up resources are absent
        self.nodes = [n for n in self.nodes if n.node_id != node_id]
        self.nodes.append(HeadNode(node_id, f"127.0.0.1:{1000 + pid}", pid, "h", False, True, total, avail))

    def kill(self, node_id: str) -> None:
        self.nodes = [
            HeadNode(n.node_id, n.address, n.pid, n.hostname, n.is_head, False, n.total, {})
            if n.node_id == node_id
            else n
            for n in self.nodes
        ]

    def cluster(self) -> tuple[list[HeadNode], list[HeadDemand]]:
        self.reads += 1
        return list(self.nodes), list(self.demands)

    def get_json(self, key: str) -> Any:
        return json.loads(self.kv[key]) if key in self.kv else None

    def put_json(self, key: str, value: Any) -> None:
        self.kv[key] = json.dumps(value).encode()


class PidProvider(NodeProvider):
    """Matches agents to nodes by pid, like the local provider; counts listings."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__({"type": "fake"}, "c")
        self.pids = pids
        self.listings = 0

    # The cluster state source only lists nodes; a call to any of these is a bug in it.
    def create_nodes(self, *a: Any, **k: Any) -> list[str]:
        raise NotImplementedError

    def terminate_nodes(self, node_ids: Any) -> None:
        raise NotImplementedError

    def set_node_tags(self, node_id: str, tags: Any) -> None:
        raise NotImplementedError

    def non_terminated_nodes(self, tag_filters: Any = None) -> list[ProviderNode]:
        self.listings += 1
        return [ProviderNode(nid) for nid in self.pids]

    def agent_node_id(self, agent: AgentInfo, nodes: Any) -> str | None:
        return next((nid for nid, pid in self.pids.items() if pid == agent.pid), None)


def test_nodes_are_reported_under_provider_ids_and_matched_once() -> None:
    head, clock = FakeHead(), VirtualClock()
    head.add("agent-a", 11, {"CPU": 2.0})
    head.add("agent-manual", 99, {"CPU": 1.0})  # joined by hand: no provider node
    provider = PidProvider({"prov-a": 11})
    state = HeadClusterState(head, provider, clock=clock)
    load = state.read_load()
    assert sorted(n.node_id for n in load.nodes) == ["agent-manual", "prov-a"]
    assert provider.listings == 1
    state.read_load()
    # prov-a is cached; only the unmatched agent is looked up again.
    assert provider.listings == 2
    head.nodes = [n for n in head.nodes if n.node_id != "agent-manual"]
    state.read_load()
    assert provider.listings == 2


def test_idle_time_starts_when_nothing_is_in_use_and_dead_nodes_are_left_out() -> None:
    head, clock = FakeHead(), VirtualClock()
    head.add("a", 1, {"CPU": 2.0, "accel": 1.0}, used={"accel": 1.0})
    state = HeadClusterState(head, PidProvider({"p": 1}), clock=clock)
    assert [n.idle_s for n in state.read_load().nodes] == [0.0]
    clock.advance(5)
    head.add("a", 1, {"CPU": 2.0, "accel": 1.0})  # work done
    assert [n.idle_s for n in state.read_load().nodes] == [0.0]
    clock.advance(7)
    (node,) = state.read_load().nodes
    assert node.node_id == "p" and node.idle_s == 7.0 and node.available == {"CPU": 2.0, "accel": 1.0}
    head.add("a", 1, {"CPU": 2.0, "accel": 1.0}, used={"CPU": 0.5})
    assert [n.idle_s for n in state.read_load().nodes] == [0.0]
    head.kill("a")
    assert state.read_load().nodes == []


def test_demand_kinds_become_autoscaler_demands() -> None:
    head = FakeHead()
    head.demands = [
        HeadDemand({"CPU": 1.0, "accel": 1.0}, 8, "task", "no node can provide it"),
        HeadDemand({"CPU": 0.0, "zz": 1.0}, 1, "actor", "no node can provide it"),
        HeadDemand({"pg": 1.0}, 2, "placement_group", "no node can provide it"),
        HeadDemand({"CPU": 1.0}, 0, "task", "nothing"),  # empty rows are dropped
        HeadDemand({"CPU": -1.0}, 1, "task", "malformed"),  # skipped, not fatal
    ]
    demands = HeadClusterState(head).read_load().demands
    assert demands == [
        ResourceDemand({"CPU": 1.0, "accel": 1.0}, count=8, kind="task"),
        ResourceDemand({"zz": 1.0}, count=1, kind="actor"),
        PlacementGroupDemand(bundles=({"pg": 1.0},), strategy="PACK", count=2),
    ]


def test_resource_requests_round_trip_through_the_head_store() -> None:
    head = FakeHead()
    HeadRequestChannel(head).set_resource_requests([{"CPU": 1.0}, {"GPU": 1.0, "CPU": 4.0}])
    assert HeadClusterState(head).read_load().resource_requests == [{"CPU": 1.0}, {"GPU": 1.0, "CPU": 4.0}]
    head.put_json("resource_requests", [{"CPU": "many"}, {"CPU": 2}])
    assert HeadClusterState(head).read_load().resource_requests == [{"CPU": 2.0}]


def test_drain_accepts_only_idle_nodes_and_hides_them_afterwards() -> None:
    head = FakeHead()
    head.add("a", 1, {"CPU": 2.0}, used={"CPU": 1.0})
    head.add("b", 2, {"CPU": 2.0})
    state = HeadClusterState(head, PidProvider({"pa": 1, "pb": 2}))
    state.read_load()
    assert state.drain_node("pa", "idle") is False  # work is on it
    assert state.drain_node("pb", "idle") is True
    assert [n.node_id for n in state.read_load().nodes] == ["pa"]
    assert state.drain_node("gone", "idle") is True  # nothing left to drain


def test_published_status_is_redacted_and_formats_with_its_age() -> None:
    head = FakeHead()
    status = AutoscalerStatus(
        cluster_name="c",
        now=0.0,
        nodes=[NodeStatus("n1", "w", "worker", "running", 1.0, f"error token={head.secret}")],
        recent_events=[f"launch failed: {head.secret}"],
    )
    HeadClusterState(head).publish_status(status, Redactor([head.secret]), pid=42, interval_s=1.0)
    assert head.secret not in head.kv["status"].decode()
    doc = read_published_status(head)
    assert doc is not None and doc["pid"] == 42
    text = format_published(dict(doc), now=doc["published_at"] + 3)
    assert text.startswith("Autoscaler (cluster c), reported 3s ago by pid 42\nNodes:\n  w: 1 running")
    assert "stale" not in text
    assert "is it still running?" in format_published(dict(doc), now=doc["published_at"] + 300)


def test_shoal_status_prints_nothing_for_a_cluster_without_autoscaler(monkeypatch, capsys) -> None:
    from shoal.autoscaler import _head, _status_cli

    head = FakeHead()
    head.close = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setattr(_head, "connect", lambda address, token_path: head)
    _status_cli.print_status(None, None)
    assert capsys.readouterr().out == ""
    status = AutoscalerStatus(cluster_name="c", now=0.0, recent_events=[f"oops {head.secret}"])
    HeadClusterState(head).publish_status(status, pid=7, interval_s=5.0)
    _status_cli.print_status(None, None)
    out = capsys.readouterr().out
    assert out.startswith("Autoscaler (cluster c), reported 0s ago by pid 7\n") and head.secret not in out
