"""The I/O shell: provider calls off the loop, results as events, failures survived."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from shoal.autoscaler import AutoscalerShell, InMemoryClusterState, ResourceDemand
from shoal.autoscaler.events import LaunchNodes
from shoal.autoscaler.simulation import SimulatedProvider, VirtualClock

from .helpers import make_config


class SlowProvider(SimulatedProvider):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.release = threading.Event()
        self.fail_listing = False

    def create_nodes(self, *args, **kwargs):
        assert self.release.wait(10)
        return super().create_nodes(*args, **kwargs)

    def non_terminated_nodes(self, tag_filters=None):
        if self.fail_listing:
            raise ConnectionError("endpoint unreachable")
        return super().non_terminated_nodes(tag_filters)


def setup():
    clock = VirtualClock()
    provider = SlowProvider(cluster_name="test", clock=clock)
    cluster = InMemoryClusterState(clock=clock)
    shell = AutoscalerShell(make_config(), provider, cluster, clock=clock)
    return clock, provider, cluster, shell


def test_launches_run_off_the_loop_and_come_back_as_events() -> None:
    clock, provider, cluster, shell = setup()
    try:
        cluster.set_demands([ResourceDemand({"CPU": 4}, count=2)])
        (d,) = [d for d in shell.step() if isinstance(d, LaunchNodes)]
        assert d.count == 2
        clock.advance(5)
        assert shell.step() == []  # still in flight; nothing launched twice
        assert shell.status().counts()["cpu"] == {"requested": 2}
        provider.release.set()
        for _ in range(100):
            clock.advance(1)
            shell.step()
            if shell.status().counts()["cpu"] == {"launching": 2}:
                break
            threading.Event().wait(0.02)
        assert shell.status().counts()["cpu"] == {"launching": 2}
        assert len(provider.non_terminated_nodes({"shoal-node-type": "cpu"})) == 2
    finally:
        provider.release.set()
        shell.close()


def test_an_unreachable_provider_skips_the_round(caplog) -> None:
    _, provider, cluster, shell = setup()
    provider.release.set()
    provider.fail_listing = True
    with caplog.at_level(logging.WARNING, logger="shoal.autoscaler"):
        assert shell.step() == []
    assert "cannot observe the cluster: ConnectionError: endpoint unreachable" in caplog.text
    provider.fail_listing = False
    cluster.set_demands([ResourceDemand({"CPU": 4})])
    assert [type(d) for d in shell.step()] == [LaunchNodes]
    shell.close()
    with pytest.raises(RuntimeError, match="closed"):
        shell.step()


def test_async_run_steps_until_stopped() -> None:
    _, provider, cluster, shell = setup()
    provider.release.set()
    cluster.set_demands([ResourceDemand({"CPU": 4})])

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(shell.run(interval_s=0.01, stop=stop))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if provider.create_calls:
                break
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    shell.close()
    assert provider.create_calls == 1
    assert shell.status().counts()["cpu"] == {"launching": 1}
