"""Model multiplexing: the model id of a request, per-replica LRU caches, and sticky routing."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.requests import Request

from shoal import serve
from shoal.serve.multiplex import rank_replicas

pytestmark = [pytest.mark.shoal_backends("local"), pytest.mark.timeout(120)]

ZERO_CPU = {"num_cpus": 0}


class Model:
    def __init__(self, model_id: str, unloaded: list[str]) -> None:
        self.model_id = model_id
        self.unloaded_into = unloaded

    async def __del__(self) -> None:  # awaited by the cache when it evicts the model
        self.unloaded_into.append(self.model_id)


@serve.deployment(ray_actor_options=ZERO_CPU)
class Models:
    def __init__(self) -> None:
        self.loads: list[str] = []
        self.unloads: list[str] = []

    @serve.multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id: str) -> Model:
        self.loads.append(model_id)
        await asyncio.sleep(0.05)
        return Model(model_id, self.unloads)

    async def __call__(self, request: Request) -> dict:
        model_id = serve.get_multiplexed_model_id()
        model = await self.get_model(model_id)
        return {"model": model.model_id, "replica": serve.get_replica_context().replica_id}

    async def predict(self, x: int) -> tuple[str, str, int]:
        model = await self.get_model(serve.get_multiplexed_model_id())
        return model.model_id, serve.get_replica_context().replica_id, x

    def loaded(self) -> list[str]:
        return list(self.loads)

    def unloaded(self) -> list[str]:
        return list(self.unloads)


def test_multiplexed_over_handles(serve_url: str) -> None:
    handle = serve.run(Models.bind(), name="m", route_prefix=None)
    a = handle.options(multiplexed_model_id="a")
    assert a.predict.remote(1).result()[::2] == ("a", 1)
    assert a.predict.remote(2).result()[::2] == ("a", 2)
    # Concurrent requests for a model not loaded yet share one load.
    b = [handle.options(multiplexed_model_id="b").predict.remote(i) for i in range(4)]
    assert [r.result()[0] for r in b] == ["b"] * 4
    assert handle.loaded.remote().result() == ["a", "b"]
    # A third model evicts the least recently used one (a), whose async __del__ is awaited.
    assert handle.options(multiplexed_model_id="c").predict.remote(0).result()[0] == "c"
    assert handle.unloaded.remote().result() == ["a"]
    assert handle.options(multiplexed_model_id="b").predict.remote(0).result()[0] == "b"
    assert handle.options(multiplexed_model_id="a").predict.remote(0).result()[0] == "a"
    assert handle.loaded.remote().result() == ["a", "b", "c", "a"]
    assert handle.unloaded.remote().result() == ["a", "c"]
    # No model named: the id is "".
    assert handle.predict.remote(5).result()[::2] == ("", 5)


def test_multiplexed_over_http_sticks_to_a_replica(serve_url: str) -> None:
    serve.run(Models.options(num_replicas=2).bind(), name="m2", route_prefix="/m")
    seen: dict[str, set[str]] = {}
    for i in range(12):
        model_id = f"model-{i % 3}"
        r = httpx.get(f"{serve_url}/m", headers={"serve_multiplexed_model_id": model_id}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == model_id
        seen.setdefault(model_id, set()).add(body["replica"])
    # Sequential requests find their model's replica free: each model stays on one replica.
    assert all(len(replicas) == 1 for replicas in seen.values()), seen


def test_multiplexed_validates_its_use() -> None:
    with pytest.raises(TypeError, match="async"):

        @serve.multiplexed
        def load(model_id: str) -> None:
            return None

    with pytest.raises(ValueError, match="positive"):
        serve.multiplexed(max_num_models_per_replica=0)
    with pytest.raises(TypeError, match="one argument"):

        @serve.multiplexed
        async def load2(a: str, b: str) -> None:
            return None

    assert serve.get_multiplexed_model_id() == ""


def test_a_plain_function_loader_is_cached_too() -> None:
    loads: list[str] = []

    @serve.multiplexed(max_num_models_per_replica=1)
    async def load(model_id: str) -> str:
        loads.append(model_id)
        return model_id.upper()

    async def main() -> list[str]:
        return [await load("x"), await load("x"), await load("y"), await load("x")]

    assert asyncio.run(main()) == ["X", "X", "Y", "X"]
    assert loads == ["x", "y", "x"]
    with pytest.raises(TypeError, match="str"):
        asyncio.run(load(3))


def test_replica_order_is_the_same_everywhere_and_moves_little() -> None:
    class R:
        def __init__(self, replica_id: str) -> None:
            self.replica_id = replica_id

    replicas = [R(f"r{i}") for i in range(4)]
    first = {m: rank_replicas(m, replicas)[0].replica_id for m in (f"m{i}" for i in range(200))}
    assert first == {m: rank_replicas(m, list(reversed(replicas)))[0].replica_id for m in first}
    assert len(set(first.values())) == 4
    # Dropping one replica moves only the models that preferred it.
    rest = replicas[:3]
    moved = [m for m in first if rank_replicas(m, rest)[0].replica_id != first[m]]
    assert all(first[m] == "r3" for m in moved)
