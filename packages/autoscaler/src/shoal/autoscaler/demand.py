"""What the autoscaler reads from the head, and the in-memory implementation of it.

The head of a cluster knows which nodes are up, what each has free, how long
each has been idle, which tasks, actors and placement groups wait for
resources, and the floors set with :func:`request_resources`. The autoscaler
reads all of that through one small protocol, :class:`ClusterStateSource`,
and asks the head to drain a node before terminating it.
:class:`~shoal.autoscaler.cluster_state.HeadClusterState` implements the
protocol over a real cluster's head service; :class:`InMemoryClusterState`
implements it in process for tests and the simulation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shoal.autoscaler._resources import Shape, ShapeKey, normalize_shape, shape_key

__all__ = [
    "DEMAND_KINDS",
    "PG_STRATEGIES",
    "ClusterLoad",
    "ClusterStateSource",
    "InMemoryClusterState",
    "NodeLoad",
    "PlacementGroupDemand",
    "ResourceDemand",
    "ResourceRequestChannel",
]

DEMAND_KINDS = ("task", "actor")
PG_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclass(frozen=True, slots=True)
class ResourceDemand:
    """``count`` pending tasks or actors that each need ``shape``."""

    shape: Mapping[str, float]
    count: int = 1
    kind: str = "task"
    key: tuple[str, ShapeKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in DEMAND_KINDS:
            raise ValueError(f"kind must be one of {DEMAND_KINDS}, got {self.kind!r}")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"count must be an int >= 1, got {self.count!r}")
        shape = normalize_shape(self.shape, what="shape")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "key", (self.kind, shape_key(shape)))


@dataclass(frozen=True, slots=True)
class PlacementGroupDemand:
    """``count`` pending placement groups of ``bundles`` with a Ray placement ``strategy``."""

    bundles: tuple[Mapping[str, float], ...]
    strategy: str = "PACK"
    count: int = 1

    def __post_init__(self) -> None:
        if self.strategy not in PG_STRATEGIES:
            raise ValueError(f"strategy must be one of {PG_STRATEGIES}, got {self.strategy!r}")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"count must be an int >= 1, got {self.count!r}")
        if not self.bundles:
            raise ValueError("a placement group needs at least one bundle")
        bundles = tuple(normalize_shape(b, what=f"bundles[{i}]") for i, b in enumerate(self.bundles))
        object.__setattr__(self, "bundles", bundles)


@dataclass(frozen=True)
class NodeLoad:
    """One live node as the head reports it. ``node_id`` is the provider's id of the machine."""

    node_id: str
    total: Mapping[str, float]
    available: Mapping[str, float]
    #: Seconds since the node last had any resource in use (0 while busy).
    idle_s: float = 0.0
    node_type: str | None = None


@dataclass(frozen=True)
class ClusterLoad:
    """Everything the autoscaler reads from the head in one round."""

    nodes: Sequence[NodeLoad] = ()
    demands: Sequence[ResourceDemand | PlacementGroupDemand] = ()
    #: The bundles of the last :func:`request_resources` call (floors).
    resource_requests: Sequence[Mapping[str, float]] = ()


@runtime_checkable
class ClusterStateSource(Protocol):
    """The head, as the autoscaler sees it."""

    def read_load(self) -> ClusterLoad:
        """Live nodes, pending demand and resource request floors, now."""
        ...

    def drain_node(self, node_id: str, reason: str) -> bool:
        """Stop placing work on an idle node so it can be terminated.

        Returns False (the node stays in service) if work landed on it since
        the autoscaler saw it idle.
        """
        ...


@runtime_checkable
class ResourceRequestChannel(Protocol):
    """Where :func:`request_resources` sends its floors (the head's store, in a cluster)."""

    def set_resource_requests(self, bundles: list[Shape]) -> None:
        """Replace the standing request with ``bundles`` (an empty list clears it)."""
        ...


@dataclass
class _Node:
    total: Shape
    available: Shape
    node_type: str | None
    busy_since_idle: float | None  # when the node last became idle; None while busy
    draining: bool = False


