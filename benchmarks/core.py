"""Core microbenchmarks, side by side with Ray when a Ray interpreter is given.

    python benchmarks/core.py                              # shoal only
    python benchmarks/core.py --ray-python /opt/rayenv/bin/python

The cases follow ``ray microbenchmark``: task and actor-call round trips
(sync and async), async-actor calls, put/get calls, large-object put and get
bandwidth, wait on 1,000 refs, init to first result, shutdown, and the idle
memory of every runtime process. The physical ceilings of this machine (a
``multiprocessing.Pipe`` round trip, memcpy bandwidth) are measured in the
same run. Each engine runs in its own subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _report import print_table, save_results  # noqa: E402

DURATION = float(os.environ.get("BENCH_SECONDS", "2.0"))


def timed_rate(fn: Callable[[], int], duration: float = DURATION) -> float:
    """Operations per second of ``fn`` (which returns how many it did), over ``duration``."""
    fn()  # warm up
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < duration:
        done += fn()
    return done / (time.perf_counter() - start)


# -- ceilings ---------------------------------------------------------------------


def _pipe_child(conn: Any) -> None:
    while True:
        msg = conn.recv_bytes()
        if msg == b"q":
            return
        conn.send_bytes(msg)


def pipe_round_trips() -> float:
    import multiprocessing as mp

    a, b = mp.Pipe()
    p = mp.get_context("fork").Process(target=_pipe_child, args=(b,))
    p.start()

    def batch() -> int:
        for _ in range(1000):
            a.send_bytes(b"x" * 32)
            a.recv_bytes()
        return 1000

    rate = timed_rate(batch, 1.0)
    a.send_bytes(b"q")
    p.join()
    return rate


def memcpy_gbps() -> float:
    src = np.ones(256 << 20, dtype=np.uint8)
    dst = np.empty_like(src)
    dst[:] = src
    start = time.perf_counter()
    for _ in range(4):
        dst[:] = src
    return 4 * src.nbytes / (time.perf_counter() - start) / 1e9


# -- engine cases -------------------------------------------------------------------


def run_engine(name: str) -> dict[str, float]:
    if name == "ray":
        import ray as engine
    else:
        import shoal as engine

    results: dict[str, float] = {}

    @engine.remote
    def small(x: Any = None) -> Any:
        return x

    @engine.remote
    class Actor:
        def small(self, x: Any = None) -> Any:
            return x

    @engine.remote
    class AsyncActor:
        async def small(self, x: Any = None) -> Any:
            return x

    @engine.remote(num_cpus=0)
    class Client:
        def __init__(self, server: Any) -> None:
            self.server = server

        def run(self, n: int) -> int:
            engine.get([self.server.small.remote() for _ in range(n)])
            return n

    t0 = time.perf_counter()
    engine.init(num_cpus=2, **({"include_dashboard": False} if name == "ray" else {}))
    engine.get(small.remote(1))
    results["init_to_first_result_s"] = time.perf_counter() - t0
    time.sleep(1.0)  # let prestarted workers settle

    def tasks_sync() -> int:
        for _ in range(100):
            engine.get(small.remote())
        return 100

    results["tasks_sync_per_s"] = timed_rate(tasks_sync)

    def tasks_async() -> int:
        engine.get([small.remote() for _ in range(1000)])
        return 1000

    results["tasks_async_per_s"] = timed_rate(tasks_async)

    a = Actor.remote()
    engine.get(a.small.remote())

    def actor_sync() -> int:
        for _ in range(100):
            engine.get(a.small.remote())
        return 100

    results["actor_calls_sync_per_s"] = timed_rate(actor_sync)

    def actor_async() -> int:
        engine.get([a.small.remote() for _ in range(1000)])
        return 1000

    results["actor_calls_async_per_s"] = timed_rate(actor_async)

    aa = AsyncActor.remote()
    engine.get(aa.small.remote())

    def async_actor() -> int:
        engine.get([aa.small.remote() for _ in range(1000)])
        return 1000

    results["async_actor_calls_per_s"] = timed_rate(async_actor)

    servers = [Actor.remote() for _ in range(2)]
    clients = [Client.remote(s) for s in servers]
    engine.get([c.run.remote(10) for c in clients])

    def n_to_n() -> int:
        return sum(engine.get([c.run.remote(500) for c in clients]))

    results["n_n_actor_calls_async_per_s"] = timed_rate(n_to_n)
    clients = servers = []  # release the actors

    def puts() -> int:
        for _ in range(1000):
            engine.put(0)
        return 1000

    results["put_calls_per_s"] = timed_rate(puts)
    ref = engine.put(0)

    def gets() -> int:
        for _ in range(1000):
            engine.get(ref)
        return 1000

    results["get_calls_per_s"] = timed_rate(gets)

    big = np.ones(1 << 30, dtype=np.uint8)  # 1 GiB
    engine.get(engine.put(big))

    def put_big() -> int:
        engine.put(big)
        return 1

    results["put_gbps"] = timed_rate(put_big, 3.0) * big.nbytes / 1e9
    big_ref = engine.put(big)
    engine.get(big_ref)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        engine.get(big_ref)
        times.append(time.perf_counter() - t)
    results["get_1gb_ms"] = min(times) * 1e3
    big_ref = big = None  # release the memory

    refs = [engine.put(i) for i in range(1000)]

    def wait_1000() -> int:
        engine.wait(refs, num_returns=len(refs))
        return 1

    results["wait_1000_refs_per_s"] = timed_rate(wait_1000, 1.0)
    refs = []

    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    pss = 0
    for p in procs:
        try:
            pss += p.memory_full_info().pss
        except psutil.Error:
            pass
    results["runtime_memory_pss_mb"] = pss / 1e6

    t = time.perf_counter()
    engine.shutdown()
    results["shutdown_s"] = time.perf_counter() - t
    return results


def idle_memory(name: str) -> float:
    """PSS of the driver and all runtime processes right after init(num_cpus=2), in MB."""
    code = f"""
