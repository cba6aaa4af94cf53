"""The autoscaler state machine, driven by events with virtual time (no provider, no head)."""

from __future__ import annotations

import itertools

import pytest

from shoal.autoscaler import (
    Autoscaler,
    AutoscalerSettings,
    ClusterLoad,
    NodeLoad,
    NodeState,
    ProviderNode,
    ResourceDemand,
)
from shoal.autoscaler._machine import TRANSITIONS
from shoal.autoscaler.events import (
    DrainFinished,
    DrainNode,
    LaunchFailed,
    LaunchNodes,
    LaunchSucceeded,
    Observed,
    TerminateFinished,
    TerminateNodes,
)
from shoal.autoscaler.node_provider import TAG_CLUSTER_NAME, TAG_LAUNCH_ID, TAG_NODE_KIND, TAG_NODE_TYPE
from shoal.exceptions import ShoalSystemError

from .helpers import make_config

HEAD = ProviderNode("h", {TAG_CLUSTER_NAME: "test", TAG_NODE_TYPE: "head", TAG_NODE_KIND: "head"})
HEAD_LOAD = NodeLoad("h", {"CPU": 2}, {"CPU": 2}, 0.0, "head")


def worker(nid: str, node_type: str = "cpu", launch_id: str | None = None) -> ProviderNode:
    tags = {TAG_CLUSTER_NAME: "test", TAG_NODE_TYPE: node_type, TAG_NODE_KIND: "worker"}
    if launch_id:
        tags[TAG_LAUNCH_ID] = launch_id
    return ProviderNode(nid, tags)


def observe(m: Autoscaler, now: float, nodes=(), loads=(), demands=(), requests=()):
    load = ClusterLoad(nodes=[HEAD_LOAD, *loads], demands=list(demands), resource_requests=list(requests))
    return m.handle(Observed(now=now, provider_nodes=[HEAD, *nodes], load=load))


def launches(decisions):
    return [d for d in decisions if isinstance(d, LaunchNodes)]


def test_full_lifecycle_requested_to_terminated() -> None:
    m = Autoscaler(make_config(idle_timeout_minutes=1))
    ds = observe(m, 0, demands=[ResourceDemand({"CPU": 4}, count=2)])
    (launch,) = launches(ds)
    assert (launch.node_type, launch.count, launch.reason) == ("cpu", 2, "pending demand")
    assert [r.state for r in m.nodes() if r.kind == "worker"] == [NodeState.REQUESTED] * 2
    # The same demand seen again while the launch is in flight launches nothing more.
    assert launches(observe(m, 1, demands=[ResourceDemand({"CPU": 4}, count=2)])) == []

    m.handle(LaunchSucceeded(now=2, launch_id=launch.launch_id, node_ids=["w1", "w2"]))
    assert {m.node("w1").state, m.node("w2").state} == {NodeState.LAUNCHING}

    nodes = [worker("w1"), worker("w2")]
    busy = [NodeLoad("w1", {"CPU": 4}, {"CPU": 0}, 0.0), NodeLoad("w2", {"CPU": 4}, {"CPU": 0}, 0.0)]
    assert observe(m, 30, nodes, busy) == []
    assert m.node("w1").state is NodeState.RUNNING

    idle = [NodeLoad("w1", {"CPU": 4}, {"CPU": 4}, 30.0), NodeLoad("w2", {"CPU": 4}, {"CPU": 4}, 61.0)]
    ds = observe(m, 100, nodes, idle)
    assert [type(d) for d in ds] == [DrainNode]
    assert ds[0].node_id == "w2" and ds[0].reason.startswith("idle for 1.0 min")
    assert m.node("w2").state is NodeState.DRAINING

    drained = DrainFinished(now=101, node_id="w2", accepted=True)
    (term,) = m.handle(drained)
    assert isinstance(term, TerminateNodes) and term.node_ids == ("w2",)
    m.handle(TerminateFinished(now=102, node_ids=["w2"]))
    rec = m.node("w2")
    assert rec.state is NodeState.TERMINATED
    assert [h[1] for h in rec.history] == ["requested", "launching", "running", "draining", "terminated"]
    assert term.cause == drained.event_id  # each decision names the event behind it


