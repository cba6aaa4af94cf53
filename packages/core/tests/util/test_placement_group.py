"""Placement groups and scheduling strategies on one node."""

from __future__ import annotations

import pytest

import shoal
from shoal.util import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
    get_current_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from shoal.util.placement_group import get_placement_group

pytestmark = [pytest.mark.usefixtures("shoal_runtime"), pytest.mark.shoal_backends("local", "cluster")]


@shoal.remote(num_cpus=1)
def where():
    ctx = shoal.get_runtime_context()
    pg = get_current_placement_group()
    return ctx.get_node_id(), (pg.id.hex() if pg else None)


def test_pack_group_reserves_and_runs_tasks() -> None:
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK", name="packed")
    ready = shoal.get(pg.ready(), timeout=10)  # the group's handle, as in Ray
    assert ready == pg and ready.bundle_specs == [{"CPU": 1}, {"CPU": 1}]
    assert pg.wait(5)
    assert shoal.available_resources().get("CPU", 0) == 0
    strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=1)
    node, pg_hex = shoal.get(where.options(scheduling_strategy=strategy).remote())
    assert node == shoal.get_runtime_context().get_node_id()
    assert pg_hex == pg.id.hex()
    table = placement_group_table(pg)
    assert table["state"] == "CREATED" and table["strategy"] == "PACK"
    assert get_placement_group("packed") == pg
    remove_placement_group(pg)
    assert placement_group_table(pg)["state"] == "REMOVED"
    assert shoal.available_resources()["CPU"] == 2.0


def test_group_that_cannot_fit_stays_pending() -> None:
    pg = placement_group([{"CPU": 2}, {"CPU": 2}])
    assert not pg.wait(0.5)
    assert placement_group_table(pg)["state"] == "PENDING"
    remove_placement_group(pg)


def test_strict_spread_needs_several_nodes() -> None:
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    assert not pg.wait(0.5)
    remove_placement_group(pg)


def test_actor_in_a_bundle_and_removal_kills_it() -> None:
    from shoal.exceptions import ActorDiedError

    pg = placement_group([{"CPU": 1}])
    pg.wait(5)

    @shoal.remote(num_cpus=1)
    class InGroup:
        def ping(self):
            return "pong"

    a = InGroup.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote()
    assert shoal.get(a.ping.remote(), timeout=10) == "pong"
    remove_placement_group(pg)
    with pytest.raises(ActorDiedError):
        shoal.get(a.ping.remote(), timeout=10)


def test_task_bigger_than_its_bundle_waits() -> None:
    pg = placement_group([{"CPU": 1}])
    pg.wait(5)
    ref = where.options(num_cpus=2, scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote()
    ready, _ = shoal.wait([ref], timeout=0.5)
    assert ready == []
    remove_placement_group(pg)


def test_bad_placement_group_arguments() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        placement_group([])
    with pytest.raises(ValueError, match="bundle 0"):
        placement_group([{"CPU": 0}])
    with pytest.raises(ValueError, match="strategy"):
        placement_group([{"CPU": 1}], strategy="CLOSE")
    pg = placement_group([{"CPU": 1}])
    with pytest.raises(ValueError, match="out of range"):
        where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 3))
    remove_placement_group(pg)


def test_node_affinity_and_spread() -> None:
    node = shoal.get_runtime_context().get_node_id()
    hard = NodeAffinitySchedulingStrategy(node, soft=False)
    assert shoal.get(where.options(scheduling_strategy=hard).remote())[0] == node
    assert shoal.get(where.options(scheduling_strategy="SPREAD").remote())[0] == node
    soft = NodeAffinitySchedulingStrategy("ff" * 28, soft=True)
    assert shoal.get(where.options(scheduling_strategy=soft).remote())[0] == node


def test_hard_affinity_to_a_missing_node_fails() -> None:
    from shoal.exceptions import TaskUnschedulableError

    strategy = NodeAffinitySchedulingStrategy("ab" * 28, soft=False)
    with pytest.raises(TaskUnschedulableError):
        shoal.get(where.options(scheduling_strategy=strategy).remote(), timeout=10)


def test_child_tasks_are_captured_by_the_group() -> None:
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])
    pg.wait(5)

    @shoal.remote(num_cpus=1)
    def parent():
        return shoal.get(where.remote())

    strategy = PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)
    _, child_pg = shoal.get(parent.options(scheduling_strategy=strategy).remote(), timeout=20)
    assert child_pg == pg.id.hex()
    remove_placement_group(pg)


def test_threads_inherit_the_placement_group_of_their_task() -> None:
    import threading

    pg = placement_group([{"CPU": 1}])
    pg.wait(5)

    @shoal.remote(num_cpus=1)
    def from_a_thread():
        seen = {}

        def look():
            current = get_current_placement_group()
            seen["pg"] = current.id.hex() if current else None

        t = threading.Thread(target=look)
        t.start()
        t.join()
        return seen["pg"]

    strategy = PlacementGroupSchedulingStrategy(pg)
    assert shoal.get(from_a_thread.options(scheduling_strategy=strategy).remote(), timeout=20) == pg.id.hex()
    remove_placement_group(pg)
