"""Fixtures of shoal.data's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shoal.data import DataContext


@pytest.fixture
def data_context() -> Iterator[DataContext]:
    """The process's DataContext, restored to its previous settings after the test."""
    ctx = DataContext.get_current()
    saved = ctx.copy()
    try:
        yield ctx
    finally:
        DataContext._set_current(saved)
