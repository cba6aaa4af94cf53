"""shoal.train benchmark: 2-worker DDP on CPU, side by side with Ray Train and hand-launched DDP.

    python benchmarks/train.py                                  # shoal and torch.multiprocessing
    python benchmarks/train.py --ray-python /opt/rayenv/bin/python

Every engine runs the same training code (a small MLP on synthetic data, gloo,
2 workers with one torch thread each, 200 steps) in its own subprocess:

- ``shoal``: ``shoal.train.torch.TorchTrainer``;
- ``ray``: ``ray.train.torch.TorchTrainer`` (torch is borrowed from this
  interpreter's site-packages when the Ray interpreter lacks it);
- ``hand``: ``torch.multiprocessing.spawn`` with ``init_process_group`` by hand.

Measured: time to first step (from the start of the launch, framework init
included, to the end of the first optimizer step on rank 0) and steady-state
steps/s (steps 20..200 on rank 0) with one ``report()`` at the end; and
steady-state steps/s when ``report()`` is called after every step (Ray: one
40-step run, since its controller takes each report only every 2 s). Each
engine runs ``--repeat`` times, interleaved with the others; the best run counts. Torch is imported in the parent before
the clock starts, as a training script would.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _report import print_table, save_results  # noqa: E402

STEPS = int(os.environ.get("BENCH_TRAIN_STEPS", "200"))
# Ray Train holds each report until its controller polls (every 2 s by default), so
# its report-every-step run is cut to this many steps (200 would take minutes).
RAY_EACH_STEPS = 40
WARMUP = 20
WORKERS = 2


# -- the training code every engine runs ------------------------------------------------


def run_steps(rank: int, config: dict[str, Any], report: Any) -> dict[str, float]:
    """Train the MLP with DDP for config['steps'] steps; torch.distributed must be initialised."""
    import torch
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = DistributedDataParallel(
        nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(rank)
    batches = [(torch.randn(64, 256, generator=gen), torch.randint(0, 10, (64,), generator=gen)) for _ in range(8)]
    every = config["report_every"]
    t_first = t_warm = 0.0
    for step in range(config["steps"]):
        x, y = batches[step % len(batches)]
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if step == 0:
            t_first = time.time()
        elif step == WARMUP:
            t_warm = time.time()
        if every and (step + 1) % every == 0:
            report({"step": step, "loss": float(loss.item())})
    t_end = time.time()
    return {
        "first_step_at": t_first,
        "steps_per_s": (config["steps"] - 1 - WARMUP) / (t_end - t_warm),
    }


def shoal_loop(config: dict[str, Any]) -> dict[str, float]:
    from shoal import train

    out = run_steps(train.get_context().get_world_rank(), config, train.report)
    train.report(out)
    return out


def ray_loop(config: dict[str, Any]) -> dict[str, float]:
    import ray.train

    out = run_steps(ray.train.get_context().get_world_rank(), config, ray.train.report)
    ray.train.report(out)
    # Ray Train V2 fills Result.metrics only from reports that carry a checkpoint.
    return out


def _hand_worker(rank: int, port: int, config: dict[str, Any], queue: Any) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORKERS)
    out = run_steps(rank, config, lambda metrics: None)
    if rank == 0:
        queue.put(out)
    dist.destroy_process_group()


# -- engines --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_engine(engine: str, report_every: int) -> dict[str, float]:
    import torch  # noqa: F401 - a training script has torch loaded before it launches workers

    steps = RAY_EACH_STEPS if engine == "ray" and report_every else STEPS
    config = {"steps": steps, "report_every": report_every}
    storage = tempfile.mkdtemp(prefix="bench_train_")
    if engine == "hand":
        import torch.multiprocessing as mp

        ctx = mp.get_context("spawn")
        queue = ctx.SimpleQueue()
        t0 = time.time()
        mp.spawn(_hand_worker, args=(_free_port(), config, queue), nprocs=WORKERS, join=True)
        out = queue.get()
    elif engine == "shoal":
        import shoal
        from shoal import train
        from shoal.train.torch import TorchTrainer

        t0 = time.time()
        shoal.init(num_cpus=WORKERS)
        trainer = TorchTrainer(
            shoal_loop,
            train_loop_config=config,
            scaling_config=train.ScalingConfig(num_workers=WORKERS),
            run_config=train.RunConfig(name="bench", storage_path=storage),
        )
        out = trainer.fit().return_value
        shoal.shutdown()
    else:
        import ray
        import ray.train
        from ray.train.torch import TorchTrainer as RayTorchTrainer

        t0 = time.time()
        ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
        trainer = RayTorchTrainer(
            ray_loop,
            train_loop_config=config,
            scaling_config=ray.train.ScalingConfig(num_workers=WORKERS),
            run_config=ray.train.RunConfig(name="bench", storage_path=storage),
        )
        out = trainer.fit().return_value
        ray.shutdown()
    return {"first_step_s": out["first_step_at"] - t0, "steps_per_s": out["steps_per_s"]}


def _torch_path_for(python: str) -> str | None:
    """A directory exposing this interpreter's torch (and its pure-Python deps) to ``python``."""
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        return None
    import torch

    site = os.path.dirname(os.path.dirname(torch.__file__))
    link_dir = tempfile.mkdtemp(prefix="bench_torch_path_")
    for name in ("torch", "torchgen", "functorch", "sympy", "mpmath", "networkx"):
        if os.path.exists(os.path.join(site, name)):
            os.symlink(os.path.join(site, name), os.path.join(link_dir, name))
    return link_dir


