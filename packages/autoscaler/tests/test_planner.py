"""The bin-packing planner: existing nodes first, then the least wasteful node types, within limits."""

from __future__ import annotations

from shoal.autoscaler import PlacementGroupDemand, ResourceDemand
from shoal.autoscaler._planner import PlanInput, PlanNode, TypeSpec, plan

CPU4 = TypeSpec("cpu4", {"CPU": 4}, max_workers=10)
CPU16 = TypeSpec("cpu16", {"CPU": 16}, max_workers=10)
GPU = TypeSpec("gpu", {"CPU": 8, "GPU": 1}, max_workers=3)


def run(demands=(), nodes=(), types=(CPU4, GPU), budget=100, requests=(), workers=None, max_workers=100, blocked=None):
    workers = workers if workers is not None else {}
    return plan(
        PlanInput(
            types=list(types),
            nodes=list(nodes),
            workers_by_type=workers,
            max_workers=max_workers,
            demand_budget=budget,
            budget_reason="3 node(s) pending, limit 3",
            blocked=blocked or {},
            demands=list(demands),
            resource_requests=list(requests),
        )
    )


def running(node_id, node_type, total, available, idle_s=0.0):
    return PlanNode(node_id, node_type, False, total, available, idle_s)


def row(p, shape):
    (r,) = [r for r in p.rows if dict(r.shape) == shape]
    return r


def test_demand_fits_existing_nodes_first() -> None:
    nodes = [running("a", "cpu4", {"CPU": 4}, {"CPU": 3}), running("b", "cpu4", {"CPU": 4}, {"CPU": 1})]
    p = run([ResourceDemand({"CPU": 1}, count=4)], nodes, workers={"cpu4": 2})
    assert p.launches == []
    r = row(p, {"CPU": 1})
    assert (r.on_running, r.unserved, r.on_new) == (4, 0, {})
    assert p.needed_node_ids == {"a", "b"}


def test_pending_nodes_count_so_nothing_is_launched_twice() -> None:
    pending = PlanNode("launch-1/0", "cpu4", True, {"CPU": 4}, {"CPU": 4})
    p = run([ResourceDemand({"CPU": 1}, count=4)], [pending], workers={"cpu4": 1})
    assert p.launches == []
    assert row(p, {"CPU": 1}).on_pending == 4


def test_cpu_work_never_gets_a_gpu_node_and_counts_are_aggregated() -> None:
    demands = [ResourceDemand({"CPU": 1}) for _ in range(10)]
    p = run(demands)
    assert p.launches == [("cpu4", 3, "pending demand")]
    r = row(p, {"CPU": 1})
    assert (r.count, r.on_new) == (10, {"cpu4": 10})


def test_gpu_work_gets_gpu_nodes_and_cpu_work_fills_their_spare_cpus() -> None:
    p = run([ResourceDemand({"GPU": 1, "CPU": 2}, count=2), ResourceDemand({"CPU": 1}, count=12)])
    assert p.launches[0] == ("gpu", 2, "pending demand")
    assert row(p, {"CPU": 2, "GPU": 1}).on_new == {"gpu": 2}
    assert row(p, {"CPU": 1}).on_new == {"gpu": 12}  # 2 x (8 - 2) spare CPUs


def test_least_waste_type_wins() -> None:
    p = run([ResourceDemand({"CPU": 3}, count=1)], types=(CPU4, CPU16))
    assert p.launches == [("cpu4", 1, "pending demand")]
    p = run([ResourceDemand({"CPU": 16}, count=2)], types=(CPU4, CPU16))
    assert p.launches == [("cpu16", 2, "pending demand")]


def test_infeasible_demand_is_explained() -> None:
    p = run([ResourceDemand({"TPU": 4})])
    r = row(p, {"TPU": 4})
    assert r.unserved == 1
    assert r.reason == "infeasible: no node type in the cluster config has these resources"
    assert p.launches == []


