"""get, put, wait, cancel, ObjectRef behaviour, resources and the runtime context."""

from __future__ import annotations

import asyncio
import pickle
import time

import numpy as np
import pytest

import shoal
from shoal.exceptions import GetTimeoutError, TaskCancelledError

pytestmark = pytest.mark.usefixtures("shoal_runtime")


@shoal.remote
def sleep_then(t, value=None):
    time.sleep(t)
    return value


@shoal.remote
def ident(x):
    return x


# -- get / put ---------------------------------------------------------------


def test_put_get_round_trip() -> None:
    for value in [1, "text", b"bytes", [1, {"a": (2, 3)}], None, 3.5]:
        assert shoal.get(shoal.put(value)) == value


def test_get_list_and_tuple() -> None:
    refs = [shoal.put(i) for i in range(5)]
    assert shoal.get(refs) == [0, 1, 2, 3, 4]
    assert shoal.get(tuple(refs)) == [0, 1, 2, 3, 4]


def test_get_of_not_a_ref_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"not a shoal\.ObjectRef"):
        shoal.get(1)
    with pytest.raises(TypeError, match=r"not a shoal\.ObjectRef"):
        shoal.get([shoal.put(1), "x"])


def test_put_of_a_ref_is_refused() -> None:
    with pytest.raises(TypeError, match="ObjectRef"):
        shoal.put(shoal.put(1))


def test_put_of_unserializable_value() -> None:
    import threading

    with pytest.raises(TypeError, match="could not serialize"):
        shoal.put(threading.Lock())
    assert shoal.get(shoal.put(1)) == 1


