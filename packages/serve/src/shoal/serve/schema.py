"""Serve config files (Ray's ``serve deploy`` format) and building applications from import paths.

.. code-block:: yaml

    http_options: {host: 127.0.0.1, port: 8000}
    applications:
      - name: default
        route_prefix: /
        import_path: my_module:app      # an Application, or a builder taking ``args``
        args: {}
        deployments:
          - name: Model
            num_replicas: 2
            user_config: {threshold: 0.5}
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import shoal
from shoal.serve.config import HTTPOptions
from shoal.serve.deployment import Application, DeploymentSpec, build_app, make_config

__all__ = ["ApplicationSchema", "ServeDeploySchema", "build_app_from_config", "import_attr", "load_application"]

# Keys Ray's schema has that mean nothing for one local proxy; accepted and ignored.
_IGNORED_TOP = {"proxy_location", "grpc_options", "target_capacity"}
_IGNORED_APP = {"runtime_env", "external_scaler_enabled"}


def _check_keys(what: str, data: dict[str, Any], known: set[str], ignored: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a mapping, got {data!r}")
    unknown = sorted(set(data) - known - ignored)
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; known keys: {sorted(known)}")


@dataclass
class ApplicationSchema:
    """One application of a config file."""

    import_path: str
    name: str = "default"
    route_prefix: str | None = "/"
    args: dict[str, Any] = field(default_factory=dict)
    deployments: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def parse(cls, data: dict[str, Any], index: int) -> ApplicationSchema:
        what = f"applications[{index}]"
        _check_keys(what, data, {"import_path", "name", "route_prefix", "args", "deployments"}, _IGNORED_APP)
        if not isinstance(data.get("import_path"), str) or not data["import_path"]:
            raise ValueError(f"{what}.import_path must be a string like 'module:app'")
        app = cls(
            import_path=data["import_path"],
            name=data.get("name", "default"),
            route_prefix=data.get("route_prefix", "/"),
            args=dict(data.get("args") or {}),
            deployments=list(data.get("deployments") or []),
        )
        for i, dep in enumerate(app.deployments):
            if not isinstance(dep, dict) or not isinstance(dep.get("name"), str):
                raise ValueError(f"{what}.deployments[{i}] must be a mapping with a 'name'")
        return app

    def to_dict(self) -> dict[str, Any]:
        return {
            "import_path": self.import_path,
            "name": self.name,
            "route_prefix": self.route_prefix,
            "args": self.args,
            "deployments": self.deployments,
        }


@dataclass
class ServeDeploySchema:
    """A whole config file: HTTP options and applications."""

    applications: list[ApplicationSchema]
    http_options: HTTPOptions | None = None
    working_dir: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ServeDeploySchema:
        _check_keys(
            "the serve config", data, {"applications", "http_options", "working_dir", "logging_config"}, _IGNORED_TOP
        )
        apps_data = data.get("applications") or []
        if not isinstance(apps_data, list):
            raise ValueError("applications must be a list")
        apps = [ApplicationSchema.parse(a, i) for i, a in enumerate(apps_data)]
        names = [a.name for a in apps]
        if len(set(names)) != len(names):
            raise ValueError(f"application names must be unique, got {names}")
        prefixes = [a.route_prefix for a in apps if a.route_prefix is not None]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError(f"route prefixes must be unique, got {prefixes}")
        http = HTTPOptions.parse(data["http_options"]) if data.get("http_options") is not None else None
        return cls(applications=apps, http_options=http, working_dir=data.get("working_dir"))


def import_attr(import_path: str) -> Any:
    """The object at ``module:attr`` or ``module.attr``."""
    if ":" in import_path:
        module_name, _, attr = import_path.partition(":")
    else:
        module_name, _, attr = import_path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"import path must look like 'module:attribute', got {import_path!r}")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def load_application(import_path: str, args: dict[str, Any] | None = None) -> Application:
    """The application at ``import_path``: an Application, or a builder function called with ``args``."""
    obj = import_attr(import_path)
    if isinstance(obj, Application):
        if args:
            raise ValueError(f"{import_path} is an Application, not a builder: it takes no args")
        return obj
    if callable(obj) and not hasattr(obj, "bind"):
        app = obj(args or {})
        if not isinstance(app, Application):
            raise TypeError(f"the builder {import_path} must return an Application, got {app!r}")
        return app
    raise TypeError(
        f"{import_path} must be an Application (made with .bind()) or a function returning one, got {obj!r}"
    )


def apply_overrides(specs: list[DeploymentSpec], overrides: list[dict[str, Any]]) -> list[DeploymentSpec]:
    """Specs with the config file's per-deployment options applied."""
    by_name = {s.name: s for s in specs}
    for override in overrides:
        opts = dict(override)
        name = opts.pop("name")
        spec = by_name.get(name)
        if spec is None:
            raise ValueError(
                f"the config overrides deployment {name!r}, which the application does not have ({sorted(by_name)})"
            )
        merged = {**spec.options, **opts}
        if "num_replicas" in opts and opts["num_replicas"] != "auto" and "autoscaling_config" not in opts:
            merged.pop("autoscaling_config", None)
        if "autoscaling_config" in opts and "num_replicas" not in opts and merged.get("num_replicas") != "auto":
            merged.pop("num_replicas", None)
        spec.config = make_config(merged)
        spec.options = merged
    return specs


@shoal.remote(num_cpus=0)
def build_app_from_config(app: dict[str, Any], working_dir: str | None) -> tuple[str, list[DeploymentSpec]]:
    """Import and build one application of a config file (a task, so user modules load in a worker)."""
    if working_dir and working_dir not in sys.path:
        sys.path.insert(0, working_dir)
    elif os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    application = load_application(app["import_path"], app.get("args"))
    ingress, specs = build_app(application, app["name"])
    return ingress, apply_overrides(specs, app.get("deployments") or [])
