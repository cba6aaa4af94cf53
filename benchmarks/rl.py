"""shoal.rl benchmark, side by side with RLlib when a Ray interpreter is given.

    python benchmarks/rl.py                                   # shoal only
    python benchmarks/rl.py --ray-python /path/to/ray/bin/python
    python benchmarks/rl.py --quick                           # lower thresholds, for CI

The Ray interpreter needs ray[rllib] and torch. Both engines run the same
configs, each in its own subprocess with one torch thread in the driver:

1. Sampling: PPO with RLlib's default config (train batch 4000, 30 epochs of
   minibatches of 128, a [256, 256] network) and one env runner with one env,
   then with 8 envs. Reports env steps per second while sampling
   (``num_env_steps_sampled / env_runner_sampling_timer``) and over whole
   iterations, learning included.
2. PPO on CartPole-v1: wall time and env steps until the mean return of the
   last 100 episodes reaches 475 (and 150, for reference), one env runner
   with 8 envs and a config tuned for CartPole.
3. DQN on CartPole-v1: wall time and env steps until the mean return reaches
   195, sampling in the driver with 4 envs.

Targets (issue 9): sampling at least 2x RLlib's; PPO solves CartPole in less
wall time than RLlib. A run that does not reach a threshold within its time
budget reports the budget and the best mean return.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _report import print_table, save_results  # noqa: E402

# -- configs, identical for both engines ----------------------------------------------------

PPO_SOLVE = {
    "training": {
        "lr": 3e-4,
        "train_batch_size": 2000,
        "minibatch_size": 250,
        "num_epochs": 10,
        "lambda_": 0.95,
        "vf_clip_param": 1000.0,
    },
    "model_config": {"fcnet_hiddens": [64, 64], "vf_share_layers": False},
    "env_runners": {"num_env_runners": 1, "num_envs_per_env_runner": 8},
}
DQN_SOLVE = {
    "training": {
        "lr": 1e-3,
        "train_batch_size": 64,
        "n_step": 3,
        "epsilon": [(0, 1.0), (10_000, 0.02)],
        "target_network_update_freq": 500,
        "training_intensity": 16,
    },
    "model_config": {"fcnet_hiddens": [64], "head_fcnet_hiddens": [64]},
    "env_runners": {"num_env_runners": 0, "num_envs_per_env_runner": 4, "rollout_fragment_length": 4},
}


def _progress(msg: str) -> None:
    if sys.stderr.isatty():
        print(msg, file=sys.stderr, flush=True)


def _import_engine(engine: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    if engine == "shoal":
        import shoal
        from shoal.rl.algorithms.dqn import DQNConfig
        from shoal.rl.algorithms.ppo import PPOConfig

        shoal.init(num_cpus=2)
        return {"runtime": shoal, "PPOConfig": PPOConfig, "DQNConfig": DQNConfig}
    import logging

    import ray
    from ray.rllib.algorithms.dqn import DQNConfig
    from ray.rllib.algorithms.ppo import PPOConfig

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    return {"runtime": ray, "PPOConfig": PPOConfig, "DQNConfig": DQNConfig}


def _build(config_cls: Any, spec: dict[str, Any] | None, env_runners: dict[str, Any], seed: int) -> Any:
    cfg = config_cls().environment("CartPole-v1").debugging(seed=seed)
    cfg = cfg.env_runners(**env_runners).learners(num_cpus_per_learner=1)
    if spec is not None:
        cfg = cfg.training(**spec["training"]).rl_module(model_config=spec["model_config"])
    return cfg.build_algo()


def _return_mean(result: dict[str, Any]) -> float:
    value = result["env_runners"].get("episode_return_mean", math.nan)
    return float(value) if value is not None else math.nan


def sampling(mods: dict[str, Any], num_envs: int, iterations: int, seed: int) -> dict[str, float]:
    """Env steps/s while sampling and over whole iterations, RLlib's default PPO config."""
    algo = _build(mods["PPOConfig"], None, {"num_env_runners": 1, "num_envs_per_env_runner": num_envs}, seed)
    try:
        algo.train()  # warm up: actor start, first weights
        sampled = 0
        sample_time = 0.0
        start = time.perf_counter()
        for i in range(iterations):
            r = algo.train()
            sampled += int(r["env_runners"]["num_env_steps_sampled"])
            sample_time += float(r["timers"]["env_runner_sampling_timer"])
            _progress(f"  sampling envs={num_envs} iter {i}: {r['env_runners']['num_env_steps_sampled']} steps")
        total = time.perf_counter() - start
    finally:
        algo.stop()
    return {"sampling_steps_per_s": sampled / sample_time, "training_steps_per_s": sampled / total}


def solve(
    mods: dict[str, Any], algo_name: str, spec: dict[str, Any], thresholds: list[float], budget_s: float, seed: int
) -> dict[str, float]:
    """Wall time (build included) and env steps until each threshold is first reached."""
    config_cls = mods["PPOConfig"] if algo_name == "PPO" else mods["DQNConfig"]
    start = time.perf_counter()
    algo = _build(config_cls, spec, spec["env_runners"], seed)
    out: dict[str, float] = {}
    best = -math.inf
    try:
        while time.perf_counter() - start < budget_s:
            r = algo.train()
            ret = _return_mean(r)
            if not math.isnan(ret):
                best = max(best, ret)
            steps = float(r["env_runners"]["num_env_steps_sampled_lifetime"])
            elapsed = time.perf_counter() - start
            for t in thresholds:
                if ret >= t and f"time_to_{t:g}_s" not in out:
                    out[f"time_to_{t:g}_s"] = elapsed
                    out[f"steps_to_{t:g}"] = steps
            _progress(f"  {algo_name} {elapsed:6.1f}s {steps:9.0f} steps return {ret:6.1f}")
            if ret >= max(thresholds):
                break
    finally:
        algo.stop()
    out["best_return"] = best
    out["budget_s"] = budget_s
    return out