def test_drain_rejected_returns_node_to_running() -> None:
    m = Autoscaler(make_config(idle_timeout_minutes=1))
    observe(m, 0, [worker("w1")], [NodeLoad("w1", {"CPU": 4}, {"CPU": 4}, 0.0)])
    (drain,) = observe(m, 100, [worker("w1")], [NodeLoad("w1", {"CPU": 4}, {"CPU": 4}, 90.0)])
    assert m.handle(DrainFinished(now=100, node_id=drain.node_id, accepted=False)) == []
    assert m.node("w1").state is NodeState.RUNNING
    assert m.node("w1").reason == "drain rejected: work arrived on the node"


def test_nodes_found_at_the_provider_are_adopted() -> None:
    m = Autoscaler(make_config())
    observe(m, 0, [worker("w1"), worker("w2", "gpu")], [NodeLoad("w1", {"CPU": 4}, {"CPU": 0}, 0.0)])
    assert m.node("w1").state is NodeState.RUNNING
    assert m.node("w2").state is NodeState.LAUNCHING and m.node("w2").node_type == "gpu"
    assert m.node("h").kind == "head"


def test_listing_before_the_launch_answer_binds_to_the_request() -> None:
    m = Autoscaler(make_config())
    (launch,) = launches(observe(m, 0, demands=[ResourceDemand({"CPU": 4})]))
    observe(m, 1, [worker("w1", launch_id=launch.launch_id)], demands=[ResourceDemand({"CPU": 4})])
    m.handle(LaunchSucceeded(now=2, launch_id=launch.launch_id, node_ids=["w1"]))
    workers = [r for r in m.nodes() if r.kind == "worker"]
    assert [(r.key, r.state) for r in workers] == [("w1", NodeState.LAUNCHING)]


def test_launch_failures_back_off_exponentially_and_never_loop() -> None:
    settings = AutoscalerSettings(backoff_base_s=10, backoff_max_s=80)
    m = Autoscaler(make_config({"cpu": {"resources": {"CPU": 4}, "max_workers": 10}}), settings)
    demand = [ResourceDemand({"CPU": 4})]
    attempts = []
    for now in range(0, 1000, 5):
        for d in launches(observe(m, now, demands=demand)):
            attempts.append(now)
            m.handle(LaunchFailed(now=now, launch_id=d.launch_id, error="quota exceeded", category="quota"))
    # Retries at t=0, +10, +20, +40, +80, then every 80 s: bounded, not one per round.
    assert attempts[:5] == [0, 10, 30, 70, 150]
    assert all(b - a == 80 for a, b in itertools.pairwise(attempts[4:]))
    assert len(attempts) == 5 + (995 - 150) // 80
    st = m.status()
    (failure,) = st.launch_failures
    assert failure.node_type == "cpu" and failure.total_failures == len(attempts) and failure.category == "quota"
    text = st.format()
    assert "cpu: " + str(len(attempts)) + " failure(s)" in text and "quota exceeded" in text
    (row,) = st.demand
    assert row.unserved == 1 and "cpu: launch backoff after" in row.reason and "quota exceeded" in row.reason


def test_config_errors_wait_the_longest_and_a_joined_node_resets() -> None:
    m = Autoscaler(make_config(), AutoscalerSettings(backoff_base_s=10, backoff_max_s=300))
    (d,) = launches(observe(m, 0, demands=[ResourceDemand({"CPU": 4})]))
    m.handle(LaunchFailed(now=0, launch_id=d.launch_id, error="InvalidAMIID", category="config"))
    assert launches(observe(m, 299, demands=[ResourceDemand({"CPU": 4})])) == []
    (d,) = launches(observe(m, 300, demands=[ResourceDemand({"CPU": 4})]))
    m.handle(LaunchSucceeded(now=301, launch_id=d.launch_id, node_ids=["w1"]))
    # Created is not joined: the node may still die on its way up.
    assert m.status().launch_failures[0].consecutive_failures == 1
    observe(m, 302, [worker("w1")], [NodeLoad("w1", {"CPU": 4}, {"CPU": 0}, 0.0)])
    assert m.status().launch_failures[0].consecutive_failures == 0


