"""Config builders shared by the tests."""

from __future__ import annotations

from typing import Any

from shoal.autoscaler import ClusterConfig, validate_cluster_config


def make_config(types: dict[str, dict[str, Any]] | None = None, **top: Any) -> ClusterConfig:
    """A valid config for the ``local`` provider with a 2-CPU head plus ``types``."""
    node_types: dict[str, Any] = {"head": {"resources": {"CPU": 2}, "max_workers": 0}}
    node_types.update(
        types
        if types is not None
        else {
            "cpu": {"resources": {"CPU": 4}, "max_workers": 10},
            "gpu": {"resources": {"CPU": 8, "GPU": 1}, "max_workers": 4},
        }
    )
    raw: dict[str, Any] = {
        "cluster_name": "test",
        "provider": {"type": "local", "command": ["true"]},
        "head_node_type": "head",
        "max_workers": 20,
        "available_node_types": node_types,
    }
    raw.update(top)
    return validate_cluster_config(raw)
