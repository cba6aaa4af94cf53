"""shoal.train on one GPU: TorchTrainer with use_gpu=True (nccl), num_workers=1, against plain PyTorch.

    python benchmarks/train_gpu.py            # on a machine with a CUDA GPU

Runs an MLP (4096 -> 4096 x 3 -> 1000, batch 512, bf16 autocast) for 300 steps
inside a shoal.train worker, then the same loop in a plain process on the same
GPU, and prints time to first step and steady-state steps/s of both. Without a
CUDA GPU it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = int(os.environ.get("BENCH_TRAIN_GPU_STEPS", "300"))
WARMUP = 30


def gpu_steps(config: dict[str, Any], wrap: Any) -> dict[str, float]:
    """Train on cuda; ``wrap`` prepares the model (prepare_model under shoal, identity otherwise)."""
    import torch
    from torch import nn

    device = torch.device("cuda", torch.cuda.current_device())
    torch.manual_seed(0)
    model = wrap(
        nn.Sequential(
            nn.Linear(4096, 4096),
            nn.GELU(),
            nn.Linear(4096, 4096),
            nn.GELU(),
            nn.Linear(4096, 4096),
            nn.GELU(),
            nn.Linear(4096, 1000),
        ).to(device)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(512, 4096, device=device)
    y = torch.randint(0, 1000, (512,), device=device)
    t_first = t_warm = 0.0
    for step in range(config["steps"]):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if step == 0:
            torch.cuda.synchronize()
            t_first = time.time()
        elif step == WARMUP:
            torch.cuda.synchronize()
            t_warm = time.time()
    torch.cuda.synchronize()
    t_end = time.time()
    return {
        "first_step_at": t_first,
        "steps_per_s": (config["steps"] - 1 - WARMUP) / (t_end - t_warm),
        "device": torch.cuda.get_device_name(device),
        "loss": float(loss.item()),
    }


def shoal_loop(config: dict[str, Any]) -> None:
    from shoal import train
    from shoal.train.torch import get_device, prepare_model

    out = gpu_steps(config, prepare_model)
    out["shoal_device"] = str(get_device())
    train.report(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("train_gpu: torch is not installed; nothing to measure.")
        return 0
    if not torch.cuda.is_available():
        print("train_gpu: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing to measure.")
        return 0
    import shoal
    from shoal import train
    from shoal.train.torch import TorchTrainer

    config = {"steps": STEPS}
    t0 = time.time()
    shoal.init(num_cpus=max(2, os.cpu_count() or 2), num_gpus=torch.cuda.device_count())
    result = TorchTrainer(
        shoal_loop,
        train_loop_config=config,
        scaling_config=train.ScalingConfig(num_workers=1, use_gpu=True),
        run_config=train.RunConfig(name="bench_gpu", storage_path=tempfile.mkdtemp(prefix="bench_train_gpu_")),
    ).fit()
    shoal.shutdown()
    ours = dict(result.metrics)
    ours["first_step_s"] = ours.pop("first_step_at") - t0

    # The same loop in this process: the plain-PyTorch baseline.
    t0 = time.time()
    plain = gpu_steps(config, lambda model: model)
    plain["first_step_s"] = plain.pop("first_step_at") - t0

    print(f"\n== train_gpu: 1 worker, use_gpu=True (nccl), {ours['device']} ==")
    print(f"{'case':<34}{'shoal.train':>14}{'plain torch':>14}")
    print(f"{'time to first step (s)':<34}{ours['first_step_s']:>14.2f}{plain['first_step_s']:>14.2f}")
    print(f"{'steady steps/s':<34}{ours['steps_per_s']:>14.1f}{plain['steps_per_s']:>14.1f}")
    print(f"worker device: {ours['shoal_device']}; final loss shoal {ours['loss']:.4f}, plain {plain['loss']:.4f}")
    print("(plain torch's first step excludes process start and the torch import, which shoal's includes)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"shoal": ours, "plain": plain}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
