"""Printing side-by-side tables and saving results, shared by the benchmark scripts."""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine() -> str:
    import psutil

    return (
        f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def print_table(title: str, rows: list[tuple[str, str, bool, str]], results: dict[str, dict[str, float]]) -> None:
    """One line per metric: shoal, each peer, and shoal's advantage (x times better)."""
    peers = [name for name in results if name != "shoal"]
    header = ["case", "shoal", *peers, *(f"vs {p}" for p in peers), "target"]
    lines = [header]
    for key, label, higher_better, target in rows:
        ours = results.get("shoal", {}).get(key)
        line = [label, _fmt(ours)]
        for p in peers:
            line.append(_fmt(results[p].get(key)))
        for p in peers:
            theirs = results[p].get(key)
            if ours is None or theirs is None or ours == 0 or theirs == 0:
                line.append("-")
            else:
                ratio = ours / theirs if higher_better else theirs / ours
                line.append(f"{ratio:.1f}x")
        line.append(target)
        lines.append(line)
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    print(f"\n== {title} ({machine()}) ==")
    for i, row in enumerate(lines):
        print(
            "  ".join(
                str(c).ljust(w) if j == 0 else str(c).rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


def save_results(title: str, data: dict[str, Any], path: str | None = None) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = path or os.path.join(RESULTS_DIR, f"{title}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump({"machine": machine(), **data}, f, indent=2)
    return path
