"""The cluster launcher behind ``shoal up`` and ``shoal down``.

``down`` is complete: it finds the cluster's nodes through the provider (by
their cluster tag) and terminates workers, then the head. ``up`` validates
the config and reaches the provider, but starting the head service and the
autoscaler on it needs shoal's ``cluster`` backend (head service, node
agents, ``shoal start``), which shoal-core does not ship yet; until it does,
``up`` stops with :class:`ClusterBackendUnavailableError` *before* launching
anything, so no machine is left running without a head service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shoal.autoscaler._errors import ClusterBackendUnavailableError
from shoal.autoscaler._redact import Redactor
from shoal.autoscaler._registry import create_node_provider
from shoal.autoscaler.config import ClusterConfig
from shoal.autoscaler.node_provider import NODE_KIND_HEAD, NodeProvider, ProviderNode

__all__ = ["up", "down", "ClusterNodes", "cluster_nodes"]

Echo = Callable[[str], None]


@dataclass
class ClusterNodes:
    head: list[ProviderNode] = field(default_factory=list)
    workers: list[ProviderNode] = field(default_factory=list)


def cluster_nodes(provider: NodeProvider) -> ClusterNodes:
    """The cluster's live nodes, split into head and workers."""
    out = ClusterNodes()
    for n in provider.non_terminated_nodes():
        (out.head if n.kind == NODE_KIND_HEAD else out.workers).append(n)
    return out


def _describe(nodes: ClusterNodes) -> str:
    by_type: dict[str, int] = {}
    for n in nodes.workers:
        by_type[n.node_type or "?"] = by_type.get(n.node_type or "?", 0) + 1
    workers = ", ".join(f"{c} x {t}" for t, c in sorted(by_type.items())) or "no workers"
    head = nodes.head[0].node_id if nodes.head else "no head"
    return f"{head}; {workers}"


def up(config: ClusterConfig, *, provider: NodeProvider | None = None, echo: Echo = print) -> None:
    """Bring the cluster up: head via the provider, then the autoscaler on the head.

    Today this checks the config and the provider, reports what exists, and
    raises ClusterBackendUnavailableError without launching anything (see the
    module docstring).
    """
    redact = Redactor.from_config(config.provider)
    provider = provider or create_node_provider(config.provider, config.cluster_name)
    try:
        nodes = cluster_nodes(provider)
        echo(f"cluster {config.cluster_name!r} ({config.provider_type}): {redact(_describe(nodes))}")
    finally:
        provider.close()
    raise ClusterBackendUnavailableError(
        "starting the head needs shoal's 'cluster' backend (head service, node agents, `shoal start`), "
        "which this shoal-core does not provide yet; the config is valid, the provider answered, and "
        "nothing was launched"
    )


def down(
    config: ClusterConfig,
    *,
    provider: NodeProvider | None = None,
    workers_only: bool = False,
    echo: Echo = print,
) -> list[str]:
    """Terminate the cluster's workers, then (unless ``workers_only``) its head. Returns the ids terminated."""
    provider = provider or create_node_provider(config.provider, config.cluster_name)
    try:
        nodes = cluster_nodes(provider)
        done: list[str] = []
        if nodes.workers:
            ids = [n.node_id for n in nodes.workers]
            echo(f"terminating {len(ids)} worker node(s): {', '.join(ids)}")
            provider.terminate_nodes(ids)
            done += ids
        if nodes.head and not workers_only:
            ids = [n.node_id for n in nodes.head]
            echo(f"terminating the head node: {', '.join(ids)}")
            provider.terminate_nodes(ids)
            done += ids
        if not done:
            echo(f"cluster {config.cluster_name!r} has no nodes to terminate")
        return done
    finally:
        provider.close()