def run_engine(engine: str, quick: bool, seed: int) -> dict[str, Any]:
    mods = _import_engine(engine)
    results: dict[str, Any] = {}
    try:
        iters = 1 if quick else 3
        for envs in (1, 8):
            r = sampling(mods, envs, iters, seed)
            results[f"sampling_{envs}env_steps_per_s"] = r["sampling_steps_per_s"]
            results[f"training_{envs}env_steps_per_s"] = r["training_steps_per_s"]
        ppo_thresholds = [150.0] if quick else [150.0, 475.0]
        dqn_thresholds = [100.0] if quick else [195.0]
        budget = 120.0 if quick else 600.0
        results["ppo"] = solve(mods, "PPO", PPO_SOLVE, ppo_thresholds, budget, seed)
        results["dqn"] = solve(mods, "DQN", DQN_SOLVE, dqn_thresholds, budget, seed)
    finally:
        mods["runtime"].shutdown()
    return results


def run_in_subprocess(engine: str, python: str, quick: bool, seed: int) -> dict[str, Any]:
    cmd = [python, os.path.abspath(__file__), "--engine", engine, "--seed", str(seed)]
    if quick:
        cmd.append("--quick")
    env = {**os.environ, "PYTHONPATH": HERE, "RAY_DEDUP_LOGS": "0"}
    out = subprocess.run(
        cmd,
        stdout=subprocess.PIPE,
        stderr=None if sys.stderr.isatty() else subprocess.PIPE,
        text=True,
        timeout=3600,
        env=env,
    )
    if out.returncode != 0:
        tail = (out.stderr or "")[-3000:]
        raise RuntimeError(f"{engine} benchmark failed (exit {out.returncode}):\n{tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _flatten(r: dict[str, Any]) -> dict[str, float]:
    flat = {k: v for k, v in r.items() if not isinstance(v, dict)}
    for algo in ("ppo", "dqn"):
        for k, v in r.get(algo, {}).items():
            flat[f"{algo}_{k}"] = v
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--ray-python", default=os.environ.get("RAY_PYTHON", ""), help="a Python with ray[rllib] and torch"
    )
    parser.add_argument("--quick", action="store_true", help="lower thresholds and budgets (CI)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=["shoal", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.quick, args.seed)))
        return
    engines = [("shoal", sys.executable)]
    if args.ray_python:
        engines.append(("rllib", args.ray_python))
    raw: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for name, python in engines:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            raw[name] = run_in_subprocess("shoal" if name == "shoal" else "ray", python, args.quick, args.seed)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            errors[name] = str(e)
            print(f"{name} did not finish: {str(e)[-600:]}", file=sys.stderr)
    results = {name: _flatten(r) for name, r in raw.items()}
    ppo_hi = "150" if args.quick else "475"
    dqn_hi = "100" if args.quick else "195"
    rows = [
        ("sampling_1env_steps_per_s", "PPO sampling, 1 runner x 1 env (env steps/s)", True, ">= 2x RLlib"),
        ("training_1env_steps_per_s", "PPO default config incl. learning, 1 x 1 (steps/s)", True, ""),
        ("sampling_8env_steps_per_s", "PPO sampling, 1 runner x 8 envs (env steps/s)", True, ">= 2x RLlib"),
        ("training_8env_steps_per_s", "PPO default config incl. learning, 1 x 8 (steps/s)", True, ""),
        ("ppo_time_to_150_s", "PPO CartPole: wall time to return 150 (s)", False, ""),
        (f"ppo_time_to_{ppo_hi}_s", f"PPO CartPole: wall time to return {ppo_hi} (s)", False, "< RLlib"),
        (f"ppo_steps_to_{ppo_hi}", f"PPO CartPole: env steps to return {ppo_hi}", False, ""),
        (f"dqn_time_to_{dqn_hi}_s", f"DQN CartPole: wall time to return {dqn_hi} (s)", False, ""),
        (f"dqn_steps_to_{dqn_hi}", f"DQN CartPole: env steps to return {dqn_hi}", False, ""),
        ("ppo_best_return", "PPO best mean return", True, ""),
        ("dqn_best_return", "DQN best mean return", True, ""),
    ]
    if ppo_hi == "150":
        rows = rows[:4] + rows[5:]  # the 150 row and the threshold row are the same
    print_table("rl", rows, results)
    for name, r in raw.items():
        for algo in ("ppo", "dqn"):
            res = r.get(algo, {})
            if not any(k.startswith("time_to_") for k in res):
                print(
                    f"{name} {algo.upper()}: no threshold reached within {res.get('budget_s')} s "
                    f"(best mean return {res.get('best_return')})"
                )
    save_results("rl", {"results": raw, "errors": errors, "quick": args.quick, "seed": args.seed}, args.json)


if __name__ == "__main__":
    main()