def test_nodes_that_die_before_joining_back_off_exponentially() -> None:
    settings = AutoscalerSettings(backoff_base_s=10, backoff_max_s=80, listing_grace_s=1)
    m = Autoscaler(make_config({"cpu": {"resources": {"CPU": 4}, "max_workers": 10}}), settings)
    demand = [ResourceDemand({"CPU": 4})]
    attempts = []
    for now in range(400):
        for d in launches(observe(m, now, demands=demand)):
            attempts.append(now)
            # The provider creates the node, which exits at once and is never listed.
            m.handle(LaunchSucceeded(now=now, launch_id=d.launch_id, node_ids=[f"w{now}"]))
    # Each death is seen after the 1 s listing grace; then 10, 20, 40, 80, 80... s.
    assert [b - a for a, b in itertools.pairwise(attempts)][:5] == [11, 21, 41, 81, 81]
    (failure,) = m.status().launch_failures
    assert failure.last_error == "node vanished before joining" and failure.consecutive_failures == len(attempts)


def test_node_that_never_joins_is_terminated_and_counted_as_failure() -> None:
    m = Autoscaler(make_config(), AutoscalerSettings(launch_timeout_s=100))
    observe(m, 0, [worker("w1")])
    assert observe(m, 50, [worker("w1")]) == []
    ds = observe(m, 100, [worker("w1")])
    assert [type(d) for d in ds] == [TerminateNodes]
    assert m.node("w1").state is NodeState.DRAINING
    assert m.status().launch_failures[0].last_error == "did not join the cluster within 100s"


def test_vanished_nodes_are_terminated() -> None:
    m = Autoscaler(make_config(), AutoscalerSettings(listing_grace_s=30))
    observe(m, 0, [worker("w1"), worker("w2")], [NodeLoad("w1", {"CPU": 4}, {"CPU": 0}, 0.0)])
    observe(m, 10, [])
    assert m.node("w1").state is NodeState.TERMINATED
    assert m.node("w1").reason == "no longer listed by the provider"
    assert m.node("w2").state is NodeState.LAUNCHING  # may just be slow to show up
    observe(m, 40, [])
    assert m.node("w2").state is NodeState.TERMINATED
    assert m.status().launch_failures[0].last_error == "node vanished before joining"


def test_lost_node_is_terminated_after_timeout() -> None:
    m = Autoscaler(make_config(), AutoscalerSettings(node_lost_timeout_s=60))
    observe(m, 0, [worker("w1")], [NodeLoad("w1", {"CPU": 4}, {"CPU": 0}, 0.0)])
    assert observe(m, 59, [worker("w1")]) == []
    (d,) = observe(m, 61, [worker("w1")])
    assert isinstance(d, TerminateNodes) and "stopped reporting" in d.reason


def test_terminate_failure_is_retried_later() -> None:
    m = Autoscaler(make_config(idle_timeout_minutes=1), AutoscalerSettings(terminate_retry_s=30))
    observe(m, 0, [worker("w1")], [NodeLoad("w1", {"CPU": 4}, {"CPU": 4}, 0.0)])
    (_drain,) = observe(m, 70, [worker("w1")], [NodeLoad("w1", {"CPU": 4}, {"CPU": 4}, 70.0)])
    m.handle(DrainFinished(now=70, node_id="w1", accepted=True))
    m.handle(TerminateFinished(now=71, node_ids=["w1"], error="throttled"))
    assert observe(m, 80, [worker("w1")]) == []
    (retry,) = observe(m, 101, [worker("w1")])
    assert isinstance(retry, TerminateNodes) and retry.node_ids == ("w1",)


def test_min_workers_are_kept_through_idle_timeout() -> None:
    m = Autoscaler(
        make_config({"cpu": {"resources": {"CPU": 4}, "min_workers": 1, "max_workers": 5}}, idle_timeout_minutes=1)
    )
    (d,) = launches(observe(m, 0))
    assert (d.count, d.reason) == (1, "min_workers")
    m.handle(LaunchSucceeded(now=1, launch_id=d.launch_id, node_ids=["w1"]))
    assert observe(m, 1000, [worker("w1")], [NodeLoad("w1", {"CPU": 4}, {"CPU": 4}, 999.0)]) == []


