"""Multi-node benchmarks on one machine, side by side with Ray's ``cluster_utils.Cluster``.

    python benchmarks/cluster.py [--ray-python /opt/rayenv/bin/python] [--sim-nodes 500]

Cases: time to bring up a 3-node cluster, tasks/s and actor calls/s that
cross nodes, a 1 GB object moved between nodes (GB/s), and the time to
detect a killed node. A second part runs the head alone against N simulated
nodes heartbeating every second and reports its CPU share and memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _report import print_table, save_results  # noqa: E402


def run_shoal() -> dict[str, float]:
    import shoal
    from shoal.testing.cluster import Cluster

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    cluster = Cluster(node_timeout_s=2.0)
    cluster.add_node(num_cpus=1, object_store_memory=3 << 30)
    # The two worker nodes start together.
    threads = [
        threading.Thread(
            target=cluster.add_node,
            kwargs={"num_cpus": 1, "resources": {"far": 1}, "wait": False, "object_store_memory": 3 << 30},
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cluster.wait_for_nodes()
    out["cluster_up_s"] = time.perf_counter() - t0
    cluster.connect()
    try:
        out.update(_workload(shoal, head_resources=None))
        victim = cluster.nodes[-1]
        t = time.perf_counter()
        cluster.kill_node(victim)
        while any(n["node_id"] == victim.node_id and n["alive"] for n in cluster.list_all_nodes()):
            time.sleep(0.02)
        out["dead_node_detected_s"] = time.perf_counter() - t
    finally:
        cluster.shutdown()
    return out


def _workload(engine: Any, head_resources: Any) -> dict[str, float]:
    out: dict[str, float] = {}

    @engine.remote(resources={"far": 0.01})
    def far(x: Any = None) -> Any:
        return x

    @engine.remote(resources={"far": 0.5})
    class FarActor:
        def small(self, x: Any = None) -> Any:
            return x

    @engine.remote(resources={"far": 0.01})
    def size_of(a: Any) -> int:
        return int(a.nbytes)

    @engine.remote(resources={"far": 0.01})
    def make(n: int) -> Any:
        return np.ones(n, dtype=np.uint8)

    def best_rate(call: Any, n: int = 2000, rounds: int = 3) -> float:
        # Best of a few rounds: one round lasts well under a second on either engine.
        best = 0.0
        for _ in range(rounds):
            t = time.perf_counter()
            engine.get([call() for _ in range(n)])
            best = max(best, n / (time.perf_counter() - t))
        return best

    engine.get([far.remote() for _ in range(50)])
    out["cross_node_tasks_per_s"] = best_rate(far.remote)
    a = FarActor.remote()
    engine.get(a.small.remote())
    out["cross_node_actor_calls_per_s"] = best_rate(a.small.remote)
    t = time.perf_counter()
    for _ in range(200):
        engine.get(a.small.remote())
    out["cross_node_actor_calls_sync_per_s"] = 200 / (time.perf_counter() - t)
    big = np.ones(1 << 30, dtype=np.uint8)
    ref = engine.put(big)
    t = time.perf_counter()
    assert engine.get(size_of.remote(ref)) == big.nbytes
    out["transfer_1gb_to_node_gbps"] = big.nbytes / (time.perf_counter() - t) / 1e9
    del ref, big
    t = time.perf_counter()
    got = engine.get(make.remote(1 << 30))
    out["transfer_1gb_from_node_gbps"] = got.nbytes / (time.perf_counter() - t) / 1e9
    del got
    return out


def run_ray() -> dict[str, float]:
    import ray
    from ray.cluster_utils import Cluster

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "object_store_memory": 3 << 30},
    )
    victim = None
    for _ in range(2):
        victim = cluster.add_node(num_cpus=1, resources={"far": 1}, object_store_memory=3 << 30)
    cluster.wait_for_nodes()
    out["cluster_up_s"] = time.perf_counter() - t0
    ray.init(address=cluster.address)
    try:
        out.update(_workload(ray, None))
        t = time.perf_counter()
        cluster.remove_node(victim, allow_graceful=False)
        while any(n["NodeID"] == victim.node_id and n["Alive"] for n in ray.nodes()):
            time.sleep(0.05)
        out["dead_node_detected_s"] = time.perf_counter() - t
    finally:
        ray.shutdown()
        cluster.shutdown()
    return out


# -- the head under many simulated nodes ---------------------------------------


def simulate_head(num_nodes: int, seconds: float) -> dict[str, float]:
    """A head serving ``num_nodes`` fake nodes that heartbeat once a second."""
    import tempfile
    from pathlib import Path

    import psutil

    from shoal._cluster.auth import read_token
    from shoal._cluster.client import HeadClient
    from shoal._cluster.proto import cluster_pb2 as pb

    tmp = Path(tempfile.mkdtemp(prefix="shoal-sim-"))
    ready = tmp / "ready.json"
    token_path = tmp / "token"
    head = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shoal._cluster.agent",
            "--head",
            "--port",
            "0",
            "--num-cpus",
            "1",
            "--ready-file",
            str(ready),
            "--token-path",
            str(token_path),
            "--temp-dir",
            str(tmp / "t"),
            "--node-timeout",
            "10",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not ready.exists():
            time.sleep(0.05)
        address = json.loads(ready.read_text())["address"]
        token = read_token(token_path)
        clients = [HeadClient(address, token) for _ in range(8)]
        nodes = []
        for i in range(num_nodes):
            node_id = f"sim{i:05d}".ljust(32, "0")
            info = pb.NodeInfo(
                node_id=node_id, address=f"10.0.{i // 250}.{i % 250}:1", total={"CPU": 8.0}, hostname=f"sim{i}"
            )
            clients[i % len(clients)].register(info)
            nodes.append(node_id)
        proc = psutil.Process(head.pid)
        proc.cpu_percent(None)
        stop = time.time() + seconds
        beats = 0

        def beat(client: Any, mine: list[str]) -> None:
            nonlocal beats
            while time.time() < stop:
                start = time.time()
                for node_id in mine:
                    client.heartbeat(node_id, {"CPU": 4.0}, [])
                    beats += 1
                time.sleep(max(0.0, 1.0 - (time.time() - start)))

        threads = [threading.Thread(target=beat, args=(c, nodes[i :: len(clients)])) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu = proc.cpu_percent(None)
        rss = proc.memory_info().rss / 1e6
        alive = sum(1 for n in clients[0].cluster_info().nodes if n.alive)
        return {
            "sim_nodes": float(num_nodes),
            "sim_heartbeats_per_s": beats / seconds,
            "head_cpu_percent": cpu,
            "head_rss_mb": rss,
            "sim_nodes_alive_at_end": float(alive),
        }
    finally:
        head.terminate()
        head.wait(timeout=10)


ROWS = [
    ("cluster_up_s", "3-node cluster up (s)", False, "< 2 s"),
    ("cross_node_tasks_per_s", "tasks across nodes (/s)", True, ">= 3x Ray"),
    ("cross_node_actor_calls_per_s", "actor calls across nodes, async (/s)", True, ">= 3x Ray"),
    ("cross_node_actor_calls_sync_per_s", "actor calls across nodes, sync (/s)", True, ""),
    ("transfer_1gb_to_node_gbps", "1 GB object to another node (GB/s)", True, ""),
    ("transfer_1gb_from_node_gbps", "1 GB object from another node (GB/s)", True, ""),
    ("dead_node_detected_s", "killed node declared dead (s)", False, "< 5 s"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ray-python", default=os.environ.get("RAY_PYTHON", ""))
    parser.add_argument("--engine", choices=["shoal", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--sim-nodes", type=int, default=500)
    parser.add_argument("--sim-seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_shoal() if args.engine == "shoal" else run_ray()))
        return
    results = {}
    engines = [("shoal", sys.executable)] + ([("ray", args.ray_python)] if args.ray_python else [])
    for name, python in engines:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            [python, os.path.abspath(__file__), "--engine", name], capture_output=True, text=True, timeout=1800
        )
        if out.returncode != 0:
            print(f"{name} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
            continue
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print_table("cluster (3 nodes on one machine)", ROWS, results)
    sim = simulate_head(args.sim_nodes, args.sim_seconds)
    print(
        f"\nhead with {sim['sim_nodes']:.0f} simulated nodes at 1 heartbeat/s each: "
        f"{sim['sim_heartbeats_per_s']:.0f} heartbeats/s served, head CPU {sim['head_cpu_percent']:.0f}% of one core, "
        f"RSS {sim['head_rss_mb']:.0f} MB, {sim['sim_nodes_alive_at_end']:.0f} nodes alive at the end"
    )
    save_results("cluster", {"results": results, "simulation": sim})


if __name__ == "__main__":
    main()
