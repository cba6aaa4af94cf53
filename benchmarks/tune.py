"""shoal.tune benchmark: trial throughput side by side with Ray Tune, and search quality.

    python benchmarks/tune.py                                     # shoal only, small sizes
    python benchmarks/tune.py --full                              # the issue's sizes
    python benchmarks/tune.py --ray-python /opt/rayenv/bin/python  # and Ray Tune, same cases

Throughput cases (each engine runs in its own subprocess, 2 CPUs, results in a
fresh temporary storage path; the clock covers ``Tuner.fit()`` only):

- ``trivial``: N trials of a function that reports once;
- ``asha``: N trials of 10 reports each under ASHA (max_t=10, grace 1, rf 4);
- ``optuna``: N trials proposed by OptunaSearch (TPE, seeded).

Default N is 40 / 40 / 25 (Ray Tune needs ~2.5 minutes for these here);
``--full`` uses the issue's 100 / 100 / 50, ``--scale X`` multiplies.
When the Ray interpreter lacks optuna, it borrows this interpreter's
site-packages, appended after its own.

Quality checks (shoal only, on the ``local`` runtime):

- ASHA vs FIFO on synthetic crossing learning curves with a known optimum:
  FIFO trains 64 configs for 81 iterations; ASHA gets 128 configs. Reported:
  the best final score of each and the compute (iterations) each spent.
- OptunaSearch vs random search on Branin (minimum 0.3979), 40 trials each,
  averaged over 3 seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))

SIZES = {"trivial": 40, "asha": 40, "optuna": 25}
FULL = {"trivial": 100, "asha": 100, "optuna": 50}


# -- the cases, written once for both engines ------------------------------------------------


def _trivial(tune: Any) -> Any:
    def trivial(config: dict[str, Any]) -> None:
        tune.report({"score": config["x"]})

    return trivial


def _ten_steps(tune: Any) -> Any:
    def ten_steps(config: dict[str, Any]) -> None:
        for i in range(10):
            tune.report({"score": config["x"] * (i + 1)})

    return ten_steps


def run_cases(engine: str, sizes: dict[str, int]) -> dict[str, float]:
    if engine == "ray":
        import ray
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler

        t0 = time.time()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    else:
        import shoal
        from shoal import tune
        from shoal.tune.schedulers import ASHAScheduler

        t0 = time.time()
        shoal.init(num_cpus=2)
    out: dict[str, float] = {"init_s": time.time() - t0}
    storage = tempfile.mkdtemp(prefix=f"bench_tune_{engine}_")

    def fit(name: str, trainable: Any, n: int, **tune_kwargs: Any) -> float:
        tuner = tune.Tuner(
            trainable,
            param_space={"x": tune.uniform(0, 1)},
            tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=n, **tune_kwargs),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
        )
        start = time.time()
        grid = tuner.fit()
        elapsed = time.time() - start
        if len(grid) != n or grid.num_errors:
            raise RuntimeError(f"{engine} {name}: {len(grid)} trials, {grid.num_errors} errors")
        return elapsed

    n = sizes["trivial"]
    out["trivial_s"] = fit("trivial", _trivial(tune), n)
    out["trivial_tps"] = n / out["trivial_s"]
    n = sizes["asha"]
    out["asha_s"] = fit(
        "asha", _ten_steps(tune), n, scheduler=ASHAScheduler(max_t=10, grace_period=1, reduction_factor=4)
    )
    out["asha_tps"] = n / out["asha_s"]
    if engine == "ray":
        from ray.tune.search.optuna import OptunaSearch
    else:
        from shoal.tune.search.optuna import OptunaSearch
    n = sizes["optuna"]
    out["optuna_s"] = fit("optuna", _trivial(tune), n, search_alg=OptunaSearch(seed=0))
    out["optuna_tps"] = n / out["optuna_s"]
    return out


# -- quality (shoal) ---------------------------------------------------------------------


def _crossing(config: dict[str, Any]) -> None:
    from shoal import tune

    quality = 1 - (config["x"] - 0.6) ** 2
    tau = 1 + 9 * config["y"]
    for t in range(1, 82):
        tune.report({"score": quality * (1 - math.exp(-t / tau))})


def _branin(config: dict[str, Any]) -> None:
    from shoal import tune

    x, y = config["x"], config["y"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    tune.report({"loss": (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10})


def run_quality() -> dict[str, float]:
    import shoal
    from shoal import tune
    from shoal.tune.schedulers import ASHAScheduler
    from shoal.tune.search import BasicVariantGenerator
    from shoal.tune.search.optuna import OptunaSearch

    shoal.init(num_cpus=2)
    storage = tempfile.mkdtemp(prefix="bench_tune_quality_")
    space = {"x": tune.uniform(0, 1), "y": tune.uniform(0, 1)}

    def asha_or_fifo(name: str, n: int, scheduler: Any) -> tuple[float, int, float]:
        start = time.time()
        grid = tune.Tuner(
            _crossing,
            param_space=space,
            tune_config=tune.TuneConfig(
                metric="score",
                mode="max",
                num_samples=n,
                scheduler=scheduler,
                search_alg=BasicVariantGenerator(random_state=0),
            ),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
        ).fit()
        elapsed = time.time() - start
        full = [r.metrics["score"] for r in grid if r.metrics["training_iteration"] == 81]
        compute = sum(r.metrics["training_iteration"] for r in grid)
        return max(full), compute, elapsed

    out: dict[str, float] = {}
    out["fifo_best"], out["fifo_compute"], out["fifo_s"] = asha_or_fifo("fifo", 64, None)
    out["asha_best"], out["asha_compute"], out["asha_s"] = asha_or_fifo(
        "asha", 128, ASHAScheduler(max_t=81, grace_period=1, reduction_factor=3)
    )
    branin_space = {"x": tune.uniform(-5, 10), "y": tune.uniform(0, 15)}

    def best_loss(name: str, search_alg: Any) -> float:
        grid = tune.Tuner(
            _branin,
            param_space=branin_space,
            tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=40, search_alg=search_alg),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0),
        ).fit()
        return min(r.metrics["loss"] for r in grid)

    seeds = range(3)
    out["optuna_best"] = sum(best_loss(f"tpe{s}", OptunaSearch(seed=s)) for s in seeds) / len(seeds)
    out["random_best"] = sum(best_loss(f"rnd{s}", BasicVariantGenerator(random_state=s)) for s in seeds) / len(seeds)
    return out


# -- the parent ----------------------------------------------------------------------------


def run_in_subprocess(engine: str, python: str, sizes: dict[str, int]) -> dict[str, float]:
    cmd = [python, os.path.abspath(__file__), "--engine", engine, "--sizes", json.dumps(sizes)]
    if engine == "ray":
        probe = subprocess.run([python, "-c", "import optuna"], capture_output=True)
        if probe.returncode != 0:
            import optuna

            cmd += ["--borrow", os.path.dirname(os.path.dirname(optuna.__file__))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env={**os.environ, "PYTHONPATH": HERE})
    if out.returncode != 0:
        raise RuntimeError(f"{engine} benchmark failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ray-python", help="a Python interpreter with Ray installed, to compare against")
    parser.add_argument("--full", action="store_true", help="the issue's sizes: 100 / 100x10 / 50 trials")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of trials")
    parser.add_argument("--no-quality", action="store_true", help="skip the quality checks")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--borrow", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.engine:
        if args.borrow:
            sys.path.append(args.borrow)  # after the engine's own packages
        result = run_quality() if args.engine == "quality" else run_cases(args.engine, json.loads(args.sizes))
        print(json.dumps(result))
        return

    sys.path.insert(0, HERE)
    from _report import print_table, save_results

    base = FULL if args.full else SIZES
    sizes = {k: max(1, round(v * args.scale)) for k, v in base.items()}
    results = {"shoal": run_in_subprocess("shoal", sys.executable, sizes)}
    if args.ray_python:
        if os.path.exists(args.ray_python):
            results["ray"] = run_in_subprocess("ray", args.ray_python, sizes)
        else:
            print(f"(no Ray at {args.ray_python}: comparison skipped)")
    rows = [
        ("trivial_s", f"{sizes['trivial']} trivial trials: wall (s)", False, ""),
        ("trivial_tps", f"{sizes['trivial']} trivial trials: trials/s", True, ">= 20x Ray"),
        ("asha_s", f"ASHA {sizes['asha']} trials x 10 iters: wall (s)", False, ""),
        ("asha_tps", f"ASHA {sizes['asha']} trials x 10 iters: trials/s", True, ">= 20x Ray"),
        ("optuna_s", f"Optuna {sizes['optuna']} trials: wall (s)", False, ""),
        ("optuna_tps", f"Optuna {sizes['optuna']} trials: trials/s", True, ">= 20x Ray"),
        ("init_s", "runtime init (s), not in the above", False, ""),
    ]
    print_table("tune throughput", rows, results)
    data: dict[str, Any] = {"sizes": sizes, "throughput": results}
    if not args.no_quality:
        q = run_in_subprocess("quality", sys.executable, sizes)
        data["quality"] = q
        print("\n== tune quality (shoal, synthetic problems with known optima) ==")
        print(
            f"ASHA vs FIFO (crossing curves, optimum 1.0): FIFO best {q['fifo_best']:.4f} with "
            f"{q['fifo_compute']:.0f} iterations ({q['fifo_s']:.1f} s); ASHA best {q['asha_best']:.4f} with "
            f"{q['asha_compute']:.0f} iterations ({q['asha_s']:.1f} s): "
            f"{q['fifo_compute'] / q['asha_compute']:.1f}x less compute (target >= 3x at equal quality)"
        )
        print(
            f"Optuna vs random (Branin, minimum 0.3979, 40 trials, mean of 3 seeds): "
            f"TPE {q['optuna_best']:.4f}, random {q['random_best']:.4f} (target: TPE lower)"
        )
    print(f"\nsaved {save_results('tune', data)}")


if __name__ == "__main__":
    main()