import time, psutil
import {"ray" if name == "ray" else "shoal"} as engine
engine.init(num_cpus=2{", include_dashboard=False" if name == "ray" else ""})
time.sleep(3)
me = psutil.Process()
total = 0
for p in [me, *me.children(recursive=True)]:
    try:
        total += p.memory_full_info().pss
    except psutil.Error:
        pass
print(total / 1e6)
engine.shutdown()
"""
    return float(_run_python(sys.executable if name == "shoal" else RAY_PYTHON, code).strip().splitlines()[-1])


def cold_start(name: str) -> float:
    """Seconds from a fresh interpreter to the first task result, import included."""
    module = "ray" if name == "ray" else "shoal"
    extra = ", include_dashboard=False" if name == "ray" else ""
    code = f"""
import time
t0 = time.perf_counter()
import {module} as engine
engine.init(num_cpus=2{extra})
@engine.remote
def f():
    return 1
engine.get(f.remote())
print(time.perf_counter() - t0)
engine.shutdown()
"""
    return float(_run_python(sys.executable if name == "shoal" else RAY_PYTHON, code).strip().splitlines()[-1])


RAY_PYTHON = ""


def _run_python(python: str, code: str) -> str:
    env = dict(os.environ)
    env.setdefault("RAY_DEDUP_LOGS", "0")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def run_in_subprocess(name: str, python: str) -> dict[str, float]:
    out = subprocess.run(
        [python, os.path.abspath(__file__), "--engine", name],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHONPATH": HERE},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} benchmark failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


ROWS = [
    # key, label, higher is better, target description
    ("tasks_sync_per_s", "tasks sync (round trips/s)", True, ">= 10x Ray"),
    ("tasks_async_per_s", "tasks async (/s)", True, ">= 5x Ray"),
    ("actor_calls_sync_per_s", "1:1 actor calls sync (/s)", True, ">= 10x Ray"),
    ("actor_calls_async_per_s", "1:1 actor calls async (/s)", True, ">= 5x Ray"),
    ("async_actor_calls_per_s", "1:1 async-actor calls (/s)", True, ">= 5x Ray"),
    ("n_n_actor_calls_async_per_s", "n:n actor calls async (/s)", True, ">= 5x Ray"),
    ("put_calls_per_s", "put calls (/s)", True, ">= 3x Ray"),
    ("get_calls_per_s", "get calls (/s)", True, ">= 3x Ray"),
    ("put_gbps", "put 1 GiB array (GB/s)", True, ">= memcpy/2"),
    ("get_1gb_ms", "get 1 GiB array (ms)", False, "< 5 ms"),
    ("wait_1000_refs_per_s", "wait on 1,000 refs (/s)", True, ""),
    ("cold_start_s", "import+init to first result (s)", False, "< 0.5 s"),
    ("init_to_first_result_s", "init to first result, warm import (s)", False, "< 0.5 s"),
    ("shutdown_s", "shutdown (s)", False, ""),
    ("idle_memory_pss_mb", "idle memory after init, all processes (MB PSS)", False, "< 200 MB"),
]


def main() -> None:
    global RAY_PYTHON
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ray-python", default=os.environ.get("RAY_PYTHON", ""), help="a Python with ray installed")
    parser.add_argument("--engine", choices=["shoal", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine)))
        return
    RAY_PYTHON = args.ray_python
    ceilings = {"pipe_round_trips_per_s": pipe_round_trips(), "memcpy_gbps": memcpy_gbps()}
    results: dict[str, dict[str, float]] = {}
    engines = [("shoal", sys.executable)]
    if RAY_PYTHON:
        engines.append(("ray", RAY_PYTHON))
    for name, python in engines:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        r = run_in_subprocess(name, python)
        r["cold_start_s"] = cold_start(name)
        r["idle_memory_pss_mb"] = idle_memory(name)
        results[name] = r
    print(
        f"\nphysical ceilings: Pipe round trip {ceilings['pipe_round_trips_per_s']:,.0f}/s, "
        f"memcpy {ceilings['memcpy_gbps']:.1f} GB/s"
    )
    print_table("core", ROWS, results)
    save_results("core", {"ceilings": ceilings, "results": results}, args.json)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