def test_limits_are_explained() -> None:
    p = run([ResourceDemand({"GPU": 1}, count=5)], workers={"gpu": 1})
    assert p.launches == [("gpu", 2, "pending demand")]
    r = row(p, {"GPU": 1})
    assert (r.unserved, r.reason) == (3, "gpu: max_workers (3) reached")

    p = run([ResourceDemand({"CPU": 4}, count=5)], budget=2)
    assert p.launches == [("cpu4", 2, "pending demand")]
    assert row(p, {"CPU": 4}).reason == "upscaling_speed: 3 node(s) pending, limit 3"

    p = run([ResourceDemand({"CPU": 4}, count=5)], max_workers=1)
    assert p.launches == [("cpu4", 1, "pending demand")]
    assert row(p, {"CPU": 4}).reason == "cluster max_workers (1) reached"

    p = run([ResourceDemand({"CPU": 4})], types=(CPU4, CPU16), blocked={"cpu4": "launch backoff"})
    assert p.launches == [("cpu16", 1, "pending demand")]  # falls back to a type that can launch
    p = run([ResourceDemand({"GPU": 1})], blocked={"gpu": "launch backoff after 2 failure(s)"})
    assert row(p, {"GPU": 1}).reason == "gpu: launch backoff after 2 failure(s)"


def test_min_workers_are_launched_and_serve_demand() -> None:
    cpu = TypeSpec("cpu4", {"CPU": 4}, max_workers=10, min_workers=2)
    p = run([ResourceDemand({"CPU": 1}, count=6)], types=(cpu,), budget=0)
    assert p.launches == [("cpu4", 2, "min_workers")]
    assert row(p, {"CPU": 1}).on_pending == 6


def test_resource_requests_pack_on_totals_and_bypass_the_budget() -> None:
    busy = running("a", "cpu4", {"CPU": 4}, {"CPU": 0})
    p = run(requests=[{"CPU": 1}] * 10, nodes=[busy], budget=0, workers={"cpu4": 1})
    # 4 CPUs exist (busy or not, they count); 6 more are needed: two 4-CPU nodes.
    assert p.launches == [("cpu4", 2, "request_resources")]
    assert "a" in p.needed_node_ids
    assert p.unserved_requests == 0
    p = run(requests=[{"TPU": 1}])
    assert p.unserved_requests == 1 and p.launches == []


def test_strict_pack_needs_one_node_for_the_whole_group() -> None:
    pg = PlacementGroupDemand(({"CPU": 3}, {"CPU": 3}), strategy="STRICT_PACK")
    p = run([pg], types=(CPU4, CPU16))
    assert p.launches == [("cpu16", 1, "pending demand")]
    assert row(p, {"CPU": 6}).kind == "placement_group"


def test_strict_spread_puts_bundles_on_distinct_nodes() -> None:
    nodes = [running("a", "cpu16", {"CPU": 16}, {"CPU": 16})]
    pg = PlacementGroupDemand(({"CPU": 2}, {"CPU": 2}, {"CPU": 2}), strategy="STRICT_SPREAD")
    p = run([pg], nodes, types=(CPU4,), workers={"cpu16": 1})
    assert p.launches == [("cpu4", 2, "pending demand")]  # one bundle on "a", two on new nodes
    (r,) = p.rows
    assert r.note == "STRICT_SPREAD of 3 bundles" and r.on_new == {"cpu4": 2} and r.unserved == 0
    p = run([pg], nodes, types=(CPU4,), budget=1, workers={"cpu16": 1})
    assert p.launches == []  # a group that cannot be placed whole launches nothing
    assert p.rows[0].unserved == 1 and "upscaling_speed" in p.rows[0].reason


def test_pack_and_spread_groups_are_their_bundles() -> None:
    pg = PlacementGroupDemand(({"CPU": 1}, {"CPU": 1}), strategy="PACK", count=3)
    p = run([pg])
    r = row(p, {"CPU": 1})
    assert (r.kind, r.count) == ("placement_group", 6)
    assert p.launches == [("cpu4", 2, "pending demand")]


def test_idle_nodes_are_used_last_for_demand() -> None:
    idle = running("idle", "cpu4", {"CPU": 4}, {"CPU": 4}, idle_s=100)
    busy = running("busy", "cpu4", {"CPU": 4}, {"CPU": 2}, idle_s=0)
    p = run([ResourceDemand({"CPU": 1}, count=2)], [idle, busy], workers={"cpu4": 2})
    assert p.needed_node_ids == {"busy"}  # the idle one stays free to be reclaimed


def test_gpu_nodes_serve_cpu_work_only_when_no_plain_type_exists() -> None:
    p = run([ResourceDemand({"CPU": 4})], blocked={"cpu4": "launch backoff after 1 failure(s)"})
    assert p.launches == []  # waits for the CPU type rather than burning a GPU node
    assert row(p, {"CPU": 4}).reason == "cpu4: launch backoff after 1 failure(s)"
    p = run([ResourceDemand({"CPU": 4})], types=(GPU,))
    assert p.launches == [("gpu", 1, "pending demand")]  # the only type that can run it
