"""Replicas: the actor that hosts one copy of a deployment's code and serves its requests.

The actor's own methods (initialize, reconfigure, check_health, drain) are
the controller's control plane. Requests arrive on a Unix socket served by
a separate event loop thread, where the user's code also runs (as in Ray
Serve, which runs user code on its own loop), so control calls are
answered even while requests are busy.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import time
import traceback
import uuid
from typing import Any

import cloudpickle

from shoal.exceptions import TaskError
from shoal.serve import _wire as W
from shoal.serve._http import ResponseSender, encode_result, make_receive, make_request, stream_generator
from shoal.serve._logging import ReplicaLog, setup_replica_logging
from shoal.serve._loop import start_loop_thread
from shoal.serve.config import DeploymentConfig
from shoal.serve.context import ReplicaContext, _set_replica_context
from shoal.serve.exceptions import RequestCancelledError
from shoal.serve.multiplex import model_id_from_headers, set_request_model_id

__all__ = ["ReplicaActor"]

logger = logging.getLogger("shoal.serve")

_CANCELLED = W.dumps_error(RequestCancelledError("the request was cancelled"))


class _UserCode:
    """The deployment's class instance (or function) and how to call it."""

    def __init__(self, serialized_def: bytes, serialized_init: bytes, is_function: bool, name: str) -> None:
        self.name = name
        target = cloudpickle.loads(serialized_def)
        args, kwargs = cloudpickle.loads(serialized_init)
        self.asgi_app: Any = None
        if is_function:
            self.instance: Any = None
            self.function = target
        else:
            self.instance = target(*args, **kwargs)
            self.function = None
            if getattr(target, "__serve_asgi_app__", None) is not None:
                from shoal.serve.ingress import bind_asgi_app

                self.asgi_app = bind_asgi_app(target, self.instance)
        self._methods: dict[str, Any] = {}

    def method(self, name: str) -> Any:
        fn = self._methods.get(name)
        if fn is None:
            if self.function is not None:
                if name != "__call__":
                    raise AttributeError(f"function deployment {self.name!r} has only __call__, not {name!r}")
                fn = self.function
            else:
                fn = getattr(self.instance, name, None)
                if fn is None or not callable(fn):
                    raise AttributeError(f"deployment {self.name!r} has no method {name!r}")
            self._methods[name] = fn
        return fn

    async def call_optional(self, name: str, *args: Any) -> bool:
        """Call ``name`` if the class has it; False when it does not."""
        if self.instance is None:
            return False
        fn = getattr(self.instance, name, None)
        if fn is None:
            return False
        result = fn(*args)
        if inspect.isawaitable(result):
            await result
        return True


