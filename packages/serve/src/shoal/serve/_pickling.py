"""Pickling deployment code: cloudpickle plus reducers for objects that do not pickle on their own."""

from __future__ import annotations

import io
from collections import ChainMap
from typing import Any

import cloudpickle
from starlette.datastructures import State

__all__ = ["dumps"]


def _reduce_state(state: State) -> tuple[Any, ...]:
    # starlette's State answers every attribute lookup from ``_state``, so
    # unpickling it the default way recurses forever; rebuild it from its dict.
    return (State, (dict(state._state),))


class _Pickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({State: _reduce_state}, cloudpickle.Pickler.dispatch_table)


def dumps(obj: Any) -> bytes:
    """Pickle a deployment's class or function (with an ASGI app on it) or its arguments."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=5).dump(obj)
    return buf.getvalue()
