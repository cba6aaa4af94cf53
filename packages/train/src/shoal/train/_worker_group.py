"""Starting and stopping the worker actors of one attempt, placed by a placement group."""

from __future__ import annotations

import logging
from typing import Any

import shoal
from shoal.train._worker import TrainWorker
from shoal.train.config import ScalingConfig
from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy

logger = logging.getLogger("shoal.train")

__all__ = ["WorkerGroup", "check_resources"]

# Concurrent calls a worker serves: the driver's long poll and start (and a spare).
_MAX_CONCURRENCY = 4
_REMOTE_WORKER: Any = None


def _remote_worker_class() -> Any:
    global _REMOTE_WORKER
    if _REMOTE_WORKER is None:
        _REMOTE_WORKER = shoal.remote(TrainWorker)
    return _REMOTE_WORKER


def check_resources(scaling: ScalingConfig, has_datasets: bool = False) -> None:
    """Fail at once when the cluster can never hold the worker group (instead of waiting forever)."""
    total = shoal.cluster_resources()
    need = scaling.total_resources
    if has_datasets and total.get("CPU", 0.0) - need.get("CPU", 0.0) < 1.0:
        logger.warning(
            "the training workers hold %s of the cluster's %s CPUs, leaving less than one for the tasks that "
            "produce the datasets; iterating a dataset shard may wait forever. Lower num_workers or "
            "resources_per_worker={'CPU': ...}",
            need.get("CPU", 0.0),
            total.get("CPU", 0.0),
        )
    short = {k: v for k, v in need.items() if total.get(k, 0.0) + 1e-9 < v}
    if short:
        have = {k: total.get(k, 0.0) for k in short}
        raise ValueError(
            f"ScalingConfig asks for {need} ({scaling.num_workers} workers x {scaling.worker_resources}) "
            f"but the cluster has only {have}; lower num_workers or resources_per_worker"
        )


def _fits(need: dict[str, float], bundle: dict[str, float]) -> bool:
    return all(bundle.get(k, 0.0) + 1e-9 >= v for k, v in need.items() if v > 0)


def _enclosing_bundles(scaling: ScalingConfig) -> tuple[Any, list[int]] | None:
    """The placement group this code runs in and the bundles of it that hold the workers, if it can.

    A trainer run as a tune trial runs inside the trial's group, whose last
    ``num_workers`` bundles tune reserved for the workers (see
    ``DataParallelTrainer.as_trainable``). Making a second group for the same
    workers would wait for resources the first one holds: with every trial
    holding its share that wait never ends.
    """
    current = shoal.util.get_current_placement_group()
    if current is None:
        return None
    ctx = shoal.get_runtime_context()
    # Ray's test: only a group that captures its children is the trainer's to use. Cores
    # that do not say so are trusted (tune's trials always capture).
    if getattr(ctx, "should_capture_child_tasks_in_placement_group", True) is False:
        return None
    n = scaling.num_workers
    bundles = current.bundle_specs
    need = scaling.worker_resources
    # A caller that holds resources sits in one of the bundles (the first, by tune's rule):
    # the workers need n bundles besides it.
    holds = any(v > 0 for v in ctx.get_assigned_resources().values())
    if len(bundles) < n + int(holds) or not all(_fits(need, b) for b in bundles[-n:]):
        logger.info(
            "the trainer runs in placement group %s whose bundles %s cannot hold %d workers of %s; "
            "the workers get a placement group of their own",
            current.id.hex(),
            bundles,
            n,
            need,
        )
        return None
    return current, list(range(len(bundles) - n, len(bundles)))


class WorkerGroup:
    """N worker actors, one per bundle of a placement group; ``workers`` is in world-rank order.

    The group is the enclosing one when the trainer runs inside a placement
    group that can hold the workers (a tune trial's); it is left in place at
    shutdown. Otherwise the group is made here and removed at shutdown.
    """

    def __init__(self, scaling: ScalingConfig, prefetch: tuple[str, ...], runtime_env: dict[str, Any] | None) -> None:
        self.scaling = scaling
        resources = dict(scaling.worker_resources)
        enclosing = _enclosing_bundles(scaling)
        if enclosing is not None:
            self.pg, indices = enclosing
            self.owns_pg = False
        else:
            self.pg = shoal.util.placement_group(
                [dict(resources) for _ in range(scaling.num_workers)], strategy=scaling.placement_strategy
            )
            indices = list(range(scaling.num_workers))
            self.owns_pg = True
        options: dict[str, Any] = {
            "num_cpus": resources.pop("CPU", 0.0),
            "num_gpus": resources.pop("GPU", 0.0),
            "max_concurrency": _MAX_CONCURRENCY,
        }
        if resources:
            options["resources"] = resources
        if runtime_env:
            options["runtime_env"] = runtime_env
        cls = _remote_worker_class()
        self.workers: list[Any] = [
            cls.options(
                **options,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=i),
            ).remote(prefetch)
            for i in indices
        ]
        self.infos: list[dict[str, Any]] = []

    def wait_ready(self) -> list[dict[str, Any]]:
        """Wait for every worker; order them so that workers of one node have consecutive ranks.

        Raises what the first failed worker raised (its constructor, or its death).
        """
        infos = shoal.get([w.info.remote() for w in self.workers])
        node_order: dict[str, int] = {}
        for info in infos:
            node_order.setdefault(info["node_id"], len(node_order))
        order = sorted(range(len(infos)), key=lambda i: (node_order[infos[i]["node_id"]], i))
        self.workers = [self.workers[i] for i in order]
        self.infos = [infos[i] for i in order]
        per_node: dict[str, int] = {}
        for info in self.infos:
            node = info["node_id"]
            info["local_rank"] = per_node.get(node, 0)
            per_node[node] = info["local_rank"] + 1
            info["node_rank"] = node_order[node]
        for info in self.infos:
            info["local_world_size"] = per_node[info["node_id"]]
        return self.infos

    def shutdown(self) -> None:
        """Kill every worker (threads stuck in collectives cannot be stopped otherwise) and free the bundles."""
        for w in self.workers:
            try:
                shoal.kill(w)
            except Exception as e:  # noqa: BLE001 - a dead actor is what we want
                logger.debug("killing a training worker: %s", e)
        self.workers = []
        if not self.owns_pg:
            return  # the enclosing group (a tune trial's) outlives this attempt
        try:
            shoal.util.remove_placement_group(self.pg)
        except Exception as e:  # noqa: BLE001
            logger.debug("removing the training placement group: %s", e)
