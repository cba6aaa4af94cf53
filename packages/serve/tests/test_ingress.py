"""@serve.ingress with FastAPI (class-based routes bound to the replica) and Starlette apps.

No ``from __future__ import annotations`` here: FastAPI reads the route
parameters' annotations, which must be real classes, not strings.
"""

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from shoal import serve

pytestmark = pytest.mark.shoal_backends("local", "cluster")

ZERO_CPU = {"num_cpus": 0}


def test_fastapi_routes_are_methods_of_the_replica(serve_url: str) -> None:
    fastapi = pytest.importorskip("fastapi")
    from fastapi.responses import StreamingResponse
    from pydantic import BaseModel

    app = fastapi.FastAPI()

    class Item(BaseModel):
        name: str
        price: float

    @serve.deployment(ray_actor_options=ZERO_CPU)
    @serve.ingress(app)
    class Shop:
        def __init__(self, tax: float) -> None:
            self.tax = tax

        @app.get("/items/{item_id}")
        def get_item(self, item_id: int, q: str | None = None) -> dict:
            return {"item_id": item_id, "q": q}

        @app.post("/price")
        async def price(self, item: Item) -> dict:
            return {"name": item.name, "total": round(item.price * (1 + self.tax), 2)}

        @app.get("/stream")
        def stream(self) -> StreamingResponse:
            async def gen():
                for i in range(3):
                    yield f"{i},"
                    await asyncio.sleep(0.01)

            return StreamingResponse(gen(), media_type="text/plain")

    serve.run(Shop.bind(0.1), route_prefix="/shop")
    assert httpx.get(f"{serve_url}/shop/items/7?q=red").json() == {"item_id": 7, "q": "red"}
    assert httpx.post(f"{serve_url}/shop/price", json={"name": "pen", "price": 10}).json() == {
        "name": "pen",
        "total": 11.0,
    }
    bad = httpx.post(f"{serve_url}/shop/price", json={"name": "pen"})
    assert bad.status_code == 422
    assert httpx.get(f"{serve_url}/shop/stream").text == "0,1,2,"
    assert httpx.get(f"{serve_url}/shop/missing").status_code == 404


def test_starlette_app_ingress(serve_url: str) -> None:
    async def hello(request):
        return PlainTextResponse(f"hello {request.path_params['name']}")

    app = Starlette(routes=[Route("/hello/{name}", hello)])

    @serve.deployment(ray_actor_options=ZERO_CPU)
    @serve.ingress(app)
    class Site:
        pass

    serve.run(Site.bind(), route_prefix="/site")
    assert httpx.get(f"{serve_url}/site/hello/bob").text == "hello bob"


def test_ingress_rejects_a_call_method() -> None:
    app = Starlette()
    with pytest.raises(ValueError, match="must not define __call__"):

        @serve.ingress(app)
        class Both:
            def __call__(self, request):
                return "x"

    with pytest.raises(TypeError, match="ASGI app"):
        serve.ingress(42)
