"""Requests over real HTTP through the proxy: routing, bodies, errors, limits, streaming, disconnects."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse

import shoal
from shoal import serve

pytestmark = pytest.mark.shoal_backends("local", "cluster")

# The test runtime has 2 CPUs; replicas that hold none let many deployments run at once.
ZERO_CPU = {"num_cpus": 0}


@serve.deployment(ray_actor_options=ZERO_CPU)
def echo(request: Request) -> dict:
    return {"method": request.method, "path": request.url.path, "q": dict(request.query_params)}


@serve.deployment(ray_actor_options=ZERO_CPU)
class Kinds:
    async def __call__(self, request: Request):
        kind = request.query_params["kind"]
        if kind == "text":
            return "plain text"
        if kind == "bytes":
            return b"\x00\x01"
        if kind == "json":
            return {"a": [1, 2]}
        if kind == "response":
            return PlainTextResponse("made", status_code=201, headers={"x-made": "yes"})
        if kind == "body":
            data = await request.json()
            return {"got": data}
        if kind == "none":
            return None
        raise ValueError("unknown kind")


def test_function_deployment_gets_a_starlette_request(serve_url: str) -> None:
    serve.run(echo.bind(), route_prefix="/echo")
    r = httpx.post(f"{serve_url}/echo/sub/path?x=1")
    assert r.status_code == 200
    assert r.json() == {"method": "POST", "path": "/echo/sub/path", "q": {"x": "1"}}


def test_return_values_become_responses(serve_url: str) -> None:
    serve.run(Kinds.bind())
    r = httpx.get(f"{serve_url}/?kind=text")
    assert (r.status_code, r.text, r.headers["content-type"]) == (200, "plain text", "text/plain; charset=utf-8")
    r = httpx.get(f"{serve_url}/?kind=bytes")
    assert r.content == b"\x00\x01"
    r = httpx.get(f"{serve_url}/?kind=json")
    assert (r.json(), r.headers["content-type"]) == ({"a": [1, 2]}, "application/json")
    r = httpx.get(f"{serve_url}/?kind=response")
    assert (r.status_code, r.text, r.headers["x-made"]) == (201, "made", "yes")
    r = httpx.post(f"{serve_url}/?kind=body", json={"k": "v"})
    assert r.json() == {"got": {"k": "v"}}
    assert httpx.get(f"{serve_url}/?kind=none").json() is None


def test_routes_by_longest_prefix_and_404(serve_url: str) -> None:
    @serve.deployment(ray_actor_options=ZERO_CPU)
    def a(request: Request) -> str:
        return "a"

    @serve.deployment(ray_actor_options=ZERO_CPU)
    def b(request: Request) -> str:
        return "b"

    serve.run(a.bind(), name="app_a", route_prefix="/api")
    serve.run(b.bind(), name="app_b", route_prefix="/api/v2")
    assert httpx.get(f"{serve_url}/api").text == "a"
    assert httpx.get(f"{serve_url}/api/x").text == "a"
    assert httpx.get(f"{serve_url}/api/v2/x").text == "b"
    assert httpx.get(f"{serve_url}/api/v20").text == "a"
    r = httpx.get(f"{serve_url}/other")
    assert r.status_code == 404
    assert httpx.get(f"{serve_url}/-/routes").json() == {"/api": "app_a", "/api/v2": "app_b"}
    assert httpx.get(f"{serve_url}/-/healthz").text == "success"
    with pytest.raises(ValueError, match="already used by application 'app_a'"):
        serve.run(b.bind(), name="app_c", route_prefix="/api")
    serve.delete("app_b")
    assert httpx.get(f"{serve_url}/api/v2/x").text == "a"
    assert httpx.get(f"{serve_url}/-/routes").json() == {"/api": "app_a"}


def test_handler_error_is_500_with_error_id_and_replica_stays_up(serve_url: str, tmp_path) -> None:
    @serve.deployment(ray_actor_options=ZERO_CPU, logging_config={"logs_dir": str(tmp_path)})
    class Flaky:
        def __init__(self) -> None:
            self.pid = __import__("os").getpid()

        def __call__(self, request: Request):
            if request.query_params.get("fail"):
                raise RuntimeError("boom in handler")
            return {"pid": self.pid}

    serve.run(Flaky.bind())
    pid = httpx.get(serve_url).json()["pid"]
    r = httpx.get(f"{serve_url}/?fail=1")
    assert r.status_code == 500
    match = re.search(r"error id: ([0-9a-f]{12})", r.text)
    assert match, r.text
    assert httpx.get(serve_url).json()["pid"] == pid
    # The replica logged the id with the traceback to its log file (errors are written at once).
    logs = list(tmp_path.glob("replica_default_Flaky_*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert f"error id {match.group(1)}" in text
    assert "Traceback" in text and "RuntimeError: boom in handler" in text
    # Access lines follow within a second.
    deadline = time.monotonic() + 5
    while "GET / 500" not in logs[0].read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "GET / 500" in logs[0].read_text() and "GET / 200" in logs[0].read_text()


def test_logging_config_sets_the_level_and_turns_access_logs_off(serve_url: str, tmp_path) -> None:
    def make(name: str, logging_config: dict):
        @serve.deployment(name=name, ray_actor_options=ZERO_CPU, logging_config=logging_config)
        def logs(request: Request) -> str:
            log = logging.getLogger("shoal.serve")
            log.debug("debug from %s", name)
            log.info("info from %s", name)
            log.warning("warning from %s", name)
            return name

        return logs

    quiet_dir, loud_dir = tmp_path / "quiet", tmp_path / "loud"
    quiet = make("quiet", {"logs_dir": str(quiet_dir), "log_level": "DEBUG", "enable_access_log": False})
    loud = make("loud", {"logs_dir": str(loud_dir), "log_level": "WARNING"})
    serve.run(quiet.bind(), name="quiet", route_prefix="/quiet")
    serve.run(loud.bind(), name="loud", route_prefix="/loud")
    assert httpx.get(f"{serve_url}/quiet").text == "quiet"
    assert httpx.get(f"{serve_url}/loud").text == "loud"

    def read(folder) -> str:
        (path,) = folder.glob("replica_*.log")
        return path.read_text()

    # Records below WARNING and access lines reach the file within the half-second flush.
    deadline = time.monotonic() + 5
    while not ("debug from quiet" in read(quiet_dir) and "GET /loud 200" in read(loud_dir)):
        assert time.monotonic() < deadline, (read(quiet_dir), read(loud_dir))
        time.sleep(0.1)
    text = read(quiet_dir)
    assert "info from quiet" in text and "warning from quiet" in text
    assert "GET /quiet" not in text
    text = read(loud_dir)
    assert "warning from loud" in text
    assert "info from loud" not in text and "debug from loud" not in text


def test_oversized_body_gets_413(start_serve) -> None:
    url = start_serve(max_request_body_bytes=1000)

    @serve.deployment(ray_actor_options=ZERO_CPU)
    async def size(request: Request) -> int:
        return len(await request.body())

    serve.run(size.bind())
    assert httpx.post(url, content=b"x" * 1000).json() == 1000
    r = httpx.post(url, content=b"x" * 1001)
    assert r.status_code == 413
    # A large streamed (chunked) body is cut off early, too.
    r = httpx.post(url, content=iter([b"y" * 600] * 100))
    assert r.status_code == 413
    assert httpx.post(url, content=b"ok").json() == 2


def test_streaming_responses(serve_url: str) -> None:
    @serve.deployment(ray_actor_options=ZERO_CPU)
    class Streamer:
        async def __call__(self, request: Request):
            n = int(request.query_params.get("n", "3"))
            if request.query_params.get("mode") == "starlette":

                async def gen():
                    for i in range(n):
                        yield f"s{i};"
                        await asyncio.sleep(0.01)

                return StreamingResponse(gen(), media_type="text/plain")

            async def chunks():
                for i in range(n):
                    yield f"c{i};"
                    await asyncio.sleep(0.01)

            return chunks()

    serve.run(Streamer.bind())
    with httpx.stream("GET", f"{serve_url}/?n=4") as r:
        parts = list(r.iter_text())
    assert "".join(parts) == "c0;c1;c2;c3;"
    r = httpx.get(f"{serve_url}/?n=5&mode=starlette")
    assert r.text == "s0;s1;s2;s3;s4;"


def test_client_disconnect_cancels_the_work(serve_url: str) -> None:
    @serve.deployment(ray_actor_options=ZERO_CPU)
    class Slow:
        def __init__(self) -> None:
            self.started = 0
            self.cancelled = 0
            self.finished = 0

        async def __call__(self, request: Request):
            if request.query_params.get("stats"):
                return {"started": self.started, "cancelled": self.cancelled, "finished": self.finished}
            self.started += 1
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            self.finished += 1
            return "done"

    serve.run(Slow.bind())
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(serve_url, timeout=0.5)
    deadline = time.monotonic() + 5
    stats = {}
    while time.monotonic() < deadline:
        stats = httpx.get(f"{serve_url}/?stats=1").json()
        if stats["cancelled"]:
            break
        time.sleep(0.1)
    assert stats == {"started": 1, "cancelled": 1, "finished": 0}


def test_past_max_queued_requests_answers_503_at_once(serve_url: str) -> None:
    @serve.deployment(ray_actor_options=ZERO_CPU, max_ongoing_requests=1, max_queued_requests=1)
    class One:
        async def __call__(self, request: Request) -> str:
            await asyncio.sleep(1.0)
            return "ok"

    serve.run(One.bind())

    async def burst() -> list[tuple[int, float]]:
        async with httpx.AsyncClient(timeout=10) as client:

            async def one() -> tuple[int, float]:
                t = time.monotonic()
                r = await client.get(serve_url)
                return r.status_code, time.monotonic() - t

            first = [asyncio.ensure_future(one()) for _ in range(2)]
            await asyncio.sleep(0.3)  # one runs, one waits in the queue
            rest = await asyncio.gather(*(one() for _ in range(3)))
            return [*await asyncio.gather(*first), *rest]

    results = asyncio.run(burst())
    codes = sorted(c for c, _ in results)
    assert codes == [200, 200, 503, 503, 503]
    assert all(elapsed < 0.5 for code, elapsed in results if code == 503)


def test_request_timeout_answers_408(start_serve) -> None:
    url = start_serve(request_timeout_s=0.3)

    @serve.deployment(ray_actor_options=ZERO_CPU)
    async def sleepy(request: Request) -> str:
        await asyncio.sleep(float(request.query_params["t"]))
        return "awake"

    serve.run(sleepy.bind())
    assert httpx.get(f"{url}/?t=0").text == "awake"
    assert httpx.get(f"{url}/?t=2").status_code == 408


def test_port_in_use_is_a_clear_error(shoal_runtime) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(Exception, match=f"cannot listen on 127.0.0.1:{port}"):
            serve.start(http_options={"port": port})
    assert serve.status().applications == {}
    assert not shoal.util.list_named_actors(all_namespaces=True)
