"""Validation of ``@shoal.remote(...)`` and ``.options(...)`` keywords, with Ray's defaults."""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping
from typing import Any

from shoal.backend.specs import Resources, SchedulingSpec

_COMMON = {
    "num_cpus",
    "num_gpus",
    "resources",
    "memory",
    "name",
    "scheduling_strategy",
    "runtime_env",
    "accelerator_type",
    "placement_group",
    "placement_group_bundle_index",
    "placement_group_capture_child_tasks",
    "label_selector",
    "enable_task_events",
    "_metadata",
}
TASK_OPTIONS = _COMMON | {
    "num_returns",
    "max_retries",
    "retry_exceptions",
    "max_calls",
    "object_store_memory",
}
ACTOR_OPTIONS = _COMMON | {
    "max_restarts",
    "max_task_retries",
    "max_concurrency",
    "max_pending_calls",
    "lifetime",
    "namespace",
    "get_if_exists",
    "concurrency_groups",
    "object_store_memory",
    "allow_out_of_order_execution",
}
METHOD_OPTIONS = {"num_returns", "concurrency_group", "max_task_retries", "retry_exceptions", "name"}

_RUNTIME_ENV_KEYS = {"env_vars", "working_dir", "py_modules", "config"}


def _suggest(name: str, valid: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_option_names(options: Mapping[str, Any], valid: set[str], what: str) -> None:
    """ValueError naming the first unknown option."""
    for name in options:
        if name not in valid:
            raise ValueError(f"unknown option {name!r} for {what}{_suggest(name, valid)}")


def _number(name: str, value: Any, *, integer: bool = False, minimum: float = 0) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and integer and not float(value).is_integer():
        ok = False
    if not ok or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"option {name!r} must be {kind} >= {minimum}, got {value!r}")
    return float(value)


def build_resources(options: Mapping[str, Any], default_cpus: float) -> Resources:
    """The resource request implied by num_cpus/num_gpus/memory/resources."""
    res: Resources = {}
    cpus = options.get("num_cpus")
    res["CPU"] = default_cpus if cpus is None else _number("num_cpus", cpus)
    gpus = options.get("num_gpus")
    if gpus is not None:
        res["GPU"] = _number("num_gpus", gpus)
        if res["GPU"] > 1 and not res["GPU"].is_integer():
            raise ValueError(f"option 'num_gpus' above 1 must be a whole number, got {gpus!r}")
    memory = options.get("memory")
    if memory is not None:
        res["memory"] = _number("memory", memory)
    custom = options.get("resources")
    if custom is not None:
        if not isinstance(custom, Mapping):
            raise ValueError(f"option 'resources' must be a dict of name to amount, got {custom!r}")
        for key, amount in custom.items():
            if key in ("CPU", "GPU"):
                raise ValueError(f"use the 'num_cpus' and 'num_gpus' options instead of {key!r} in 'resources'")
            if not isinstance(key, str) or not key:
                raise ValueError(f"resource names must be non-empty strings, got {key!r}")
            res[key] = _number(f"resources[{key!r}]", amount)
    accel = options.get("accelerator_type")
    if accel is not None:
        if not isinstance(accel, str):
            raise ValueError(f"option 'accelerator_type' must be a string, got {accel!r}")
        res[f"accelerator_type:{accel}"] = 0.001
    return {k: v for k, v in res.items() if v or k == "CPU"}


def check_num_returns(value: Any, *, allow_streaming: bool = True) -> Any:
    if value in ("streaming", "dynamic") and allow_streaming:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"option 'num_returns' must be an integer >= 0 or 'streaming', got {value!r}")
    return value


def check_retries(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ValueError(f"option {name!r} must be an integer >= -1 (-1: infinite), got {value!r}")
    return value


def check_retry_exceptions(value: Any) -> bool | tuple[type[BaseException], ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(t, type) and issubclass(t, BaseException) for t in value):
        return tuple(value)
    raise ValueError(f"option 'retry_exceptions' must be a bool or a list of exception types, got {value!r}")


def check_runtime_env(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"option 'runtime_env' must be a dict, got {value!r}")
    env = dict(value)
    for key in env:
        if key not in _RUNTIME_ENV_KEYS:
            raise ValueError(
                f"runtime_env key {key!r} is not supported (supported: {', '.join(sorted(_RUNTIME_ENV_KEYS))})"
            )
    env_vars = env.get("env_vars")
    if env_vars is not None:
        if not isinstance(env_vars, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()
        ):
            raise ValueError("runtime_env['env_vars'] must be a dict of str to str")
        env["env_vars"] = dict(env_vars)
    wd = env.get("working_dir")
    if wd is not None and not isinstance(wd, str):
        raise ValueError(f"runtime_env['working_dir'] must be a local directory path, got {wd!r}")
    return env or None


def scheduling_spec(options: Mapping[str, Any]) -> SchedulingSpec:
    """Translate ``scheduling_strategy`` (and the legacy placement_group options)."""
    from shoal.util.placement_group import PlacementGroup
    from shoal.util.scheduling_strategies import (
        NodeAffinitySchedulingStrategy,
        PlacementGroupSchedulingStrategy,
    )

    strategy = options.get("scheduling_strategy")
    legacy_pg = options.get("placement_group")
    if legacy_pg is not None and legacy_pg != "default":
        if not isinstance(legacy_pg, PlacementGroup):
            raise ValueError(f"option 'placement_group' must be a PlacementGroup, got {legacy_pg!r}")
        strategy = PlacementGroupSchedulingStrategy(
            legacy_pg,
            options.get("placement_group_bundle_index", -1),
            options.get("placement_group_capture_child_tasks"),
        )
    if strategy is None or strategy == "DEFAULT":
        return SchedulingSpec()
    if strategy == "SPREAD":
        return SchedulingSpec(kind="SPREAD")
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        pg = strategy.placement_group
        index = strategy.placement_group_bundle_index
        if not isinstance(index, int) or index < -1 or (index >= len(pg.bundle_specs)):
            raise ValueError(
                f"placement_group_bundle_index {index!r} is out of range for a group of {len(pg.bundle_specs)} bundles"
            )
        return SchedulingSpec(
            kind="PLACEMENT_GROUP",
            placement_group_id=pg.id.binary(),
            bundle_index=index,
            capture_child_tasks=bool(strategy.placement_group_capture_child_tasks),
        )
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return SchedulingSpec(kind="NODE_AFFINITY", node_id=strategy.node_id, soft=strategy.soft)
    raise ValueError(
        f"option 'scheduling_strategy' must be 'DEFAULT', 'SPREAD', a PlacementGroupSchedulingStrategy "
        f"or a NodeAffinitySchedulingStrategy, got {strategy!r}"
    )
