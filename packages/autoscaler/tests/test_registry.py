"""Providers by entry point, with "did you mean" and install hints."""

from __future__ import annotations

import importlib.util
from importlib.metadata import EntryPoint

import pytest

from shoal.autoscaler import (
    NodeProvider,
    NodeProviderNotFoundError,
    NodeProviderUnavailableError,
    _registry,
    available_node_providers,
    create_node_provider,
    load_node_provider_class,
)
from shoal.autoscaler.providers.local import LocalNodeProvider


def test_builtin_providers_are_registered() -> None:
    found = available_node_providers()
    assert {"aws", "gcp", "azure", "kuberay", "local"} <= set(found)
    for name in ("aws", "gcp", "azure", "kuberay", "local"):
        cls = load_node_provider_class(name)
        assert issubclass(cls, NodeProvider) and cls.provider_name == name


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(NodeProviderNotFoundError, match=r"unknown node provider 'gpc'.*did you mean 'gcp'\?"):
        load_node_provider_class("gpc")
    with pytest.raises(NodeProviderNotFoundError, match=r"provider\.type must name"):
        create_node_provider({}, "c")


def test_create_builds_the_named_provider(tmp_path) -> None:
    p = create_node_provider({"type": "local", "command": ["true"], "state_dir": str(tmp_path)}, "demo")
    assert isinstance(p, LocalNodeProvider) and p.cluster_name == "demo"


@pytest.mark.parametrize(
    ("name", "config", "module", "extra"),
    [
        ("gcp", {"project_id": "p", "availability_zone": "z"}, "google.cloud.compute_v1", "gcp"),
        ("azure", {"subscription_id": "s", "resource_group": "r", "location": "l"}, "azure.identity", "azure"),
        ("kuberay", {"namespace": "n"}, "kubernetes", "kubernetes"),
    ],
)
def test_missing_sdk_gives_the_install_command(name, config, module, extra) -> None:
    try:
        present = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        present = False
    if present:
        pytest.skip(f"{module} is installed here, so the hint cannot show")
    with pytest.raises(NodeProviderUnavailableError) as info:
        create_node_provider({"type": name, **config}, "demo")
    assert f"pip install 'shoal-autoscaler[{extra}]'" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_broken_third_party_entry_point(monkeypatch) -> None:
    broken = EntryPoint("mine", "no_such_module_xyz:Provider", _registry.ENTRY_POINT_GROUP)
    not_a_provider = EntryPoint("odd", "shoal.autoscaler:NodeState", _registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(_registry, "available_node_providers", lambda: {"mine": broken, "odd": not_a_provider})
    with pytest.raises(NodeProviderUnavailableError, match=r"could not be loaded.*pip install shoal-autoscaler"):
        load_node_provider_class("mine")
    with pytest.raises(NodeProviderUnavailableError, match="is not a NodeProvider subclass"):
        load_node_provider_class("odd")