def test_resource_requests_keep_idle_nodes() -> None:
    m = Autoscaler(make_config(idle_timeout_minutes=1))
    nodes = [worker("w1"), worker("w2")]
    loads = [NodeLoad("w1", {"CPU": 4}, {"CPU": 4}, 500.0), NodeLoad("w2", {"CPU": 4}, {"CPU": 4}, 400.0)]
    ds = observe(m, 0, nodes, loads, requests=[{"CPU": 4}])
    # Floors need 4 CPUs besides the head's 2: the least idle node stays, the other goes.
    assert [d.node_id for d in ds if isinstance(d, DrainNode)] == ["w1"]


def test_upscaling_speed_limits_pending_nodes() -> None:
    m = Autoscaler(
        make_config({"cpu": {"resources": {"CPU": 1}, "max_workers": 100}}, upscaling_speed=2.0, max_workers=100)
    )
    (d,) = launches(observe(m, 0, demands=[ResourceDemand({"CPU": 1}, count=50)]))
    assert d.count == 5  # max(5, floor(2.0 x 1 running node)) while only the head runs
    st = m.status()
    assert (st.pending_launches, st.pending_limit) == (5, 5)
    m.handle(LaunchSucceeded(now=1, launch_id=d.launch_id, node_ids=[f"w{i}" for i in range(5)]))
    nodes = [worker(f"w{i}") for i in range(5)]
    loads = [NodeLoad(f"w{i}", {"CPU": 1}, {"CPU": 0}, 0.0) for i in range(5)]
    (d2,) = launches(observe(m, 30, nodes, loads, demands=[ResourceDemand({"CPU": 1}, count=45)]))
    assert d2.count == 12  # floor(2.0 x 6 running)
    assert m.status().pending_limit == 12


def test_big_launches_are_batched() -> None:
    cfg = make_config({"cpu": {"resources": {"CPU": 1}, "max_workers": 500}}, max_workers=500, upscaling_speed=1000)
    m = Autoscaler(cfg, AutoscalerSettings(max_launch_batch=50))
    ds = launches(observe(m, 0, demands=[ResourceDemand({"CPU": 1}, count=120)]))
    assert [d.count for d in ds] == [50, 50, 18]  # two tasks fit on the head
    assert len({d.launch_id for d in ds}) == 3


def test_illegal_transition_is_a_bug() -> None:
    m = Autoscaler(make_config())
    observe(m, 0, [worker("w1")])
    rec = m.node("w1")
    with pytest.raises(ShoalSystemError, match="cannot go from launching to requested"):
        m._move(rec, NodeState.REQUESTED, 1, "x", "ev")
    assert NodeState.TERMINATED not in TRANSITIONS[NodeState.TERMINATED]
    assert TRANSITIONS[NodeState.REQUESTED] == {NodeState.LAUNCHING, NodeState.TERMINATED}


def test_status_explains_each_demand() -> None:
    m = Autoscaler(make_config())
    observe(
        m,
        0,
        demands=[
            ResourceDemand({"CPU": 1}, count=2),
            ResourceDemand({"GPU": 1}, kind="actor"),
            ResourceDemand({"TPU": 1}),
        ],
    )
    st = m.status()
    text = st.format()
    assert "{CPU: 1} x 2 task: 2 fit on running nodes" in text
    assert "{GPU: 1} x 1 actor: 1 served by new gpu node(s)" in text
    assert "{TPU: 1} x 1 task: 1 pending: infeasible: no node type in the cluster config has these resources" in text
    assert st.counts()["gpu"] == {"requested": 1}
    assert "head: 1 launching" in text or "head: 1 running" in text
    assert st.to_dict()["cluster_name"] == "test"


def test_a_terminated_node_still_reporting_offers_no_capacity() -> None:
    m = Autoscaler(make_config(), AutoscalerSettings(listing_grace_s=30))
    idle = NodeLoad("w1", {"CPU": 4}, {"CPU": 4}, 400.0)
    (drain,) = observe(m, 0, [worker("w1")], [idle])
    assert isinstance(drain, DrainNode)
    m.handle(DrainFinished(now=1, node_id="w1", accepted=True))
    m.handle(TerminateFinished(now=2, node_ids=["w1"]))
    assert m.node("w1").state is NodeState.TERMINATED
    # The head has not noticed yet: w1 still reports free CPUs; new work must get a new node.
    (launch,) = launches(observe(m, 3, [], [idle], demands=[ResourceDemand({"CPU": 4})]))
    assert launch.node_type == "cpu" and launch.count == 1