@pytest.mark.shoal_backends("local", "cluster")
def test_get_timeout() -> None:
    ref = sleep_then.remote(2)
    start = time.time()
    with pytest.raises(GetTimeoutError) as info:
        shoal.get(ref, timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert time.time() - start < 1.5
    with pytest.raises(ValueError):
        shoal.get(ref, timeout=-1)


def test_get_with_timeout_zero_on_ready_value() -> None:
    ref = shoal.put(5)
    assert shoal.get(ref, timeout=0) == 5


def test_put_values_are_copies() -> None:
    data = [1, 2, 3]
    ref = shoal.put(data)
    data.append(4)
    assert shoal.get(ref) == [1, 2, 3]


def test_numpy_values_come_back_read_only_and_equal() -> None:
    a = np.random.default_rng(0).random((1000, 100))
    ref = shoal.put(a)
    b = shoal.get(ref)
    np.testing.assert_array_equal(a, b)
    assert not b.flags.writeable
    with pytest.raises(ValueError):
        b[0, 0] = 1.0


def test_numpy_in_containers() -> None:
    value = {"x": np.arange(200_000), "y": [np.ones(10), "z"]}
    out = shoal.get(shoal.put(value))
    np.testing.assert_array_equal(out["x"], value["x"])
    np.testing.assert_array_equal(out["y"][0], np.ones(10))
    assert out["y"][1] == "z"


# -- ObjectRef -----------------------------------------------------------------


def test_object_ref_is_hashable_comparable_and_picklable() -> None:
    ref = shoal.put(1)
    same = pickle.loads(pickle.dumps(ref))
    assert same == ref and hash(same) == hash(ref)
    assert len({ref, same}) == 1
    assert ref != shoal.put(1)
    assert len(ref.hex()) == 32 and ref.binary() == bytes.fromhex(ref.hex())


def test_object_ref_future() -> None:
    fut = ident.remote(7).future()
    assert fut.result(timeout=30) == 7


def test_object_ref_future_carries_errors() -> None:
    @shoal.remote
    def boom():
        raise ValueError("in future")

    fut = boom.remote().future()
    with pytest.raises(ValueError, match="in future"):
        fut.result(timeout=30)


def test_await_object_ref() -> None:
    async def main():
        a = await ident.remote(1)
        b, c = await asyncio.gather(ident.remote(2), ident.remote(3))
        return a + b + c

    assert asyncio.run(main()) == 6


# -- wait ----------------------------------------------------------------------


@pytest.mark.shoal_backends("local", "cluster")
def test_wait_returns_ready_in_input_order() -> None:
    slow = sleep_then.remote(3)
    refs = [shoal.put("c"), slow, shoal.put("a"), shoal.put("b")]
    ready, not_ready = shoal.wait(refs, num_returns=2, timeout=10)
    assert ready == [refs[0], refs[2]]
    assert not_ready == [refs[1], refs[3]]
    ready, not_ready = shoal.wait(refs, num_returns=4, timeout=0.2)
    assert ready == [refs[0], refs[2], refs[3]]
    assert not_ready == [slow]


@pytest.mark.shoal_backends("local", "cluster")
def test_wait_timeout_returns_what_is_ready() -> None:
    refs = [sleep_then.remote(2), shoal.put(1)]
    ready, not_ready = shoal.wait(refs, num_returns=2, timeout=0.5)
    assert ready == [refs[1]]
    assert not_ready == [refs[0]]
    # timeout=0 is a poll, from the driver and from inside a task.
    start = time.monotonic()
    assert shoal.wait(refs, num_returns=2, timeout=0) == ([refs[1]], [refs[0]])
    assert time.monotonic() - start < 0.5

    @shoal.remote(num_cpus=0)  # runs at once, though earlier sleepers may hold the CPUs
    def poll(inner: list) -> tuple[int, int]:
        ready, rest = shoal.wait(inner, num_returns=2, timeout=0)
        return len(ready), len(rest)

    assert shoal.get(poll.remote([refs[0], refs[1]]), timeout=10) == (1, 1)


def test_wait_default_is_one() -> None:
    refs = [shoal.put(1), shoal.put(2)]
    ready, not_ready = shoal.wait(refs)
    assert ready == [refs[0]] and not_ready == [refs[1]]


def test_wait_counts_errors_as_ready() -> None:
    @shoal.remote
    def boom():
        raise ValueError("x")

    ref = boom.remote()
    ready, _ = shoal.wait([ref], timeout=30)
    assert ready == [ref]


def test_wait_bad_input() -> None:
    ref = shoal.put(1)
    with pytest.raises(TypeError):
        shoal.wait(ref)
    with pytest.raises(ValueError, match="unique"):
        shoal.wait([ref, ref])
    with pytest.raises(ValueError, match="num_returns"):
        shoal.wait([ref], num_returns=2)
    with pytest.raises(TypeError):
        shoal.wait([1])
    # Nothing to wait for is not an error (as in Ray), whatever num_returns says.
    assert shoal.wait([]) == ([], []) and shoal.wait([], num_returns=3) == ([], [])


# -- cancel --------------------------------------------------------------------


@pytest.mark.shoal_backends("local", "cluster")
def test_cancel_running_task() -> None:
    ref = sleep_then.remote(30)
    time.sleep(0.3)
    shoal.cancel(ref)
    with pytest.raises(TaskCancelledError):
        shoal.get(ref, timeout=10)
    # The worker survives a non-forced cancel and keeps serving.
    assert shoal.get(ident.remote(1), timeout=10) == 1


@pytest.mark.shoal_backends("local", "cluster")
def test_cancel_queued_task() -> None:
    blockers = [sleep_then.remote(1) for _ in range(2)]
    queued = ident.remote("never")
    shoal.cancel(queued)
    with pytest.raises(TaskCancelledError):
        shoal.get(queued, timeout=10)
    shoal.get(blockers)


@pytest.mark.shoal_backends("local", "cluster")
def test_force_cancel_kills_the_worker() -> None:
    @shoal.remote
    def stubborn():
        while True:
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass

    ref = stubborn.remote()
    time.sleep(0.3)
    shoal.cancel(ref, force=True)
    with pytest.raises(TaskCancelledError):
        shoal.get(ref, timeout=10)


@pytest.mark.shoal_backends("local", "cluster")
def test_recursive_cancel_reaches_children() -> None:
    @shoal.remote
    def parent():
        child = sleep_then.remote(30, "child")
        return shoal.get(child)

    ref = parent.remote()
    time.sleep(0.5)
    shoal.cancel(ref, recursive=True)
    with pytest.raises(TaskCancelledError):
        shoal.get(ref, timeout=10)


def test_cancel_of_finished_task_does_nothing() -> None:
    ref = ident.remote(3)
    assert shoal.get(ref) == 3
    shoal.cancel(ref)
    assert shoal.get(ref) == 3


def test_cancel_bad_input() -> None:
    with pytest.raises(TypeError):
        shoal.cancel("nope")


# -- cluster information ---------------------------------------------------------


def test_cluster_and_available_resources() -> None:
    total = shoal.cluster_resources()
    assert total["CPU"] == 2.0
    assert "memory" in total and "object_store_memory" in total
    avail = shoal.available_resources()
    assert avail.get("CPU", 0) <= 2.0


@pytest.mark.shoal_backends("local", "cluster")
def test_available_resources_drop_while_tasks_run() -> None:
    refs = [sleep_then.remote(1.0) for _ in range(2)]
    time.sleep(0.4)
    assert shoal.available_resources().get("CPU", 0.0) == 0.0
    shoal.get(refs)
    deadline = time.time() + 5
    while shoal.available_resources().get("CPU", 0.0) != 2.0 and time.time() < deadline:
        time.sleep(0.05)
    assert shoal.available_resources()["CPU"] == 2.0


def test_nodes() -> None:
    nodes = shoal.nodes()
    assert len(nodes) == 1
    assert nodes[0]["Alive"] is True
    assert nodes[0]["Resources"]["CPU"] == 2.0
    assert nodes[0]["NodeID"] == shoal.get_runtime_context().get_node_id()


def test_runtime_context_in_driver_and_task() -> None:
    ctx = shoal.get_runtime_context()
    assert ctx.get_task_id() is None
    assert ctx.get_actor_id() is None
    job = ctx.get_job_id()

    @shoal.remote(num_cpus=1)
    def inside():
        c = shoal.get_runtime_context()
        return c.get_job_id(), c.get_task_id(), c.get_assigned_resources(), c.get_node_id()

    task_job, task_id, assigned, node = shoal.get(inside.remote())
    assert task_job == job
    assert task_id is not None
    assert assigned == {"CPU": 1.0}
    assert node == ctx.get_node_id()


def test_get_gpu_ids_in_driver_is_empty() -> None:
    assert shoal.get_gpu_ids() == []


def test_is_initialized_and_reinit() -> None:
    assert shoal.is_initialized()
    with pytest.raises(RuntimeError, match="already"):
        shoal.init()
    info = shoal.init(ignore_reinit_error=True)
    assert "node_id" in info


def test_a_cancelled_future_does_not_break_the_actor() -> None:
    @shoal.remote
    def slow():
        time.sleep(0.5)
        return 1

    @shoal.remote
    class Impatient:
        async def call(self):
            try:
                await asyncio.wait_for(slow.remote(), 0.1)
            except TimeoutError:
                pass
            await asyncio.sleep(0.6)
            return await slow.remote()

    assert shoal.get(Impatient.remote().call.remote(), timeout=30) == 1
    fut = slow.remote().future()
    fut.cancel()
    time.sleep(0.7)
    assert shoal.get(ident.remote(2)) == 2


@pytest.mark.shoal_backends("local", "cluster")
def test_cancelling_tasks_as_they_start_keeps_the_runtime_healthy() -> None:
    # Cancels that race with dispatch and with the end of a task must never lose a
    # task's answer, nor leave a worker out of step with the runtime.
    @shoal.remote
    def quick(x):
        return x

    for round_ in range(15):
        refs = [quick.remote(i) for i in range(4)]
        for ref in refs[1:]:
            shoal.cancel(ref)
        for ref in refs:
            try:
                shoal.get(ref, timeout=30)
            except TaskCancelledError:
                pass
        assert shoal.get(ident.remote(round_), timeout=30) == round_
