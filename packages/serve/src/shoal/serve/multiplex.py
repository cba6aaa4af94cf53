"""Model multiplexing: ``@serve.multiplexed`` and ``serve.get_multiplexed_model_id()``.

A request names a model (the ``serve_multiplexed_model_id`` HTTP header, or
``handle.options(multiplexed_model_id=...)``). Routers send requests for one
model to the same replica while it has room (rendezvous hashing on the model
and replica ids, so every proxy and handle agrees without talking), and each
replica keeps the models it loaded in an LRU cache of bounded size.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import inspect
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["MODEL_ID_HEADER", "get_multiplexed_model_id", "multiplexed", "rank_replicas"]

#: The HTTP header that names the model of a request.
MODEL_ID_HEADER = "serve_multiplexed_model_id"
_HEADERS = (MODEL_ID_HEADER.encode(), b"ray_serve_multiplexed_model_id")

_model_id: contextvars.ContextVar[str] = contextvars.ContextVar("shoal_serve_model_id", default="")

F = TypeVar("F", bound=Callable[..., Any])


def get_multiplexed_model_id() -> str:
    """The model id of the request being handled ("" when it named none)."""
    return _model_id.get()


def set_request_model_id(model_id: str) -> None:
    """Called by the replica at the start of each request (each runs in its own task)."""
    _model_id.set(model_id)


def model_id_from_headers(headers: Sequence[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() in _HEADERS:
            return value.decode("latin-1")
    return ""


def rank_replicas(model_id: str, replicas: Sequence[Any]) -> list[Any]:
    """Replicas in the order a request for ``model_id`` should try them.

    Rendezvous hashing: the same order in every process, and removing a replica
    moves only the models that preferred it.
    """
    key = model_id.encode()
    return sorted(replicas, key=lambda r: zlib.crc32(key + b"\0" + r.replica_id.encode()), reverse=True)


class _ModelCache:
    """The models one replica (one instance of the deployment) has loaded, least recently used first."""

    def __init__(self, load: Callable[[str], Any], capacity: int) -> None:
        self.load = load
        self.capacity = capacity
        self.models: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self.loading: dict[str, asyncio.Future[Any]] = {}

    async def get(self, model_id: str) -> Any:
        if model_id in self.models:
            self.models.move_to_end(model_id)
            return self.models[model_id]
        pending = self.loading.get(model_id)
        if pending is not None:
            # Concurrent requests for a model being loaded share the one load.
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.loading[model_id] = future
        try:
            if self.capacity != -1:
                while self.models and len(self.models) + len(self.loading) > self.capacity:
                    _, old = self.models.popitem(last=False)
                    await _unload(old)
            model = await self.load(model_id)
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # the error is the caller's; waiters get it too
            raise
        finally:
            self.loading.pop(model_id, None)
        self.models[model_id] = model
        future.set_result(model)
        return model


async def _unload(model: Any) -> None:
    """Let an evicted model release what it holds: an ``async def __del__`` is awaited here
    (the garbage collector would not), a plain ``__del__`` runs when the last reference goes."""
    finalizer = getattr(type(model), "__del__", None)
    if finalizer is not None and inspect.iscoroutinefunction(finalizer):
        await finalizer(model)


def multiplexed(func: F | None = None, max_num_models_per_replica: int = 3) -> Any:
    """Mark the async function (or method) that loads a model by id; calls are cached per replica.

    At most ``max_num_models_per_replica`` models stay loaded (-1: no limit); the least
    recently used is evicted first. Use as ``@serve.multiplexed`` or
    ``@serve.multiplexed(max_num_models_per_replica=N)``.
    """
    if isinstance(max_num_models_per_replica, bool) or not isinstance(max_num_models_per_replica, int):
        raise TypeError(f"max_num_models_per_replica must be an int, got {max_num_models_per_replica!r}")
    if max_num_models_per_replica != -1 and max_num_models_per_replica <= 0:
        raise ValueError(f"max_num_models_per_replica must be positive or -1, got {max_num_models_per_replica}")

    def wrap(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@serve.multiplexed needs an async function (async def), got {fn!r}")
        params = list(inspect.signature(fn).parameters)
        is_method = bool(params) and params[0] == "self"
        if len(params) != (2 if is_method else 1):
            raise TypeError(f"{fn.__qualname__} must take exactly one argument, the model id (and self for a method)")
        cache_attr = f"__shoal_models_{fn.__name__}"
        caches: dict[None, _ModelCache] = {}

        def cache_for(owner: Any) -> _ModelCache:
            if owner is None:
                if None not in caches:
                    caches[None] = _ModelCache(fn, max_num_models_per_replica)
                return caches[None]
            cache = owner.__dict__.get(cache_attr)
            if cache is None:
                cache = _ModelCache(functools.partial(fn, owner), max_num_models_per_replica)
                owner.__dict__[cache_attr] = cache
            return cache

        @functools.wraps(fn)
        async def load(*args: Any) -> Any:
            owner, model_id = (args[0], args[1]) if is_method and len(args) == 2 else (None, args[-1])
            if not isinstance(model_id, str):
                raise TypeError(f"a model id must be a str, got {model_id!r}")
            return await cache_for(owner).get(model_id)

        return load  # type: ignore[return-value]

    if func is not None:
        return wrap(func)
    return wrap
