"""The autoscaler as a state machine: events in, decisions out, no I/O.

Each node the autoscaler knows moves through explicit states::

    requested --> launching --> running --> draining --> terminated
        |             |            |   ^________|            ^
        +-------------+------------+-------------------------+

- requested: a launch was decided; the provider has not answered yet.
- launching: the provider created the machine; its node agent has not joined.
- running: the head reports the node.
- draining: chosen for termination; the head stops placing work on it,
  then the provider terminates it (a drain the head rejects returns the
  node to running).
- terminated: gone (terminated by us, vanished, or its launch failed).

The machine never calls a provider or the head: :class:`AutoscalerShell`
feeds it events and carries out its decisions. Time comes in with every
event, so tests drive it with virtual time.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from shoal.autoscaler._planner import Plan, PlanInput, PlanNode, TypeSpec, plan
from shoal.autoscaler._status import (
    AutoscalerStatus,
    DemandStatus,
    LaunchFailureStatus,
    NodeStatus,
)
from shoal.autoscaler.config import ClusterConfig
from shoal.autoscaler.events import (
    Decision,
    DrainFinished,
    DrainNode,
    Event,
    LaunchFailed,
    LaunchNodes,
    LaunchSucceeded,
    Observed,
    TerminateFinished,
    TerminateNodes,
)
from shoal.autoscaler.node_provider import NODE_KIND_HEAD, NODE_KIND_WORKER, TAG_LAUNCH_ID
from shoal.exceptions import ShoalSystemError

__all__ = ["Autoscaler", "AutoscalerSettings", "NodeState", "NodeRecord", "TRANSITIONS"]


class NodeState(StrEnum):
    REQUESTED = "requested"
    LAUNCHING = "launching"
    RUNNING = "running"
    DRAINING = "draining"
    TERMINATED = "terminated"


S = NodeState
#: Allowed moves; anything else is a bug and raises.
TRANSITIONS: dict[NodeState, frozenset[NodeState]] = {
    S.REQUESTED: frozenset({S.LAUNCHING, S.TERMINATED}),
    S.LAUNCHING: frozenset({S.RUNNING, S.DRAINING, S.TERMINATED}),
    S.RUNNING: frozenset({S.DRAINING, S.TERMINATED}),
    S.DRAINING: frozenset({S.RUNNING, S.TERMINATED}),
    S.TERMINATED: frozenset(),
}
_ACTIVE = (S.REQUESTED, S.LAUNCHING, S.RUNNING, S.DRAINING)


@dataclass(frozen=True)
class AutoscalerSettings:
    """Timing and limits that are not part of the cluster config."""

    #: A created node that has not joined the head by then is terminated (and counts as a failed launch).
    launch_timeout_s: float = 600.0
    #: A running node absent from the head's reports this long is terminated.
    node_lost_timeout_s: float = 60.0
    #: A just-created node may be missing from provider listings this long (eventual consistency).
    listing_grace_s: float = 30.0
    #: Launch backoff: base * 2**(failures-1), at most max; config and auth errors wait max at once.
    backoff_base_s: float = 10.0
    backoff_max_s: float = 300.0
    terminate_retry_s: float = 30.0
    #: Pending-node limit is max(this, upscaling_speed * running nodes).
    min_pending_launches: int = 5
    #: Largest single create call; bigger launches are split so one failure costs less.
    max_launch_batch: int = 50
    #: Terminated records kept for status.
    keep_terminated: int = 200
    keep_events: int = 200

    def __post_init__(self) -> None:
        for name in ("launch_timeout_s", "node_lost_timeout_s", "backoff_base_s", "backoff_max_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.min_pending_launches < 1 or self.max_launch_batch < 1:
            raise ValueError("min_pending_launches and max_launch_batch must be >= 1")


@dataclass
class NodeRecord:
    """The autoscaler's memory of one node."""

    key: str
    node_type: str
    kind: str
    state: NodeState
    since: float
    reason: str
    launch_id: str | None = None
    provider_id: str | None = None
    created_at: float = 0.0
    last_seen: float | None = None
    idle_s: float = 0.0
    terminate_after: float | None = None
    terminate_sent: bool = False
    history: list[tuple[float, str, str]] = field(default_factory=list)


@dataclass
class _Backoff:
    failures: int = 0
    total_failures: int = 0
    next_allowed: float = 0.0
    last_error: str = ""
    category: str = ""
    #: After a quota or capacity error, launch at most this many at once (halved per failure).
    max_batch: int | None = None


