"""request_resources: Ray's argument checks, the channel, and its effect on scaling."""

from __future__ import annotations

import pytest

import shoal
from shoal.autoscaler import (
    InMemoryClusterState,
    get_resource_requests,
    request_resources,
    set_resource_request_channel,
)
from shoal.autoscaler.simulation import Simulator

from .helpers import make_config


@pytest.fixture
def channel():
    state = InMemoryClusterState()
    old = set_resource_request_channel(state)
    yield state
    set_resource_request_channel(old)


def test_requests_go_to_the_channel_and_replace_each_other(channel) -> None:
    request_resources(num_cpus=3)
    assert channel.resource_requests == [{"CPU": 1.0}] * 3
    request_resources(num_cpus=1, bundles=[{"GPU": 1, "CPU": 4}])
    assert channel.resource_requests == [{"CPU": 1.0}, {"GPU": 1.0, "CPU": 4.0}]
    assert get_resource_requests() == channel.resource_requests
    request_resources()
    assert channel.resource_requests == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_cpus": 1.5}, TypeError, "num_cpus must be an int"),
        ({"num_cpus": True}, TypeError, "num_cpus must be an int"),
        ({"num_cpus": -1}, ValueError, "num_cpus must be >= 0"),
        ({"bundles": {"CPU": 1}}, TypeError, "bundles must be a list"),
        ({"bundles": [["CPU", 1]]}, TypeError, r"bundles\[0\] must be a dict"),
        ({"bundles": [{1: 1}]}, TypeError, "resource names must be str"),
        ({"bundles": [{"CPU": True}]}, TypeError, "must be a number"),
        ({"bundles": [{"CPU": "1"}]}, TypeError, "must be a number"),
        ({"bundles": [{"CPU": -2}]}, ValueError, "must be >= 0"),
        ({"bundles": [{"CPU": 1}], "bundle_label_selectors": [{}]}, NotImplementedError, "not supported"),
    ],
)
def test_bad_arguments(channel, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        request_resources(**kwargs)
    assert channel.resource_requests == []


def test_needs_an_initialized_runtime_without_a_channel() -> None:
    assert set_resource_request_channel(None) is None
    if shoal.is_initialized():
        shoal.shutdown()
    with pytest.raises(RuntimeError, match="shoal is not initialized"):
        request_resources(num_cpus=1)


def test_kept_in_process_on_a_runtime_without_autoscaler(shoal_inline) -> None:
    request_resources(bundles=[{"CPU": 2}])
    assert get_resource_requests() == [{"CPU": 2.0}]


def test_channel_must_have_the_method() -> None:
    with pytest.raises(TypeError, match="set_resource_requests"):
        set_resource_request_channel(object())


def test_floors_scale_up_bypassing_speed_and_hold_nodes_while_idle() -> None:
    cfg = make_config({"w": {"resources": {"CPU": 4}, "max_workers": 50}}, idle_timeout_minutes=1, max_workers=50)
    sim = Simulator(cfg, boot_delay_s=10, step_s=5)
    old = set_resource_request_channel(sim.cluster)
    try:
        request_resources(num_cpus=42)  # head has 2: ten 4-CPU workers, all at once
        sim.tick()
        assert sim.workers() == 10
        sim.run_until(lambda s: False, max_time_s=600)
        assert sim.workers() == 10  # idle far past the timeout, kept by the request
        request_resources(num_cpus=10)
        sim.run_until(lambda s: False, max_time_s=120)
        live = [r for r in sim.shell.machine.nodes() if r.kind == "worker" and r.state.value == "running"]
        assert len(live) == 2
    finally:
        set_resource_request_channel(old)
        sim.close()


@pytest.mark.timeout(60)
def test_a_plain_cluster_driver_reaches_the_heads_store() -> None:
    """A driver attached with shoal.init(address=...) has no channel; its request still reaches the head."""
    from shoal.autoscaler._head import connect
    from shoal.autoscaler.cluster_state import HeadRequestChannel
    from shoal.testing.cluster import Cluster

    cluster = Cluster()
    try:
        cluster.add_node(num_cpus=1)
        cluster.connect()
        request_resources(num_cpus=2, bundles=[{"accel": 1}])
        with connect(cluster.address, cluster.token_path) as head:
            assert HeadRequestChannel(head).resource_requests() == [{"CPU": 1.0}, {"CPU": 1.0}, {"accel": 1.0}]
        request_resources()
        with connect(cluster.address, cluster.token_path) as head:
            assert HeadRequestChannel(head).resource_requests() == []
    finally:
        shoal.shutdown()
        cluster.shutdown()
