"""pytest plugin: shoal runtime fixtures and a check that tests leave nothing behind.

Options:
  --shoal-backend NAME   backend the ``shoal_runtime`` fixture starts (default: local)

After every test that leaves no shoal runtime running, the plugin checks that
no child process and no shoal /dev/shm segment is left; at the end of the
session it checks again and fails the run if anything leaked (and cleans up).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from shoal.testing.leaks import LeakReport, leftover_children, shm_segments

_state: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shoal")
    group.addoption("--shoal-backend", default="local", help="backend for the shoal_runtime fixture")


def pytest_configure(config: pytest.Config) -> None:
    _state["pids"] = {p.pid for p in leftover_children()}
    _state["segments"] = shm_segments()
    _state["leaks"] = []
    config.addinivalue_line("markers", "shoal_backends(*names): backends this test supports")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests whose ``shoal_backends`` marker excludes the chosen backend."""
    backend = config.getoption("--shoal-backend")
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("shoal_backends")
        (drop if marker is not None and backend not in marker.args else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    import shoal
    from shoal.testing.cluster import live_node_pids

    if shoal.is_initialized():
        return
    # Node agents of a cluster fixture that outlives this test are not leaks (yet), nor their children.
    spared = set(_state["pids"])
    for pid in live_node_pids():
        spared.add(pid)
        try:
            spared.update(p.pid for p in psutil.Process(pid).children(recursive=True))
        except psutil.Error:
            pass
    report = LeakReport.collect(spared, _state["segments"], grace=5.0, clean=True)
    if report:
        _state["leaks"].append(f"{item.nodeid}:\n{report}")
        item.add_report_section("teardown", "shoal leaks", str(report))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import shoal

    if shoal.is_initialized():
        shoal.shutdown()
    report = LeakReport.collect(_state["pids"], _state["segments"], grace=5.0, clean=True)
    if report:
        _state["leaks"].append(f"end of session:\n{report}")
    if _state["leaks"]:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "shoal: tests left processes or shared memory behind\n" + "\n".join(_state["leaks"])
        if reporter is not None:
            reporter.write_sep("=", "shoal leak check failed", red=True)
            reporter.write_line(text)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def shoal_backend_name(request: pytest.FixtureRequest) -> str:
    """The backend chosen with --shoal-backend."""
    return str(request.config.getoption("--shoal-backend"))


@contextlib.contextmanager
def runtime(backend: str, num_cpus: int = 2) -> Iterator[Any]:
    """A shoal runtime on ``backend`` with ``num_cpus`` CPUs, shut down on exit.

    For ``cluster`` it is a one-node cluster of real processes on 127.0.0.1.
    """
    import shoal

    if shoal.is_initialized():
        shoal.shutdown()
    if backend == "cluster":
        from shoal.testing.cluster import Cluster

        cluster = Cluster()
        try:
            cluster.add_node(num_cpus=num_cpus)
            yield cluster.connect()
        finally:
            cluster.shutdown()
        return
    info = shoal.init(backend=backend, num_cpus=num_cpus)
    try:
        yield info
    finally:
        shoal.shutdown()


@pytest.fixture(scope="module")
def shoal_runtime(shoal_backend_name: str) -> Iterator[Any]:
    """A shoal runtime (2 CPUs) shared by the tests of a module, shut down after them (see :func:`runtime`)."""
    with runtime(shoal_backend_name) as info:
        yield info


@pytest.fixture
def shoal_inline() -> Iterator[Any]:
    """A fresh ``inline`` runtime for one test."""
    import shoal

    if shoal.is_initialized():
        shoal.shutdown()
    info = shoal.init(backend="inline", num_cpus=2)
    try:
        yield info
    finally:
        shoal.shutdown()