class Autoscaler:
    """Decides launches and terminations for one cluster. Feed it events with :meth:`handle`."""

    def __init__(self, config: ClusterConfig, settings: AutoscalerSettings | None = None) -> None:
        self.config = config
        self.settings = settings or AutoscalerSettings()
        self._records: dict[str, NodeRecord] = {}
        self._by_provider: dict[str, NodeRecord] = {}
        self._launch_seq = 0
        self._backoff: dict[str, _Backoff] = {}
        self._events: deque[tuple[float, str, str]] = deque(maxlen=self.settings.keep_events)
        self._last_plan: Plan | None = None
        self._last_budget: tuple[int, int] = (0, 0)
        self._now = 0.0

    # -- public ----------------------------------------------------------------------

    def handle(self, event: Event) -> list[Decision]:
        """Apply one event and return what the shell must do next."""
        self._now = max(self._now, event.now)
        if isinstance(event, Observed):
            return self._on_observed(event)
        if isinstance(event, LaunchSucceeded):
            return self._on_launch_succeeded(event)
        if isinstance(event, LaunchFailed):
            return self._on_launch_failed(event)
        if isinstance(event, DrainFinished):
            return self._on_drain_finished(event)
        if isinstance(event, TerminateFinished):
            return self._on_terminate_finished(event)
        raise TypeError(f"unknown event {type(event).__name__}")

    def nodes(self, state: NodeState | None = None) -> list[NodeRecord]:
        """Known nodes (terminated ones only while kept for status), optionally of one state."""
        return [r for r in self._records.values() if state is None or r.state is state]

    def node(self, provider_id: str) -> NodeRecord | None:
        return self._by_provider.get(provider_id)

    # -- transitions -----------------------------------------------------------------

    def _log(self, now: float, event_id: str, text: str) -> None:
        self._events.append((now, event_id, text))

    def _move(self, rec: NodeRecord, new: NodeState, now: float, reason: str, event_id: str) -> None:
        if new not in TRANSITIONS[rec.state]:
            raise ShoalSystemError(f"autoscaler bug: node {rec.key} cannot go from {rec.state.value} to {new.value}")
        rec.history.append((now, new.value, reason))
        self._log(now, event_id, f"node {rec.key} ({rec.node_type}): {rec.state.value} -> {new.value}: {reason}")
        rec.state, rec.since, rec.reason = new, now, reason
        if new is S.TERMINATED:
            self._prune()

    def _prune(self) -> None:
        dead = [k for k, r in self._records.items() if r.state is S.TERMINATED]
        for k in dead[: max(0, len(dead) - self.settings.keep_terminated)]:
            rec = self._records.pop(k)
            if rec.provider_id is not None and self._by_provider.get(rec.provider_id) is rec:
                del self._by_provider[rec.provider_id]

    def _bind(self, rec: NodeRecord, provider_id: str, now: float, event_id: str) -> None:
        old_key = rec.key
        rec.provider_id = provider_id
        rec.key = provider_id
        self._records.pop(old_key, None)
        self._records[provider_id] = rec
        self._by_provider[provider_id] = rec
        self._move(rec, S.LAUNCHING, now, f"created by the provider (request {rec.launch_id})", event_id)

    def _fail_type(self, node_type: str, now: float, error: str, category: str, event_id: str) -> None:
        b = self._backoff.setdefault(node_type, _Backoff())
        b.failures += 1
        b.total_failures += 1
        st = self.settings
        if category in ("config", "auth"):
            delay = st.backoff_max_s
        else:
            delay = min(st.backoff_base_s * 2 ** (b.failures - 1), st.backoff_max_s)
        b.next_allowed = now + delay
        b.last_error, b.category = error, category
        self._log(now, event_id, f"launch of {node_type} failed ({category}): {error}; retry in {delay:g}s")

    # -- handlers --------------------------------------------------------------------

    def _on_launch_succeeded(self, ev: LaunchSucceeded) -> list[Decision]:
        waiting = [r for r in self._records.values() if r.launch_id == ev.launch_id and r.state is S.REQUESTED]
        bound = {r.provider_id for r in self._records.values() if r.launch_id == ev.launch_id}
        node_type = waiting[0].node_type if waiting else None
        for pid in ev.node_ids:
            if pid in bound or pid in self._by_provider:
                continue  # already seen in a listing
            if waiting:
                self._bind(waiting.pop(0), pid, ev.now, ev.event_id)
        for rec in waiting:
            self._move(rec, S.TERMINATED, ev.now, "the provider created fewer nodes than requested", ev.event_id)
        if node_type is not None and node_type in self._backoff:
            # The failure streak ends only when a node of the type joins the cluster: a node
            # that is created and then dies before joining must keep backing off, not retry
            # at the base delay forever.
            b = self._backoff[node_type]
            if b.max_batch is not None:  # grow back gently after a quota error
                b.max_batch *= 2
                if b.max_batch >= self.settings.max_launch_batch:
                    b.max_batch = None
        return []

    def _on_launch_failed(self, ev: LaunchFailed) -> list[Decision]:
        waiting = [r for r in self._records.values() if r.launch_id == ev.launch_id and r.state is S.REQUESTED]
        if not waiting:
            return []
        for rec in waiting:
            self._move(rec, S.TERMINATED, ev.now, f"launch failed ({ev.category}): {ev.error}", ev.event_id)
        node_type = waiting[0].node_type
        self._fail_type(node_type, ev.now, ev.error, ev.category, ev.event_id)
        if ev.category in ("quota", "capacity"):
            # Part of the request may still fit: ask for less next time.
            self._backoff[node_type].max_batch = max(1, len(waiting) // 2)
        return []

    def _on_drain_finished(self, ev: DrainFinished) -> list[Decision]:
        rec = self._by_provider.get(ev.node_id)
        if rec is None or rec.state is not S.DRAINING:
            return []
        if not ev.accepted:
            why = f"drain failed: {ev.error}" if ev.error else "drain rejected: work arrived on the node"
            self._move(rec, S.RUNNING, ev.now, why, ev.event_id)
            return []
        rec.terminate_sent = True
        return [TerminateNodes(node_ids=(ev.node_id,), reason=rec.reason, cause=ev.event_id)]

    def _on_terminate_finished(self, ev: TerminateFinished) -> list[Decision]:
        for pid in ev.node_ids:
            rec = self._by_provider.get(pid)
            if rec is None or rec.state is S.TERMINATED:
                continue
            if ev.error:
                rec.terminate_sent = False
                rec.terminate_after = ev.now + self.settings.terminate_retry_s
                self._log(ev.now, ev.event_id, f"terminating {pid} failed: {ev.error}; will retry")
            else:
                self._move(rec, S.TERMINATED, ev.now, f"terminated: {rec.reason}", ev.event_id)
        return []

    def _on_observed(self, ev: Observed) -> list[Decision]:
        now, st = ev.now, self.settings
        decisions: list[Decision] = []
        listed = {n.node_id: n for n in ev.provider_nodes}
        loads = {n.node_id: n for n in ev.load.nodes}

        # 1. Reconcile with what the provider lists.
        waiting_by_launch: dict[str, list[NodeRecord]] = {}
        for r in self._records.values():
            if r.state is S.REQUESTED and r.launch_id:
                waiting_by_launch.setdefault(r.launch_id, []).append(r)
        for pid, pn in listed.items():
            if pid in self._by_provider:
                continue  # known (a terminated node may linger in listings for a while)
            waiting = waiting_by_launch.get(pn.tags.get(TAG_LAUNCH_ID, ""), [])
            if waiting:  # created by a launch whose answer has not arrived yet
                self._bind(waiting.pop(0), pid, now, ev.event_id)
                continue
            rec = NodeRecord(
                key=pid,
                node_type=pn.node_type or "(unknown)",
                kind=pn.kind,
                state=S.LAUNCHING,
                since=now,
                reason="found at the provider",
                provider_id=pid,
                created_at=now,
            )
            rec.history.append((now, S.LAUNCHING.value, rec.reason))
            self._records[pid] = rec
            self._by_provider[pid] = rec
            self._log(now, ev.event_id, f"node {pid} ({rec.node_type}) found at the provider")

        for rec in list(self._records.values()):
            if rec.state in (S.TERMINATED, S.REQUESTED) or rec.provider_id is None:
                continue
            pid = rec.provider_id
            if pid not in listed:
                if rec.state is S.LAUNCHING and now - rec.since < st.listing_grace_s:
                    continue
                was = rec.state
                self._move(rec, S.TERMINATED, now, "no longer listed by the provider", ev.event_id)
                if was is S.LAUNCHING and rec.kind == NODE_KIND_WORKER:
                    self._fail_type(rec.node_type, now, "node vanished before joining", "transient", ev.event_id)
                continue
            load = loads.get(pid)
            if load is not None:
                rec.last_seen, rec.idle_s = now, load.idle_s
                if rec.state is S.LAUNCHING:
                    self._move(rec, S.RUNNING, now, "joined the cluster", ev.event_id)
                    if rec.node_type in self._backoff:
                        self._backoff[rec.node_type].failures = 0
                continue
            if rec.kind == NODE_KIND_HEAD:
                continue
            if rec.state is S.LAUNCHING and now - rec.since >= st.launch_timeout_s:
                why = f"did not join the cluster within {st.launch_timeout_s:g}s"
                self._move(rec, S.DRAINING, now, why, ev.event_id)
                self._fail_type(rec.node_type, now, why, "transient", ev.event_id)
                rec.terminate_sent = True
                decisions.append(TerminateNodes(node_ids=(pid,), reason=why, cause=ev.event_id))
            elif rec.state is S.RUNNING and now - (rec.last_seen or rec.since) >= st.node_lost_timeout_s:
                why = f"stopped reporting to the head for {st.node_lost_timeout_s:g}s"
                self._move(rec, S.DRAINING, now, why, ev.event_id)
                rec.terminate_sent = True
                decisions.append(TerminateNodes(node_ids=(pid,), reason=why, cause=ev.event_id))

        # Launch requests the provider never answered.
        for rec in list(self._records.values()):
            if rec.state is S.REQUESTED and now - rec.since >= st.launch_timeout_s:
                why = f"no answer from the provider within {st.launch_timeout_s:g}s"
                self._move(rec, S.TERMINATED, now, why, ev.event_id)
                self._fail_type(rec.node_type, now, why, "transient", ev.event_id)

        # Terminations to retry.
        for rec in self._records.values():
            if (
                rec.state is S.DRAINING
                and not rec.terminate_sent
                and rec.terminate_after is not None
                and now >= rec.terminate_after
                and rec.provider_id is not None
            ):
                rec.terminate_sent = True
                decisions.append(TerminateNodes(node_ids=(rec.provider_id,), reason=rec.reason, cause=ev.event_id))

        # 2. Plan launches.
        result = plan(self._plan_input(ev, loads))
        self._last_plan = result
        for node_type, count, why in result.launches:
            decisions.extend(self._launch(node_type, count, why, now, ev.event_id))

        # 3. Idle nodes.
        decisions.extend(self._scale_down(result, now, ev.event_id))
        return decisions

    def _plan_input(self, ev: Observed, loads: Mapping[str, object]) -> PlanInput:
        cfg, now = self.config, ev.now
        types = [TypeSpec(t.name, t.resources, t.max_workers, t.min_workers) for t in cfg.available_node_types.values()]
        nodes: list[PlanNode] = []
        workers_by_type: dict[str, int] = {}
        managed: set[str] = set()
        pending = 0
        for rec in self._records.values():
            if rec.state is S.TERMINATED:
                continue
            if rec.provider_id:
                managed.add(rec.provider_id)
            if rec.kind == NODE_KIND_WORKER:
                workers_by_type[rec.node_type] = workers_by_type.get(rec.node_type, 0) + 1
            if rec.state in (S.REQUESTED, S.LAUNCHING):
                if rec.kind == NODE_KIND_WORKER:
                    pending += 1
                spec = cfg.available_node_types.get(rec.node_type)
                res = dict(spec.resources) if spec else {}
                nodes.append(PlanNode(rec.key, rec.node_type, True, res, res))
        for load in ev.load.nodes:
            known = self._by_provider.get(load.node_id)
            # A node being drained or already terminated may still report for a moment: no capacity.
            if known is not None and known.state in (S.DRAINING, S.TERMINATED):
                continue
            node_type = known.node_type if known is not None else load.node_type
            removable = known is not None and known.kind == NODE_KIND_WORKER
            nodes.append(PlanNode(load.node_id, node_type, False, load.total, load.available, load.idle_s, removable))
        running = len(ev.load.nodes)
        speed = cfg.upscaling_speed
        limit = max(self.settings.min_pending_launches, math.floor(speed * running))
        self._last_budget = (pending, limit)
        blocked = {}
        for name, b in self._backoff.items():
            if b.next_allowed > now:
                blocked[name] = (
                    f"launch backoff after {b.failures} failure(s), retry in {b.next_allowed - now:.0f}s "
                    f"(last error, {b.category}: {b.last_error})"
                )
        caps = {
            name: (b.max_batch, f"launching at most {b.max_batch} at once after a {b.category} error")
            for name, b in self._backoff.items()
            if b.max_batch is not None
        }
        return PlanInput(
            launch_caps=caps,
            types=types,
            nodes=nodes,
            workers_by_type=workers_by_type,
            max_workers=cfg.max_workers,
            demand_budget=max(0, limit - pending),
            budget_reason=(
                f"{pending} node(s) pending, limit {limit} "
                f"(max({self.settings.min_pending_launches}, {speed:g} x {running} running))"
            ),
            blocked=blocked,
            demands=ev.load.demands,
            resource_requests=ev.load.resource_requests,
        )

    def _launch(self, node_type: str, count: int, why: str, now: float, event_id: str) -> list[Decision]:
        out: list[Decision] = []
        batch = self.settings.max_launch_batch
        while count > 0:
            n = min(count, batch)
            count -= n
            self._launch_seq += 1
            launch_id = f"launch-{self._launch_seq}"
            for i in range(n):
                key = f"{launch_id}/{i}"
                rec = NodeRecord(
                    key=key,
                    node_type=node_type,
                    kind=NODE_KIND_WORKER,
                    state=S.REQUESTED,
                    since=now,
                    reason=why,
                    launch_id=launch_id,
                    created_at=now,
                )
                rec.history.append((now, S.REQUESTED.value, why))
                self._records[key] = rec
            self._log(now, event_id, f"{launch_id}: launch {n} x {node_type} for {why}")
            out.append(LaunchNodes(launch_id=launch_id, node_type=node_type, count=n, reason=why, cause=event_id))
        return out

    def _scale_down(self, result: Plan, now: float, event_id: str) -> list[Decision]:
        cfg = self.config
        timeout = cfg.idle_timeout_s
        live: dict[str, int] = {}
        for rec in self._records.values():
            if rec.kind == NODE_KIND_WORKER and rec.state in (S.REQUESTED, S.LAUNCHING, S.RUNNING):
                live[rec.node_type] = live.get(rec.node_type, 0) + 1
        idle = [
            r
            for r in self._records.values()
            if r.state is S.RUNNING
            and r.kind == NODE_KIND_WORKER
            and r.provider_id not in result.needed_node_ids
            and r.idle_s > 0
        ]
        idle.sort(key=lambda r: (-r.idle_s, r.key))
        out: list[Decision] = []
        for rec in idle:
            spec = cfg.available_node_types.get(rec.node_type)
            over_max = spec is not None and live.get(rec.node_type, 0) > spec.max_workers
            if spec is None:
                why = f"node type {rec.node_type!r} is no longer in the cluster config"
            elif over_max:
                why = f"over max_workers ({spec.max_workers}) for {rec.node_type}"
            elif rec.idle_s >= timeout:
                if live.get(rec.node_type, 0) <= spec.min_workers:
                    continue
                idle_for = f"{rec.idle_s / 60:.1f} min" if rec.idle_s >= 60 else f"{rec.idle_s:.0f}s"
                why = f"idle for {idle_for} (idle_timeout_minutes={cfg.idle_timeout_minutes:g})"
            else:
                continue
            live[rec.node_type] = live.get(rec.node_type, 0) - 1
            self._move(rec, S.DRAINING, now, why, event_id)
            assert rec.provider_id is not None
            out.append(DrainNode(node_id=rec.provider_id, reason=why, cause=event_id))
        return out

    # -- status ----------------------------------------------------------------------

    def status(self) -> AutoscalerStatus:
        """What the autoscaler knows and why, as of the last event."""
        now = self._now
        nodes = [
            NodeStatus(
                node_id=r.key,
                node_type=r.node_type,
                kind=r.kind,
                state=r.state.value,
                since_s=now - r.since,
                reason=r.reason,
            )
            for r in self._records.values()
        ]
        demand: list[DemandStatus] = []
        if self._last_plan is not None:
            for row in self._last_plan.rows:
                demand.append(
                    DemandStatus(
                        kind=row.kind,
                        shape=dict(row.shape),
                        count=row.count,
                        on_running=row.on_running,
                        on_pending=row.on_pending,
                        launching=dict(row.on_new),
                        unserved=row.unserved,
                        reason=row.reason,
                        note=row.note,
                    )
                )
        failures = [
            LaunchFailureStatus(
                node_type=name,
                consecutive_failures=b.failures,
                total_failures=b.total_failures,
                last_error=b.last_error,
                category=b.category,
                retry_in_s=max(0.0, b.next_allowed - now),
            )
            for name, b in sorted(self._backoff.items())
            if b.total_failures
        ]
        # Pending now (after this round's launches), against the limit the round worked with.
        pending = sum(
            1 for r in self._records.values() if r.kind == NODE_KIND_WORKER and r.state in (S.REQUESTED, S.LAUNCHING)
        )
        limit = self._last_budget[1]
        return AutoscalerStatus(
            cluster_name=self.config.cluster_name,
            now=now,
            nodes=nodes,
            demand=demand,
            launch_failures=failures,
            pending_launches=pending,
            pending_limit=limit,
            unserved_requests=self._last_plan.unserved_requests if self._last_plan else 0,
            recent_events=[f"t={t:.1f} [{eid}] {text}" for t, eid, text in self._events],
        )
