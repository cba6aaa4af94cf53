"""``@serve.deployment``: deployments, their options, and applications made with ``.bind``."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from shoal.serve import _pickling
from shoal.serve.config import AutoscalingConfig, DeploymentConfig, LoggingConfig

__all__ = ["Application", "Deployment", "DeploymentSpec", "build_app", "deployment"]

_OPTION_NAMES = (
    "name",
    "version",
    "num_replicas",
    "ray_actor_options",
    "user_config",
    "max_ongoing_requests",
    "max_queued_requests",
    "autoscaling_config",
    "graceful_shutdown_wait_loop_s",
    "graceful_shutdown_timeout_s",
    "health_check_period_s",
    "health_check_timeout_s",
    "logging_config",
)


def _check_options(options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        hint = " (route_prefix is set with serve.run(app, route_prefix=...))" if "route_prefix" in unknown else ""
        raise TypeError(f"unknown deployment options {unknown}{hint}; known options: {list(_OPTION_NAMES)}")
    name = options.get("name")
    if name is not None and (not isinstance(name, str) or not name or "#" in name):
        raise ValueError(f"deployment name must be a non-empty string without '#', got {name!r}")
    version = options.get("version")
    if version is not None and not isinstance(version, str):
        raise TypeError(f"version must be a string, got {version!r}")


def make_config(options: dict[str, Any]) -> DeploymentConfig:
    """The :class:`DeploymentConfig` that a set of deployment options means (Ray's rules for ``"auto"``)."""
    num_replicas = options.get("num_replicas")
    autoscaling = options.get("autoscaling_config")
    if type(num_replicas) is int and num_replicas == 0:
        # As in Ray: a fixed-size deployment needs a replica; scaling to zero is autoscaling's.
        raise ValueError("num_replicas must be larger than 0 (to scale to zero, use autoscaling with min_replicas=0)")
    if num_replicas == "auto":
        merged = AutoscalingConfig.default().to_dict()
        if autoscaling is not None:
            given = autoscaling.to_dict() if isinstance(autoscaling, AutoscalingConfig) else dict(autoscaling)
            merged.update(given)
        autoscaling = AutoscalingConfig.parse(merged)
        num_replicas = None
    elif autoscaling is not None:
        if num_replicas is not None:
            raise ValueError("num_replicas cannot be set together with autoscaling_config (use num_replicas='auto')")
        autoscaling = AutoscalingConfig.parse(autoscaling)
    elif isinstance(num_replicas, str):
        raise ValueError(f"num_replicas must be an integer >= 0 or 'auto', got {num_replicas!r}")
    kwargs: dict[str, Any] = {}
    for key in (
        "max_ongoing_requests",
        "max_queued_requests",
        "user_config",
        "graceful_shutdown_wait_loop_s",
        "graceful_shutdown_timeout_s",
        "health_check_period_s",
        "health_check_timeout_s",
    ):
        if options.get(key) is not None:
            kwargs[key] = options[key]
    if options.get("ray_actor_options") is not None:
        kwargs["ray_actor_options"] = dict(options["ray_actor_options"])
    kwargs["logging_config"] = LoggingConfig.parse(options.get("logging_config"))
    config = DeploymentConfig(
        num_replicas=1 if num_replicas is None else num_replicas, autoscaling_config=autoscaling, **kwargs
    )
    if config.user_config is not None:
        try:
            cloudpickle.dumps(config.user_config)
        except Exception as e:
            raise TypeError(f"user_config must be serializable, got {config.user_config!r}: {e}") from e
    return config


class Deployment:
    """A class or function that serve runs as replicas; ``.bind(...)`` makes an application of it."""

    def __init__(self, func_or_class: Callable[..., Any], options: dict[str, Any]) -> None:
        _check_options(options)
        self._func_or_class = func_or_class
        self._options = dict(options)
        self._options.setdefault("name", func_or_class.__name__)
        self._config = make_config(self._options)

    @property
    def name(self) -> str:
        """The deployment's name (the class or function name unless ``name=`` was given)."""
        return str(self._options["name"])

    @property
    def func_or_class(self) -> Callable[..., Any]:
        return self._func_or_class

    @property
    def version(self) -> str | None:
        return self._options.get("version")

    @property
    def num_replicas(self) -> int | str:
        value = self._options.get("num_replicas")
        return 1 if value is None else value

    @property
    def user_config(self) -> Any:
        return self._config.user_config

    @property
    def max_ongoing_requests(self) -> int:
        return self._config.max_ongoing_requests

    @property
    def max_queued_requests(self) -> int:
        return self._config.max_queued_requests

    @property
    def ray_actor_options(self) -> dict[str, Any]:
        return self._config.actor_options()

    @property
    def autoscaling_config(self) -> AutoscalingConfig | None:
        return self._config.autoscaling_config

    @property
    def config(self) -> DeploymentConfig:
        """The resolved settings the controller uses."""
        return self._config

    def options(self, **options: Any) -> Deployment:
        """A copy of this deployment with some options replaced."""
        _check_options(options)
        merged = {**self._options, **options}
        # Switching between a fixed count and autoscaling replaces the other setting.
        if "num_replicas" in options and options["num_replicas"] != "auto" and "autoscaling_config" not in options:
            merged.pop("autoscaling_config", None)
        if "autoscaling_config" in options and "num_replicas" not in options and merged.get("num_replicas") != "auto":
            merged.pop("num_replicas", None)
        return Deployment(self._func_or_class, merged)

    def bind(self, *args: Any, **kwargs: Any) -> Application:
        """An application: this deployment with constructor arguments (which may be other applications)."""
        return Application(self, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"Deployment {self.name!r} cannot be called directly; use {self.name}.bind(...) and serve.run")

    def __repr__(self) -> str:
        return f"Deployment(name={self.name})"


class Application:
    """A bound deployment and its arguments: what ``serve.run`` deploys; nested ones become handles."""

    def __init__(self, deployment: Deployment, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._deployment = deployment
        self._args = args
        self._kwargs = kwargs

    @property
    def deployment(self) -> Deployment:
        return self._deployment

    def __repr__(self) -> str:
        return f"Application({self._deployment.name})"

    def __reduce__(self) -> Any:
        raise TypeError(
            "an Application cannot be pickled; pass it to another deployment's .bind() or to serve.run() instead"
        )


def deployment(
    _func_or_class: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    num_replicas: int | str | None = None,
    ray_actor_options: dict[str, Any] | None = None,
    user_config: Any = None,
    max_ongoing_requests: int | None = None,
    max_queued_requests: int | None = None,
    autoscaling_config: dict[str, Any] | AutoscalingConfig | None = None,
    graceful_shutdown_wait_loop_s: float | None = None,
    graceful_shutdown_timeout_s: float | None = None,
    health_check_period_s: float | None = None,
    health_check_timeout_s: float | None = None,
    logging_config: dict[str, Any] | LoggingConfig | None = None,
) -> Any:
    """Make a class or function a :class:`Deployment`; bare (``@serve.deployment``) or with options."""
    given = {
        "name": name,
        "version": version,
        "num_replicas": num_replicas,
        "ray_actor_options": ray_actor_options,
        "user_config": user_config,
        "max_ongoing_requests": max_ongoing_requests,
        "max_queued_requests": max_queued_requests,
        "autoscaling_config": autoscaling_config,
        "graceful_shutdown_wait_loop_s": graceful_shutdown_wait_loop_s,
        "graceful_shutdown_timeout_s": graceful_shutdown_timeout_s,
        "health_check_period_s": health_check_period_s,
        "health_check_timeout_s": health_check_timeout_s,
        "logging_config": logging_config,
    }
    options = {k: v for k, v in given.items() if v is not None}

    def decorate(obj: Callable[..., Any]) -> Deployment:
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            raise TypeError(f"@serve.deployment expects a class or a function, got {obj!r}")
        return Deployment(obj, options)

    if _func_or_class is not None:
        return decorate(_func_or_class)
    return decorate


@dataclass
class DeploymentSpec:
    """One deployment of an application as the controller receives it."""

    name: str
    app_name: str
    serialized_def: bytes
    serialized_init: bytes
    config: DeploymentConfig
    version: str
    is_function: bool
    ingress: bool
    has_http_ingress: bool
    options: dict[str, Any]


def build_app(app: Application, app_name: str) -> tuple[str, list[DeploymentSpec]]:
    """Flatten an application graph into specs; returns the ingress deployment's name and all specs."""
    from shoal.serve.handle import DeploymentHandle

    if not isinstance(app, Application):
        if isinstance(app, Deployment):
            raise TypeError(f"serve.run expects an Application; call {app.name}.bind(...) on the deployment first")
        raise TypeError(f"serve.run expects an Application made with Deployment.bind(), got {app!r}")
    names: dict[int, str] = {}
    taken: set[str] = set()
    specs: list[DeploymentSpec] = []

    def name_of(node: Application) -> str:
        key = id(node)
        if key in names:
            return names[key]
        base = node.deployment.name
        candidate, i = base, 0
        while candidate in taken:
            i += 1
            candidate = f"{base}_{i}"
        taken.add(candidate)
        names[key] = candidate
        return candidate

    def replace(value: Any) -> Any:
        if isinstance(value, Application):
            visit(value, ingress=False)
            return DeploymentHandle(names[id(value)], app_name)
        if isinstance(value, list):
            return [replace(v) for v in value]
        if isinstance(value, tuple):
            return tuple(replace(v) for v in value)
        if isinstance(value, dict):
            return {k: replace(v) for k, v in value.items()}
        return value

    def visit(node: Application, ingress: bool) -> None:
        if id(node) in names:
            return
        name = name_of(node)
        args = replace(node._args)
        kwargs = replace(node._kwargs)
        dep = node.deployment
        serialized_def = _pickling.dumps(dep.func_or_class)
        serialized_init = _pickling.dumps((args, kwargs))
        config = dep.config
        version = dep.version
        if version is None:
            digest = hashlib.sha1(serialized_def)
            digest.update(serialized_init)
            digest.update(repr(sorted(config.actor_options().items())).encode())
            version = digest.hexdigest()[:16]
        specs.append(
            DeploymentSpec(
                name=name,
                app_name=app_name,
                serialized_def=serialized_def,
                serialized_init=serialized_init,
                config=config,
                version=version,
                is_function=not inspect.isclass(dep.func_or_class),
                ingress=ingress,
                has_http_ingress=getattr(dep.func_or_class, "__serve_asgi_app__", None) is not None,
                options=dict(dep._options),
            )
        )

    visit(app, ingress=True)
    return names[id(app)], specs
