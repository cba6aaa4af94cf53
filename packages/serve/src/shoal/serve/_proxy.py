"""The HTTP proxy: uvicorn in an actor, routing requests by route prefix straight to replicas.

uvicorn and the routers run on one uvloop thread of the proxy actor; the
actor's own loop only answers the controller. Per request the proxy does
no round trip to the controller: the route table and replica sets arrive
by long poll, and requests go to replicas over their Unix sockets.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from shoal.serve import _wire as W
from shoal.serve._constants import DISCONNECT_WATCH_DELAY_S, ROUTES_KEY, replicas_key
from shoal.serve._http import scope_fields
from shoal.serve._loop import await_ref, start_loop_thread
from shoal.serve._router import Inflight, LoopClient, Router, client_for_loop
from shoal.serve.config import HTTPOptions
from shoal.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaDiedError,
    RequestCancelledError,
)
from shoal.serve.multiplex import model_id_from_headers

__all__ = ["TOKEN_HEADER", "ProxyActor"]

logger = logging.getLogger("shoal.serve")

TOKEN_HEADER = "x-shoal-serve-token"
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_JSON = [(b"content-type", b"application/json")]

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = _TEXT) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Watch:
    """Per request: why it was cancelled, and the task that watches for a client disconnect."""

    __slots__ = ("reason", "task", "watcher")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.watcher: asyncio.Task[None] | None = None
        self.reason = ""


class ProxyApp:
    """The proxy's ASGI app: route by longest matching prefix, forward, stream the answer back."""

    def __init__(self, loop: asyncio.AbstractEventLoop, options: HTTPOptions, token: str) -> None:
        self.loop = loop
        self.options = options
        self.token = token
        self.routes: list[tuple[str, str, Router]] = []
        self.client: LoopClient = client_for_loop(loop)
        self.client.listen(ROUTES_KEY, self._update_routes)
        self.max_body = options.max_request_body_bytes
        self.timeout = options.request_timeout_s

    def _update_routes(self, value: list[tuple[str, str, str]] | None) -> None:
        routes = []
        for prefix, app_name, ingress in value or []:
            routes.append((prefix, app_name, self.client.router(replicas_key(app_name, ingress))))
        routes.sort(key=lambda r: len(r[0]), reverse=True)
        self.routes = routes

    def _match(self, path: str) -> tuple[str, str, Router] | None:
        for route in self.routes:
            prefix = route[0]
            if prefix == "/" or path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/"):
                return route
        return None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        path = scope["path"]
        if path.startswith("/-/"):
            await self._admin(scope, receive, send)
            return
        route = self._match(path)
        if route is None:
            await _respond(
                send, 404, f"Path '{path}' not found. Ping http://.../-/routes for available routes.".encode()
            )
            return
        message = await receive()
        body = message.get("body", b"")
        if message.get("more_body"):
            body = await self._read_body(bytearray(body), receive)
        if body is None or len(body) > self.max_body:
            await _respond(send, 413, f"Request body larger than {self.max_body} bytes".encode())
            return
        prefix, _, router = route
        fields = scope_fields(scope, "" if prefix == "/" else prefix)
        await self._forward(router, fields, bytes(body), receive, send)

    async def _read_body(self, body: bytearray, receive: Receive) -> bytes | None:
        while True:
            if len(body) > self.max_body:
                return None
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if not message.get("more_body"):
                return bytes(body)

    async def _forward(self, router: Router, fields: dict[str, Any], body: bytes, receive: Receive, send: Send) -> None:
        loop = self.loop
        model = model_id_from_headers(fields["headers"])
        watch = _Watch(asyncio.current_task())
        timer = loop.call_later(DISCONNECT_WATCH_DELAY_S, self._start_watch, watch, receive)
        deadline = loop.call_later(self.timeout, self._time_out, watch) if self.timeout else None
        inflight: Inflight | None = None
        try:
            while True:
                inflight = await router.assign(lambda rid: (W.HTTP, rid, fields, body), model)
                frame = await inflight.next()
                if frame[0] != W.REJECT:
                    break
            await self._send_response(frame, inflight, send)
        except asyncio.CancelledError:
            if inflight is not None:
                inflight.cancel()
            if not watch.reason:
                raise
            # Cancelled by us: the client went away or the request timed out.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if watch.reason == "timeout":
                await _respond(send, 408, b"Request timed out")
        except BackPressureError as e:
            await _respond(send, 503, str(e).encode())
        except DeploymentUnavailableError as e:
            await _respond(send, 503, str(e).encode())
        finally:
            timer.cancel()
            if deadline is not None:
                deadline.cancel()
            if watch.watcher is not None:
                watch.watcher.cancel()

    async def _send_response(self, frame: tuple[Any, ...], inflight: Inflight, send: Send) -> None:
        kind = frame[0]
        if kind == W.HTTP_FULL:
            await send({"type": "http.response.start", "status": frame[2], "headers": frame[3]})
            await send({"type": "http.response.body", "body": frame[4]})
            return
        if kind == W.HTTP_START:
            await send({"type": "http.response.start", "status": frame[2], "headers": frame[3]})
            while True:
                frame = await inflight.next()
                kind = frame[0]
                if kind == W.HTTP_BODY:
                    await send({"type": "http.response.body", "body": frame[2], "more_body": True})
                    continue
                if kind == W.ERR:
                    logger.error("stream failed after the response started: %s", W.loads_value(frame[2]))
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
        if kind == W.ERR:
            err = W.loads_value(frame[2])
            if isinstance(err, RequestCancelledError):
                raise asyncio.CancelledError
            status = 503 if isinstance(err, (ReplicaDiedError, DeploymentUnavailableError)) else 500
            await _respond(send, status, f"Internal Server Error: {err}".encode())
            return
        await _respond(send, 500, b"Internal Server Error: unexpected answer from the replica")

    def _start_watch(self, watch: _Watch, receive: Receive) -> None:
        watch.watcher = self.loop.create_task(self._watch_disconnect(watch, receive))

    async def _watch_disconnect(self, watch: _Watch, receive: Receive) -> None:
        message = await receive()
        if message["type"] == "http.disconnect" and watch.task is not None and not watch.task.done():
            watch.reason = "disconnect"
            watch.task.cancel()

    def _time_out(self, watch: _Watch) -> None:
        if watch.task is not None and not watch.task.done():
            watch.reason = "timeout"
            watch.task.cancel()

    # -- /-/ endpoints ---------------------------------------------------------

    async def _admin(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/-/healthz":
            await _respond(send, 200, b"success")
            return
        if path == "/-/routes":
            table = {prefix: app for prefix, app, _ in sorted(self.routes)}
            await _respond(send, 200, json.dumps(table).encode(), _JSON)
            return
        if not path.startswith("/-/shoal/"):
            await _respond(send, 404, f"Path '{path}' not found.".encode())
            return
        given = dict(scope["headers"]).get(TOKEN_HEADER.encode(), b"")
        if not hmac.compare_digest(given, self.token.encode()):
            await _respond(send, 401, b"missing or wrong serve token")
            return
        body = await self._read_body(bytearray(), receive) or b""
        controller = self.client.controller()
        try:
            if path == "/-/shoal/status" and scope["method"] == "GET":
                result = await await_ref(controller.status.remote())
            elif path == "/-/shoal/deploy" and scope["method"] in ("PUT", "POST"):
                config = json.loads(body or b"{}")
                result = await await_ref(controller.deploy_config.remote(config))
            elif path == "/-/shoal/shutdown" and scope["method"] == "POST":
                result = await await_ref(controller.request_shutdown.remote())
            else:
                await _respond(send, 404, f"Path '{path}' not found.".encode())
                return
        except Exception as e:  # noqa: BLE001 - report any failure to the CLI
            await _respond(send, 400, json.dumps({"error": str(e)}).encode(), _JSON)
            return
        await _respond(send, 200, json.dumps(result).encode(), _JSON)


class _CorkedTransport:
    """A transport whose writes during one loop iteration leave in one system call.

    uvicorn writes a response's head and body separately; at thousands of
    responses a second the second ``send`` costs more than the rest of the
    proxy's work for the request.
    """

    __slots__ = ("_buf", "_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buf: list[bytes] = []
        self._pending = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._buf.append(data)
        if not self._pending:
            self._pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._pending = False
        if self._buf:
            data = b"".join(self._buf)
            self._buf.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _corked(protocol_class: type) -> type:
    """uvicorn's HTTP protocol class, writing through a :class:`_CorkedTransport`."""

    class CorkedProtocol(protocol_class):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(_CorkedTransport(transport, asyncio.get_running_loop()))

    return CorkedProtocol


class ProxyActor:
    """An async actor that runs uvicorn with :class:`ProxyApp` on its own uvloop thread."""

    def __init__(self, http_options: HTTPOptions, token: str) -> None:
        import uvicorn

        self._options = http_options
        family = socket.AF_INET6 if ":" in http_options.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((http_options.host, http_options.port))
        except OSError as e:
            sock.close()
            raise RuntimeError(
                f"serve's HTTP proxy cannot listen on {http_options.host}:{http_options.port}: {e}"
            ) from e
        sock.listen(2048)
        sock.setblocking(False)
        self._port = sock.getsockname()[1]
        self._loop = start_loop_thread("serve-proxy")
        http_protocol: type
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

            http_protocol = HttpToolsProtocol
        except ImportError:  # pragma: no cover - httptools is a dependency
            from uvicorn.protocols.http.h11_impl import H11Protocol

            http_protocol = H11Protocol
        http = _corked(http_protocol)

        async def start() -> Any:
            proxy_app = ProxyApp(asyncio.get_running_loop(), http_options, token)
            config = uvicorn.Config(
                proxy_app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                loop="none",
                http=http,
                root_path=http_options.root_path,
                timeout_keep_alive=http_options.keep_alive_timeout_s,
            )
            server = uvicorn.Server(config)
            server_task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
            while not server.started:
                if server_task.done():
                    server_task.result()
                    raise RuntimeError("serve's HTTP proxy stopped while starting")
                await asyncio.sleep(0.01)
            return server, server_task

        self._server, self._server_task = asyncio.run_coroutine_threadsafe(start(), self._loop).result()

    async def ready(self) -> dict[str, Any]:
        """Where the proxy listens."""
        return {"host": self._options.host, "port": self._port}

    async def stop(self) -> None:
        """Stop accepting connections and close the listening socket."""
        self._server.should_exit = True
        task = self._server_task

        async def wait() -> None:
            await asyncio.wait({task}, timeout=5.0)

        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(wait(), self._loop))