def run_in_subprocess(engine: str, python: str, report_every: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": HERE, "RAY_TRAIN_ENABLE_STATE_TRACKING": "0"}
    if engine == "ray":
        extra = _torch_path_for(python)
        if extra:
            env["PYTHONPATH"] = os.pathsep.join([HERE, extra])
    out = subprocess.run(
        [python, os.path.abspath(__file__), "--engine", engine, "--report-every", str(report_every)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{engine} benchmark failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


ROWS = [
    ("first_step_s", "time to first step (s)", False, "< Ray/3, < hand + 1 s"),
    ("steps_per_s", "steady steps/s, report at end", True, ">= 0.95x hand"),
    ("steps_per_s_report_each", "steady steps/s, report() every step", True, ""),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ray-python", default=os.environ.get("RAY_PYTHON", ""), help="a Python with ray installed")
    parser.add_argument("--engine", choices=["shoal", "ray", "hand"], help=argparse.SUPPRESS)
    parser.add_argument("--report-every", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine; the best is kept")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.report_every)))
        return
    engines = [("shoal", sys.executable), ("hand", sys.executable)]
    if args.ray_python:
        engines.append(("ray", args.ray_python))
    results: dict[str, dict[str, float]] = {}
    runs: dict[str, list[dict[str, float]]] = {}
    # Engines alternate within each round so that noise from other load hits them alike.
    for round_ in range(args.repeat):
        for name, python in engines:
            print(f"round {round_ + 1}: {name} ...", file=sys.stderr, flush=True)
            r = run_in_subprocess(name, python, 0)
            if name == "shoal" or (name == "ray" and round_ == 0):
                r["steps_per_s_report_each"] = run_in_subprocess(name, python, 1)["steps_per_s"]
            runs.setdefault(name, []).append(r)
    for name, rs in runs.items():
        results[name] = {
            "first_step_s": min(r["first_step_s"] for r in rs),
            "steps_per_s": max(r["steps_per_s"] for r in rs),
        }
        each = [r["steps_per_s_report_each"] for r in rs if "steps_per_s_report_each" in r]
        if each:
            results[name]["steps_per_s_report_each"] = max(each)
    print_table("train: 2-worker DDP MLP on CPU, 200 steps", ROWS, results)
    save_results("train", {"results": results, "runs": runs, "steps": STEPS}, args.json)


if __name__ == "__main__":
    main()
