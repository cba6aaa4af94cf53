"""shoal.data benchmarks, side by side with Ray Data and Dask when they are available.

    python benchmarks/data.py                                   # shoal only (and Dask if importable)
    python benchmarks/data.py --ray-python /opt/rayenv/bin/python   # + Ray Data (+ Dask there)
    python benchmarks/data.py --markdown                        # the table as markdown

Each system runs in its own subprocess (this file with ``--worker NAME``), on
2 CPUs, every case at least three times (short ones up to twelve) after two
warm-up runs; the best time counts. Peak memory
is the proportional set size (shared pages split between the processes that
map them) of the worker's process tree, sampled every 50 ms during the case.

Cases (rows/s, higher is better):
  map_batches    range(10M).map_batches(numpy add).count()
  iter_batches   iterate 10M rows in numpy batches of 256
  parquet_write  write ~200 MB (12.5M rows x int64, float64) as parquet
  parquet_read   read it back, every column, every row
  groupby_sum    groupby(key).sum(value) over 5M rows, 1000 keys
  random_shuffle random_shuffle of 5M rows (Dask: shuffle on a column)
  sort           sort 5M rows by a random int64 key
  out_of_core    range -> map_batches -> iterate over 10x the object store (100 MB);
                 the memory column is what matters there (Dask: the same chunks computed
                 one by one in the driver, as iteration does)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

SIZES = {
    "map_batches": 10_000_000,
    "iter_batches": 10_000_000,
    "parquet_write": 12_500_000,
    "parquet_read": 12_500_000,
    "groupby_sum": 5_000_000,
    "random_shuffle": 5_000_000,
    "sort": 5_000_000,
    "out_of_core": 130_000_000,
}
STORE = 100 * 1024 * 1024
CPUS = 2
REPEAT = 3
WARMUP = 2


# -- measurement ---------------------------------------------------------------------


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """pid and its descendants, from /proc (no psutil needed in the Ray environment)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except OSError:
            continue
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


class PeakMemory:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pids = _tree(os.getpid())
        last_scan = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_scan > 1.0:
                pids, last_scan = _tree(os.getpid()), time.monotonic()
            self.peak = max(self.peak, sum(_pss(p) for p in pids))
            self._stop.wait(0.05)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(fn: Callable[[], Any], rows: int, repeat: int = REPEAT, warmup: int = WARMUP) -> dict[str, float]:
    """Best time of ``repeat`` runs after ``warmup`` runs; short cases run more often (other
    processes on a shared machine make single short runs noisy)."""
    for _ in range(warmup):  # imports, worker start, allocator and object store pools
        fn()
    best = float("inf")
    peak = 0
    spent = 0.0
    runs = 0
    while runs < repeat or (spent < 3.0 and runs < 4 * repeat):
        with PeakMemory() as mem:
            start = time.perf_counter()
            fn()
            took = time.perf_counter() - start
        best = min(best, took)
        spent += took
        runs += 1
        peak = max(peak, mem.peak)
    return {"seconds": best, "rows_per_s": rows / best, "peak_mib": peak / 2**20}


def _frame(rows: int, keys: int = 1000, seed: int = 0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"k": rng.integers(0, keys if keys else 1 << 40, rows), "v": rng.random(rows)},
    )


