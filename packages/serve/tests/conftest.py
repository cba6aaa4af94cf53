"""Fixtures for serve's tests: serve on a free loopback port, shut down after each test."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def start_serve(shoal_runtime: Any) -> Iterator[Callable[..., str]]:
    """``start_serve(**http_options)`` starts serve on a free port and returns its base URL; shut down after."""
    from shoal import serve

    started = []

    def start(**http_options: Any) -> str:
        http_options.setdefault("host", "127.0.0.1")
        http_options.setdefault("port", _free_port())
        serve.start(http_options=http_options)
        started.append(True)
        return f"http://127.0.0.1:{http_options['port']}"

    try:
        yield start
    finally:
        serve.shutdown()


@pytest.fixture
def serve_url(start_serve: Callable[..., str]) -> str:
    """serve started with default options on a free port; its base URL."""
    return start_serve()


@pytest.fixture
def free_port() -> int:
    return _free_port()
