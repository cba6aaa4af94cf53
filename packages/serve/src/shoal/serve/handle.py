"""Deployment handles: call a deployment from Python (the driver, or another deployment).

``handle.remote(...)`` and ``handle.method.remote(...)`` return a
:class:`DeploymentResponse` at once; ``.result()`` waits for it in sync
code and ``await response`` in async code. A response may be passed as an
argument to another handle call without waiting: it is resolved before the
call is sent. ``handle.options(stream=True)`` calls generator methods and
returns a :class:`DeploymentResponseGenerator`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import cloudpickle

from shoal.serve import _wire as W
from shoal.serve._constants import replicas_key
from shoal.serve._loop import start_loop_thread
from shoal.serve._router import client_for_loop
from shoal.serve.exceptions import RequestCancelledError

__all__ = ["DeploymentHandle", "DeploymentResponse", "DeploymentResponseGenerator"]

_bg_loop: asyncio.AbstractEventLoop | None = None
_bg_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """The loop that carries the handle calls of sync code in this process."""
    global _bg_loop
    if _bg_loop is None:
        with _bg_lock:
            if _bg_loop is None:
                _bg_loop = start_loop_thread("serve-handles")
    return _bg_loop


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class DeploymentHandle:
    """A handle to a deployment of an application; picklable, so it can be passed to other deployments."""

    def __init__(
        self,
        deployment_name: str,
        app_name: str,
        *,
        method_name: str = "__call__",
        stream: bool = False,
        multiplexed_model_id: str = "",
    ) -> None:
        self._deployment_name = deployment_name
        self._app_name = app_name
        self._method_name = method_name
        self._stream = stream
        self._model_id = multiplexed_model_id

    @property
    def deployment_name(self) -> str:
        return self._deployment_name

    @property
    def app_name(self) -> str:
        return self._app_name

    def options(
        self,
        *,
        method_name: str | None = None,
        stream: bool | None = None,
        multiplexed_model_id: str | None = None,
        use_new_handle_api: bool | None = None,
    ) -> DeploymentHandle:
        """A copy of this handle with the method, streaming mode or model (``multiplexed_model_id``) replaced."""
        if multiplexed_model_id is not None and not isinstance(multiplexed_model_id, str):
            raise TypeError(f"multiplexed_model_id must be a str, got {multiplexed_model_id!r}")
        if stream is not None and not isinstance(stream, bool):
            raise TypeError(f"stream must be a bool, got {stream!r}")
        if method_name is not None and (not isinstance(method_name, str) or not method_name):
            raise ValueError(f"method_name must be a non-empty string, got {method_name!r}")
        return DeploymentHandle(
            self._deployment_name,
            self._app_name,
            method_name=method_name or self._method_name,
            stream=self._stream if stream is None else stream,
            multiplexed_model_id=self._model_id if multiplexed_model_id is None else multiplexed_model_id,
        )

    def __getattr__(self, name: str) -> _HandleMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _HandleMethod(self, name)

    def remote(self, *args: Any, **kwargs: Any) -> DeploymentResponse | DeploymentResponseGenerator:
        """Call the handle's method (``__call__`` unless ``options(method_name=...)``)."""
        return _submit(self, self._method_name, args, kwargs)

    def __reduce__(self) -> Any:
        return (
            _rebuild_handle,
            (self._deployment_name, self._app_name, self._method_name, self._stream, self._model_id),
        )

    def __repr__(self) -> str:
        return f"DeploymentHandle(deployment='{self._deployment_name}', app='{self._app_name}')"


def _rebuild_handle(deployment: str, app: str, method: str, stream: bool, model_id: str = "") -> DeploymentHandle:
    return DeploymentHandle(deployment, app, method_name=method, stream=stream, multiplexed_model_id=model_id)


class _HandleMethod:
    def __init__(self, handle: DeploymentHandle, name: str) -> None:
        self._handle = handle
        self._name = name

    def remote(self, *args: Any, **kwargs: Any) -> DeploymentResponse | DeploymentResponseGenerator:
        return _submit(self._handle, self._name, args, kwargs)

    def options(self, **options: Any) -> _HandleMethod:
        return _HandleMethod(self._handle.options(**options), self._name)


