"""Work across several real node processes on 127.0.0.1: routing, spreading, affinity, objects, actors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import shoal
from shoal.testing.cluster import Cluster
from shoal.util import NodeAffinitySchedulingStrategy

pytestmark = [pytest.mark.timeout(180), pytest.mark.shoal_backends("cluster")]


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if shoal.is_initialized():
        shoal.shutdown()
    c = Cluster()
    try:
        c.add_node(num_cpus=1)
        c.add_node(num_cpus=1, resources={"accel": 1})
        c.add_node(num_cpus=1)
        c.connect()
        yield c
    finally:
        if request.session.testsfailed:
            for node in c.nodes:
                print(f"--- node {node.node_id[:12]} log ---\n{node.log_path.read_text()[-4000:]}")
        c.shutdown()


@shoal.remote
def where() -> str:
    return shoal.get_runtime_context().get_node_id()


def _ids(cluster: Cluster) -> list[str]:
    return [n.node_id for n in cluster.nodes]


def test_nodes_and_resources(cluster: Cluster) -> None:
    nodes = shoal.nodes()
    assert {n["NodeID"] for n in nodes} == set(_ids(cluster))
    assert all(n["Alive"] for n in nodes)
    total = shoal.cluster_resources()
    assert total["CPU"] == 3.0
    assert total["accel"] == 1.0


def test_custom_resources_route_work(cluster: Cluster) -> None:
    accel_node = cluster.nodes[1].node_id
    got = shoal.get([where.options(resources={"accel": 1}).remote() for _ in range(3)], timeout=60)
    assert set(got) == {accel_node}


def test_spread_uses_several_nodes(cluster: Cluster) -> None:
    @shoal.remote(scheduling_strategy="SPREAD")
    def slow_where() -> str:
        import time

        time.sleep(0.3)
        return shoal.get_runtime_context().get_node_id()

    got = shoal.get([slow_where.remote() for _ in range(6)], timeout=60)
    assert len(set(got)) >= 2


def test_node_affinity(cluster: Cluster) -> None:
    target = cluster.nodes[2].node_id
    hard = NodeAffinitySchedulingStrategy(target, soft=False)
    assert shoal.get([where.options(scheduling_strategy=hard).remote() for _ in range(3)], timeout=60) == [target] * 3
    soft = NodeAffinitySchedulingStrategy("ab" * 28, soft=True)
    assert shoal.get(where.options(scheduling_strategy=soft).remote(), timeout=60) in _ids(cluster)


def test_large_objects_cross_nodes_both_ways(cluster: Cluster) -> None:
    @shoal.remote(resources={"accel": 1})
    def scale(a):
        return a * 3, shoal.get_runtime_context().get_node_id()

    a = np.random.default_rng(1).random(4_000_000)
    out, node = shoal.get(scale.remote(a), timeout=60)
    assert node == cluster.nodes[1].node_id
    np.testing.assert_array_equal(out, a * 3)


def test_ref_arguments_produced_on_other_nodes(cluster: Cluster) -> None:
    @shoal.remote(resources={"accel": 1})
    def make(n):
        return np.arange(n)

    @shoal.remote
    def total(a):
        return int(a.sum())

    ref = make.remote(500_000)
    assert shoal.get(total.remote(ref), timeout=60) == sum(range(500_000))


def test_nested_refs_made_on_another_node(cluster: Cluster) -> None:
    @shoal.remote(resources={"accel": 1})
    def wrap():
        return [shoal.put(np.full(300_000, 7))]

    (inner,) = shoal.get(wrap.remote(), timeout=60)
    assert int(shoal.get(inner, timeout=60)[0]) == 7


def test_actor_on_another_node(cluster: Cluster) -> None:
    @shoal.remote(resources={"accel": 1})
    class Counter:
        def __init__(self):
            self.n = 0

        def add(self, k):
            self.n += k
            return self.n

        def node(self):
            return shoal.get_runtime_context().get_node_id()

    c = Counter.options(name="remote-counter").remote()
    assert shoal.get([c.add.remote(i) for i in range(1, 6)], timeout=60) == [1, 3, 6, 10, 15]
    assert shoal.get(c.node.remote(), timeout=60) == cluster.nodes[1].node_id
    again = shoal.get_actor("remote-counter")
    assert shoal.get(again.add.remote(1), timeout=60) == 16

    @shoal.remote
    def bump(counter):
        return shoal.get(counter.add.remote(100))

    assert shoal.get(bump.remote(c), timeout=60) == 116
    shoal.kill(c)


def test_named_actor_from_a_task_on_another_node(cluster: Cluster) -> None:
    @shoal.remote
    class Box:
        def get(self):
            return "boxed"

    @shoal.remote(resources={"accel": 1})
    def make_named():
        Box.options(name="made-remotely", lifetime="detached").remote()
        return True

    assert shoal.get(make_named.remote(), timeout=60)
    box = shoal.get_actor("made-remotely")
    assert shoal.get(box.get.remote(), timeout=60) == "boxed"
    shoal.kill(box)


def test_errors_cross_nodes(cluster: Cluster) -> None:
    @shoal.remote(resources={"accel": 1}, max_retries=0)
    def boom():
        raise ValueError("remote failure")

    with pytest.raises(ValueError, match="remote failure"):
        shoal.get(boom.remote(), timeout=60)


def test_generators_across_nodes(cluster: Cluster) -> None:
    @shoal.remote(resources={"accel": 1})
    def count(n):
        yield from range(n)

    assert [shoal.get(r, timeout=60) for r in count.remote(4)] == [0, 1, 2, 3]


def test_placement_groups_across_nodes(cluster: Cluster) -> None:
    import time

    from shoal.util import (
        PlacementGroupSchedulingStrategy,
        placement_group,
        placement_group_table,
        remove_placement_group,
    )

    all_nodes = set(_ids(cluster))
    spread = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    assert spread.wait(30), placement_group_table(spread)
    table = placement_group_table(spread)
    assert set(table["bundles_to_node_id"].values()) == all_nodes
    got = [
        shoal.get(where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(spread, i)).remote(), timeout=60)
        for i in range(3)
    ]
    assert got == [table["bundles_to_node_id"][i] for i in range(3)]
    # Every CPU of the cluster is reserved: a fourth 1-CPU bundle cannot be placed.
    extra = placement_group([{"CPU": 1}])
    assert not extra.wait(1)
    remove_placement_group(spread)
    assert extra.wait(30)
    remove_placement_group(extra)

    packed = placement_group([{"CPU": 0.5}, {"CPU": 0.5}], strategy="STRICT_PACK")
    assert packed.wait(30)
    assert len(set(placement_group_table(packed)["bundles_to_node_id"].values())) == 1
    remove_placement_group(packed)
    deadline = time.time() + 10
    while shoal.available_resources().get("CPU", 0) < 3 and time.time() < deadline:
        time.sleep(0.2)
    assert shoal.available_resources().get("CPU", 0) == 3.0
