"""One deployment's replicas as a state machine: target and events in, actions out (no I/O).

The controller's asyncio shell feeds it what happened (a replica started,
failed to start, stopped, failed a health check) and calls
:meth:`DeploymentState.reconcile`, which returns what to do next
(:class:`StartReplica`, :class:`StopReplica`, :class:`ReconfigureReplica`)
to move the running replicas toward the target: the right count, all at
the target version. Rolling updates start new replicas before stopping old
ones when there is room for both, and stop an old one first when there is
not; either way routers drain a replica before it stops.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shoal.serve._constants import MAX_CONSTRUCTOR_FAILURES
from shoal.serve.config import DeploymentConfig

__all__ = [
    "DeploymentState",
    "DeploymentStatus",
    "ReconfigureReplica",
    "ReplicaRecord",
    "ReplicaState",
    "StartReplica",
    "StopReplica",
]


class ReplicaState(enum.StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"


class DeploymentStatus(enum.StrEnum):
    UPDATING = "UPDATING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    UPSCALING = "UPSCALING"
    DOWNSCALING = "DOWNSCALING"


@dataclass(frozen=True)
class StartReplica:
    replica_id: str
    version: str


@dataclass(frozen=True)
class StopReplica:
    replica_id: str
    graceful: bool


@dataclass(frozen=True)
class ReconfigureReplica:
    replica_id: str
    user_config: Any


@dataclass
class ReplicaRecord:
    replica_id: str
    version: str
    state: ReplicaState
    started_seq: int
    socket_path: str | None = None
    user_config: Any = None
    reconfiguring: bool = False


@dataclass
class _Target:
    version: str
    config: DeploymentConfig
    num_replicas: int
    deleting: bool = False


Action = StartReplica | StopReplica | ReconfigureReplica


@dataclass
class DeploymentState:
    """The replicas of one deployment and the target they should match."""

    app_name: str
    name: str
    new_id: Callable[[], str]
    replicas: dict[str, ReplicaRecord] = field(default_factory=dict)
    target: _Target | None = None
    status: DeploymentStatus = DeploymentStatus.UPDATING
    message: str = ""
    scaling: DeploymentStatus | None = None
    _failures: int = 0
    _ever_running: bool = False
    _retry_at: float = 0.0
    _seq: itertools.count = field(default_factory=lambda: itertools.count(1))

    # -- target ----------------------------------------------------------------

    def deploy(self, version: str, config: DeploymentConfig) -> None:
        """A new target: new code (``version``) rolls the replicas; config alone changes them in place."""
        old = self.target
        num = config.initial_replicas()
        same_code = old is not None and not old.deleting and old.version == version
        # Same code: keep the autoscaled count when autoscaling stays on.
        if (
            old is not None
            and same_code
            and config.autoscaling_config is not None
            and old.config.autoscaling_config is not None
        ):
            auto = config.autoscaling_config
            num = max(auto.min_replicas, min(auto.max_replicas, old.num_replicas))
        if old is None or old.version != version:
            self._failures = 0
            self._ever_running = False
            self._retry_at = 0.0
            self.message = ""
        self.target = _Target(version, config, num)
        self.scaling = None
        self.status = DeploymentStatus.UPDATING

    def set_num_replicas(self, n: int) -> None:
        """The autoscaler's decision."""
        assert self.target is not None
        if n == self.target.num_replicas:
            return
        self.scaling = DeploymentStatus.UPSCALING if n > self.target.num_replicas else DeploymentStatus.DOWNSCALING
        self.target.num_replicas = n

    def delete(self) -> None:
        if self.target is not None:
            self.target.deleting = True

    @property
    def deleting(self) -> bool:
        return self.target is not None and self.target.deleting

    @property
    def finished(self) -> bool:
        """Deleted and every replica gone: the controller can forget it."""
        return self.deleting and not self.replicas

    # -- events ------------------------------------------------------------------

    def on_started(self, replica_id: str, socket_path: str) -> None:
        rec = self.replicas.get(replica_id)
        if rec is None or rec.state != ReplicaState.STARTING:
            return
        rec.state = ReplicaState.RUNNING
        rec.socket_path = socket_path
        if self.target is not None and rec.version == self.target.version:
            self._ever_running = True
            self._failures = 0

    def on_start_failed(self, replica_id: str, error: str, now: float) -> None:
        rec = self.replicas.pop(replica_id, None)
        if rec is None or self.target is None or rec.version != self.target.version:
            return
        self._failures += 1
        self.message = f"A replica failed to start: {error}"
        if not self._ever_running and self._failures >= MAX_CONSTRUCTOR_FAILURES:
            self.status = DeploymentStatus.DEPLOY_FAILED
            self.message = f"The deployment failed to start {self._failures} times in a row. Last error:\n{error}"
        else:
            # Back off so a crashing constructor does not spin.
            self._retry_at = now + min(0.2 * 2 ** (self._failures - 1), 5.0)

    def on_unhealthy(self, replica_id: str, reason: str) -> list[Action]:
        rec = self.replicas.get(replica_id)
        if rec is None or rec.state == ReplicaState.STOPPING:
            return []
        rec.state = ReplicaState.STOPPING
        self.message = f"Replica {replica_id} is unhealthy and is being replaced: {reason}"
        if self.status != DeploymentStatus.DEPLOY_FAILED:
            self.status = DeploymentStatus.UNHEALTHY
        return [StopReplica(replica_id, graceful=False)]

    def on_stopped(self, replica_id: str) -> None:
        self.replicas.pop(replica_id, None)

    def on_reconfigured(self, replica_id: str, user_config: Any) -> None:
        rec = self.replicas.get(replica_id)
        if rec is not None and rec.user_config == user_config:
            rec.reconfiguring = False

    # -- reconciling ------------------------------------------------------------

    def running(self) -> list[ReplicaRecord]:
        """Replicas that routers may send to."""
        return [r for r in self.replicas.values() if r.state == ReplicaState.RUNNING]

    def _stop(self, rec: ReplicaRecord, actions: list[Action]) -> None:
        rec.state = ReplicaState.STOPPING
        actions.append(StopReplica(rec.replica_id, graceful=True))

    @staticmethod
    def _stop_order(recs: list[ReplicaRecord]) -> list[ReplicaRecord]:
        # Starting replicas serve nobody yet; among running ones stop the newest first.
        return sorted(recs, key=lambda r: (r.state != ReplicaState.STARTING, -r.started_seq))

    def reconcile(self, now: float, can_surge: bool = True) -> list[Action]:
        """Actions that move the replicas toward the target."""
        target = self.target
        if target is None:
            return []
        actions: list[Action] = []
        want = 0 if target.deleting else target.num_replicas
        alive = [r for r in self.replicas.values() if r.state != ReplicaState.STOPPING]
        new = [r for r in alive if r.version == target.version]
        old = [r for r in alive if r.version != target.version]
        if target.deleting:
            for rec in alive:
                self._stop(rec, actions)
            return actions
        if self.status == DeploymentStatus.DEPLOY_FAILED:
            for rec in new:
                self._stop(rec, actions)
            return actions
        # Too many replicas of the current version.
        if len(new) > want:
            for rec in self._stop_order(new)[: len(new) - want]:
                self._stop(rec, actions)
            new = [r for r in new if r.state != ReplicaState.STOPPING]
        # Old replicas stay only while new ones are not yet running.
        new_running = sum(1 for r in new if r.state == ReplicaState.RUNNING)
        keep_old = max(0, want - new_running)
        if len(old) > keep_old:
            for rec in self._stop_order(old)[: len(old) - keep_old]:
                self._stop(rec, actions)
            old = [r for r in old if r.state != ReplicaState.STOPPING]
        missing = want - len(new)
        if missing > 0 and now >= self._retry_at:
            if old and not can_surge:
                # No room for both: make room, a fifth of the target at a time.
                batch = min(missing, max(1, math.ceil(0.2 * want)), len(old))
                for rec in self._stop_order(old)[:batch]:
                    self._stop(rec, actions)
                missing = batch
            for _ in range(missing):
                rid = self.new_id()
                self.replicas[rid] = ReplicaRecord(
                    rid, target.version, ReplicaState.STARTING, next(self._seq), user_config=target.config.user_config
                )
                actions.append(StartReplica(rid, target.version))
        # A new user_config reaches running replicas in place.
        for rec in new:
            if rec.state == ReplicaState.RUNNING and rec.user_config != target.config.user_config:
                rec.user_config = target.config.user_config
                rec.reconfiguring = True
                actions.append(ReconfigureReplica(rec.replica_id, target.config.user_config))
        self._update_status(want)
        return actions

    def _update_status(self, want: int) -> None:
        assert self.target is not None
        if self.status == DeploymentStatus.DEPLOY_FAILED:
            return
        settled = len(self.replicas) == want and all(
            r.state == ReplicaState.RUNNING and r.version == self.target.version and not r.reconfiguring
            for r in self.replicas.values()
        )
        if settled:
            self.status = DeploymentStatus.HEALTHY
            self.scaling = None
            self.message = ""
        elif self.scaling is not None:
            self.status = self.scaling
        elif self.status != DeploymentStatus.UNHEALTHY:
            self.status = DeploymentStatus.UPDATING

    def replica_states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rec in self.replicas.values():
            counts[rec.state.value] = counts.get(rec.state.value, 0) + 1
        return counts
