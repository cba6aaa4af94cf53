"""shoal.autoscaler: cluster launcher, demand-driven autoscaler and node providers.

- :func:`request_resources` (Ray's ``ray.autoscaler.sdk.request_resources``).
- Cluster configs: :func:`load_cluster_config`, :class:`ClusterConfig`.
- The autoscaler: :class:`Autoscaler` (a state machine: events in, decisions
  out) and :class:`AutoscalerShell` (its I/O against a provider and a head).
- Node providers: :class:`NodeProvider`, registered under the entry-point
  group ``shoal.autoscaler.node_providers`` (aws, gcp, azure, kuberay, local).
- :mod:`shoal.autoscaler.simulation`: virtual-time simulation.
- On a real cluster (imported on use, they load the gRPC client):
  :mod:`shoal.autoscaler.launcher` (``up``/``down``), :mod:`shoal.autoscaler.cluster_state`
  (the head as the autoscaler's state source), :mod:`shoal.autoscaler.monitor` (the
  autoscaler process), :mod:`shoal.autoscaler.cloud` (the ``cloud`` backend).

Nothing is imported from the cloud SDKs until a provider is created.
"""

from __future__ import annotations

from shoal.autoscaler._errors import (
    AutoscalerError,
    ClusterConfigError,
    HeadStartUnsupportedError,
    NodeLaunchError,
    NodeProviderError,
    NodeProviderNotFoundError,
    NodeProviderUnavailableError,
)
from shoal.autoscaler._machine import Autoscaler, AutoscalerSettings, NodeRecord, NodeState
from shoal.autoscaler._redact import Redactor, redact
from shoal.autoscaler._registry import (
    available_node_providers,
    create_node_provider,
    load_node_provider_class,
)
from shoal.autoscaler._shell import AutoscalerShell, InlineExecutor
from shoal.autoscaler._status import AutoscalerStatus, DemandStatus, LaunchFailureStatus, NodeStatus
from shoal.autoscaler._version import __version__
from shoal.autoscaler.config import ClusterConfig, NodeTypeConfig, load_cluster_config, validate_cluster_config
from shoal.autoscaler.demand import (
    ClusterLoad,
    ClusterStateSource,
    InMemoryClusterState,
    NodeLoad,
    PlacementGroupDemand,
    ResourceDemand,
    ResourceRequestChannel,
)
from shoal.autoscaler.node_provider import NodeProvider, ProviderNode
from shoal.autoscaler.sdk import get_resource_requests, request_resources, set_resource_request_channel

__all__ = [
    "Autoscaler",
    "AutoscalerError",
    "AutoscalerSettings",
    "AutoscalerShell",
    "AutoscalerStatus",
    "ClusterConfig",
    "ClusterConfigError",
    "HeadStartUnsupportedError",
    "ClusterLoad",
    "ClusterStateSource",
    "DemandStatus",
    "InMemoryClusterState",
    "InlineExecutor",
    "LaunchFailureStatus",
    "NodeLaunchError",
    "NodeLoad",
    "NodeProvider",
    "NodeProviderError",
    "NodeProviderNotFoundError",
    "NodeProviderUnavailableError",
    "NodeRecord",
    "NodeState",
    "NodeStatus",
    "NodeTypeConfig",
    "PlacementGroupDemand",
    "ProviderNode",
    "Redactor",
    "ResourceDemand",
    "ResourceRequestChannel",
    "__version__",
    "available_node_providers",
    "create_node_provider",
    "get_resource_requests",
    "load_cluster_config",
    "load_node_provider_class",
    "redact",
    "request_resources",
    "set_resource_request_channel",
    "validate_cluster_config",
]
