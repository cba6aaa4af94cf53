"""Node failures on a real cluster: detection, retries elsewhere, actor restarts, lost objects."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import shoal
from shoal.exceptions import ActorDiedError, ObjectLostError, ObjectReconstructionFailedError
from shoal.testing.cluster import Cluster

pytestmark = [pytest.mark.timeout(180), pytest.mark.shoal_backends("cluster")]


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if shoal.is_initialized():
        shoal.shutdown()
    c = Cluster(node_timeout_s=2.0)
    failed_before = request.session.testsfailed
    try:
        yield c
    finally:
        if request.session.testsfailed > failed_before:
            for node in c.nodes:
                print(f"--- node {node.node_id[:12]} log ---\n{node.log_path.read_text()[-4000:]}")
        c.shutdown()


def _wait_dead(cluster: Cluster, node_id: str, timeout: float = 10.0) -> float:
    start = time.time()
    while time.time() - start < timeout:
        if any(n["node_id"] == node_id and not n["alive"] for n in cluster.list_all_nodes()):
            return time.time() - start
        time.sleep(0.05)
    raise AssertionError(f"node {node_id} was not declared dead within {timeout}s")


def test_dead_node_is_detected_within_five_seconds(cluster: Cluster) -> None:
    cluster.add_node(num_cpus=1)
    worker = cluster.add_node(num_cpus=1)
    cluster.kill_node(worker)
    assert _wait_dead(cluster, worker.node_id) < 5.0


def test_a_stalled_head_does_not_declare_live_nodes_dead(cluster: Cluster) -> None:
    # The head stops for three node timeouts (as a machine under memory pressure can stall
    # a process); the nodes kept beating, so on resuming it must not judge them on the gap.
    head = cluster.add_node(num_cpus=1)
    other = cluster.add_node(num_cpus=1)
    os.kill(head.pid, signal.SIGSTOP)
    try:
        time.sleep(3 * cluster.node_timeout_s)
    finally:
        os.kill(head.pid, signal.SIGCONT)
    time.sleep(cluster.node_timeout_s)
    alive = {n["node_id"]: n["alive"] for n in cluster.list_all_nodes()}
    assert alive == {head.node_id: True, other.node_id: True}
    log = head.log_path.read_text()
    # Declared dead and registered again would also end "alive": the log tells them apart.
    assert " is dead" not in log
    assert "did not run for" in log


def test_running_tasks_are_retried_on_another_node(cluster: Cluster) -> None:
    cluster.add_node(num_cpus=1, resources={"slot": 1})
    doomed = cluster.add_node(num_cpus=1, resources={"slot": 1})
    cluster.connect()

    @shoal.remote(resources={"slot": 1}, max_retries=3)
    def slow(i):
        time.sleep(1.5)
        return i, shoal.get_runtime_context().get_node_id()

    refs = [slow.remote(i) for i in range(4)]
    time.sleep(0.7)
    cluster.kill_node(doomed)
    results = shoal.get(refs, timeout=90)
    assert [r[0] for r in results] == [0, 1, 2, 3]
    assert all(node != doomed.node_id for _, node in results[-2:])


def test_restartable_actor_comes_back_on_another_node(cluster: Cluster) -> None:
    cluster.add_node(num_cpus=1)
    second = cluster.add_node(num_cpus=1, resources={"here": 1})
    cluster.add_node(num_cpus=1, resources={"here": 1})
    cluster.connect()

    @shoal.remote(resources={"here": 0.5}, max_restarts=1)
    class Survivor:
        def node(self):
            return shoal.get_runtime_context().get_node_id()

    a = Survivor.remote()
    first_node = shoal.get(a.node.remote(), timeout=60)
    victim = next(n for n in cluster.nodes if n.node_id == first_node)
    assert victim is not cluster.head
    cluster.kill_node(victim)
    deadline = time.time() + 60
    while True:
        try:
            new_node = shoal.get(a.node.remote(), timeout=30)
            break
        except ActorDiedError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    assert new_node != first_node
    del second


def test_actor_without_restarts_dies_with_its_node(cluster: Cluster) -> None:
    cluster.add_node(num_cpus=1)
    doomed = cluster.add_node(num_cpus=1, resources={"only": 1})
    cluster.connect()

    @shoal.remote(resources={"only": 1})
    class Fragile:
        def ping(self):
            return "pong"

    a = Fragile.remote()
    assert shoal.get(a.ping.remote(), timeout=60) == "pong"
    cluster.kill_node(doomed)
    _wait_dead(cluster, doomed.node_id)
    with pytest.raises(ActorDiedError):
        shoal.get(a.ping.remote(), timeout=30)


def test_object_that_only_lived_on_a_dead_node_is_lost(cluster: Cluster) -> None:
    cluster.add_node(num_cpus=1)
    doomed = cluster.add_node(num_cpus=1, resources={"only": 1})
    cluster.connect()

    @shoal.remote(resources={"only": 1})
    def make_inner():
        return [shoal.put(np.ones(300_000))]

    (inner,) = shoal.get(make_inner.remote(), timeout=60)
    cluster.kill_node(doomed)
    _wait_dead(cluster, doomed.node_id)
    with pytest.raises(ObjectLostError):
        shoal.get(inner, timeout=30)


def test_results_already_pulled_survive_the_node(cluster: Cluster) -> None:
    cluster.add_node(num_cpus=1)
    doomed = cluster.add_node(num_cpus=1, resources={"only": 1})
    cluster.connect()

    @shoal.remote(resources={"only": 1})
    def make():
        return np.arange(1_000_000)

    ref = make.remote()
    shoal.wait([ref], timeout=60)
    cluster.kill_node(doomed)
    _wait_dead(cluster, doomed.node_id)
    assert int(shoal.get(ref, timeout=30).sum()) == sum(range(1_000_000))


def _runs(path: str) -> int:
    try:
        with open(path) as f:
            return len(f.read())
    except FileNotFoundError:
        return 0


def test_a_lost_result_is_rebuilt_from_lineage(cluster: Cluster, tmp_path) -> None:
    cluster.add_node(num_cpus=1)
    doomed = cluster.add_node(num_cpus=1, resources={"only": 1})
    cluster.connect()
    log = str(tmp_path / "runs")

    @shoal.remote(resources={"only": 1}, max_retries=2)
    def make(path: str, n: int):
        with open(path, "a") as f:
            f.write("x")
        return np.arange(n)

    @shoal.remote
    def total(a) -> int:
        return int(a.sum())

    ref = make.remote(log, 1_000_000)
    ready, _ = shoal.wait([ref], timeout=60, fetch_local=False)
    assert ready == [ref]
    assert _runs(log) == 1
    cluster.kill_node(doomed)
    _wait_dead(cluster, doomed.node_id)
    cluster.add_node(num_cpus=1, resources={"only": 1})
    # A task that needs it and a get both wait for the one rebuild.
    assert shoal.get(total.remote(ref), timeout=60) == sum(range(1_000_000))
    assert int(shoal.get(ref, timeout=60).sum()) == sum(range(1_000_000))
    assert _runs(log) == 2


def test_a_lost_result_without_retries_left_is_an_error(cluster: Cluster, tmp_path) -> None:
    cluster.add_node(num_cpus=1, resources={"spare": 1})
    doomed = cluster.add_node(num_cpus=1, resources={"only": 1})
    cluster.connect()

    @shoal.remote(resources={"only": 1}, max_retries=0)
    def make():
        return np.ones(500_000)

    ref = make.remote()
    small = shoal.put(1)
    ready, _ = shoal.wait([ref], timeout=60, fetch_local=False)
    assert ready == [ref]
    cluster.kill_node(doomed)
    _wait_dead(cluster, doomed.node_id)
    with pytest.raises(ObjectReconstructionFailedError, match="no retries left"):
        shoal.get(ref, timeout=30)
    assert isinstance(ObjectReconstructionFailedError("x"), ObjectLostError)
    assert shoal.get(small) == 1


def test_results_kept_remotely_are_pulled_on_demand(cluster: Cluster) -> None:
    cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1, resources={"only": 1}, object_store_memory=24 << 20)
    cluster.connect()

    @shoal.remote(resources={"only": 1})
    def make(i: int):
        return np.full(400_000, i)

    @shoal.remote(resources={"only": 1})
    def first(a) -> int:
        return int(a[0])

    refs = [make.remote(i) for i in range(20)]
    ready, _ = shoal.wait(refs, num_returns=20, timeout=60, fetch_local=False)
    assert len(ready) == 20
    assert [int(a[0]) for a in shoal.get(refs[::4], timeout=60)] == [0, 4, 8, 12, 16]
    assert shoal.get([first.remote(r) for r in refs[1::4]], timeout=60) == [1, 5, 9, 13, 17]
    del refs, ready
    # Kept copies go once the owner frees them: 30 more results through a 24 MB store
    # never make it spill.
    for i in range(30):
        ref = make.remote(i)
        assert shoal.wait([ref], timeout=60, fetch_local=False)[0] == [ref]
        del ref
    assert int(shoal.get(make.remote(7), timeout=60)[-1]) == 7
    assert not [p for p in Path(cluster._dir).rglob("*") if p.parent.name == "spill"]


def test_head_restart_recovers_named_detached_actors_and_jobs(cluster: Cluster) -> None:
    cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1, resources={"keep": 1})
    cluster.connect()

    @shoal.remote(resources={"keep": 1})
    class Keeper:
        def __init__(self):
            self.value = 41

        def bump(self):
            self.value += 1
            return self.value

    Keeper.options(name="keeper", lifetime="detached").remote()
    assert shoal.get(shoal.get_actor("keeper").bump.remote(), timeout=60) == 42
    from shoal.job_submission import JobSubmissionClient

    jobs = JobSubmissionClient(cluster.address, token_path=cluster.token_path)
    job_id = jobs.submit_job(entrypoint="echo finished")
    assert jobs.wait_until_finished(job_id, timeout=60).value == "SUCCEEDED"
    cluster.restart_head()
    cluster.wait_for_nodes()
    cluster.connect()
    assert shoal.get(shoal.get_actor("keeper").bump.remote(), timeout=60) == 43
    jobs = JobSubmissionClient(cluster.address, token_path=cluster.token_path)
    assert jobs.get_job_status(job_id).value == "SUCCEEDED"
    assert "finished" in jobs.get_job_logs(job_id)
