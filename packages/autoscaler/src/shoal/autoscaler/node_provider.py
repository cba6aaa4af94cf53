"""The ``NodeProvider`` interface: how the autoscaler creates, lists and removes machines.

A provider is a thin, synchronous adapter over one infrastructure API (EC2,
GCE, Azure, Kubernetes, local processes). It keeps no autoscaling policy: the
autoscaler decides, the provider does. Every node a provider creates carries
tags (string key/value pairs) naming its cluster and node type, so that a
restarted autoscaler, or ``shoal down``, finds the cluster's nodes again from
the provider alone.

Write one by subclassing :class:`NodeProvider` and registering it in your
package metadata::

    [project.entry-points."shoal.autoscaler.node_providers"]
    mycloud = "my_package.provider:MyCloudProvider"
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from shoal.autoscaler._errors import HeadStartUnsupportedError, NodeProviderError

__all__ = [
    "NODE_KIND_HEAD",
    "NODE_KIND_WORKER",
    "TAG_CLUSTER_NAME",
    "TAG_LAUNCH_ID",
    "TAG_NODE_KIND",
    "TAG_NODE_TYPE",
    "BOOT_SETTINGS",
    "AgentInfo",
    "HeadBootstrap",
    "HeadEndpoint",
    "NodeProvider",
    "ProviderNode",
]

TAG_CLUSTER_NAME = "shoal-cluster-name"
TAG_NODE_TYPE = "shoal-node-type"
#: ``head`` or ``worker``.
TAG_NODE_KIND = "shoal-node-kind"
#: The autoscaler's id of the launch request that created the node.
TAG_LAUNCH_ID = "shoal-launch-id"
NODE_KIND_HEAD = "head"
NODE_KIND_WORKER = "worker"
#: Provider settings that ``shoal up`` reads on providers started through boot scripts:
#: ``head_port`` (default 6380), ``use_internal_ips`` (reach the head at its internal
#: address rather than its public one) and ``head_start_timeout_s`` (default 600).
BOOT_SETTINGS = frozenset({"head_port", "use_internal_ips", "head_start_timeout_s"})


@dataclass(frozen=True)
class ProviderNode:
    """One machine as the provider sees it."""

    node_id: str
    tags: Mapping[str, str] = field(default_factory=dict)
    internal_ip: str | None = None
    external_ip: str | None = None

    @property
    def node_type(self) -> str | None:
        return self.tags.get(TAG_NODE_TYPE)

    @property
    def kind(self) -> str:
        return self.tags.get(TAG_NODE_KIND, NODE_KIND_WORKER)


@dataclass(frozen=True)
class AgentInfo:
    """A node agent as the head reports it: what a provider can match against its machines."""

    #: The head's id of the node (not the provider's).
    node_id: str
    #: The host part of the agent's gRPC address.
    host: str
    pid: int = 0
    hostname: str = ""
    is_head: bool = False


@dataclass(frozen=True)
class HeadEndpoint:
    """Where a cluster's head service listens, and the file holding its token (never the token)."""

    address: str
    token_path: str
    #: The provider's id of the head node.
    node_id: str


@runtime_checkable
class HeadBootstrap(Protocol):
    """A provider that starts node agents itself, so ``shoal up`` can start a head through it."""

    def head_endpoint(self, node_id: str, timeout_s: float) -> HeadEndpoint:
        """Wait until the head node ``node_id`` serves and say where; NodeProviderError if it does not."""
        ...


