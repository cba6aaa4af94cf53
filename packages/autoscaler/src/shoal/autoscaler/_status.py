"""The autoscaler's report: nodes by type and state, pending demand and why, launch failures."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from shoal.autoscaler._resources import format_shape

__all__ = ["AutoscalerStatus", "NodeStatus", "DemandStatus", "LaunchFailureStatus"]

_STATE_ORDER = ("requested", "launching", "running", "draining", "terminated")


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    node_type: str
    kind: str
    state: str
    since_s: float
    reason: str


@dataclass(frozen=True)
class DemandStatus:
    """All pending demand of one kind and shape, and what happens to it."""

    kind: str
    shape: dict[str, float]
    count: int
    #: Copies that fit on free resources of running nodes (the scheduler will place them).
    on_running: int
    #: Copies that will fit on nodes already being launched.
    on_pending: int
    #: Copies served by nodes launched in this round, by node type.
    launching: dict[str, int]
    #: Copies that nothing will serve yet; ``reason`` says why.
    unserved: int
    reason: str = ""
    note: str = ""

    def explain(self) -> str:
        parts = []
        if self.on_running:
            parts.append(f"{self.on_running} fit on running nodes")
        if self.on_pending:
            parts.append(f"{self.on_pending} wait for nodes being launched")
        for t, n in sorted(self.launching.items()):
            parts.append(f"{n} served by new {t} node(s)")
        if self.unserved:
            parts.append(f"{self.unserved} pending: {self.reason}")
        what = f"{self.kind}" + (f" ({self.note})" if self.note else "")
        return f"{format_shape(self.shape)} x {self.count} {what}: " + "; ".join(parts)


@dataclass(frozen=True)
class LaunchFailureStatus:
    node_type: str
    consecutive_failures: int
    total_failures: int
    last_error: str
    category: str
    retry_in_s: float


@dataclass(frozen=True)
class AutoscalerStatus:
    cluster_name: str
    now: float
    nodes: list[NodeStatus] = field(default_factory=list)
    demand: list[DemandStatus] = field(default_factory=list)
    launch_failures: list[LaunchFailureStatus] = field(default_factory=list)
    pending_launches: int = 0
    pending_limit: int = 0
    unserved_requests: int = 0
    recent_events: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{node_type: {state: n}}`` over non-terminated and kept terminated nodes."""
        c: Counter[tuple[str, str]] = Counter((n.node_type, n.state) for n in self.nodes)
        out: dict[str, dict[str, int]] = {}
        for (t, s), n in sorted(c.items()):
            out.setdefault(t, {})[s] = n
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoscalerStatus:
        """The inverse of :meth:`to_dict` (for status read back from the head)."""
        d = dict(data)
        d["nodes"] = [NodeStatus(**n) for n in d.get("nodes", [])]
        d["demand"] = [DemandStatus(**x) for x in d.get("demand", [])]
        d["launch_failures"] = [LaunchFailureStatus(**f) for f in d.get("launch_failures", [])]
        return cls(**d)

    def format(self, events: int = 10) -> str:
        """The text ``shoal status`` prints for the autoscaler."""
        lines = [f"Autoscaler (cluster {self.cluster_name})", "Nodes:"]
        counts = self.counts()
        if not counts:
            lines.append("  (none)")
        for t, by_state in counts.items():
            parts = [f"{by_state[s]} {s}" for s in _STATE_ORDER if s in by_state]
            lines.append(f"  {t}: " + ", ".join(parts))
        lines.append(f"Pending launches: {self.pending_launches} (limit {self.pending_limit})")
        lines.append("Demand:")
        if not self.demand:
            lines.append("  (none)")
        for d in self.demand:
            lines.append(f"  {d.explain()}")
        if self.unserved_requests:
            lines.append(f"  request_resources: {self.unserved_requests} bundle(s) cannot be provided")
        if self.launch_failures:
            lines.append("Launch failures:")
            for f in self.launch_failures:
                retry = f", retry in {f.retry_in_s:.0f}s" if f.retry_in_s > 0 else ""
                lines.append(
                    f"  {f.node_type}: {f.total_failures} failure(s), {f.consecutive_failures} in a row{retry}; "
                    f"last ({f.category}): {f.last_error}"
                )
        if events and self.recent_events:
            lines.append("Recent events:")
            lines += [f"  {e}" for e in self.recent_events[-events:]]
        return "\n".join(lines)
