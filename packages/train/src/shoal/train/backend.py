"""How a framework's distributed runtime is set up on the worker group: :class:`BackendConfig`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.train.context import TrainContext

__all__ = ["BackendConfig", "WorkerGroupInfo"]


class WorkerGroupInfo:
    """What the driver knows of the started workers, in world-rank order."""

    def __init__(self, infos: list[dict[str, Any]], use_gpu: bool, num_cpus_per_worker: float) -> None:
        self.workers = infos
        self.use_gpu = use_gpu
        self.num_cpus_per_worker = num_cpus_per_worker

    @property
    def world_size(self) -> int:
        return len(self.workers)

    @property
    def single_node(self) -> bool:
        return len({w["node_id"] for w in self.workers}) == 1


class BackendConfig:
    """Base of the per-framework setups (``TorchConfig``, ``XGBoostConfig``); the plain one does nothing.

    The hooks run in this order: :meth:`on_group_start` in the driver once the
    workers are up (it returns what every worker needs, e.g. a rendezvous
    address); :meth:`on_worker_start` in each worker's training thread; the
    training function inside :meth:`train_func_context`; :meth:`on_worker_shutdown`
    in each worker; :meth:`on_group_shutdown` in the driver.
    """

    def prefetch_modules(self, num_workers: int) -> tuple[str, ...]:
        """Modules each worker starts importing in the background as soon as it exists."""
        return ()

    def on_group_start(self, group: WorkerGroupInfo) -> dict[str, Any]:
        return {}

    def on_worker_start(self, context: TrainContext, setup: dict[str, Any]) -> None:
        pass

    @contextlib.contextmanager
    def train_func_context(self) -> Iterator[None]:
        yield

    def on_worker_shutdown(self, context: TrainContext) -> None:
        pass

    def on_group_shutdown(self) -> None:
        pass
