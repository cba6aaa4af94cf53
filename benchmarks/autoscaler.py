"""shoal.autoscaler benchmark: one decision at scale, and a burst scaled up and down.

Deterministic: virtual time, a simulated provider, a fixed random seed.

1. Decision time: a cluster of 1,000 nodes of 10 types and 100,000 pending
   demands (tasks, actors and placement groups of 14 shapes); times one full
   autoscaler decision (reconcile, aggregate, bin-pack, choose types, decide
   launches and idle terminations). Target: under 1 s.
2. Burst: 5,000 tasks arrive at once on a cluster with only its head; the
   autoscaler scales up (never more pending nodes than upscaling_speed
   allows) and back down to min_workers after the idle timeout. The peak is
   compared with packing the whole burst at once beside the head and the
   min_workers node: the autoscaler must never hold more workers than that
   (it holds at most as many for seeds 1-5).

Run: python benchmarks/autoscaler.py [--quick]
(``--ray-python`` is accepted and ignored: Ray's autoscaler has no equivalent
in-process simulation to run side by side.)
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from shoal.autoscaler import (
    Autoscaler,
    InMemoryClusterState,
    PlacementGroupDemand,
    ResourceDemand,
    validate_cluster_config,
)
from shoal.autoscaler._planner import PlanInput, PlanNode, TypeSpec, plan
from shoal.autoscaler.events import Observed
from shoal.autoscaler.node_provider import NODE_KIND_HEAD, TAG_NODE_KIND
from shoal.autoscaler.simulation import SimulatedProvider, Simulator, VirtualClock

GiB = 2**30
TYPES = {
    "cpu2": {"CPU": 2, "memory": 8 * GiB},
    "cpu4": {"CPU": 4, "memory": 16 * GiB},
    "cpu8": {"CPU": 8, "memory": 32 * GiB},
    "cpu16": {"CPU": 16, "memory": 64 * GiB},
    "cpu32": {"CPU": 32, "memory": 128 * GiB},
    "mem16": {"CPU": 16, "memory": 256 * GiB},
    "cpu64": {"CPU": 64, "memory": 256 * GiB},
    "gpu1": {"CPU": 8, "GPU": 1, "memory": 64 * GiB},
    "gpu4": {"CPU": 32, "GPU": 4, "memory": 256 * GiB},
    "gpu8": {"CPU": 64, "GPU": 8, "memory": 512 * GiB},
}
SHAPES = [
    {"CPU": 0.5},
    {"CPU": 1},
    {"CPU": 2},
    {"CPU": 4},
    {"CPU": 8},
    {"CPU": 1, "memory": 4 * GiB},
    {"CPU": 2, "memory": 32 * GiB},
    {"CPU": 4, "memory": 64 * GiB},
    {"CPU": 1, "GPU": 1},
    {"CPU": 4, "GPU": 1},
    {"CPU": 8, "GPU": 2},
    {"CPU": 16, "GPU": 4},
]


def config(max_per_type: int, idle_minutes: float = 5, speed: float = 1.0, min_workers: int = 0):
    types = {name: {"resources": res, "max_workers": max_per_type} for name, res in TYPES.items()}
    types["cpu4"]["min_workers"] = min_workers
    types["head"] = {"resources": {"CPU": 8, "memory": 32 * GiB}, "max_workers": 0}
    return validate_cluster_config(
        {
            "cluster_name": "bench",
            "provider": {"type": "local", "command": ["true"]},
            "head_node_type": "head",
            "max_workers": max_per_type * len(TYPES),
            "upscaling_speed": speed,
            "idle_timeout_minutes": idle_minutes,
            "available_node_types": types,
        }
    )


def decision_benchmark(repeats: int) -> list[tuple[str, str]]:
    rng = random.Random(0)
    cfg = config(max_per_type=400)
    clock = VirtualClock(10_000.0)
    provider = SimulatedProvider(cluster_name="bench", clock=clock)
    cluster = InMemoryClusterState(clock=clock)
    (head,) = provider.create_nodes("head", {}, {TAG_NODE_KIND: NODE_KIND_HEAD}, 1)
    cluster.add_node(head, cfg.head_type.resources, "head")
    names = list(TYPES)
    for i in range(1000):
        t = names[i % 10]
        (nid,) = provider.create_nodes(t, {}, {}, 1)
        cluster.add_node(nid, TYPES[t], t)
        if i % 4:  # three in four nodes are partly busy
            cluster.try_allocate(nid, {"CPU": TYPES[t]["CPU"] / 2})
    demands: list = [
        ResourceDemand(rng.choice(SHAPES), kind=rng.choice(("task", "task", "actor"))) for _ in range(99_000)
    ]
    demands += [
        PlacementGroupDemand(({"CPU": 2}, {"CPU": 2}), strategy=rng.choice(("PACK", "SPREAD", "STRICT_PACK")))
        for _ in range(990)
    ]
    demands += [PlacementGroupDemand(({"CPU": 1, "GPU": 1},) * 2, strategy="STRICT_SPREAD") for _ in range(10)]
    cluster.set_demands(demands)
    nodes, load = provider.non_terminated_nodes(), cluster.read_load()

    first, steady = [], []
    for _ in range(repeats):
        machine = Autoscaler(cfg)
        t0 = time.perf_counter()
        decisions = machine.handle(Observed(now=clock(), provider_nodes=nodes, load=load))
        first.append(time.perf_counter() - t0)
        clock.advance(5)
        t0 = time.perf_counter()
        machine.handle(Observed(now=clock(), provider_nodes=nodes, load=load))
        steady.append(time.perf_counter() - t0)
    launched = sum(getattr(d, "count", 0) for d in decisions)
    status = machine.status()
    unserved = sum(d.unserved for d in status.demand)

    # The planner alone, on the same input.
    types = [TypeSpec(n, r, 400) for n, r in TYPES.items()]
    plan_nodes = [PlanNode(n.node_id, n.node_type, False, n.total, n.available, n.idle_s) for n in load.nodes]
    inp = PlanInput(types, plan_nodes, {n: 100 for n in TYPES}, 4000, 1000, demands=demands)
    t0 = time.perf_counter()
    plan(inp)
    plan_s = time.perf_counter() - t0
    return [
        ("cluster", f"1,000 nodes of 10 types (+ head), {len(demands):,} pending demands, {len(status.demand)} shapes"),
        ("first decision (adopts 1,000 nodes)", f"{statistics.median(first) * 1000:.0f} ms (median of {repeats})"),
        ("steady-state decision", f"{statistics.median(steady) * 1000:.0f} ms (median of {repeats})"),
        ("planner alone (aggregate + pack + choose types)", f"{plan_s * 1000:.0f} ms"),
        (
            "decision",
            f"launch {launched} nodes (upscaling_speed limit {status.pending_limit}); {unserved:,} demands left pending, each with its reason",
        ),
        ("target", "< 1 s: " + ("met" if max(first + steady) < 1.0 else "MISSED")),
    ]


def burst_benchmark(tasks: int) -> list[tuple[str, str]]:
    rng = random.Random(1)
    cfg = config(max_per_type=200, idle_minutes=2, speed=1.0, min_workers=1)
    sim = Simulator(cfg, boot_delay_s=45, step_s=5)
    sim.tick()  # min_workers come up first
    sim.run_until(lambda s: s.workers() >= 1 and s.shell.status().pending_launches == 0, 300)
    # The burst: per shape, a block of tasks with one duration.
    counts: dict[int, int] = {}
    weights = [1 if "GPU" in shape else 6 for shape in SHAPES]  # mostly CPU work, some GPU
    for i in rng.choices(range(len(SHAPES)), weights=weights, k=tasks):
        counts[i] = counts.get(i, 0) + 1
    for i, n in sorted(counts.items()):
        sim.submit(SHAPES[i], duration_s=rng.choice((300, 600, 900)), count=n)
    # What the whole burst would need at once, with no speed limit (the overshoot bound):
    # the nodes already up (head, min_workers) plus what the planner launches beside them.
    up = [PlanNode(n.node_id, n.node_type, False, n.total, n.total, 0.0) for n in sim.cluster.read_load().nodes]
    ideal_plan = plan(
        PlanInput(
            [TypeSpec(n, r, 200) for n, r in TYPES.items()],
            up,
            {},
            2000,
            10**9,
            demands=[ResourceDemand(SHAPES[i], count=n) for i, n in counts.items()],
        )
    )
    ideal = len(up) - 1 + sum(c for _, c, _ in ideal_plan.launches)  # workers: all but the head
    start = sim.clock.now
    wall = []
    first_task = None
    while sim.completed < tasks and sim.clock.now - start < 6 * 3600:
        t0 = time.perf_counter()
        sim.tick()
        wall.append(time.perf_counter() - t0)
        if first_task is None and sim.running_tasks:
            first_task = sim.clock.now - start
    done = sim.clock.now - start
    sim.run_until(lambda s: s.idle(), 3600)
    back = sim.clock.now - start
    live = [sum(n for s, n in smp.workers_by_state.items() if s != "terminated") for smp in sim.samples]
    pending_ratio = max(
        (smp.workers_by_state.get("requested", 0) + smp.workers_by_state.get("launching", 0)) / smp.pending_limit
        for smp in sim.samples
    )
    peak = max(live)
    sim.close()
    return [
        ("burst", f"{tasks:,} tasks of {len(counts)} shapes at once; boot 45 s, step 5 s, upscaling_speed 1.0"),
        ("first task running after", f"{first_task:.0f} s"),
        ("all tasks done after", f"{done / 60:.1f} min"),
        ("back to min_workers after", f"{back / 60:.1f} min (idle timeout 2 min)"),
        (
            "peak workers vs. packing the whole burst at once",
            f"{peak} vs {ideal}" + (" (no overshoot)" if peak <= ideal else f" OVERSHOOT {peak / ideal:.2f}x"),
        ),
        (
            "max pending nodes / upscaling_speed limit",
            f"{pending_ratio:.2f}" + (" (never above)" if pending_ratio <= 1 else " EXCEEDED"),
        ),
        ("provider create calls", f"{sim.provider.create_calls}"),
        (
            "wall time per simulated step (decision + sim)",
            f"mean {statistics.mean(wall) * 1000:.1f} ms, max {max(wall) * 1000:.1f} ms",
        ),
    ]


def table(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"## {title}", "", f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a smaller burst")
    parser.add_argument("--ray-python", default=None, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    rows = decision_benchmark(repeats=1 if args.quick else 5)
    print(table("autoscaler: one decision at scale", rows))
    print()
    print(table("autoscaler: burst up and down (virtual time)", burst_benchmark(1_000 if args.quick else 5_000)))


if __name__ == "__main__":
    main()