class NodeProvider(ABC):
    """Creates, lists, tags and terminates the nodes of one cluster.

    Contract shared by every implementation (the conformance suite checks it):

    - ``create_nodes`` returns the ids of the nodes it created, and each one
      is listed by ``non_terminated_nodes`` with the cluster, node type and
      caller's tags. A failure raises :class:`NodeLaunchError` with a
      category (quota, capacity, config, auth, transient).
    - ``non_terminated_nodes`` lists only this cluster's nodes that are
      pending or running, never another cluster's.
    - ``terminate_nodes`` is idempotent: ids already gone are ignored.
    - Errors carry no credentials (the autoscaler redacts again on top).
    """

    #: The name of the provider in config files, for messages.
    provider_name: ClassVar[str] = ""

    def __init__(self, provider_config: Mapping[str, Any], cluster_name: str) -> None:
        if not isinstance(cluster_name, str) or not cluster_name:
            raise ValueError("cluster_name must be a non-empty string")
        self.provider_config = dict(provider_config)
        self.cluster_name = cluster_name

    @classmethod
    def validate_config(
        cls, provider_config: Mapping[str, Any], node_types: Mapping[str, Mapping[str, Any]]
    ) -> list[tuple[str, str]]:
        """Provider-specific problems in a cluster config, as ``(path, message)``.

        ``node_types`` maps each node type to its ``node_config``. Called by
        config validation without creating the provider (no SDK needed).
        """
        return []

    @abstractmethod
    def create_nodes(
        self,
        node_type: str,
        node_config: Mapping[str, Any],
        tags: Mapping[str, str],
        count: int,
        *,
        resources: Mapping[str, float] | None = None,
    ) -> list[str]:
        """Create ``count`` nodes of ``node_type`` and return their ids.

        ``resources`` is what the node type offers (from the cluster config),
        for providers that start the node agent themselves and must tell it.
        """

    @abstractmethod
    def terminate_nodes(self, node_ids: Sequence[str]) -> None:
        """Terminate the given nodes; ids that are already gone are ignored."""

    @abstractmethod
    def non_terminated_nodes(self, tag_filters: Mapping[str, str] | None = None) -> list[ProviderNode]:
        """This cluster's pending and running nodes whose tags include ``tag_filters``."""

    @abstractmethod
    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        """Add or overwrite tags on a node."""

    def node_tags(self, node_id: str) -> dict[str, str]:
        """The tags of a non-terminated node."""
        return dict(self._lookup(node_id).tags)

    def internal_ip(self, node_id: str) -> str | None:
        """The node's address inside the cluster's network, if it has one yet."""
        return self._lookup(node_id).internal_ip

    def external_ip(self, node_id: str) -> str | None:
        """The node's public address, if it has one."""
        return self._lookup(node_id).external_ip

    def agent_node_id(self, agent: AgentInfo, nodes: Sequence[ProviderNode]) -> str | None:
        """Which of ``nodes`` (this provider's listing) runs ``agent``; None if none does.

        The default matches the agent's host against the nodes' internal and
        external IPs and answers only when exactly one node matches (several
        machines behind one address cannot be told apart this way).
        """
        found = [n.node_id for n in nodes if agent.host and agent.host in (n.internal_ip, n.external_ip)]
        return found[0] if len(found) == 1 else None

    def close(self) -> None:
        """Release clients and connections; the provider is not used afterwards."""

    #: Whether a boot script replaces the machine's main process (a container) rather than
    #: running once at boot and leaving the node agent in the background (a virtual machine).
    boot_in_foreground: ClassVar[bool] = False

    def with_boot_script(self, node_config: Mapping[str, Any], script: str) -> dict[str, Any]:
        """``node_config`` with ``script`` set to run when the machine first boots.

        This is how ``shoal up`` starts node agents on providers that do not
        start them themselves (see :mod:`shoal.autoscaler.boot`). Providers
        that cannot run a script at boot keep this default, which raises
        HeadStartUnsupportedError.
        """
        raise HeadStartUnsupportedError(
            f"the {self.provider_name or type(self).__name__!r} provider cannot run a boot script, so `shoal up` "
            "cannot start node agents through it"
        )

    def terminate_node(self, node_id: str) -> None:
        """Terminate one node (same contract as :meth:`terminate_nodes`)."""
        self.terminate_nodes([node_id])

    # -- helpers for subclasses ------------------------------------------------------

    def _full_tags(self, node_type: str, tags: Mapping[str, str]) -> dict[str, str]:
        """The caller's tags plus the cluster and node type, which the provider owns."""
        for k, v in tags.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"tags must map str to str, got {k!r}: {v!r}")
        out = dict(tags)
        out[TAG_CLUSTER_NAME] = self.cluster_name
        out[TAG_NODE_TYPE] = node_type
        out.setdefault(TAG_NODE_KIND, NODE_KIND_WORKER)
        return out

    def _lookup(self, node_id: str) -> ProviderNode:
        for node in self.non_terminated_nodes():
            if node.node_id == node_id:
                return node
        raise NodeProviderError(f"{self.provider_name or type(self).__name__}: no non-terminated node {node_id!r}")

    @staticmethod
    def _matches(tags: Mapping[str, str], tag_filters: Mapping[str, str] | None) -> bool:
        return not tag_filters or all(tags.get(k) == v for k, v in tag_filters.items())