class _Server:
    """The data plane of a replica: reads requests from routers, runs them, writes responses."""

    def __init__(
        self, user: _UserCode, config: DeploymentConfig, log: ReplicaLog, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.user = user
        self.loop = loop
        self.max_ongoing = config.max_ongoing_requests
        self.log = log
        self.access_log = log if log.access_log else None
        self.ongoing = 0
        self.draining = False
        self.tasks: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._slots: list[asyncio.Future[None]] = []
        self._idle: asyncio.Event = asyncio.Event()
        self._idle.set()
        self.server: asyncio.AbstractServer | None = None

    async def listen(self, path: str) -> None:
        self.server = await self.loop.create_unix_server(self._protocol, path)
        os.chmod(path, 0o600)

    def _protocol(self) -> W.FrameConnection:
        conn: W.FrameConnection

        def on_message(msg: tuple[Any, ...]) -> None:
            self._on_message(conn, msg)

        def on_lost(exc: Exception | None) -> None:
            # The router went away: its requests have nobody to answer to.
            key_id = id(conn)
            for key, task in list(self.tasks.items()):
                if key[0] == key_id:
                    task.cancel()

        conn = W.FrameConnection(on_message, on_lost)
        return conn

    def _on_message(self, conn: W.FrameConnection, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == W.CANCEL:
            task = self.tasks.get((id(conn), msg[1]))
            if task is not None:
                task.cancel()
            return
        if self.draining:
            conn.send((W.REJECT, msg[1]))
            return
        key = (id(conn), msg[1])
        self.ongoing += 1
        self._idle.clear()
        task = self.loop.create_task(self._run(conn, msg))
        self.tasks[key] = task
        # The books are settled in a done callback, not in the coroutine: a
        # request cancelled before its task first runs never enters it.
        task.add_done_callback(functools.partial(self._finished, conn, msg[1], key))

    def _finished(self, conn: W.FrameConnection, rid: int, key: tuple[int, int], task: asyncio.Task[None]) -> None:
        self.ongoing -= 1
        self.tasks.pop(key, None)
        if task.cancelled():
            conn.send((W.ERR, rid, _CANCELLED))
        while self._slots:
            slot = self._slots.pop(0)
            if not slot.done():
                slot.set_result(None)
                break
        if self.ongoing == 0:
            self._idle.set()

    async def _run(self, conn: W.FrameConnection, msg: tuple[Any, ...]) -> None:
        try:
            if self.ongoing > self.max_ongoing:
                # Several routers together sent more than the limit: wait for a slot.
                slot = self.loop.create_future()
                self._slots.append(slot)
                await slot
            if msg[0] == W.HTTP:
                await self._http(conn, msg)
            else:
                await self._call(conn, msg)
        except asyncio.CancelledError:
            conn.send((W.ERR, msg[1], _CANCELLED))

    async def _http(self, conn: W.FrameConnection, msg: tuple[Any, ...]) -> None:
        _, rid, scope, body = msg
        set_request_model_id(model_id_from_headers(scope["headers"]))
        start = time.perf_counter()
        sender = ResponseSender(conn, rid)
        status = 500
        try:
            if self.user.asgi_app is not None:
                await self.user.asgi_app(scope, make_receive(body, None), sender)
                sender.finish()
                status = sender.status
            else:
                fn = self.user.method("__call__")
                result = fn(make_request(scope, body))
                if inspect.isawaitable(result):
                    result = await result
                encoded = encode_result(result)
                if encoded is not None:
                    status = encoded[0]
                    conn.send((W.HTTP_FULL, rid, *encoded))
                elif inspect.isgenerator(result) or inspect.isasyncgen(result):
                    await stream_generator(result, sender)
                    status = 200
                else:
                    await result(scope, make_receive(body, None), sender)
                    sender.finish()
                    status = sender.status
        except asyncio.CancelledError:
            status = 499
            raise
        except Exception:  # noqa: BLE001 - any error in user code becomes a 500
            error_id = uuid.uuid4().hex[:12]
            logger.error(
                "request %s %s failed (error id %s):\n%s",
                scope["method"],
                scope["path"],
                error_id,
                traceback.format_exc(),
            )
            text = f"Internal Server Error (error id: {error_id})".encode()
            if sender.started:
                # Headers are gone already: all we can do is end the stream.
                conn.send((W.ERR, rid, W.dumps_error(RuntimeError(text.decode()))))
            else:
                conn.send((W.HTTP_FULL, rid, 500, [(b"content-type", b"text/plain; charset=utf-8")], text))
        finally:
            if self.access_log is not None:
                ms = (time.perf_counter() - start) * 1000
                self.access_log.access(
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')} {scope['method']} {scope['path']} {status} {ms:.1f}ms"
                )

    async def _call(self, conn: W.FrameConnection, msg: tuple[Any, ...]) -> None:
        _, rid, method, stream, payload, *rest = msg
        set_request_model_id(rest[0] if rest else "")
        start = time.perf_counter()
        status = "OK"
        try:
            args, kwargs = cloudpickle.loads(payload)
            fn = self.user.method(method)
            result = fn(*args, **kwargs)
            if stream:
                if inspect.isasyncgen(result):
                    async for item in result:
                        conn.send((W.ITEM, rid, W.dumps_value(item)))
                elif inspect.isgenerator(result):
                    for item in result:
                        conn.send((W.ITEM, rid, W.dumps_value(item)))
                        await asyncio.sleep(0)
                else:
                    raise TypeError(
                        f"method {method!r} of {self.user.name!r} did not return a generator; "
                        "handle.options(stream=True) needs a generator method"
                    )
                conn.send((W.STREAM_END, rid))
                return
            if inspect.isawaitable(result):
                result = await result
            conn.send((W.OK, rid, W.dumps_value(result)))
        except asyncio.CancelledError:
            status = "CANCELLED"
            raise
        except Exception as e:  # noqa: BLE001 - any error in user code goes back to the caller
            status = "ERROR"
            err = TaskError(f"{self.user.name}.{method}", traceback.format_exc(), e, os.getpid()).as_instanceof_cause()
            conn.send((W.ERR, rid, W.dumps_error(err)))
        finally:
            if self.access_log is not None:
                ms = (time.perf_counter() - start) * 1000
                self.access_log.access(f"{time.strftime('%Y-%m-%d %H:%M:%S')} CALL {method} {status} {ms:.1f}ms")

    async def drain(self, wait_loop_s: float, timeout_s: float) -> None:
        """Stop taking requests and wait (up to ``timeout_s``) for those in flight."""
        # Routers may not have heard yet that this replica is going: keep
        # serving for ``wait_loop_s`` before refusing new requests.
        if wait_loop_s:
            await asyncio.sleep(min(wait_loop_s, timeout_s))
        self.draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=max(0.0, timeout_s - wait_loop_s))
        except TimeoutError:
            logger.warning("replica shutting down with %d requests still in flight", self.ongoing)
        if self.server is not None:
            self.server.close()


class ReplicaActor:
    """One replica (an async actor); the controller creates it with the deployment's actor options."""

    def __init__(
        self,
        app_name: str,
        deployment_name: str,
        replica_id: str,
        serialized_def: bytes,
        serialized_init: bytes,
        is_function: bool,
        config: DeploymentConfig,
        socket_path: str,
    ) -> None:
        self._app = app_name
        self._deployment = deployment_name
        self._replica_id = replica_id
        self._def = serialized_def
        self._init = serialized_init
        self._is_function = is_function
        self._config = config
        self._socket_path = socket_path
        self._user: _UserCode | None = None
        self._server: _Server | None = None
        self._loop = start_loop_thread(f"serve-replica-{replica_id}")

    async def _on_user_loop(self, coro: Any) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def initialize(self) -> dict[str, Any]:
        """Build the user's object, apply ``user_config`` and start serving; returns where."""
        return await self._on_user_loop(self._initialize())

    async def _initialize(self) -> dict[str, Any]:
        component = f"{self._app}_{self._deployment}_{self._replica_id}"
        log = setup_replica_logging(self._config.logging_config, component)
        user = _UserCode(self._def, self._init, self._is_function, self._deployment)
        _set_replica_context(
            ReplicaContext(self._app, self._deployment, self._replica_id, user.instance or user.function)
        )
        self._user = user
        if self._config.user_config is not None:
            await self._reconfigure(self._config.user_config)
        server = _Server(user, self._config, log, asyncio.get_running_loop())
        await server.listen(self._socket_path)
        self._server = server
        return {"socket_path": self._socket_path, "pid": os.getpid()}

    async def reconfigure(self, user_config: Any) -> None:
        """Pass a new ``user_config`` to the user's ``reconfigure`` method."""
        await self._on_user_loop(self._reconfigure(user_config))

    async def _reconfigure(self, user_config: Any) -> None:
        assert self._user is not None
        self._config.user_config = user_config
        if not await self._user.call_optional("reconfigure", user_config):
            raise ValueError(
                f"deployment {self._deployment!r} has a user_config but its class defines no reconfigure method"
            )

    async def update_limits(self, max_ongoing_requests: int) -> None:
        if self._server is not None:
            self._server.max_ongoing = max_ongoing_requests

    async def check_health(self) -> None:
        """Run the user's ``check_health`` (if any) on the user loop; raises if unhealthy."""
        if self._user is not None:
            await self._on_user_loop(self._user.call_optional("check_health"))

    async def num_ongoing(self) -> int:
        return self._server.ongoing if self._server is not None else 0

    async def drain(self, wait_loop_s: float, timeout_s: float) -> None:
        """Finish the requests in flight before the controller stops this replica."""
        if self._server is not None:
            await self._on_user_loop(self._server.drain(wait_loop_s, timeout_s))
        if self._server is not None:
            self._server.log.close()
        if self._user is not None:
            await self._on_user_loop(self._user.call_optional("__del__"))
        try:
            os.unlink(self._socket_path)
        except OSError:
            pass

    async def ping(self) -> str:
        return self._replica_id
