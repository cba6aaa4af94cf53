"""Serve's configuration objects: autoscaling, HTTP options, logging, and per-deployment settings."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AutoscalingConfig",
    "DeploymentConfig",
    "HTTPOptions",
    "LoggingConfig",
]

DEFAULT_MAX_ONGOING_REQUESTS = 5
DEFAULT_TARGET_ONGOING_REQUESTS = 2.0
DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024


def _number(name: str, value: Any, *, minimum: float = 0.0, strict: bool = False, integer: bool = False) -> Any:
    ok_types = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if (strict and value <= minimum) or value < minimum or (not integer and not math.isfinite(value)):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be {op} {minimum:g}, got {value!r}")
    return value


@dataclass
class AutoscalingConfig:
    """How a deployment's replica count follows its load (Ray's ``AutoscalingConfig``).

    The controller averages the requests in flight and queued over
    ``look_back_period_s``, and wants ``ceil(total / target_ongoing_requests)``
    replicas, clamped to ``[min_replicas, max_replicas]``. A change is applied
    only after it has been wanted for ``upscale_delay_s`` (up) or
    ``downscale_delay_s`` (down).
    """

    min_replicas: int = 1
    initial_replicas: int | None = None
    max_replicas: int = 1
    target_ongoing_requests: float = DEFAULT_TARGET_ONGOING_REQUESTS
    metrics_interval_s: float = 10.0
    look_back_period_s: float = 30.0
    smoothing_factor: float = 1.0
    upscale_smoothing_factor: float | None = None
    downscale_smoothing_factor: float | None = None
    upscaling_factor: float | None = None
    downscaling_factor: float | None = None
    downscale_delay_s: float = 600.0
    downscale_to_zero_delay_s: float | None = None
    upscale_delay_s: float = 30.0

    def __post_init__(self) -> None:
        _number("autoscaling_config.min_replicas", self.min_replicas, integer=True)
        _number("autoscaling_config.max_replicas", self.max_replicas, minimum=1, integer=True)
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"autoscaling_config.max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        if self.initial_replicas is not None:
            _number("autoscaling_config.initial_replicas", self.initial_replicas, integer=True)
            if not self.min_replicas <= self.initial_replicas <= self.max_replicas:
                raise ValueError(
                    f"autoscaling_config.initial_replicas ({self.initial_replicas}) must be between "
                    f"min_replicas ({self.min_replicas}) and max_replicas ({self.max_replicas})"
                )
        _number("autoscaling_config.target_ongoing_requests", self.target_ongoing_requests, strict=True)
        _number("autoscaling_config.metrics_interval_s", self.metrics_interval_s, strict=True)
        _number("autoscaling_config.look_back_period_s", self.look_back_period_s, strict=True)
        _number("autoscaling_config.smoothing_factor", self.smoothing_factor, strict=True)
        _number("autoscaling_config.upscale_delay_s", self.upscale_delay_s)
        _number("autoscaling_config.downscale_delay_s", self.downscale_delay_s)
        for name in (
            "upscale_smoothing_factor",
            "downscale_smoothing_factor",
            "upscaling_factor",
            "downscaling_factor",
        ):
            value = getattr(self, name)
            if value is not None:
                _number(f"autoscaling_config.{name}", value, strict=True)
        if self.downscale_to_zero_delay_s is not None:
            _number("autoscaling_config.downscale_to_zero_delay_s", self.downscale_to_zero_delay_s)

    @classmethod
    def default(cls) -> AutoscalingConfig:
        """The configuration ``num_replicas="auto"`` starts from."""
        return cls(min_replicas=1, max_replicas=100, target_ongoing_requests=DEFAULT_TARGET_ONGOING_REQUESTS)

    @classmethod
    def parse(cls, value: AutoscalingConfig | dict[str, Any]) -> AutoscalingConfig:
        """Accept a config object or a dict of its fields (unknown keys are an error)."""
        if isinstance(value, AutoscalingConfig):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"autoscaling_config must be a dict or an AutoscalingConfig, got {value!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"autoscaling_config has unknown keys {unknown}; known keys: {sorted(known)}")
        return cls(**value)

    def get_upscaling_factor(self) -> float:
        """The gain applied to upscaling decisions."""
        return self.upscaling_factor or self.upscale_smoothing_factor or self.smoothing_factor

    def get_downscaling_factor(self) -> float:
        """The gain applied to downscaling decisions."""
        return self.downscaling_factor or self.downscale_smoothing_factor or self.smoothing_factor

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class LoggingConfig:
    """Logging of a deployment's replicas: level, and whether each request is logged."""

    log_level: str = "INFO"
    enable_access_log: bool = True
    encoding: str = "TEXT"
    logs_dir: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.log_level, int):
            import logging

            self.log_level = logging.getLevelName(self.log_level)
        if not isinstance(self.log_level, str) or self.log_level.upper() not in (
            "DEBUG",
            "INFO",
            "WARNING",
            "ERROR",
            "CRITICAL",
        ):
            raise ValueError(
                f"logging_config.log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {self.log_level!r}"
            )
        self.log_level = self.log_level.upper()
        if not isinstance(self.enable_access_log, bool):
            raise TypeError(f"logging_config.enable_access_log must be a bool, got {self.enable_access_log!r}")
        if self.encoding not in ("TEXT", "JSON"):
            raise ValueError(f"logging_config.encoding must be 'TEXT' or 'JSON', got {self.encoding!r}")

    @classmethod
    def parse(cls, value: LoggingConfig | dict[str, Any] | None) -> LoggingConfig:
        if value is None:
            return cls()
        if isinstance(value, LoggingConfig):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"logging_config must be a dict or a LoggingConfig, got {value!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"logging_config has unknown keys {unknown}; known keys: {sorted(known)}")
        return cls(**value)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class HTTPOptions:
    """Where and how the HTTP proxy listens (Ray's ``HTTPOptions``).

    ``max_request_body_bytes`` is shoal's own: larger bodies get 413.
    ``request_timeout_s`` answers 408 when a request takes longer.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    root_path: str = ""
    request_timeout_s: float | None = None
    keep_alive_timeout_s: int = 90
    max_request_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"http_options.host must be a non-empty string, got {self.host!r}")
        _number("http_options.port", self.port, integer=True)
        if not 0 <= self.port <= 65535:
            raise ValueError(f"http_options.port must be between 0 and 65535, got {self.port}")
        if self.request_timeout_s is not None:
            _number("http_options.request_timeout_s", self.request_timeout_s, strict=True)
        _number("http_options.keep_alive_timeout_s", self.keep_alive_timeout_s, integer=True)
        _number("http_options.max_request_body_bytes", self.max_request_body_bytes, minimum=0, integer=True)

    @classmethod
    def parse(cls, value: HTTPOptions | dict[str, Any] | None) -> HTTPOptions:
        if value is None:
            return cls()
        if isinstance(value, HTTPOptions):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"http_options must be a dict or an HTTPOptions, got {value!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        # Ray accepts these and they mean nothing for one local proxy.
        ignored = {"location", "num_cpus", "middlewares", "ssl_keyfile", "ssl_certfile"}
        unknown = sorted(set(value) - known - ignored)
        if unknown:
            raise ValueError(f"http_options has unknown keys {unknown}; known keys: {sorted(known)}")
        return cls(**{k: v for k, v in value.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class DeploymentConfig:
    """The settings of one deployment that the controller acts on (everything but its code)."""

    num_replicas: int = 1
    max_ongoing_requests: int = DEFAULT_MAX_ONGOING_REQUESTS
    max_queued_requests: int = -1
    user_config: Any = None
    autoscaling_config: AutoscalingConfig | None = None
    graceful_shutdown_wait_loop_s: float = 2.0
    graceful_shutdown_timeout_s: float = 20.0
    health_check_period_s: float = 10.0
    health_check_timeout_s: float = 30.0
    ray_actor_options: dict[str, Any] = field(default_factory=dict)
    logging_config: LoggingConfig = field(default_factory=LoggingConfig)

    def __post_init__(self) -> None:
        _number("num_replicas", self.num_replicas, integer=True)
        _number("max_ongoing_requests", self.max_ongoing_requests, minimum=1, integer=True)
        _number("max_queued_requests", self.max_queued_requests, minimum=-1, integer=True)
        if self.max_queued_requests == 0:
            raise ValueError("max_queued_requests must be -1 (no limit) or >= 1, got 0")
        _number("graceful_shutdown_wait_loop_s", self.graceful_shutdown_wait_loop_s)
        _number("graceful_shutdown_timeout_s", self.graceful_shutdown_timeout_s)
        _number("health_check_period_s", self.health_check_period_s, strict=True)
        _number("health_check_timeout_s", self.health_check_timeout_s, strict=True)
        if not isinstance(self.ray_actor_options, dict):
            raise TypeError(f"ray_actor_options must be a dict, got {self.ray_actor_options!r}")
        allowed = {
            "num_cpus",
            "num_gpus",
            "memory",
            "resources",
            "runtime_env",
            "accelerator_type",
            "scheduling_strategy",
        }
        unknown = sorted(set(self.ray_actor_options) - allowed)
        if unknown:
            raise ValueError(f"ray_actor_options has unsupported keys {unknown}; allowed: {sorted(allowed)}")

    def initial_replicas(self) -> int:
        """How many replicas a fresh deployment starts with."""
        auto = self.autoscaling_config
        if auto is None:
            return self.num_replicas
        if auto.initial_replicas is not None:
            return auto.initial_replicas
        return auto.min_replicas

    def actor_options(self) -> dict[str, Any]:
        """Options for the replica actors: Ray Serve's default of one CPU per replica."""
        opts = dict(self.ray_actor_options)
        opts.setdefault("num_cpus", 1)
        return opts
