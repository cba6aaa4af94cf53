"""HTTP on the replica side: turning forwarded requests into starlette Requests and results into frames."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shoal.serve import _wire as W

__all__ = ["ResponseSender", "encode_result", "make_receive", "make_request", "scope_fields"]

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_JSON = [(b"content-type", b"application/json")]
_BYTES = [(b"content-type", b"application/octet-stream")]


def scope_fields(scope: dict[str, Any], root_path: str) -> dict[str, Any]:
    """The part of an ASGI scope that travels to the replica (plain data only)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": scope.get("http_version", "1.1"),
        "method": scope["method"],
        "scheme": scope.get("scheme", "http"),
        "path": scope["path"],
        "raw_path": scope.get("raw_path"),
        "query_string": scope.get("query_string", b""),
        "root_path": root_path,
        "headers": scope["headers"],
        "client": scope.get("client"),
        "server": scope.get("server"),
    }


def make_receive(body: bytes, disconnected: asyncio.Event | None) -> Callable[[], Any]:
    """An ASGI ``receive`` that yields the body once, then waits for a disconnect (cancellation)."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if disconnected is None:
            await asyncio.Future()  # never: a request that is cancelled raises CancelledError here
        else:
            await disconnected.wait()
        return {"type": "http.disconnect"}

    return receive


def make_request(scope: dict[str, Any], body: bytes) -> Request:
    """A starlette Request over the forwarded scope and body."""
    scope.setdefault("state", {})
    scope.setdefault("path_params", {})
    request = Request(scope, make_receive(body, None))
    # The body is already here: starlette reads it from ``_body`` without calling receive.
    request._body = body
    return request


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    for attr in ("model_dump", "dict", "tolist"):  # pydantic v2, pydantic v1, numpy
        fn = getattr(value, attr, None)
        if callable(fn):
            return fn()
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_result(value: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    """Status, headers and body for a plain return value; None when it needs the ASGI path."""
    if isinstance(value, str):
        return 200, _TEXT, value.encode()
    if isinstance(value, Response) and type(value).__call__ is Response.__call__ and value.background is None:
        return value.status_code, value.raw_headers, bytes(value.body)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return 200, _BYTES, bytes(value)
    if isinstance(value, Response) or inspect.isgenerator(value) or inspect.isasyncgen(value):
        return None
    body = json.dumps(value, default=_json_default, separators=(",", ":")).encode()
    return 200, _JSON, body


class ResponseSender:
    """An ASGI ``send`` that forwards a response to the router as frames.

    A response whose body comes in one message leaves as one HTTP_FULL
    frame; otherwise HTTP_START, HTTP_BODY... and STREAM_END.
    """

    __slots__ = ("_conn", "_headers", "_rid", "_started", "_status", "_streaming", "status")

    def __init__(self, conn: W.FrameConnection, rid: int) -> None:
        self._conn = conn
        self._rid = rid
        self._status = 200
        self._headers: list[tuple[bytes, bytes]] = []
        self._started = False
        self._streaming = False
        self.status = 0

    @property
    def started(self) -> bool:
        return self._started

    async def __call__(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._status = message["status"]
            self._headers = list(message.get("headers", []))
            self._started = True
            self.status = self._status
        elif kind == "http.response.body":
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if not self._streaming:
                if not more:
                    self._conn.send((W.HTTP_FULL, self._rid, self._status, self._headers, body))
                    return
                self._streaming = True
                self._conn.send((W.HTTP_START, self._rid, self._status, self._headers))
            if body:
                self._conn.send((W.HTTP_BODY, self._rid, body))
            if not more:
                self._conn.send((W.STREAM_END, self._rid))
                # Let the proxy write this chunk out before the next one is produced.
            else:
                await asyncio.sleep(0)

    def finish(self) -> None:
        """Close a stream the app left open."""
        if self._streaming:
            self._conn.send((W.STREAM_END, self._rid))


async def stream_generator(gen: Any, sender: ResponseSender) -> None:
    """Send a (sync or async) generator's items as a streamed text response."""
    await sender({"type": "http.response.start", "status": 200, "headers": _TEXT})
    if inspect.isasyncgen(gen):
        async for item in gen:
            await sender({"type": "http.response.body", "body": _chunk(item), "more_body": True})
    else:
        for item in gen:
            await sender({"type": "http.response.body", "body": _chunk(item), "more_body": True})
    await sender({"type": "http.response.body", "body": b"", "more_body": False})


def _chunk(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return json.dumps(item, default=_json_default).encode()
