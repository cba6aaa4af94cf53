"""serve benchmarks, side by side with Ray Serve and a bare uvicorn+starlette app.

    python benchmarks/serve.py                                  # shoal and the bare app
    python benchmarks/serve.py --ray-python /opt/rayenv/bin/python

Cases: a trivial deployment over HTTP (req/s, p50 and p99 at 32 keep-alive
connections, and p50 of sequential requests on one connection), handle
calls per second (one at a time, and 32 in flight), a two-deployment
composition over HTTP at 32 connections, and the time from ``serve.run``
to the first answered request. Each engine runs in its own subprocess:
shoal and Ray Serve with their default settings and with the best
settings (``max_ongoing_requests=128``, access logs off), and a bare
uvicorn+starlette app doing the same work in one process (the ceiling).

Load comes from ``wrk`` when it is installed (``apt-get install wrk``),
else from a small asyncio load generator in its own process; it targets
127.0.0.1 only and every run is bounded by ``BENCH_SECONDS`` (default 5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
DURATION = float(os.environ.get("BENCH_SECONDS", "5"))
CONNECTIONS = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


# -- load generation ---------------------------------------------------------------


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"cannot read a wrk latency from {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def run_wrk(url: str, connections: int, duration: float) -> dict[str, float]:
    """req/s, p50 and p99 (ms) from wrk."""
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    ).stdout
    try:
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
        p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    except (AttributeError, ValueError) as e:
        raise RuntimeError(f"cannot read wrk's output ({e}):\n{out}") from None
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses under load:\n{out}")
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99}


async def _pyload(host: str, port: int, path: str, connections: int, duration: float) -> dict[str, float]:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    stop = time.perf_counter() + duration

    async def conn() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"error response: {head[:60]!r}")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(conn() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def load(url: str, connections: int = CONNECTIONS, duration: float = DURATION) -> dict[str, float]:
    """Drive ``url`` with ``connections`` keep-alive connections for ``duration`` seconds."""
    if shutil.which("wrk"):
        run_wrk(url, connections, 1.0)  # warm up
        return run_wrk(url, connections, duration)
    out = subprocess.run(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--loadgen",
            url,
            "--connections",
            str(connections),
            "--duration",
            str(duration),
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def loadgen_main(url: str, connections: int, duration: float) -> None:
    m = re.match(r"http://([^:/]+):(\d+)(/.*)?", url)
    assert m is not None and m.group(1) in ("127.0.0.1", "localhost"), "load goes to 127.0.0.1 only"
    host, port, path = m.group(1), int(m.group(2)), m.group(3) or "/"
    asyncio.run(_pyload(host, port, path, connections, 1.0))
    print(json.dumps(asyncio.run(_pyload(host, port, path, connections, duration))))


def http_cases(url: str, compose_url: str) -> dict[str, float]:
    r = load(url)
    seq = load(url, connections=1, duration=min(DURATION, 3.0))
    comp = load(compose_url)
    return {
        "http_rps": r["rps"],
        "http_p50_ms": r["p50_ms"],
        "http_p99_ms": r["p99_ms"],
        "seq_p50_ms": seq["p50_ms"],
        "compose_rps": comp["rps"],
        "compose_p99_ms": comp["p99_ms"],
    }


def handle_cases(handle: Any, duration: float) -> dict[str, float]:
    handle.remote().result()
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < duration:
        handle.remote().result()
        n += 1
    seq = n / (time.perf_counter() - start)

    async def concurrent() -> float:
        done = 0
        stop = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await handle.remote()
                done += 1

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return done / (time.perf_counter() - t)

    return {"handle_seq_per_s": seq, "handle_conc_per_s": asyncio.run(concurrent())}


# -- engines (each runs in its own subprocess) -----------------------------------------


def engine_serve(kind: str, best: bool) -> dict[str, float]:
    """shoal.serve or Ray Serve (same code: the APIs match)."""
    if kind == "shoal":
        import shoal as runtime
        from shoal import serve

        runtime.init(num_cpus=2)
    else:
        import ray as runtime  # type: ignore[no-redef]
        from ray import serve  # type: ignore[no-redef]

        runtime.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": 0}}
    if best:
        options["max_ongoing_requests"] = 128
        options["logging_config"] = {"enable_access_log": False}

    @serve.deployment(**options)
    class Hello:
        def __call__(self, request: Any = None) -> str:
            return "hello"

    @serve.deployment(**options)
    class Model:
        def __call__(self, x: str) -> str:
            return x.upper()

    @serve.deployment(**options)
    class Ingress:
        def __init__(self, model: Any) -> None:
            self.model = model

        async def __call__(self, request: Any) -> str:
            return await self.model.remote("hello")

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    t = time.perf_counter()
    handle = serve.run(Hello.bind(), name="hello", route_prefix="/hello")
    wait_http(f"http://127.0.0.1:{port}/hello")
    run_to_ready = time.perf_counter() - t
    serve.run(Ingress.bind(Model.bind()), name="compose", route_prefix="/compose")
    results = http_cases(f"http://127.0.0.1:{port}/hello", f"http://127.0.0.1:{port}/compose")
    results.update(handle_cases(handle, min(DURATION, 3.0)))
    results["run_to_ready_s"] = run_to_ready
    serve.shutdown()
    runtime.shutdown()
    return results


BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


def model(x):
    return x.upper()


async def hello(request):
    return PlainTextResponse("hello")


async def compose(request):
    return PlainTextResponse(model("hello"))


app = Starlette(routes=[Route("/hello", hello), Route("/compose", compose)])
"""


