"""End to end on virtual time: demand scales the cluster up, idleness scales it down."""

from __future__ import annotations

import math

import pytest

from shoal.autoscaler import AutoscalerSettings, NodeState
from shoal.autoscaler.simulation import Simulator, VirtualClock

from .helpers import make_config


def workers_config(**top):
    return make_config(
        {
            "small": {"resources": {"CPU": 2}, "max_workers": 10},
            "special": {"resources": {"CPU": 2, "accel": 1}, "max_workers": 4},
        },
        idle_timeout_minutes=1,
        **top,
    )


def test_tasks_needing_a_worker_only_resource_scale_up_then_down() -> None:
    sim = Simulator(workers_config(), boot_delay_s=10, step_s=5)
    sim.submit({"CPU": 1, "accel": 1}, duration_s=20, count=8)
    assert sim.run_until(lambda s: s.workers(NodeState.RUNNING) > 0, max_time_s=60)
    assert sim.clock.now <= 20  # launched within seconds of the demand appearing
    assert sim.run_until(lambda s: s.completed == 8, max_time_s=600)
    launched = {r.node_type for r in sim.shell.machine.nodes() if r.kind == "worker"}
    assert launched == {"special"}  # nothing else was needed
    assert max(sum(smp.workers_by_state.values()) for smp in sim.samples) <= 4  # max_workers held
    done_at = sim.clock.now
    assert sim.run_until(lambda s: s.idle(), max_time_s=600)
    assert 60 <= sim.clock.now - done_at <= 60 + 3 * sim.step_s  # gone right after the idle timeout
    assert sim.provider.non_terminated_nodes({"shoal-node-kind": "worker"}) == []
    sim.close()


def test_actors_and_placement_groups_drive_scale_up() -> None:
    from shoal.autoscaler import PlacementGroupDemand, ResourceDemand

    sim = Simulator(workers_config(), boot_delay_s=10, step_s=5)
    sim.cluster.set_demands(
        [
            ResourceDemand({"CPU": 2}, kind="actor", count=3),
            PlacementGroupDemand(({"CPU": 1, "accel": 1}, {"CPU": 1, "accel": 1}), strategy="STRICT_SPREAD"),
        ]
    )
    sim.shell.step()
    counts = sim.shell.status().counts()
    # One actor fits on the 2-CPU head; the group's bundles need two distinct accel nodes.
    assert counts["small"] == {"launching": 2} and counts["special"] == {"launching": 2}
    sim.close()


def test_burst_scales_within_upscaling_speed_and_without_overshoot() -> None:
    cfg = make_config({"w": {"resources": {"CPU": 4}, "max_workers": 200}}, max_workers=200, idle_timeout_minutes=2)
    sim = Simulator(cfg, boot_delay_s=30, step_s=5)
    sim.submit({"CPU": 1}, duration_s=300, count=400)  # needs 100 nodes of 4 CPUs (the head holds 2 tasks)
    assert sim.run_until(lambda s: s.completed == 400, max_time_s=3600)
    assert sim.run_until(lambda s: s.idle(), max_time_s=3600)
    peak = 0
    for smp in sim.samples:
        pending = smp.workers_by_state.get("requested", 0) + smp.workers_by_state.get("launching", 0)
        assert pending <= smp.pending_limit
        live = sum(n for s, n in smp.workers_by_state.items() if s != "terminated")
        peak = max(peak, live)
    assert peak == math.ceil((400 - 2) / 4)  # exactly what the burst needs, never more
    assert sim.shell.machine.nodes(NodeState.RUNNING)[0].kind == "head"
    sim.close()


def test_quota_failures_back_off_and_show_in_status() -> None:
    settings = AutoscalerSettings(backoff_base_s=10, backoff_max_s=60)
    sim = Simulator(workers_config(), settings=settings, quota={"small": 2}, boot_delay_s=5, step_s=5)
    sim.submit({"CPU": 2}, duration_s=10_000, count=6)
    sim.run_until(lambda s: False, max_time_s=900)
    # A launch of 3 fails on the quota; smaller ones follow until two nodes run, and the rest
    # is retried at most once a minute after backing off.
    assert sim.workers(NodeState.RUNNING) == 2
    assert sim.provider.create_calls <= 2 + 1 + 900 / 60 + 4
    text = sim.shell.status().format()
    assert "Launch failures:" in text and "quota exceeded for small" in text
    assert "small: launch backoff after" in text
    sim.close()


def test_virtual_clock() -> None:
    c = VirtualClock(5)
    assert c() == 5 and c.advance(2.5) == 7.5
    with pytest.raises(ValueError):
        c.advance(-1)
