"""The head of a real cluster as the autoscaler's :class:`~shoal.autoscaler.demand.ClusterStateSource`.

:class:`HeadClusterState` reads live nodes and pending demand from the head
service and the ``request_resources`` floors from the head's key-value store,
and translates the head's view into the autoscaler's terms:

- **Node ids.** The head names nodes by their agents' ids; the autoscaler by
  the provider's. Each live agent is matched once to a provider node
  (:meth:`NodeProvider.agent_node_id`: by pid for local processes, by IP for
  cloud machines) and reported under the provider's id. Agents that match no
  provider node (joined by hand with ``shoal start``) keep the head's id: the
  autoscaler counts their capacity and never terminates them.
- **Idleness.** The head reports free resources, not idle time; a node is
  idle from the first round in which nothing of it is in use.
- **Placement groups.** The head reports pending placement-group bundles by
  shape, without their group or strategy; each becomes a one-bundle group,
  which is exact for PACK and SPREAD and optimistic for STRICT_* groups.
- **Draining** is best effort: the head has no drain call yet, so a node is
  drained only if, read afresh, nothing of it is in use; from then on it is
  left out of the load. Work placed on it in the moment before it stops is
  retried elsewhere by the runtime's fault tolerance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from shoal.autoscaler._head import KEY_RESOURCE_REQUESTS, KEY_STATUS, HeadConnection, HeadDemand, HeadNode
from shoal.autoscaler._redact import Redactor
from shoal.autoscaler._resources import Shape, normalize_shape
from shoal.autoscaler._status import AutoscalerStatus
from shoal.autoscaler.demand import ClusterLoad, NodeLoad, PlacementGroupDemand, ResourceDemand
from shoal.autoscaler.node_provider import AgentInfo, NodeProvider

__all__ = ["HeadClusterState", "HeadRequestChannel", "demands_from_head", "read_published_status"]

logger = logging.getLogger("shoal.autoscaler")

_EPS = 1e-9


def _idle(node: HeadNode) -> bool:
    # A resource fully in use is absent from ``available``.
    return all(node.available.get(k, 0.0) + _EPS >= v for k, v in node.total.items())


def demands_from_head(demands: list[HeadDemand]) -> list[ResourceDemand | PlacementGroupDemand]:
    """The head's pending demand as the autoscaler's demand records (bad entries are skipped)."""
    out: list[ResourceDemand | PlacementGroupDemand] = []
    for d in demands:
        if d.count < 1:
            continue
        try:
            shape = normalize_shape(d.shape, what="shape")
            if d.kind == "placement_group":
                out.append(PlacementGroupDemand(bundles=(shape,), strategy="PACK", count=d.count))
            elif d.kind in ("task", "actor"):
                out.append(ResourceDemand(shape, count=d.count, kind=d.kind))
            else:
                logger.debug("autoscaler: ignoring demand of unknown kind %r", d.kind)
        except (TypeError, ValueError) as e:
            logger.warning("autoscaler: ignoring a malformed demand from the head: %s", e)
    return out


class HeadRequestChannel:
    """Sends :func:`~shoal.autoscaler.request_resources` floors to the head's key-value store."""

    def __init__(self, head: HeadConnection) -> None:
        self.head = head

    def set_resource_requests(self, bundles: list[Shape]) -> None:
        self.head.put_json(KEY_RESOURCE_REQUESTS, [dict(b) for b in bundles])

    def resource_requests(self) -> list[Shape]:
        raw = self.head.get_json(KEY_RESOURCE_REQUESTS) or []
        out = []
        for i, b in enumerate(raw if isinstance(raw, list) else []):
            try:
                out.append(normalize_shape(b, what=f"resource_requests[{i}]"))
            except (TypeError, ValueError) as e:
                logger.warning("autoscaler: ignoring a malformed resource request: %s", e)
        return out


