"""Actors: what ``@shoal.remote`` makes of a class, their handles and methods."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from shoal import _options
from shoal.backend.base import ActorInfo
from shoal.backend.specs import STREAMING, ActorMethodSpec, ActorSpec, ActorTaskSpec, CallableDescriptor

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor", "method"]

F = TypeVar("F", bound=Callable[..., Any])

_METHOD_OPTIONS_ATTR = "__shoal_method_options__"
_TERMINATE = ("__ray_terminate__", "__shoal_terminate__")


def method(*args: Any, **options: Any) -> Any:
    """Set options of one actor method: ``@shoal.method(num_returns=2)``."""
    if args and callable(args[0]) and not options:
        return args[0]
    if args:
        raise TypeError("use @shoal.method(num_returns=...) with keyword arguments only")
    _options.check_option_names(options, _options.METHOD_OPTIONS, "actor methods")
    if "num_returns" in options:
        _options.check_num_returns(options["num_returns"])

    def decorate(fn: F) -> F:
        setattr(fn, _METHOD_OPTIONS_ATTR, dict(options))
        return fn

    return decorate


def _method_specs(cls: type) -> dict[str, ActorMethodSpec]:
    specs: dict[str, ActorMethodSpec] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("__") and name != "__call__":
            continue
        if not (inspect.isfunction(member) or inspect.ismethod(member)):
            continue
        opts = getattr(member, _METHOD_OPTIONS_ATTR, {})
        is_gen = inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member)
        num_returns = opts.get("num_returns", STREAMING if is_gen else 1)
        specs[name] = ActorMethodSpec(
            num_returns=num_returns,
            is_async=inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member),
            is_generator=is_gen,
            concurrency_group=opts.get("concurrency_group"),
        )
    return specs


class ActorClass:
    """A class whose instances live in their own worker: ``Cls.remote(*args)`` makes one."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        _options.check_option_names(options, _options.ACTOR_OPTIONS, "actors")
        self._cls = cls
        self._descriptor = CallableDescriptor.of(cls)
        self._methods = _method_specs(cls)
        self._is_async = any(m.is_async for m in self._methods.values())
        self._default_options = dict(options)
        self._template = self._make_template(options)
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def _make_template(self, options: dict[str, Any]) -> ActorSpec:
        # Ray's default: an actor needs 1 CPU to be placed but holds none while it lives.
        default_cpus = 0.0
        max_concurrency = options.get("max_concurrency", 1000 if self._is_async else 1)
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"option 'max_concurrency' must be an integer >= 1, got {max_concurrency!r}")
        lifetime = options.get("lifetime")
        if lifetime not in (None, "detached", "non_detached"):
            raise ValueError(f"option 'lifetime' must be None, 'detached' or 'non_detached', got {lifetime!r}")
        name = options.get("name")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"option 'name' must be a non-empty string, got {name!r}")
        namespace = options.get("namespace")
        if namespace is not None and (not isinstance(namespace, str) or not namespace):
            raise ValueError(f"option 'namespace' must be a non-empty string, got {namespace!r}")
        get_if_exists = options.get("get_if_exists", False)
        if get_if_exists and name is None:
            raise ValueError("option 'get_if_exists' needs the 'name' option too")
        max_pending = options.get("max_pending_calls", -1)
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending == 0 or max_pending < -1:
            raise ValueError(f"option 'max_pending_calls' must be -1 or an integer >= 1, got {max_pending!r}")
        return ActorSpec(
            cls=self._descriptor,
            args=(),
            kwargs={},
            resources=_options.build_resources(options, default_cpus=default_cpus),
            methods=self._methods,
            is_async=self._is_async,
            max_restarts=_options.check_retries("max_restarts", options.get("max_restarts", 0)),
            max_task_retries=_options.check_retries("max_task_retries", options.get("max_task_retries", 0)),
            max_concurrency=max_concurrency,
            max_pending_calls=max_pending,
            name=name,
            namespace=namespace,
            lifetime="detached" if lifetime == "detached" else None,
            get_if_exists=bool(get_if_exists),
            scheduling=_options.scheduling_spec(options),
            runtime_env=_options.check_runtime_env(options.get("runtime_env")),
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = self._cls.__name__
        raise TypeError(f"Actors cannot be instantiated directly. Instead of '{name}()', use '{name}.remote()'.")

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        """Create the actor; its constructor runs in its own worker."""
        return _create(self._template, args, kwargs)

    def options(self, **options: Any) -> _ActorClassOptions:
        """A copy of this class with some options replaced, for the next ``.remote`` call."""
        _options.check_option_names(options, _options.ACTOR_OPTIONS, "actors")
        return _ActorClassOptions(self, self._make_template({**self._default_options, **options}))

    def __repr__(self) -> str:
        return f"ActorClass({self._descriptor.module}.{self._descriptor.qualname})"

    def __reduce__(self) -> Any:
        return (ActorClass, (self._cls, self._default_options))


class _ActorClassOptions:
    def __init__(self, owner: ActorClass, template: ActorSpec) -> None:
        self._owner = owner
        self._template = template

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return _create(self._template, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner(*args, **kwargs)


def _create(template: ActorSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActorHandle:
    from shoal import _session

    spec = ActorSpec(
        cls=template.cls,
        args=args,
        kwargs=kwargs,
        resources=template.resources,
        methods=template.methods,
        is_async=template.is_async,
        max_restarts=template.max_restarts,
        max_task_retries=template.max_task_retries,
        max_concurrency=template.max_concurrency,
        max_pending_calls=template.max_pending_calls,
        name=template.name,
        namespace=template.namespace,
        lifetime=template.lifetime,
        get_if_exists=template.get_if_exists,
        scheduling=template.scheduling,
        runtime_env=template.runtime_env,
    )
    return ActorHandle(_session.backend().create_actor(spec))


class ActorHandle:
    """A reference to a live actor; ``handle.method.remote(...)`` calls it.

    Handles pickle, so they can be passed to tasks and other actors. A
    non-detached actor ends when the last handle to it is gone.
    """

    def __init__(self, info: ActorInfo) -> None:
        self._info = info
        self._counted = False
        from shoal import _session

        _session.backend().actor_handle_count(info.actor_id, +1)
        self._counted = True

    @property
    def _actor_id(self) -> bytes:
        return self._info.actor_id

    def __getattr__(self, name: str) -> ActorMethod:
        info = self.__dict__.get("_info")
        if info is not None and name in _TERMINATE:
            # Ray's graceful stop: runs after the calls queued before it, then the actor exits.
            return ActorMethod(self, "__ray_terminate__", ActorMethodSpec())
        if info is None or name not in info.methods:
            cls = info.class_name if info is not None else "actor"
            raise AttributeError(f"'ActorHandle' of {cls} has no method {name!r}")
        # Not cached on the handle: a method refers to its handle, and the cycle would keep an
        # unused actor (and the resources it holds) alive until the garbage collector ran.
        return ActorMethod(self, name, info.methods[name])

    def __reduce__(self) -> Any:
        return (ActorHandle, (self._info,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._info.actor_id == self._info.actor_id

    def __hash__(self) -> int:
        return hash(self._info.actor_id)

    def __repr__(self) -> str:
        return f"Actor({self._info.class_name}, {self._info.actor_id.hex()})"

    def __del__(self) -> None:
        if not self.__dict__.get("_counted"):
            return
        try:
            from shoal import _session

            backend = _session.current_backend()
            if backend is not None:
                backend.actor_handle_count(self._info.actor_id, -1)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class ActorMethod:
    """One method of an actor handle."""

    def __init__(self, handle: ActorHandle, name: str, spec: ActorMethodSpec) -> None:
        self._handle = handle
        self._name = name
        self._num_returns: Any = spec.num_returns
        self._call_name: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of running 'object.{self._name}()', "
            f"try 'object.{self._name}.remote()'."
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Submit the call; returns an ObjectRef, a list of them, or an ObjectRefGenerator."""
        return self._submit(args, kwargs, self._num_returns, self._call_name)

    def options(self, **options: Any) -> ActorMethod:
        """This method with ``num_returns`` or ``name`` replaced for the next call."""
        _options.check_option_names(options, _options.METHOD_OPTIONS, "actor methods")
        bound = ActorMethod.__new__(ActorMethod)
        bound._handle = self._handle
        bound._name = self._name
        bound._num_returns = _options.check_num_returns(options.get("num_returns", self._num_returns))
        bound._call_name = options.get("name", self._call_name)
        return bound

    def _submit(self, args: tuple[Any, ...], kwargs: dict[str, Any], num_returns: Any, name: str | None) -> Any:
        from shoal import _session

        info = self._handle._info
        spec = ActorTaskSpec(
            actor_id=info.actor_id,
            method=self._name,
            args=args,
            kwargs=kwargs,
            num_returns=num_returns,
            max_task_retries=info.max_task_retries,
            name=name,
        )
        result = _session.backend().submit_actor_task(spec)
        if isinstance(result, list):
            if num_returns == 1:
                return result[0]
            if num_returns == 0:
                return None
        return result

    def __repr__(self) -> str:
        return f"ActorMethod({self._handle._info.class_name}.{self._name})"


def exit_actor() -> None:
    """End the calling actor after the current method; pending calls fail with ActorDiedError."""
    from shoal import _session
    from shoal.exceptions import AsyncioActorExit

    info = _session.backend().runtime_info()
    if info.actor_id is None:
        raise TypeError("exit_actor() can only be called inside an actor")
    raise AsyncioActorExit("exit_actor() was called")