def _submit(
    handle: DeploymentHandle, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> DeploymentResponse | DeploymentResponseGenerator:
    key = replicas_key(handle.app_name, handle.deployment_name)
    model = handle._model_id
    if handle._stream:
        return DeploymentResponseGenerator(_stream(key, method, args, kwargs, model))
    loop = _running_loop()
    if loop is not None:
        return DeploymentResponse(loop.create_task(_call(key, method, args, kwargs, model)), loop)
    bg = _background_loop()
    return DeploymentResponse(asyncio.run_coroutine_threadsafe(_call(key, method, args, kwargs, model), bg), bg)


async def _resolve_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Wait for the responses passed as arguments (top-level ones, as in Ray)."""
    if any(isinstance(a, DeploymentResponse) for a in args):
        args = tuple([await a if isinstance(a, DeploymentResponse) else a for a in args])
    if any(isinstance(v, DeploymentResponse) for v in kwargs.values()):
        kwargs = {k: (await v if isinstance(v, DeploymentResponse) else v) for k, v in kwargs.items()}
    return args, kwargs


async def _call(
    key: tuple[str, str, str], method: str, args: tuple[Any, ...], kwargs: dict[str, Any], model: str
) -> Any:
    args, kwargs = await _resolve_args(args, kwargs)
    payload = cloudpickle.dumps((args, kwargs), protocol=5)
    router = client_for_loop(asyncio.get_running_loop()).router(key)
    while True:
        inflight = await router.assign(lambda rid: (W.CALL, rid, method, False, payload, model), model)
        try:
            frame = await inflight.next()
        except asyncio.CancelledError:
            inflight.cancel()
            raise
        kind = frame[0]
        if kind == W.OK:
            return W.loads_value(frame[2])
        if kind == W.ERR:
            raise W.loads_value(frame[2])
        # REJECT: the replica is shutting down; another one takes the call.


async def _stream(
    key: tuple[str, str, str], method: str, args: tuple[Any, ...], kwargs: dict[str, Any], model: str
) -> Any:
    args, kwargs = await _resolve_args(args, kwargs)
    payload = cloudpickle.dumps((args, kwargs), protocol=5)
    router = client_for_loop(asyncio.get_running_loop()).router(key)
    while True:
        inflight = await router.assign(lambda rid: (W.CALL, rid, method, True, payload, model), model)
        try:
            while True:
                frame = await inflight.next()
                kind = frame[0]
                if kind == W.ITEM:
                    yield W.loads_value(frame[2])
                elif kind == W.STREAM_END:
                    return
                elif kind == W.ERR:
                    raise W.loads_value(frame[2])
                elif kind == W.REJECT:
                    break
        finally:
            if not inflight.done:
                inflight.cancel()


class DeploymentResponse:
    """The future result of a handle call: ``.result()`` in sync code, ``await`` in async code."""

    def __init__(self, future: asyncio.Future[Any] | concurrent.futures.Future[Any], loop: asyncio.AbstractEventLoop):
        self._future = future
        self._loop = loop

    def result(self, *, timeout_s: float | None = None) -> Any:
        """Wait for the value (up to ``timeout_s``); raises the deployment's exception or TimeoutError."""
        if _running_loop() is not None:
            raise RuntimeError(
                "DeploymentResponse.result() blocks and cannot be called from within an asyncio event loop; "
                "use `await response` instead"
            )
        fut = self._future
        if isinstance(fut, asyncio.Future):
            fut = asyncio.run_coroutine_threadsafe(_wait(fut), self._loop)
        try:
            return fut.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the response was not ready within {timeout_s}s") from None
        except concurrent.futures.CancelledError:
            raise RequestCancelledError("the request was cancelled") from None

    def __await__(self) -> Any:
        return self._wait().__await__()

    async def _wait(self) -> Any:
        fut = self._future
        loop = asyncio.get_running_loop()
        try:
            if isinstance(fut, asyncio.Future):
                if loop is self._loop:
                    return await fut
                return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_wait(fut), self._loop))
            return await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            if fut.cancelled():
                raise RequestCancelledError("the request was cancelled") from None
            raise

    def cancel(self) -> None:
        """Cancel the call; the replica's work is cancelled too, and waiting raises RequestCancelledError."""
        fut = self._future
        if isinstance(fut, asyncio.Future):
            self._loop.call_soon_threadsafe(fut.cancel)
        else:
            fut.cancel()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    def done(self) -> bool:
        return self._future.done()

    def __reduce__(self) -> Any:
        raise TypeError("a DeploymentResponse can be passed to another handle call, but not pickled")


async def _wait(fut: asyncio.Future[Any]) -> Any:
    return await fut


class DeploymentResponseGenerator:
    """The items of a streaming handle call, in order; iterate with ``for`` or ``async for``."""

    def __init__(self, agen: Any) -> None:
        self._agen = agen
        self._loop: asyncio.AbstractEventLoop | None = None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        if loop is not self._loop:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._agen.__anext__(), self._loop))
        return await self._agen.__anext__()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if _running_loop() is not None:
            raise RuntimeError("iterate a DeploymentResponseGenerator with `async for` inside an asyncio event loop")
        if self._loop is None:
            self._loop = _background_loop()
        try:
            return asyncio.run_coroutine_threadsafe(self._agen.__anext__(), self._loop).result()
        except StopAsyncIteration:
            raise StopIteration from None

    def cancel(self) -> None:
        """Stop the stream; the replica's generator is cancelled."""
        loop = self._loop or _background_loop()
        if _running_loop() is loop:
            loop.create_task(self._agen.aclose())
        else:
            asyncio.run_coroutine_threadsafe(self._agen.aclose(), loop)
