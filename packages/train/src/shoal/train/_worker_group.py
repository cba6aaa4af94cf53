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


class WorkerGroup:
    """N worker actors, one per bundle of a placement group; ``workers`` is in world-rank order."""

    def __init__(self, scaling: ScalingConfig, prefetch: tuple[str, ...], runtime_env: dict[str, Any] | None) -> None:
        self.scaling = scaling
        resources = dict(scaling.worker_resources)
        self.pg = shoal.util.placement_group(
            [dict(resources) for _ in range(scaling.num_workers)], strategy=scaling.placement_strategy
        )
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
            for i in range(scaling.num_workers)
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
        try:
            shoal.util.remove_placement_group(self.pg)
        except Exception as e:  # noqa: BLE001
            logger.debug("removing the training placement group: %s", e)
