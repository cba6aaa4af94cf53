"""The data path between routers (proxy, handles) and replicas: framed messages on a Unix socket.

Requests and responses bypass shoal's object store and scheduler: a router
holds one stream connection per replica and multiplexes every request on
it. A frame is a 4-byte little-endian length and a pickled tuple whose
first item is its kind. Frames written during one event-loop iteration go
out in one system call, which is what keeps the proxy near a bare
uvicorn app under load.

Only processes of the same user can connect: sockets live in a directory
created with mode 0700 (pickled frames execute code, so no other peer may
reach the reader).
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable
from typing import Any

import cloudpickle

__all__ = [
    "CALL",
    "CANCEL",
    "ERR",
    "HTTP",
    "HTTP_BODY",
    "HTTP_FULL",
    "HTTP_START",
    "ITEM",
    "OK",
    "REJECT",
    "STREAM_END",
    "FrameConnection",
    "dumps_error",
    "dumps_value",
    "loads_value",
]

# router -> replica
HTTP = 1  # (HTTP, rid, scope_fields, body)
CALL = 2  # (CALL, rid, method, stream, payload, model_id) payload = cloudpickled (args, kwargs)
CANCEL = 3  # (CANCEL, rid)

# replica -> router
OK = 10  # (OK, rid, payload)             a handle call's value, cloudpickled
ERR = 11  # (ERR, rid, payload)           a pickled exception
HTTP_FULL = 12  # (HTTP_FULL, rid, status, headers, body)
HTTP_START = 13  # (HTTP_START, rid, status, headers)
HTTP_BODY = 14  # (HTTP_BODY, rid, chunk)  streamed body; STREAM_END closes it
ITEM = 15  # (ITEM, rid, payload)         one value of a streaming handle call
STREAM_END = 16  # (STREAM_END, rid)
REJECT = 17  # (REJECT, rid)              the replica is draining: send the request elsewhere

_HEADER = 4
_dumps = pickle.dumps
_loads = pickle.loads


def dumps_value(value: Any) -> bytes:
    """Pickle a user value: plain pickle when it can, cloudpickle for classes defined on the fly."""
    try:
        return _dumps(value, 5)
    except Exception:  # noqa: BLE001 - anything plain pickle refuses, cloudpickle may take
        return cloudpickle.dumps(value, protocol=5)


def loads_value(data: bytes) -> Any:
    """The value pickled by :func:`dumps_value` (or by cloudpickle)."""
    return _loads(data)


def dumps_error(err: BaseException) -> bytes:
    """Pickle an exception; one that cannot travel becomes a RuntimeError with its text."""
    try:
        data = cloudpickle.dumps(err, protocol=5)
        cloudpickle.loads(data)
        return data
    except Exception:  # noqa: BLE001 - unpicklable user exception
        return cloudpickle.dumps(RuntimeError(f"{type(err).__name__}: {err}"), protocol=5)


class FrameConnection(asyncio.Protocol):
    """One end of a framed stream; ``on_message`` runs for every frame received.

    ``send`` queues a frame and flushes all queued frames once per loop
    iteration. ``on_lost`` runs once when the peer goes away.
    """

    def __init__(
        self,
        on_message: Callable[[tuple[Any, ...]], None],
        on_lost: Callable[[Exception | None], None] | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._flush_pending = False
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data
        pos = 0
        end = len(view)
        on_message = self._on_message
        while end - pos >= _HEADER:
            size = int.from_bytes(view[pos : pos + _HEADER], "little")
            stop = pos + _HEADER + size
            if stop > end:
                break
            on_message(_loads(view[pos + _HEADER : stop]))
            pos = stop
        if view is buf:
            del buf[:pos]
        elif pos < end:
            buf += data[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self._on_lost is not None:
            callback, self._on_lost = self._on_lost, None
            callback(exc)

    # -- sending ------------------------------------------------------------

    def send(self, msg: tuple[Any, ...]) -> None:
        """Queue one frame; it leaves at the end of this loop iteration."""
        if self.closed:
            return
        data = _dumps(msg, 5)
        self._out.append(len(data).to_bytes(_HEADER, "little"))
        self._out.append(data)
        if not self._flush_pending:
            self._flush_pending = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        out, self._out = self._out, []
        if self.transport is not None and out:
            self.transport.write(b"".join(out))

    def close(self) -> None:
        """Flush what is queued and close the stream."""
        if self.transport is not None:
            self._flush()
            self.transport.close()