class HeadClusterState:
    """A :class:`ClusterStateSource` and :class:`ResourceRequestChannel` over a head service.

    ``provider`` (optional) maps agents to provider node ids; without it
    every node is reported under the head's id. ``clock`` measures idle time.
    """

    def __init__(
        self,
        head: HeadConnection,
        provider: NodeProvider | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.head = head
        self.provider = provider
        self._requests = HeadRequestChannel(head)
        self._clock = clock
        self._provider_id: dict[str, str] = {}  # head node id -> provider node id
        self._head_id: dict[str, str] = {}  # provider node id -> head node id
        self._idle_since: dict[str, float] = {}
        self._drained: set[str] = set()  # head node ids

    # -- node ids --------------------------------------------------------------------

    def _match(self, nodes: list[HeadNode]) -> None:
        unknown = [n for n in nodes if n.alive and n.node_id not in self._provider_id]
        if not unknown or self.provider is None:
            return
        listed = self.provider.non_terminated_nodes()
        for n in unknown:
            agent = AgentInfo(node_id=n.node_id, host=n.host, pid=n.pid, hostname=n.hostname, is_head=n.is_head)
            pid = self.provider.agent_node_id(agent, listed)
            if pid is not None and pid not in self._head_id:
                self._provider_id[n.node_id] = pid
                self._head_id[pid] = n.node_id

    def provider_id_of(self, head_node_id: str) -> str:
        """The provider's id of a head node id (the head's id itself if it matched none)."""
        return self._provider_id.get(head_node_id, head_node_id)

    # -- ClusterStateSource ----------------------------------------------------------

    def read_load(self) -> ClusterLoad:
        nodes, demands = self.head.cluster()
        self._match(nodes)
        now = self._clock()
        loads = []
        alive = set()
        for n in nodes:
            if not n.alive:
                continue
            alive.add(n.node_id)
            if _idle(n):
                since = self._idle_since.setdefault(n.node_id, now)
            else:
                self._idle_since.pop(n.node_id, None)
                since = None
            if n.node_id in self._drained:
                continue
            loads.append(
                NodeLoad(
                    node_id=self.provider_id_of(n.node_id),
                    total=dict(n.total),
                    available=dict(n.available),
                    idle_s=0.0 if since is None else now - since,
                )
            )
        # Forget nodes the head no longer counts as alive.
        for gone in [h for h in self._idle_since if h not in alive]:
            del self._idle_since[gone]
        self._drained &= alive
        return ClusterLoad(
            nodes=loads, demands=demands_from_head(demands), resource_requests=self._requests.resource_requests()
        )

    def drain_node(self, node_id: str, reason: str) -> bool:
        head_id = self._head_id.get(node_id, node_id)
        nodes, _ = self.head.cluster()
        node = next((n for n in nodes if n.node_id == head_id), None)
        if node is None or not node.alive:
            return True  # gone already: nothing to drain
        if not _idle(node):
            return False
        self._drained.add(head_id)
        logger.info("autoscaler: draining %s (%s)", node_id, reason)
        return True

    # -- ResourceRequestChannel ------------------------------------------------------

    def set_resource_requests(self, bundles: list[Shape]) -> None:
        self._requests.set_resource_requests(bundles)

    # -- status ----------------------------------------------------------------------

    def publish_status(self, status: AutoscalerStatus, redactor: Redactor | None = None, **extra: Any) -> None:
        """Store ``status`` where ``shoal status`` reads it, every text passed through ``redactor``."""
        redact = redactor or Redactor()
        doc: dict[str, Any] = {"published_at": time.time(), "status": _redact_tree(status.to_dict(), redact)}
        doc.update(extra)
        self.head.put_json(KEY_STATUS, doc)


def _redact_tree(value: Any, redact: Redactor) -> Any:
    if isinstance(value, dict):
        return {k: _redact_tree(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v, redact) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def read_published_status(head: HeadConnection) -> Mapping[str, Any] | None:
    """The document :meth:`HeadClusterState.publish_status` stored, or None."""
    doc = head.get_json(KEY_STATUS)
    return doc if isinstance(doc, Mapping) else None
