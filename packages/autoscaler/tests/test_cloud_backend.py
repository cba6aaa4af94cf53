"""The `cloud` backend's entry point and its errors (the running cluster is in test_e2e_local.py)."""

from __future__ import annotations

import pytest

import shoal
from shoal.autoscaler import cloud
from shoal.exceptions import ConfigError


def test_cloud_is_a_registered_backend() -> None:
    from shoal.backend.registry import load_backend

    assert load_backend("cloud") is cloud.CloudBackend


def test_without_a_cluster_config_or_address_it_says_how_to_give_one() -> None:
    with pytest.raises(ConfigError, match=r"shoal\.init\(backend='cloud', cluster_config='cluster\.yaml'\)"):
        shoal.init(backend="cloud")
    assert not shoal.is_initialized()


def test_init_checks_its_arguments(tmp_path) -> None:
    with pytest.raises(TypeError, match="cluster_config must be a path, got dict"):
        cloud.init({"cluster_name": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend must be 'cloud' here, got 'local'"):
        cloud.init(tmp_path / "c.yaml", backend="local")
    with pytest.raises(ConfigError, match="cannot read cluster config"):
        cloud.init(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="cannot read cluster config"):
        shoal.init(backend="cloud", cluster_config=tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"unknown keyword 'cluster_confg' for shoal\.init\(\) with backend 'cloud'"):
        shoal.init(backend="cloud", cluster_confg=tmp_path / "c.yaml")
    assert not shoal.is_initialized()
