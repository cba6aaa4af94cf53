"""``XGBoostConfig``: xgboost's collective (rabit) across the worker group, with the tracker in the driver."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shoal.train.backend import BackendConfig, WorkerGroupInfo

if TYPE_CHECKING:
    from shoal.train.context import TrainContext

logger = logging.getLogger("shoal.train")

__all__ = ["XGBoostConfig"]

# The communicator arguments of the training function running in this process.
_worker_args: dict[str, Any] = {}


class XGBoostConfig(BackendConfig):
    """How workers join xgboost's collective.

    With more than one worker, the driver starts xgboost's ``RabitTracker`` and
    every worker's training function runs inside ``xgboost.collective.CommunicatorContext``,
    so ``xgboost.train`` on each worker's shard builds one model together. Ranks in
    the collective equal the workers' world ranks.

    Args:
        xgboost_communicator: only ``"rabit"``.
        timeout_s: how long the tracker waits for every worker to connect (0: no limit).
    """

    def __init__(self, xgboost_communicator: str = "rabit", timeout_s: int = 0) -> None:
        if xgboost_communicator != "rabit":
            raise ValueError(f"XGBoostConfig(xgboost_communicator=...) must be 'rabit', got {xgboost_communicator!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s < 0:
            raise ValueError(f"XGBoostConfig(timeout_s=...) must be an integer >= 0, got {timeout_s!r}")
        self.xgboost_communicator = xgboost_communicator
        self.timeout_s = timeout_s
        self._tracker: Any = None
        self._wait: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The tracker lives in the driver only.
        return {"xgboost_communicator": self.xgboost_communicator, "timeout_s": self.timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"XGBoostConfig(xgboost_communicator={self.xgboost_communicator!r})"

    def prefetch_modules(self, num_workers: int) -> tuple[str, ...]:
        return ("xgboost",)

    # -- driver -------------------------------------------------------------------------

    def on_group_start(self, group: WorkerGroupInfo) -> dict[str, Any]:
        if group.world_size < 2:
            return {}
        from xgboost.tracker import RabitTracker

        host = "127.0.0.1" if group.single_node else socket.gethostbyname(socket.gethostname())
        # sortby="task": collective ranks follow dmlc_task_id, which carries the world rank.
        self._tracker = RabitTracker(n_workers=group.world_size, host_ip=host, sortby="task", timeout=self.timeout_s)
        self._tracker.start()
        self._wait = threading.Thread(target=self._tracker.wait_for, name="shoal-train-rabit", daemon=True)
        self._wait.start()
        return dict(self._tracker.worker_args())

    def on_group_shutdown(self) -> None:
        if self._wait is not None:
            self._wait.join(timeout=5)
            if self._wait.is_alive():
                logger.warning("xgboost's RabitTracker did not finish within 5 s of the workers' end")
        self._tracker = None
        self._wait = None

    # -- worker -------------------------------------------------------------------------

    def on_worker_start(self, context: TrainContext, setup: dict[str, Any]) -> None:
        _worker_args.clear()
        if setup:
            _worker_args.update(setup)
            _worker_args["dmlc_task_id"] = f"[shoal.train-rank={context.get_world_rank():08d}]"

    @contextlib.contextmanager
    def train_func_context(self) -> Iterator[None]:
        if not _worker_args:
            yield
            return
        from xgboost.collective import CommunicatorContext

        with CommunicatorContext(**_worker_args):
            yield
