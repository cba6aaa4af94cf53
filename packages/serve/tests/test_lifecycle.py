"""Replica failures, health checks, rolling updates, autoscaling, deploy failures and deletion."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import httpx
import pytest
from starlette.requests import Request

import shoal
from shoal import serve
from shoal.serve.exceptions import ReplicaDiedError

pytestmark = pytest.mark.shoal_backends("local", "cluster")

ZERO_CPU = {"num_cpus": 0}


def wait_until(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@serve.deployment(ray_actor_options=ZERO_CPU, health_check_period_s=0.3, health_check_timeout_s=1.0)
class Pid:
    def __init__(self) -> None:
        self.healthy = True
        self.hung = False

    async def __call__(self, request: Request) -> dict:
        delay = float(request.query_params.get("sleep", "0"))
        if delay:
            await asyncio.sleep(delay)
        return {"pid": os.getpid()}

    def pid(self) -> int:
        return os.getpid()

    def break_health(self) -> None:
        self.healthy = False

    def hang_health(self) -> None:
        self.hung = True

    async def check_health(self) -> None:
        if self.hung:
            await asyncio.sleep(60)  # past health_check_timeout_s
        if not self.healthy:
            raise RuntimeError("self-reported unhealthy")


@pytest.mark.timeout(60)
def test_a_replica_that_dies_is_replaced_and_its_requests_do_not_hang(serve_url: str) -> None:
    handle = serve.run(Pid.bind())
    pid = handle.pid.remote().result()

    results: list[int] = []

    def slow_request() -> None:
        try:
            results.append(httpx.get(f"{serve_url}/?sleep=3", timeout=20).status_code)
        except httpx.HTTPError:
            results.append(-1)

    threads = [threading.Thread(target=slow_request) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    for t in threads:
        t.join(timeout=15)
    assert not any(t.is_alive() for t in threads)
    # In-flight requests fail fast with a server error instead of hanging.
    assert time.monotonic() - t0 < 5
    assert len(results) == 3 and all(code >= 500 for code in results), results
    new_pid = wait_until(lambda: _pid_over_http(serve_url), timeout=20)
    assert new_pid != pid
    assert handle.pid.remote().result() == new_pid


def _pid_over_http(url: str) -> int | None:
    try:
        r = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return r.json()["pid"] if r.status_code == 200 else None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("failure", ["break_health", "hang_health"])
def test_a_replica_that_fails_its_health_check_is_replaced(serve_url: str, failure: str) -> None:
    handle = serve.run(Pid.bind(), route_prefix=None)
    pid = handle.pid.remote().result()
    # Either check_health raises, or it does not answer within health_check_timeout_s.
    getattr(handle, failure).remote().result()

    def replaced() -> int | None:
        try:
            new = handle.pid.remote().result(timeout_s=5)
        except ReplicaDiedError:
            return None  # a call in flight when the replica was stopped fails fast
        return new if new != pid else None

    new_pid = wait_until(replaced, timeout=20)
    assert new_pid != pid
    wait_until(lambda: serve.status().applications["default"].status == "RUNNING", timeout=10)


@serve.deployment(
    ray_actor_options=ZERO_CPU, num_replicas=2, graceful_shutdown_wait_loop_s=0.2, graceful_shutdown_timeout_s=5
)
class Versioned:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    async def __call__(self, request: Request) -> str:
        await asyncio.sleep(0.02)
        return self.tag


@pytest.mark.timeout(90)
def test_redeploying_a_new_version_rolls_replicas_without_dropping_requests(serve_url: str) -> None:
    serve.run(Versioned.bind("v1"))
    stop = threading.Event()
    answers: list[tuple[int, str]] = []

    async def load() -> None:
        async with httpx.AsyncClient(timeout=20) as client:

            async def worker() -> None:
                while not stop.is_set():
                    try:
                        r = await client.get(serve_url)
                        answers.append((r.status_code, r.text))
                    except httpx.HTTPError as e:
                        answers.append((-1, repr(e)))

            await asyncio.gather(*(worker() for _ in range(4)))

    thread = threading.Thread(target=lambda: asyncio.run(load()))
    thread.start()
    try:
        wait_until(lambda: len(answers) > 20, timeout=10)
        serve.run(Versioned.bind("v2"))
        wait_until(lambda: answers[-20:] and all(text == "v2" for _, text in answers[-20:]), timeout=20)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    failures = [a for a in answers if a[0] != 200]
    assert not failures, failures[:5]
    texts = [t for _, t in answers]
    assert "v1" in texts and "v2" in texts
    assert serve.status().applications["default"].deployments["Versioned"].replica_states == {"RUNNING": 2}


@pytest.mark.timeout(90)
def test_autoscaling_adds_replicas_under_load_and_removes_them_after(serve_url: str) -> None:
    @serve.deployment(
        ray_actor_options=ZERO_CPU,
        max_ongoing_requests=10,
        autoscaling_config={
            "min_replicas": 1,
            "max_replicas": 3,
            "target_ongoing_requests": 1,
            "upscale_delay_s": 0.5,
            "downscale_delay_s": 1.0,
            "look_back_period_s": 1.0,
        },
        graceful_shutdown_wait_loop_s=0.1,
    )
    class Busy:
        async def __call__(self, request: Request) -> str:
            await asyncio.sleep(0.2)
            return "ok"

    serve.run(Busy.bind(), name="auto")

    def running() -> int:
        dep = serve.status().applications["auto"].deployments["Busy"]
        return dep.replica_states.get("RUNNING", 0)

    assert running() == 1
    stop = threading.Event()
    codes: list[int] = []

    async def load() -> None:
        async with httpx.AsyncClient(timeout=20) as client:

            async def worker() -> None:
                while not stop.is_set():
                    codes.append((await client.get(serve_url)).status_code)

            await asyncio.gather(*(worker() for _ in range(6)))

    thread = threading.Thread(target=lambda: asyncio.run(load()))
    thread.start()
    try:
        wait_until(lambda: running() == 3, timeout=30, interval=0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert set(codes) == {200}
    wait_until(
        lambda: running() == 1 and serve.status().applications["auto"].deployments["Busy"].status == "HEALTHY",
        timeout=30,
        interval=0.2,
    )


def test_ray_actor_options_reserve_resources_for_each_replica(serve_url: str) -> None:
    @serve.deployment(ray_actor_options={"num_cpus": 0.5}, num_replicas=2)
    class Holds:
        def __call__(self) -> str:
            return "ok"

    def cpus() -> float:
        return shoal.available_resources().get("CPU", 0.0)

    before = cpus()
    handle = serve.run(Holds.bind(), name="holds", route_prefix=None)
    assert handle.remote().result() == "ok"
    # Two replicas hold half a CPU each while they run, and give it back when deleted.
    wait_until(lambda: abs(cpus() - (before - 1.0)) < 1e-6, timeout=10)
    serve.delete("holds")
    wait_until(lambda: abs(cpus() - before) < 1e-6, timeout=10)


def test_a_constructor_that_raises_fails_the_deploy(serve_url: str) -> None:
    @serve.deployment(ray_actor_options=ZERO_CPU)
    class Broken:
        def __init__(self) -> None:
            raise ValueError("cannot load the model")

    with pytest.raises(RuntimeError, match="cannot load the model"):
        serve.run(Broken.bind(), name="broken")
    app = serve.status().applications["broken"]
    assert app.status == "DEPLOY_FAILED"
    assert app.deployments["Broken"].status == "DEPLOY_FAILED"
    assert "cannot load the model" in app.message


@pytest.mark.timeout(60)
def test_graceful_shutdown_timeout_bounds_the_wait_for_requests_in_flight(serve_url: str) -> None:
    serve.run(
        Pid.options(graceful_shutdown_wait_loop_s=0, graceful_shutdown_timeout_s=0.5).bind(),
        name="stuck",
        route_prefix="/stuck",
    )
    result: list[tuple[int, float]] = []

    def request() -> None:
        t = time.monotonic()
        try:
            code = httpx.get(f"{serve_url}/stuck?sleep=30", timeout=20).status_code
        except httpx.HTTPError:
            code = -1
        result.append((code, time.monotonic() - t))

    t = threading.Thread(target=request)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    serve.delete("stuck")
    # The replica waited 0.5 s for the request, not its 30 s, then was stopped.
    assert time.monotonic() - t0 < 5
    t.join(timeout=10)
    assert not t.is_alive()
    ((code, elapsed),) = result
    assert code >= 500 and elapsed < 6, result
    assert httpx.get(f"{serve_url}/stuck").status_code == 404


def test_delete_lets_requests_in_flight_finish(serve_url: str) -> None:
    serve.run(Pid.options(graceful_shutdown_wait_loop_s=0).bind(), name="gone", route_prefix="/gone")
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(httpx.get(f"{serve_url}/gone?sleep=1", timeout=10).status_code))
    t.start()
    time.sleep(0.3)
    serve.delete("gone")
    t.join(timeout=10)
    assert result == [200]
    assert "gone" not in serve.status().applications
    assert httpx.get(f"{serve_url}/gone").status_code == 404
