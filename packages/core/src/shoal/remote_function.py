"""Remote functions: what ``@shoal.remote`` makes of a function."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from shoal import _options
from shoal.backend.specs import STREAMING, CallableDescriptor, TaskSpec

__all__ = ["RemoteFunction"]


class RemoteFunction:
    """A function that runs as a task: call ``f.remote(*args)`` to get an ObjectRef."""

    def __init__(self, function: Callable[..., Any], options: dict[str, Any]) -> None:
        if not callable(function):
            raise TypeError(f"@shoal.remote expects a function or a class, got {function!r}")
        _options.check_option_names(options, _options.TASK_OPTIONS, "remote functions")
        self._function = function
        self._descriptor = CallableDescriptor.of(function)
        self._is_generator = inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)
        self._default_options = dict(options)
        self._template = self._make_template(options)
        functools.update_wrapper(self, function)

    def _make_template(self, options: dict[str, Any]) -> TaskSpec:
        num_returns = options.get("num_returns")
        if num_returns is None:
            num_returns = STREAMING if self._is_generator else 1
        spec = TaskSpec(
            function=self._descriptor,
            args=(),
            kwargs={},
            resources=_options.build_resources(options, default_cpus=1.0),
            num_returns=_options.check_num_returns(num_returns),
            max_retries=_options.check_retries("max_retries", options.get("max_retries", 3)),
            retry_exceptions=_options.check_retry_exceptions(options.get("retry_exceptions", False)),
            max_calls=_options.check_retries("max_calls", options.get("max_calls", 0)),
            name=options.get("name"),
            scheduling=_options.scheduling_spec(options),
            runtime_env=_options.check_runtime_env(options.get("runtime_env")),
        )
        if spec.name is not None and not isinstance(spec.name, str):
            raise ValueError(f"option 'name' must be a string, got {spec.name!r}")
        return spec

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = getattr(self._function, "__name__", "f")
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running '{name}()', try '{name}.remote()'."
        )

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Submit a call; returns an ObjectRef, a list of them, or an ObjectRefGenerator."""
        return _submit(self._template, args, kwargs)

    def options(self, **options: Any) -> _BoundOptions:
        """A copy of this function with some options replaced, for the next ``.remote`` call."""
        _options.check_option_names(options, _options.TASK_OPTIONS, "remote functions")
        merged = {**self._default_options, **options}
        return _BoundOptions(self, self._make_template(merged))

    def __repr__(self) -> str:
        return f"RemoteFunction({self._descriptor.module}.{self._descriptor.qualname})"

    def __reduce__(self) -> Any:
        return (RemoteFunction, (self._function, self._default_options))


class _BoundOptions:
    """``f.options(...)``: only ``.remote`` is meaningful on it."""

    def __init__(self, owner: RemoteFunction, template: TaskSpec) -> None:
        self._owner = owner
        self._template = template

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return _submit(self._template, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner(*args, **kwargs)


def _submit(template: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from shoal import _session

    spec = TaskSpec(
        function=template.function,
        args=args,
        kwargs=kwargs,
        resources=template.resources,
        num_returns=template.num_returns,
        max_retries=template.max_retries,
        retry_exceptions=template.retry_exceptions,
        max_calls=template.max_calls,
        name=template.name,
        scheduling=template.scheduling,
        runtime_env=template.runtime_env,
    )
    result = _session.backend().submit_task(spec)
    if isinstance(result, list):
        n = spec.num_returns
        if n == 1:
            return result[0]
        if n == 0:
            return None
    return result
