"""A deterministic cluster simulation: virtual time, a simulated provider, a toy scheduler.

It runs the real autoscaler (state machine and shell) against
:class:`SimulatedProvider` and :class:`~shoal.autoscaler.demand.InMemoryClusterState`:
nodes boot after ``boot_delay_s``, tasks run for their durations on a
first-fit scheduler, and nothing depends on the wall clock. Use it to test
scaling policies and to benchmark the decision loop::

    sim = Simulator(config)
    sim.submit({"CPU": 1}, duration_s=60, count=500)
    sim.run_until(lambda s: s.idle(), max_time_s=3600)
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shoal.autoscaler._errors import NodeLaunchError
from shoal.autoscaler._machine import AutoscalerSettings, NodeState
from shoal.autoscaler._resources import COMMODITY_RESOURCES, Shape, ShapeKey, normalize_shape, shape_key
from shoal.autoscaler._shell import AutoscalerShell, InlineExecutor
from shoal.autoscaler.config import ClusterConfig
from shoal.autoscaler.demand import InMemoryClusterState, ResourceDemand
from shoal.autoscaler.node_provider import NODE_KIND_HEAD, TAG_NODE_KIND, NodeProvider, ProviderNode

__all__ = ["SimSample", "SimulatedProvider", "Simulator", "VirtualClock"]


def _special(shape: Mapping[str, float]) -> list[str]:
    return [r for r, v in shape.items() if v > 0 and r not in COMMODITY_RESOURCES]


class VirtualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self.now += seconds
        return self.now


@dataclass
class _SimNode:
    node_type: str
    tags: dict[str, str]
    created_at: float
    terminated: bool = False


class SimulatedProvider(NodeProvider):
    """An in-memory provider on a virtual clock, with quotas and injectable failures.

    ``quota`` caps live nodes per type (a create beyond it raises a ``quota``
    NodeLaunchError, like a cloud would); ``fail`` is called with
    ``(node_type, count)`` before each create and may return an error
    category to fail that call.
    """

    provider_name = "simulated"

    def __init__(
        self,
        provider_config: Mapping[str, Any] | None = None,
        cluster_name: str = "sim",
        *,
        clock: Callable[[], float],
        quota: Mapping[str, int] | None = None,
        fail: Callable[[str, int], str | None] | None = None,
    ) -> None:
        super().__init__(provider_config or {"type": "simulated"}, cluster_name)
        self._clock = clock
        self._nodes: dict[str, _SimNode] = {}
        self._ids = itertools.count(1)
        self.quota = dict(quota or {})
        self.fail = fail
        self.create_calls = 0
        self.terminate_calls = 0

    def create_nodes(self, node_type, node_config, tags, count, *, resources=None) -> list[str]:
        self.create_calls += 1
        if self.fail is not None:
            category = self.fail(node_type, count)
            if category:
                raise NodeLaunchError(f"simulated {category} failure creating {count} x {node_type}", category)
        live = sum(1 for n in self._nodes.values() if n.node_type == node_type and not n.terminated)
        limit = self.quota.get(node_type)
        if limit is not None and live + count > limit:
            raise NodeLaunchError(f"quota exceeded for {node_type}: {live} live, limit {limit}", "quota")
        full = self._full_tags(node_type, tags)
        ids = []
        for _ in range(count):
            nid = f"sim-{next(self._ids)}"
            self._nodes[nid] = _SimNode(node_type, dict(full), self._clock())
            ids.append(nid)
        return ids

    def terminate_nodes(self, node_ids: Sequence[str]) -> None:
        self.terminate_calls += 1
        for nid in node_ids:
            if nid in self._nodes:
                self._nodes[nid].terminated = True

    def non_terminated_nodes(self, tag_filters: Mapping[str, str] | None = None) -> list[ProviderNode]:
        return [
            ProviderNode(nid, dict(n.tags), internal_ip=f"10.0.{int(nid[4:]) // 256}.{int(nid[4:]) % 256}")
            for nid, n in self._nodes.items()
            if not n.terminated and self._matches(n.tags, tag_filters)
        ]

    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        node = self._nodes.get(node_id)
        if node is None or node.terminated:
            raise NodeLaunchError(f"no node {node_id!r}", "config")
        node.tags.update(tags)

    def created_at(self, node_id: str) -> float:
        return self._nodes[node_id].created_at

    def node_type_of(self, node_id: str) -> str:
        return self._nodes[node_id].node_type


@dataclass(frozen=True)
class SimSample:
    """The cluster at one simulated instant."""

    time: float
    workers_by_state: dict[str, int]
    pending_tasks: int
    running_tasks: int
    #: Demand-driven pending-node limit in force at that step.
    pending_limit: int


@dataclass
class _Group:
    shape: Shape
    duration_s: float
    kind: str
    count: int


class Simulator:
    """The autoscaler, a simulated provider, a head's state and a first-fit scheduler, on virtual time."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        settings: AutoscalerSettings | None = None,
        boot_delay_s: float = 30.0,
        step_s: float = 5.0,
        quota: Mapping[str, int] | None = None,
        fail: Callable[[str, int], str | None] | None = None,
        start_head: bool = True,
    ) -> None:
        if boot_delay_s < 0 or step_s <= 0:
            raise ValueError("boot_delay_s must be >= 0 and step_s > 0")
        self.config = config
        self.clock = VirtualClock()
        self.provider = SimulatedProvider(cluster_name=config.cluster_name, clock=self.clock, quota=quota, fail=fail)
        self.cluster = InMemoryClusterState(clock=self.clock)
        self.shell = AutoscalerShell(
            config, self.provider, self.cluster, settings=settings, clock=self.clock, executor=InlineExecutor()
        )
        self.boot_delay_s = boot_delay_s
        self.step_s = step_s
        self.samples: list[SimSample] = []
        self._pending: dict[tuple[str, ShapeKey, float], _Group] = {}
        self._running: list[tuple[float, int, str, Shape, int]] = []  # (end, seq, node, shape x k, k)
        self._seq = itertools.count()
        self.completed = 0
        if start_head:
            head = config.head_type
            (hid,) = self.provider.create_nodes(head.name, head.node_config, {TAG_NODE_KIND: NODE_KIND_HEAD}, 1)
            self.cluster.add_node(hid, head.resources, head.name)

    # -- workload --------------------------------------------------------------------

    def submit(self, shape: Mapping[str, float], duration_s: float, count: int = 1, kind: str = "task") -> None:
        """Queue ``count`` tasks (or actors) needing ``shape`` that each run ``duration_s``."""
        s = normalize_shape(shape, what="shape")
        key = (kind, shape_key(s), float(duration_s))
        g = self._pending.get(key)
        if g is None:
            self._pending[key] = _Group(s, float(duration_s), kind, count)
        else:
            g.count += count

    @property
    def pending_tasks(self) -> int:
        return sum(g.count for g in self._pending.values())

    @property
    def running_tasks(self) -> int:
        return sum(k for *_, k in self._running)

    def workers(self, state: NodeState | None = None) -> int:
        return sum(1 for r in self.shell.machine.nodes(state) if r.kind != NODE_KIND_HEAD)

    def idle(self) -> bool:
        """No work left and no worker nodes beyond the configured minimum."""
        live = sum(
            1 for r in self.shell.machine.nodes() if r.kind != NODE_KIND_HEAD and r.state is not NodeState.TERMINATED
        )
        floor = sum(t.min_workers for t in self.config.available_node_types.values())
        return not self._pending and not self._running and live <= floor

    # -- time ------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance one step: boots, completions, scheduling, then one autoscaler round."""
        now = self.clock.advance(self.step_s)
        # Lists, not sets: iteration order must not depend on string hashing (determinism).
        listed_order = [n.node_id for n in self.provider.non_terminated_nodes()]
        listed = set(listed_order)
        for nid in self.cluster.node_ids():
            if nid not in listed:
                self.cluster.remove_node(nid)
        registered = set(self.cluster.node_ids())
        for nid in (n for n in listed_order if n not in registered):
            if now - self.provider.created_at(nid) >= self.boot_delay_s:
                t = self.config.available_node_types.get(self.provider.node_type_of(nid))
                if t is not None:
                    self.cluster.add_node(nid, t.resources, t.name)
        while self._running and self._running[0][0] <= now:
            _, _, nid, shape, k = heapq.heappop(self._running)
            self.cluster.release(nid, shape)
            self.completed += k
        self._schedule(now)
        self.cluster.set_demands(
            [ResourceDemand(g.shape, count=g.count, kind=g.kind) for g in self._pending.values() if g.count]
        )
        self.shell.step()
        st = self.shell.machine
        by_state: dict[str, int] = {}
        for r in st.nodes():
            if r.kind != NODE_KIND_HEAD:
                by_state[r.state.value] = by_state.get(r.state.value, 0) + 1
        self.samples.append(SimSample(now, by_state, self.pending_tasks, self.running_tasks, st.status().pending_limit))

    def _schedule(self, now: float) -> None:
        """First fit, like a real scheduler: special-resource work first, and work that needs no
        special resource (GPU...) tries nodes without one before nodes with one."""
        caps: dict[str, float] = {}
        for t in self.config.available_node_types.values():
            for r, v in t.resources.items():
                caps[r] = max(caps.get(r, 0.0), v)
        nodes = [n for n in self.cluster.node_ids() if not self.cluster.is_draining(n)]
        plain = [n for n in nodes if not _special(self.cluster.total(n))]
        special = [n for n in nodes if _special(self.cluster.total(n))]

        def order(key: tuple[str, ShapeKey, float]) -> tuple[int, float]:
            shape = dict(key[1])
            return (-len(_special(shape)), -sum(v / caps.get(r, 1.0) for r, v in shape.items()))

        for key in sorted(self._pending, key=order):
            g = self._pending[key]
            for nid in special if _special(g.shape) else plain + special:
                if g.count == 0:
                    break
                avail = self.cluster.available(nid)
                fit = min((math.floor((avail.get(r, 0.0) + 1e-9) / v) for r, v in g.shape.items()), default=g.count)
                k = min(fit, g.count)
                if k <= 0:
                    continue
                total = {r: v * k for r, v in g.shape.items()}
                if self.cluster.try_allocate(nid, total):
                    g.count -= k
                    heapq.heappush(self._running, (now + g.duration_s, next(self._seq), nid, total, k))
            if g.count == 0:
                del self._pending[key]

    def run_until(self, predicate: Callable[[Simulator], bool], max_time_s: float) -> bool:
        """Tick until ``predicate(self)`` holds (True) or ``max_time_s`` of virtual time pass (False)."""
        deadline = self.clock.now + max_time_s
        while self.clock.now < deadline:
            self.tick()
            if predicate(self):
                return True
        return False

    def close(self) -> None:
        self.shell.close()
