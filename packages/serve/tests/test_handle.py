"""Handles: calls, methods, composition, streaming, errors, cancellation, lookups, user_config and batching."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from starlette.requests import Request

import shoal
from shoal import serve
from shoal.serve.exceptions import RequestCancelledError, ServeException

pytestmark = pytest.mark.shoal_backends("local", "cluster")

# The test runtime has 2 CPUs; replicas that hold none let many deployments run at once.
ZERO_CPU = {"num_cpus": 0}


class Boom(Exception):
    pass


@serve.deployment(ray_actor_options=ZERO_CPU)
class Adder:
    def __init__(self, increment: int) -> None:
        self.increment = increment

    def __call__(self, x: int) -> int:
        return x + self.increment

    async def slow_add(self, x: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return x + self.increment

    def fail(self) -> None:
        raise Boom("bad input")

    def count(self, n: int):
        for i in range(n):
            yield i * self.increment


@serve.deployment(ray_actor_options=ZERO_CPU)
class Doubler:
    def __call__(self, x: int) -> int:
        return 2 * x


@serve.deployment(ray_actor_options=ZERO_CPU)
class Pipeline:
    def __init__(self, adder, doubler) -> None:
        self.adder = adder
        self.doubler = doubler

    async def __call__(self, request: Request) -> dict:
        x = int(request.query_params["x"])
        # The adder's response goes to the doubler without waiting for it here.
        doubled = await self.doubler.remote(self.adder.remote(x))
        return {"result": doubled}

    async def via_lookup(self, x: int) -> int:
        # Inside a replica the app name defaults to the replica's own.
        return await serve.get_deployment_handle("Doubler").remote(x)

    async def stream_sum(self, n: int) -> int:
        total = 0
        async for item in self.adder.options(stream=True).count.remote(n):
            total += item
        return total


def test_handle_calls_methods_and_errors(serve_url: str) -> None:
    handle = serve.run(Adder.bind(10), name="adder", route_prefix=None)
    assert handle.remote(1).result() == 11
    assert handle.slow_add.remote(5, 0.01).result(timeout_s=5) == 15
    assert handle.options(method_name="slow_add").remote(1, 0).result() == 11
    with pytest.raises(Boom, match="bad input"):
        handle.fail.remote().result()
    with pytest.raises(TimeoutError):
        handle.slow_add.remote(1, 2.0).result(timeout_s=0.2)
    assert list(handle.options(stream=True).count.remote(4)) == [0, 10, 20, 30]
    # Many calls in flight at once.
    responses = [handle.remote(i) for i in range(50)]
    assert [r.result() for r in responses] == [i + 10 for i in range(50)]
    # Wrong method name.
    with pytest.raises(AttributeError, match="no method 'nope'"):
        handle.nope.remote().result()
    # Nothing is served over HTTP for an app without a route prefix.
    assert httpx.get(serve_url).status_code == 404


def test_handles_in_async_code(serve_url: str) -> None:
    handle = serve.run(Adder.bind(1), route_prefix=None)

    async def main() -> list[int]:
        results = await asyncio.gather(*(handle.remote(i) for i in range(10)))
        items = [i async for i in handle.options(stream=True).count.remote(3)]
        with pytest.raises(RuntimeError, match="await"):
            handle.remote(1).result()
        return [*results, *items]

    assert asyncio.run(main()) == [*range(1, 11), 0, 1, 2]


def test_composition_over_http_and_handles(serve_url: str) -> None:
    app = Pipeline.bind(Adder.bind(3), Doubler.bind())
    handle = serve.run(app)
    assert httpx.get(f"{serve_url}/?x=4").json() == {"result": 14}
    assert handle.stream_sum.remote(4).result() == 0 + 3 + 6 + 9
    assert handle.via_lookup.remote(21).result() == 42
    status = serve.status().applications["default"]
    assert status.status == "RUNNING" and status.status is serve.ApplicationStatus.RUNNING
    assert status.deployments["Adder"].status is serve.DeploymentStatus.HEALTHY
    assert str(status.status) == "ApplicationStatus.RUNNING"  # a str enum, as in Ray
    assert set(status.deployments) == {"Pipeline", "Adder", "Doubler"}
    # Responses chain in the driver too.
    adder = serve.get_deployment_handle("Adder", "default")
    doubler = serve.get_deployment_handle("Doubler", app_name="default")
    assert doubler.remote(adder.remote(1)).result() == 8
    assert serve.get_app_handle("default").stream_sum.remote(2).result() == 3


def test_lookups_of_missing_things(serve_url: str) -> None:
    serve.run(Doubler.bind(), name="d")
    with pytest.raises(ServeException, match="Application 'nope' does not exist"):
        serve.get_app_handle("nope")
    with pytest.raises(ServeException, match="Deployment 'Nope' does not exist"):
        serve.get_deployment_handle("Nope", "d")
    assert serve.get_deployment_handle("Doubler").remote(4).result() == 8
    serve.delete("d")
    assert "d" not in serve.status().applications
    with pytest.raises(ServeException):
        serve.get_app_handle("d")


def test_cancel_a_response_cancels_the_replica_work(serve_url: str) -> None:
    @serve.deployment(ray_actor_options=ZERO_CPU)
    class Tracker:
        def __init__(self) -> None:
            self.cancelled = 0

        async def wait(self) -> str:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return "finished"

        def cancelled_count(self) -> int:
            return self.cancelled

    handle = serve.run(Tracker.bind(), route_prefix=None)
    response = handle.wait.remote()
    time.sleep(0.3)
    response.cancel()
    with pytest.raises(RequestCancelledError):
        response.result(timeout_s=5)
    deadline = time.monotonic() + 5
    while handle.cancelled_count.remote().result() != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handle.cancelled_count.remote().result() == 1


def test_user_config_and_reconfigure_in_place(serve_url: str) -> None:
    @serve.deployment(ray_actor_options=ZERO_CPU, user_config={"greeting": "hello"})
    class Greeter:
        def __init__(self) -> None:
            self.pid = __import__("os").getpid()
            self.greeting = None

        def reconfigure(self, config: dict) -> None:
            self.greeting = config["greeting"]

        def __call__(self, name: str) -> tuple[str, int]:
            return f"{self.greeting} {name}", self.pid

    handle = serve.run(Greeter.bind(), route_prefix=None)
    text, pid = handle.remote("al").result()
    assert text == "hello al"
    # Same code, new user_config: the replica is reconfigured, not replaced, before serve.run returns.
    handle = serve.run(Greeter.options(user_config={"greeting": "hola"}).bind(), route_prefix=None)
    assert handle.remote("al").result() == ("hola al", pid)


def test_user_config_without_reconfigure_fails_the_deploy(serve_url: str) -> None:
    @serve.deployment(ray_actor_options=ZERO_CPU, user_config={"a": 1})
    class NoReconfigure:
        def __call__(self) -> int:
            return 1

    with pytest.raises(RuntimeError, match="no reconfigure method"):
        serve.run(NoReconfigure.bind(), route_prefix=None)


def test_batching_in_a_replica(serve_url: str) -> None:
    @serve.deployment(ray_actor_options=ZERO_CPU, max_ongoing_requests=32)
    class Batched:
        def __init__(self) -> None:
            self.sizes: list[int] = []

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.2)
        async def square(self, xs: list[int]) -> list[int]:
            self.sizes.append(len(xs))
            return [x * x for x in xs]

        async def __call__(self, x: int) -> int:
            return await self.square(x)

        def batch_sizes(self) -> list[int]:
            return self.sizes

    handle = serve.run(Batched.bind(), route_prefix=None)
    responses = [handle.remote(i) for i in range(16)]
    assert [r.result() for r in responses] == [i * i for i in range(16)]
    sizes = handle.batch_sizes.remote().result()
    assert sum(sizes) == 16 and max(sizes) == 8 and len(sizes) <= 4


def test_replica_context_and_serve_status_counts(serve_url: str) -> None:
    @serve.deployment(ray_actor_options=ZERO_CPU, num_replicas=2)
    class WhoAmI:
        def __call__(self) -> tuple[str, str, str]:
            ctx = serve.get_replica_context()
            return ctx.app_name, ctx.deployment, ctx.replica_id

    handle = serve.run(WhoAmI.bind(), name="who", route_prefix=None)
    seen = {handle.remote().result() for _ in range(40)}
    assert {(a, d) for a, d, _ in seen} == {("who", "WhoAmI")}
    assert len({r for _, _, r in seen}) == 2
    dep = serve.status().applications["who"].deployments["WhoAmI"]
    assert dep.status == "HEALTHY" and dep.replica_states == {"RUNNING": 2}
    with pytest.raises(ServeException, match="within a replica"):
        serve.get_replica_context()


def test_run_rejects_bad_targets(shoal_runtime) -> None:
    with pytest.raises(TypeError, match=r"call Adder\.bind"):
        serve.run(Adder)
    with pytest.raises(ValueError, match="route_prefix"):
        serve.run(Adder.bind(1), route_prefix="no-slash")
    with pytest.raises(ValueError, match="route_prefix"):
        serve.run(Adder.bind(1), route_prefix="/trailing/")
    assert not shoal.util.list_named_actors(all_namespaces=True)