def engine_bare() -> dict[str, float]:
    """A bare uvicorn+starlette app doing the same work in one process: the ceiling."""
    import tempfile

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "bare_app.py"), "w") as f:
            f.write(BARE_APP)
        t = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=tmp,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/hello")
            ready = time.perf_counter() - t
            results = http_cases(f"http://127.0.0.1:{port}/hello", f"http://127.0.0.1:{port}/compose")
            results["run_to_ready_s"] = ready
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return results


def run_engine(name: str) -> dict[str, float]:
    if name == "bare":
        return engine_bare()
    kind, _, config = name.partition("-")
    return engine_serve(kind, best=config == "best")


def run_in_subprocess(name: str, python: str) -> dict[str, float]:
    out = subprocess.run(
        [python, os.path.abspath(__file__), "--engine", name],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": HERE, "RAY_DEDUP_LOGS": "0"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} benchmark failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


ROWS = [
    # key, label, higher is better, target
    ("http_rps", "HTTP req/s, 32 connections", True, ">= 3x ray-best, >= bare/2"),
    ("http_p50_ms", "HTTP p50 (ms), 32 connections", False, ""),
    ("http_p99_ms", "HTTP p99 (ms), 32 connections", False, "<= ray-best"),
    ("seq_p50_ms", "HTTP p50 (ms), sequential", False, ""),
    ("handle_seq_per_s", "handle calls/s, sequential", True, ">= 3x ray-best"),
    ("handle_conc_per_s", "handle calls/s, 32 in flight", True, ">= 3x ray-best"),
    ("compose_rps", "2-deployment composition req/s", True, ""),
    ("compose_p99_ms", "composition p99 (ms)", False, ""),
    ("run_to_ready_s", "serve.run to first answer (s)", False, ""),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ray-python", default=os.environ.get("RAY_PYTHON", ""), help="a Python with ray[serve]")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=DURATION, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds; the best value of each is kept")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(args.loadgen, args.connections, args.duration)
        return
    if args.engine:
        print(json.dumps(run_engine(args.engine)))
        return

    sys.path.insert(0, HERE)
    from _report import print_table, save_results

    engines = [("shoal-default", sys.executable), ("shoal-best", sys.executable)]
    if args.ray_python:
        engines += [("ray-default", args.ray_python), ("ray-best", args.ray_python)]
    engines.append(("bare", sys.executable))
    # Other work on a shared machine makes single runs noisy: engines run in
    # interleaved rounds and each keeps its best value per metric.
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in engines}
    for round_no in range(args.repeat):
        for name, python in engines:
            print(f"round {round_no + 1}/{args.repeat}: {name} ...", file=sys.stderr, flush=True)
            runs[name].append(run_in_subprocess(name, python))
    higher = {key: better for key, _, better, _ in ROWS}
    results = {
        name: {key: (max if higher.get(key, True) else min)(r[key] for r in rs) for key in rs[0]}
        for name, rs in runs.items()
    }
    load_tool = "wrk" if shutil.which("wrk") else "python asyncio load generator"
    print(
        f"\nload: {load_tool}, {CONNECTIONS} connections, {DURATION:g} s per case, 127.0.0.1, "
        f"best of {args.repeat} interleaved rounds"
    )
    # print_table compares the engine named "shoal" with every other one.
    for ours in ("shoal-default", "shoal-best"):
        table = {"shoal": results[ours], **{k: v for k, v in results.items() if not k.startswith("shoal")}}
        print_table(f"serve: {ours} vs the others", ROWS, table)
    save_results("serve", {"results": results, "runs": runs, "load": load_tool}, args.json)


if __name__ == "__main__":
    main()
