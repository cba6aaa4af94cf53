"""Node providers by name, from the ``shoal.autoscaler.node_providers`` entry-point group."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from shoal.autoscaler._errors import NodeProviderNotFoundError, NodeProviderUnavailableError
from shoal.autoscaler.node_provider import NodeProvider

__all__ = [
    "ENTRY_POINT_GROUP",
    "INSTALL_HINTS",
    "available_node_providers",
    "create_node_provider",
    "install_hint",
    "load_node_provider_class",
    "require_module",
]

ENTRY_POINT_GROUP = "shoal.autoscaler.node_providers"

#: provider name -> (the libraries it needs, the shoal-autoscaler extra that installs them)
INSTALL_HINTS: dict[str, tuple[str, str]] = {
    "aws": ("boto3", "aws"),
    "gcp": ("google-cloud-compute", "gcp"),
    "azure": ("azure-mgmt-compute, azure-mgmt-network and azure-identity", "azure"),
    "kuberay": ("kubernetes", "kubernetes"),
}


def install_hint(name: str) -> str:
    """The command that installs what provider ``name`` needs."""
    if name in INSTALL_HINTS:
        return f"pip install 'shoal-autoscaler[{INSTALL_HINTS[name][1]}]'"
    return "pip install shoal-autoscaler"


def require_module(module: str, provider: str) -> ModuleType:
    """Import an SDK module a provider needs, or fail with the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        libs = INSTALL_HINTS.get(provider, (module, ""))[0]
        raise NodeProviderUnavailableError(
            f"the {provider!r} node provider needs {libs} ({e}); install it with: {install_hint(provider)}"
        ) from e


def available_node_providers() -> dict[str, EntryPoint]:
    """Every registered provider's entry point, by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_node_provider_class(name: str) -> type[NodeProvider]:
    """The provider class registered as ``name``.

    Raises NodeProviderNotFoundError (with a "did you mean") for an unknown name
    and NodeProviderUnavailableError when its module cannot be imported.
    """
    found = available_node_providers()
    ep = found.get(name)
    if ep is None:
        choices = sorted(set(found) | set(INSTALL_HINTS))
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise NodeProviderNotFoundError(f"unknown node provider {name!r} (known: {', '.join(choices) or 'none'}){hint}")
    try:
        cls = ep.load()
    except ImportError as e:
        raise NodeProviderUnavailableError(
            f"the {name!r} node provider could not be loaded ({e}); install what it needs with: {install_hint(name)}"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, NodeProvider)):
        raise NodeProviderUnavailableError(
            f"entry point {ep.value!r} for node provider {name!r} is not a NodeProvider subclass"
        )
    return cls


def create_node_provider(provider_config: Mapping[str, Any], cluster_name: str, **kwargs: Any) -> NodeProvider:
    """Build the provider named by ``provider_config["type"]``; ``kwargs`` go to its constructor."""
    name = provider_config.get("type")
    if not isinstance(name, str) or not name:
        raise NodeProviderNotFoundError("provider.type must name a node provider")
    cls = load_node_provider_class(name)
    return cls(provider_config, cluster_name, **kwargs)
