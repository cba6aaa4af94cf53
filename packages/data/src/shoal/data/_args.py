"""Checking the arguments of Dataset methods: counts, column lists, compute strategies, task options."""

from __future__ import annotations

from typing import Any

import numpy as np

from shoal.data import _tasks
from shoal.data._logical import ActorPoolStrategy, TaskPoolStrategy
from shoal.data._transforms import UDF

__all__ = ["check_count", "columns_arg", "remote_args", "compute_strategy"]


def check_count(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def columns_arg(cols: Any, what: str) -> list[str]:
    if isinstance(cols, str):
        return [cols]
    if not isinstance(cols, (list, tuple)) or not all(isinstance(c, str) for c in cols):
        raise TypeError(f"{what} expects a column name or a list of column names, got {cols!r}")
    if len(set(cols)) != len(cols):
        raise ValueError(f"{what} got duplicate column names: {list(cols)}")
    return list(cols)


def remote_args(num_cpus: Any, num_gpus: Any, memory: Any, extra: dict[str, Any]) -> dict[str, Any]:
    args = dict(extra)
    for key, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("memory", memory)):
        if value is not None:
            args[key] = value
    return args


def compute_strategy(udf: UDF, compute: Any, concurrency: Any, remote_args: dict[str, Any]) -> Any:
    """The compute strategy from ``compute`` / ``concurrency`` (Ray's rules), validating options early."""
    if compute is not None and concurrency is not None:
        raise ValueError("pass either compute or concurrency, not both")
    if compute is not None:
        if not isinstance(compute, (TaskPoolStrategy, ActorPoolStrategy)):
            raise TypeError(f"compute must be a TaskPoolStrategy or ActorPoolStrategy, got {compute!r}")
        strategy = compute
    elif udf.is_class:
        if concurrency is None:
            strategy = ActorPoolStrategy(min_size=1)
        elif isinstance(concurrency, tuple):
            if len(concurrency) not in (2, 3):
                raise ValueError(f"concurrency must be an int or a (min, max[, initial]) tuple, got {concurrency!r}")
            initial = concurrency[2] if len(concurrency) == 3 else None
            strategy = ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1], initial_size=initial)
        else:
            strategy = ActorPoolStrategy(size=check_count(concurrency, "concurrency", 1))
    else:
        if isinstance(concurrency, tuple):
            raise ValueError("a (min, max) concurrency applies to callable classes (actor pools), not functions")
        strategy = TaskPoolStrategy(None if concurrency is None else check_count(concurrency, "concurrency", 1))
    if udf.is_class and not isinstance(strategy, ActorPoolStrategy):
        raise ValueError(f"callable class {udf.name} runs on an actor pool; use concurrency=n or ActorPoolStrategy")
    if not udf.is_class and isinstance(strategy, ActorPoolStrategy):
        raise ValueError(f"{udf.name} is a function; actor pools (ActorPoolStrategy) need a callable class")
    # Let shoal check the option names and values now rather than at execution.
    if isinstance(strategy, ActorPoolStrategy):
        _tasks.map_worker_class().options(**{"num_cpus": 1, **remote_args})
    else:
        _tasks.remote_fn("run_map", 2).options(**remote_args)
    return strategy