def _parquet_input(tmp: str, rows: int, files: int = 8) -> str:
    """The same parquet files for every system: written with pyarrow, not timed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = os.path.join(tmp, "input")
    os.makedirs(path, exist_ok=True)
    table = pa.Table.from_pandas(_frame(rows), preserve_index=False)
    step = -(-rows // files)
    for i in range(files):
        pq.write_table(table.slice(i * step, step), os.path.join(path, f"part-{i:02d}.parquet"))
    return path


# -- shoal and Ray Data (same API) ------------------------------------------------------------


def run_dataset_api(name: str, cases: list[str]) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa

    if name == "shoal":
        import shoal as rt
        import shoal.data as rd

        rt.init(num_cpus=CPUS)
        rd.DataContext.get_current().enable_progress_bars = False
    else:
        import ray as rt
        import ray.data as rd

        rt.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
        rd.DataContext.get_current().enable_progress_bars = False
        rd.DataContext.get_current().print_on_execution_start = False

    results: dict[str, Any] = {}
    tmp = tempfile.mkdtemp(prefix=f"bench-data-{name}-")

    def run_case(case: str) -> dict[str, float]:
        n = SIZES[case]
        if case == "map_batches":
            return measure(lambda: rd.range(n).map_batches(lambda b: {"id": b["id"] + 1}).count(), n)
        elif case == "iter_batches":

            def iterate() -> None:
                rows = 0
                for batch in rd.range(n).iter_batches(batch_size=256, batch_format="numpy"):
                    rows += len(batch["id"])
                assert rows == n

            return measure(iterate, n)
        elif case == "parquet_write":
            # Built inline, as the other cases: a local would keep a second copy in the driver
            # for the whole case (Dask's peer holds only its frame).
            source = rd.from_arrow(pa.Table.from_pandas(_frame(n), preserve_index=False)).repartition(8).materialize()
            counter = iter(range(100))

            def write() -> None:
                source.write_parquet(os.path.join(tmp, f"pq{next(counter)}"))

            return measure(write, n)
        elif case == "parquet_read":
            path = _parquet_input(tmp, n)

            def read() -> None:
                ds = rd.read_parquet(path).map_batches(lambda b: {"n": np.array([len(b["k"]) + len(b["v"])])})
                assert ds.sum("n") == 2 * n

            return measure(read, n)
        elif case == "groupby_sum":
            source = rd.from_arrow(pa.Table.from_pandas(_frame(n), preserve_index=False)).repartition(8).materialize()
            return measure(lambda: source.groupby("k").sum("v").materialize(), n)
        elif case == "random_shuffle":
            source = rd.from_arrow(pa.Table.from_pandas(_frame(n), preserve_index=False)).repartition(8).materialize()
            return measure(lambda: source.random_shuffle().materialize(), n)
        elif case == "sort":
            source = (
                rd.from_arrow(pa.Table.from_pandas(_frame(n, keys=0), preserve_index=False))
                .repartition(8)
                .materialize()
            )
            return measure(lambda: source.sort("k").materialize(), n)
        elif case == "out_of_core":
            rt.shutdown()
            if name == "shoal":
                rt.init(num_cpus=CPUS, object_store_memory=STORE)
            else:
                rt.init(num_cpus=CPUS, object_store_memory=STORE, include_dashboard=False, log_to_driver=False)
            rd.DataContext.get_current().enable_progress_bars = False

            def pipeline() -> None:
                last = 0
                for batch in rd.range(n).map_batches(lambda b: {"id": b["id"] * 3}).iter_batches(batch_size=None):
                    last = int(batch["id"][-1])
                assert last == 3 * (n - 1)

            return measure(pipeline, n, repeat=1, warmup=1)
        raise ValueError(case)

    try:
        for case in cases:
            results[case] = run_case(case)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        rt.shutdown()
    return results


# -- Dask -----------------------------------------------------------------------------------------


def run_dask(cases: list[str]) -> dict[str, Any]:
    import dask
    import dask.array as da
    import dask.dataframe as dd
    import numpy as np

    dask.config.set(scheduler="threads", num_workers=CPUS)
    results: dict[str, Any] = {}
    tmp = tempfile.mkdtemp(prefix="bench-data-dask-")
    parts = 8

    def run_case(case: str) -> dict[str, float]:
        n = SIZES[case]
        if case == "map_batches":

            def map_count() -> None:
                ddf = dd.from_dask_array(da.arange(n, chunks=n // (2 * CPUS)), columns="id").to_frame()
                assert int(ddf.map_partitions(lambda df: df + 1).count().compute()["id"]) == n

            return measure(map_count, n)
        elif case == "iter_batches":

            def iterate() -> None:
                # The same batches as the Dataset API: dicts of numpy column slices.
                rows = 0
                ddf = dd.from_dask_array(da.arange(n, chunks=n // (2 * CPUS)), columns="id").to_frame()
                for part in ddf.to_delayed():
                    df = part.compute()
                    cols = {c: df[c].to_numpy() for c in df.columns}
                    for i in range(0, len(df), 256):
                        batch = {k: v[i : i + 256] for k, v in cols.items()}
                        rows += len(batch["id"])
                assert rows == n

            return measure(iterate, n)
        elif case == "parquet_write":
            ddf = dd.from_pandas(_frame(n), npartitions=parts).persist()
            counter = iter(range(100))
            return measure(lambda: ddf.to_parquet(os.path.join(tmp, f"pq{next(counter)}")), n)
        elif case == "parquet_read":
            path = _parquet_input(tmp, n)

            def read() -> None:
                sizes = dd.read_parquet(path).map_partitions(lambda df: len(df) * df.shape[1]).compute()
                assert int(np.sum(sizes)) == 2 * n

            return measure(read, n)
        elif case == "groupby_sum":
            ddf = dd.from_pandas(_frame(n), npartitions=parts).persist()
            return measure(lambda: ddf.groupby("k")["v"].sum().compute(), n)
        elif case == "random_shuffle":
            ddf = dd.from_pandas(_frame(n), npartitions=parts).persist()
            return measure(lambda: ddf.shuffle(on="k").persist(), n)
        elif case == "sort":
            ddf = dd.from_pandas(_frame(n, keys=0), npartitions=parts).persist()
            return measure(lambda: ddf.sort_values("k").persist(), n)
        elif case == "out_of_core":

            def pipeline() -> None:
                # As the Dataset API does it: every mapped chunk reaches the driver, in order.
                arr = da.arange(n, chunks=STORE // 32) * 3
                last = 0
                for block in arr.to_delayed().ravel():
                    last = int(block.compute()[-1])
                assert last == 3 * (n - 1)

            return measure(pipeline, n, repeat=1, warmup=1)
        raise ValueError(case)

    try:
        for case in cases:
            results[case] = run_case(case)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


# -- driver -------------------------------------------------------------------------------------


def _worker_main(name: str, cases: list[str]) -> None:
    out = run_dask(cases) if name == "dask" else run_dataset_api(name, cases)
    print("RESULT " + json.dumps(out))


def _spawn(python: str, name: str, cases: list[str], timeout: float) -> dict[str, Any] | None:
    cmd = [python, os.path.abspath(__file__), "--worker", name, "--cases", ",".join(cases)]
    env = dict(os.environ)
    env.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"[{name}] timed out after {timeout:.0f}s", file=sys.stderr)
        return None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    print(f"[{name}] failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
    return None


def _has_module(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def _table(results: dict[str, dict[str, Any]], cases: list[str], markdown: bool) -> str:
    systems = [s for s in ("shoal", "ray", "dask") if results.get(s)]
    header = ["case", *[f"{s} rows/s" for s in systems], *[f"{s} MiB" for s in systems]]
    header += [f"shoal/{s}" for s in systems if s != "shoal" and "shoal" in systems]
    rows = []
    for case in cases:
        row = [case]
        for s in systems:
            r = results[s].get(case)
            row.append(f"{r['rows_per_s'] / 1e6:.1f}M" if r else "-")
        for s in systems:
            r = results[s].get(case)
            row.append(f"{r['peak_mib']:.0f}" if r else "-")
        for s in systems:
            if s == "shoal" or "shoal" not in systems:
                continue
            a, b = results["shoal"].get(case), results[s].get(case)
            row.append(f"{a['rows_per_s'] / b['rows_per_s']:.1f}x" if a and b else "-")
        rows.append(row)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*header), *[fmt.format(*r) for r in rows]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ray-python", help="a Python with ray[data] installed, to compare with Ray Data")
    parser.add_argument("--cases", default=",".join(SIZES), help="comma-separated cases to run")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per system and case")
    parser.add_argument("--rounds", type=int, default=1, help="run everything this many times, keep the best")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in SIZES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {list(SIZES)}")
    if args.worker:
        _worker_main(args.worker, cases)
        return
    systems = [("shoal", sys.executable)]
    if args.ray_python:
        systems.append(("ray", args.ray_python))
    dask_python = next((p for p in (sys.executable, args.ray_python) if p and _has_module(p, "dask.dataframe")), None)
    if dask_python is not None:
        systems.append(("dask", dask_python))
    else:
        print("dask is not installed here or in --ray-python: skipping it", file=sys.stderr)
    print(f"shoal.data benchmarks on {CPUS} CPUs: {', '.join(n for n, _ in systems)}", file=sys.stderr)
    # Case by case, each system right after the other, so that they meet the same
    # machine load; with several rounds the best of them counts.
    results: dict[str, dict[str, Any]] = {name: {} for name, _ in systems}
    for _ in range(args.rounds):
        for case in cases:
            for name, python in systems:
                got = _spawn(python, name, [case], args.timeout) or {}
                if case in got:
                    old = results[name].get(case)
                    if old is None or got[case]["rows_per_s"] > old["rows_per_s"]:
                        results[name][case] = got[case]
                print(f"  {case} {name}: {got.get(case, {}).get('rows_per_s', 0) / 1e6:.1f}M rows/s", file=sys.stderr)
    print(_table(results, cases, args.markdown))


if __name__ == "__main__":
    main()