class InMemoryClusterState:
    """A head's view kept in memory: for tests, the simulation, and single-process use.

    Implements both :class:`ClusterStateSource` and :class:`ResourceRequestChannel`.
    ``clock`` gives the current time in seconds (inject a virtual clock to test).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._nodes: dict[str, _Node] = {}
        self._demands: list[ResourceDemand | PlacementGroupDemand] = []
        self._requests: list[Shape] = []

    # -- nodes -----------------------------------------------------------------------

    def add_node(self, node_id: str, total: Mapping[str, float], node_type: str | None = None) -> None:
        """A node agent registered (all its resources free)."""
        if node_id in self._nodes:
            raise ValueError(f"node {node_id!r} is already registered")
        shape = normalize_shape(total, what="total")
        self._nodes[node_id] = _Node(shape, dict(shape), node_type, self._clock())

    def remove_node(self, node_id: str) -> None:
        """A node agent went away."""
        self._nodes.pop(node_id, None)

    def node_ids(self) -> list[str]:
        return list(self._nodes)

    def is_draining(self, node_id: str) -> bool:
        return self._nodes[node_id].draining

    def available(self, node_id: str) -> Shape:
        return dict(self._nodes[node_id].available)

    def total(self, node_id: str) -> Shape:
        return dict(self._nodes[node_id].total)

    def try_allocate(self, node_id: str, shape: Mapping[str, float]) -> bool:
        """Reserve ``shape`` on a node if it fits and the node is not draining."""
        node = self._nodes[node_id]
        if node.draining:
            return False
        avail = node.available
        # A tiny tolerance so that 10 x 0.1 CPU fits a 1-CPU node.
        if any(avail.get(k, 0.0) + 1e-9 < v for k, v in shape.items()):
            return False
        for k, v in shape.items():
            avail[k] = avail.get(k, 0.0) - v
        node.busy_since_idle = None
        return True

    def release(self, node_id: str, shape: Mapping[str, float]) -> None:
        """Give back what :meth:`try_allocate` reserved."""
        node = self._nodes.get(node_id)
        if node is None:
            return
        for k, v in shape.items():
            node.available[k] = min(node.total.get(k, 0.0), node.available.get(k, 0.0) + v)
        if self._is_idle(node):
            node.busy_since_idle = self._clock()

    @staticmethod
    def _is_idle(node: _Node) -> bool:
        return all(node.available.get(k, 0.0) >= v - 1e-9 for k, v in node.total.items())

    # -- demand ----------------------------------------------------------------------

    def set_demands(self, demands: Sequence[ResourceDemand | PlacementGroupDemand]) -> None:
        """Replace the pending demand."""
        self._demands = list(demands)

    @property
    def demands(self) -> list[ResourceDemand | PlacementGroupDemand]:
        return list(self._demands)

    def set_resource_requests(self, bundles: list[Shape]) -> None:
        self._requests = [normalize_shape(b, what=f"bundles[{i}]") for i, b in enumerate(bundles)]

    @property
    def resource_requests(self) -> list[Shape]:
        return [dict(b) for b in self._requests]

    # -- ClusterStateSource ----------------------------------------------------------

    def read_load(self) -> ClusterLoad:
        now = self._clock()
        nodes = [
            NodeLoad(
                node_id=nid,
                total=dict(n.total),
                available=dict(n.available),
                idle_s=0.0 if n.busy_since_idle is None else max(0.0, now - n.busy_since_idle),
                node_type=n.node_type,
            )
            for nid, n in self._nodes.items()
            if not n.draining
        ]
        return ClusterLoad(nodes=nodes, demands=list(self._demands), resource_requests=self.resource_requests)

    def drain_node(self, node_id: str, reason: str) -> bool:
        node = self._nodes.get(node_id)
        if node is None:
            return True  # already gone: nothing left to drain
        if not self._is_idle(node):
            return False
        node.draining = True
        return True
