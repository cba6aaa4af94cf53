"""Utilities on top of the core API (Ray's ``ray.util``): placement groups, strategies, pools, queues."""

from __future__ import annotations

from typing import Any

# Imported eagerly: ``shoal.util.placement_group`` is both a module and a function,
# and the function must win (as in Ray).
from shoal.util.placement_group import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

__all__ = [
    "ActorPool",
    "Queue",
    "placement_group",
    "remove_placement_group",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group_table",
    "PlacementGroupSchedulingStrategy",
    "NodeAffinitySchedulingStrategy",
    "list_named_actors",
    "get_node_ip_address",
]

_LAZY = {
    "ActorPool": "shoal.util.actor_pool",
    "Queue": "shoal.util.queue",
}


def get_node_ip_address() -> str:
    """The IP address of the node this code runs on."""
    from shoal import _session

    node_id = _session.backend().runtime_info().node_id
    for node in _session.backend().nodes():
        if node.get("NodeID") == node_id:
            return str(node.get("NodeManagerAddress", "127.0.0.1"))
    return "127.0.0.1"


def list_named_actors(all_namespaces: bool = False) -> list[Any]:
    """Names of live named actors (with namespaces when ``all_namespaces``)."""
    from shoal import _session

    found = _session.backend().list_named_actors(all_namespaces)
    return found if all_namespaces else [a["name"] for a in found]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal.util' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
