"""Actors: state, ordering, names, kill, restarts, async and threaded actors, errors."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time

import pytest

import shoal
from shoal.exceptions import ActorDiedError, RayActorError, TaskError

pytestmark = pytest.mark.usefixtures("shoal_runtime")


@shoal.remote
class Counter:
    def __init__(self, start=0):
        self.n = start

    def add(self, k=1):
        self.n += k
        return self.n

    def get(self):
        return self.n

    def pid(self):
        return os.getpid()

    def fail(self):
        raise ValueError("method failed")

    def sleep(self, t):
        time.sleep(t)
        return t


def test_state_and_per_caller_order() -> None:
    c = Counter.remote(10)
    refs = [c.add.remote(i) for i in range(1, 51)]
    values = shoal.get(refs)
    expected = [10 + sum(range(1, i + 1)) for i in range(1, 51)]
    assert values == expected


def test_calls_wait_for_ref_arguments_but_keep_order() -> None:
    @shoal.remote
    def slow_value(v, t):
        time.sleep(t)
        return v

    c = Counter.remote()
    first = c.add.remote(slow_value.remote(5, 0.3))
    second = c.add.remote(1)
    assert shoal.get([first, second]) == [5, 6]


def test_instantiating_directly_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"Counter\.remote\(\)"):
        Counter()


def test_calling_a_method_directly_is_a_type_error() -> None:
    c = Counter.remote()
    with pytest.raises(TypeError, match=r"add\.remote\(\)"):
        c.add()


def test_unknown_method_is_attribute_error() -> None:
    c = Counter.remote()
    with pytest.raises(AttributeError, match="nope"):
        c.nope.remote()


def test_method_error_keeps_actor_alive() -> None:
    c = Counter.remote()
    with pytest.raises(ValueError, match="method failed") as info:
        shoal.get(c.fail.remote())
    assert isinstance(info.value, TaskError)
    assert shoal.get(c.add.remote()) == 1


def test_constructor_error_fails_every_call() -> None:
    @shoal.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("cannot construct")

        def ping(self):
            return "pong"

    b = Broken.remote()
    for _ in range(2):
        with pytest.raises(ActorDiedError, match="cannot construct") as info:
            shoal.get(b.ping.remote())
        assert isinstance(info.value, RayActorError)
        assert "creation task" in str(info.value)


def test_named_actor_lookup_and_namespace() -> None:
    c = Counter.options(name="shared-counter").remote()
    shoal.get(c.add.remote(5))
    again = shoal.get_actor("shared-counter")
    assert shoal.get(again.get.remote()) == 5
    assert "shared-counter" in shoal.util.list_named_actors()
    with pytest.raises(ValueError, match="Failed to look up actor"):
        shoal.get_actor("shared-counter", namespace="elsewhere")
    with pytest.raises(ValueError, match="already exists"):
        Counter.options(name="shared-counter").remote()
    same = Counter.options(name="shared-counter", get_if_exists=True).remote()
    assert shoal.get(same.get.remote()) == 5
    shoal.kill(c)


def test_named_actor_in_explicit_namespace() -> None:
    c = Counter.options(name="ns-counter", namespace="team").remote(3)
    assert shoal.get(shoal.get_actor("ns-counter", namespace="team").get.remote()) == 3
    with pytest.raises(ValueError):
        shoal.get_actor("ns-counter")
    shoal.kill(c)


def test_get_actor_of_unknown_name() -> None:
    with pytest.raises(ValueError, match="Failed to look up actor with name 'ghost'"):
        shoal.get_actor("ghost")


@pytest.mark.shoal_backends("local", "cluster")
def test_kill_fails_pending_and_later_calls() -> None:
    c = Counter.remote()
    shoal.get(c.add.remote())
    pending = c.sleep.remote(30)
    time.sleep(0.2)
    shoal.kill(c)
    with pytest.raises(ActorDiedError):
        shoal.get(pending, timeout=30)
    with pytest.raises(ActorDiedError):
        shoal.get(c.add.remote(), timeout=30)


def test_kill_named_actor_frees_the_name() -> None:
    c = Counter.options(name="to-kill").remote()
    shoal.get(c.get.remote())
    shoal.kill(c)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            shoal.get_actor("to-kill")
        except ValueError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the killed actor's name is still registered")


@pytest.mark.shoal_backends("local", "cluster")
def test_restart_after_crash_with_max_restarts() -> None:
    @shoal.remote(max_restarts=1)
    class Phoenix:
        def __init__(self):
            self.calls = 0

        def crash(self):
            os._exit(1)

        def pid(self):
            return os.getpid()

        def restarted(self):
            return shoal.get_runtime_context().was_current_actor_reconstructed

    p = Phoenix.remote()
    first_pid = shoal.get(p.pid.remote())
    assert shoal.get(p.restarted.remote()) is False
    with pytest.raises(ActorDiedError, match="restarting"):
        shoal.get(p.crash.remote(), timeout=30)
    second_pid = shoal.get(p.pid.remote(), timeout=30)
    assert second_pid != first_pid
    assert shoal.get(p.restarted.remote()) is True
    # Out of restarts now: the next crash is final.
    p.crash.remote()
    with pytest.raises(ActorDiedError):
        for _ in range(50):
            shoal.get(p.pid.remote(), timeout=30)
            time.sleep(0.1)


@pytest.mark.shoal_backends("local", "cluster")
def test_no_restart_kill_and_restartable_kill() -> None:
    @shoal.remote(max_restarts=2)
    class A:
        def pid(self):
            return os.getpid()

    a = A.remote()
    pid1 = shoal.get(a.pid.remote())
    shoal.kill(a, no_restart=False)
    pid2 = None
    for _ in range(100):
        try:
            pid2 = shoal.get(a.pid.remote(), timeout=30)
            break
        except ActorDiedError:
            time.sleep(0.05)
    assert pid2 is not None and pid2 != pid1
    shoal.kill(a)
    with pytest.raises(ActorDiedError):
        shoal.get(a.pid.remote(), timeout=30)


@pytest.mark.shoal_backends("local", "cluster")
def test_crash_without_restarts_is_actor_died() -> None:
    c = Counter.remote()
    shoal.get(c.add.remote())
    os.kill(shoal.get(c.pid.remote()), 9)
    with pytest.raises(ActorDiedError):
        shoal.get(c.add.remote(), timeout=30)


def test_exit_actor() -> None:
    @shoal.remote
    class Quitter:
        def quit(self):
            shoal.actor.exit_actor()

        def ping(self):
            return "pong"

    q = Quitter.remote()
    assert shoal.get(q.ping.remote()) == "pong"
    with pytest.raises(ActorDiedError):
        shoal.get(q.quit.remote(), timeout=30)
    with pytest.raises(ActorDiedError):
        shoal.get(q.ping.remote(), timeout=30)


def test_method_num_returns() -> None:
    @shoal.remote
    class Splitter:
        @shoal.method(num_returns=2)
        def split(self, x):
            return x, -x

        def ident(self, x):
            return x

    s = Splitter.remote()
    a, b = s.split.remote(3)
    assert shoal.get([a, b]) == [3, -3]
    x, y, z = s.ident.options(num_returns=3).remote([1, 2, 3])
    assert shoal.get([x, y, z]) == [1, 2, 3]


@pytest.mark.shoal_backends("local", "cluster")
def test_async_actor_interleaves_calls() -> None:
    @shoal.remote
    class Sleeper:
        async def nap(self, t):
            await asyncio.sleep(t)
            return t

    s = Sleeper.remote()
    shoal.get(s.nap.remote(0))
    start = time.time()
    assert shoal.get([s.nap.remote(0.5) for _ in range(8)]) == [0.5] * 8
    assert time.time() - start < 3.0  # one after another: 4 s; interleaved: 0.5 s plus load


@pytest.mark.shoal_backends("local", "cluster")
def test_async_actor_max_concurrency_bounds_interleaving() -> None:
    @shoal.remote(max_concurrency=2)
    class Sleeper:
        def __init__(self):
            self.running = 0
            self.peak = 0

        async def nap(self, t):
            self.running += 1
            self.peak = max(self.peak, self.running)
            await asyncio.sleep(t)
            self.running -= 1
            return t

        async def peak_seen(self):
            return self.peak

    s = Sleeper.remote()
    shoal.get([s.nap.remote(0.2) for _ in range(6)])
    assert shoal.get(s.peak_seen.remote()) == 2


@pytest.mark.shoal_backends("local", "cluster")
def test_threaded_actor_runs_calls_concurrently() -> None:
    @shoal.remote(max_concurrency=4)
    class Pool:
        def __init__(self):
            self.lock = threading.Lock()
            self.running = 0
            self.peak = 0

        def work(self, t):
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            time.sleep(t)
            with self.lock:
                self.running -= 1
            return threading.get_ident()

        def peak_seen(self):
            return self.peak

    p = Pool.remote()
    idents = shoal.get([p.work.remote(0.3) for _ in range(4)])
    assert len(set(idents)) > 1
    assert shoal.get(p.peak_seen.remote()) >= 2


def test_awaiting_refs_inside_async_actor() -> None:
    @shoal.remote
    def value(x):
        return x * 3

    @shoal.remote
    class Waiter:
        async def collect(self, n):
            refs = [value.remote(i) for i in range(n)]
            return sum(await asyncio.gather(*refs))

    w = Waiter.remote()
    assert shoal.get(w.collect.remote(5)) == 30


def test_actor_handle_passed_to_tasks_and_actors() -> None:
    c = Counter.remote()

    @shoal.remote
    def bump(counter, k):
        return shoal.get(counter.add.remote(k))

    @shoal.remote
    class Forwarder:
        def __init__(self, counter):
            self.counter = counter

        def forward(self, k):
            return shoal.get(self.counter.add.remote(k))

    shoal.get([bump.remote(c, 1) for _ in range(5)])
    f = Forwarder.remote(c)
    shoal.get(f.forward.remote(10))
    assert shoal.get(c.get.remote()) == 15


def test_actor_created_inside_a_task() -> None:
    @shoal.remote
    def make_and_use():
        inner = Counter.remote(100)
        return shoal.get(inner.add.remote(1))

    assert shoal.get(make_and_use.remote()) == 101


@pytest.mark.shoal_backends("local", "cluster")
def test_actor_is_destroyed_when_last_handle_goes() -> None:
    c = Counter.options(name="scoped").remote()
    pid = shoal.get(c.pid.remote())
    del c
    gc.collect()
    _wait_for_exit(pid, time.time() + 10)
    with pytest.raises(ValueError):
        shoal.get_actor("scoped")


def _wait_for_exit(pid: int, deadline: float) -> None:
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail("the actor's process outlived its last handle")


@pytest.mark.shoal_backends("local", "cluster")
def test_actor_goes_with_its_last_handle_without_the_garbage_collector() -> None:
    # Calling a method must not tie the handle into a reference cycle: the actor, and the
    # CPU it holds, would then stay until the collector happened to run.
    gc.disable()
    try:
        cpus = shoal.available_resources()["CPU"]
        assert shoal.get(Counter.options(num_cpus=1).remote().add.remote()) == 1
        h = Counter.options(num_cpus=1).remote()
        pid = shoal.get(h.pid.remote())
        del h
        deadline = time.time() + 10
        while time.time() < deadline and shoal.available_resources().get("CPU", 0.0) < cpus:
            time.sleep(0.05)
        assert shoal.available_resources().get("CPU", 0.0) == cpus
        _wait_for_exit(pid, deadline)
    finally:
        gc.enable()


@pytest.mark.shoal_backends("local", "cluster")
def test_detached_actor_outlives_its_handle() -> None:
    c = Counter.options(name="detached-one", lifetime="detached").remote(7)
    shoal.get(c.get.remote())
    del c
    gc.collect()
    time.sleep(0.3)
    again = shoal.get_actor("detached-one")
    assert shoal.get(again.get.remote()) == 7
    shoal.kill(again)


def test_runtime_context_inside_actor() -> None:
    @shoal.remote
    class Who:
        def ids(self):
            ctx = shoal.get_runtime_context()
            return ctx.get_actor_id(), ctx.get_task_id(), ctx.get_actor_name()

    w = Who.options(name="who").remote()
    actor_id, task_id, name = shoal.get(w.ids.remote())
    assert actor_id == w._actor_id.hex()
    assert task_id is not None
    assert name == "who"
    shoal.kill(w)


@pytest.mark.shoal_backends("local", "cluster")
def test_max_pending_calls() -> None:
    from shoal.exceptions import PendingCallsLimitExceeded

    c = Counter.options(max_pending_calls=2).remote()
    shoal.get(c.get.remote())
    refs = [c.sleep.remote(0.3) for _ in range(4)]
    errors = 0
    for ref in refs:
        try:
            shoal.get(ref, timeout=30)
        except PendingCallsLimitExceeded:
            errors += 1
    assert errors >= 1


def test_invalid_actor_options() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        Counter.options(max_concurrency=0)
    with pytest.raises(ValueError, match="lifetime"):
        Counter.options(lifetime="forever")
    with pytest.raises(ValueError, match="get_if_exists"):
        Counter.options(get_if_exists=True)
    with pytest.raises(ValueError, match="unknown option 'num_returns' for actors"):
        Counter.options(num_returns=2)


def test_ray_terminate_runs_after_queued_calls() -> None:
    c = Counter.remote()
    first = c.add.remote(1)
    second = c.add.remote(2)
    c.__ray_terminate__.remote()
    assert shoal.get([first, second], timeout=30) == [1, 3]
    with pytest.raises(ActorDiedError):
        shoal.get(c.add.remote(1), timeout=30)


def test_get_of_a_non_ref_is_both_type_and_value_error() -> None:
    with pytest.raises(TypeError):
        shoal.get("nope")
    with pytest.raises(ValueError):
        shoal.get(3)
