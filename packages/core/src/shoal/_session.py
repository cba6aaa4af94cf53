"""The process-wide session: which backend the public API talks to."""

from __future__ import annotations

import atexit
import threading
from typing import Any

from shoal import object_ref
from shoal.backend.base import Backend
from shoal.config import load_config

_lock = threading.RLock()
_backend: Backend | None = None
_atexit_registered = False


def current_backend() -> Backend | None:
    """The running backend, or None; never starts one."""
    return _backend


def backend() -> Backend:
    """The running backend, starting the default one on first use (as Ray does)."""
    b = _backend
    if b is not None:
        return b
    with _lock:
        if _backend is None:
            init()
        assert _backend is not None
        return _backend


def install(b: Backend | None) -> None:
    """Make ``b`` this process's backend (workers use this to install their client)."""
    global _backend
    with _lock:
        _backend = b
        if b is None:
            object_ref.set_tracker(None, None)
        else:
            object_ref.set_tracker(b, lambda: b)


def is_initialized() -> bool:
    """True while a backend is running in this process."""
    return _backend is not None


def init(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    resources: dict[str, float] | None = None,
    object_store_memory: int | None = None,
    namespace: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    backend: str | None = None,
    ignore_reinit_error: bool = False,
    log_to_driver: bool | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Start shoal (or connect to a cluster) and make it this process's runtime.

    Arguments override ``SHOAL_*`` environment variables, which override
    ``shoal.toml`` / ``[tool.shoal]``, which override the defaults. Calling
    it twice is a RuntimeError unless ``ignore_reinit_error=True``.
    Returns a dict describing the session (``address``, ``node_id``, ...).
    """
    global _backend, _atexit_registered
    from shoal import _options
    from shoal.backend.registry import load_backend

    # Ray accepts many keyword arguments that shoal has no use for (dashboard
    # settings, logging formats); accept the harmless ones, refuse the rest.
    ignored = {
        "include_dashboard",
        "dashboard_host",
        "dashboard_port",
        "configure_logging",
        "logging_level",
        "logging_format",
        "_temp_dir",
        "_system_config",
        "local_mode",
        "job_config",
        "_node_ip_address",
        "_enable_object_reconstruction",
        "_metrics_export_port",
        "labels",
    }
    overrides: dict[str, Any] = {}
    backend_kwargs: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in ("temp_dir", "spill_dir", "max_inline_bytes", "worker_spin_us", "token_path", "tls"):
            overrides[key] = value
        elif key not in ignored:
            backend_kwargs[key] = value
    if kwargs.get("local_mode"):
        backend = backend or "inline"
    with _lock:
        if _backend is not None:
            if ignore_reinit_error:
                return _describe(_backend)
            raise RuntimeError(
                "shoal.init() was already called; call shoal.shutdown() first or pass ignore_reinit_error=True"
            )
        overrides.update(
            backend=backend,
            address=address,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            resources=resources,
            object_store_memory=object_store_memory,
            namespace=namespace,
            log_to_driver=log_to_driver,
        )
        config = load_config(overrides)
        name = config.backend
        if config.address is not None and config.source("backend") == "default":
            name = "cluster"
        cls = load_backend(name)
        unknown = sorted(set(backend_kwargs) - cls.init_kwargs)
        if unknown:
            from shoal.exceptions import ConfigError

            raise ConfigError(f"unknown keyword {unknown[0]!r} for shoal.init() with backend {name!r}")
        runtime_env_checked = _options.check_runtime_env(runtime_env)
        config.values["runtime_env"] = runtime_env_checked
        b = cls(config, **backend_kwargs)
        install(b)
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        return _describe(b)


def _describe(b: Backend) -> dict[str, Any]:
    info = b.runtime_info()
    return {"backend": b.name, "node_id": info.node_id, "job_id": info.job_id, "namespace": info.namespace}


def shutdown() -> None:
    """Stop the runtime this process started (or disconnect from a cluster); safe to call twice."""
    global _backend
    with _lock:
        b = _backend
        if b is None:
            return
        install(None)
        b.shutdown()
