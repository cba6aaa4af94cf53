"""serve's top-level functions: start, run, status, delete, shutdown and handle lookups."""

from __future__ import annotations

import logging
import time
from typing import Any

import shoal
from shoal.serve._constants import CONTROLLER_NAME, DEFAULT_APP_NAME, SERVE_NAMESPACE
from shoal.serve._router import reset_clients
from shoal.serve.config import HTTPOptions
from shoal.serve.deployment import Application, build_app
from shoal.serve.exceptions import ServeException
from shoal.serve.handle import DeploymentHandle
from shoal.serve.status import ServeStatus

__all__ = [
    "delete",
    "get_app_handle",
    "get_deployment_handle",
    "run",
    "shutdown",
    "start",
    "status",
]

logger = logging.getLogger("shoal.serve")


def _lookup_controller() -> Any:
    if not shoal.is_initialized():
        return None
    try:
        return shoal.get_actor(CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return None


def _controller() -> Any:
    controller = _lookup_controller()
    if controller is None:
        raise ServeException("serve is not running; start it with serve.start() or serve.run()")
    return controller


def start(http_options: HTTPOptions | dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Start serve's controller and HTTP proxy (127.0.0.1:8000 unless ``http_options`` says otherwise).

    Starting again while serve runs does nothing; new ``http_options`` then
    take effect only after ``serve.shutdown()``.
    """
    unknown = sorted(set(kwargs) - {"detached", "proxy_location", "grpc_options"})
    if unknown:
        raise TypeError(f"serve.start() got unexpected arguments {unknown}")
    options = HTTPOptions.parse(http_options)
    if not shoal.is_initialized():
        shoal.init()
    controller = _lookup_controller()
    if controller is not None:
        current = shoal.get(controller.http_options.remote())
        if http_options is not None and current != options:
            logger.warning(
                "serve is already running with http_options %s; the new options apply after serve.shutdown()",
                current,
            )
        return
    from shoal.serve._controller import ServeController

    controller = (
        shoal.remote(ServeController)
        .options(
            name=CONTROLLER_NAME,
            namespace=SERVE_NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=1000,
        )
        .remote(options)
    )
    try:
        shoal.get(controller.start.remote())
    except Exception:
        # A proxy that cannot bind its port leaves nothing behind.
        shoal.kill(controller)
        raise


def _check_route_prefix(route_prefix: str | None) -> None:
    if route_prefix is None:
        return
    if not isinstance(route_prefix, str) or not route_prefix.startswith("/"):
        raise ValueError(f"route_prefix must be None or a string starting with '/', got {route_prefix!r}")
    if route_prefix != "/" and route_prefix.endswith("/"):
        raise ValueError(f"route_prefix must not end with '/' (other than '/' itself), got {route_prefix!r}")
    if "{" in route_prefix or "}" in route_prefix:
        raise ValueError(f"route_prefix may not contain wildcards, got {route_prefix!r}")


def _wait_running(controller: Any, name: str) -> None:
    while True:
        result = shoal.get(controller.wait_for_application.remote(name, 10.0))
        if result["status"] == "RUNNING":
            return
        if result["status"] == "DEPLOY_FAILED":
            raise RuntimeError(f"Deploying application {name} failed: {result['message']}")
        if result["status"] == "NOT_STARTED":
            raise RuntimeError(f"Application {name} disappeared while deploying: {result['message']}")


def run(
    target: Application,
    blocking: bool = False,
    name: str = DEFAULT_APP_NAME,
    route_prefix: str | None = "/",
    logging_config: Any = None,
    _blocking: bool = True,
) -> DeploymentHandle:
    """Deploy an application (starting serve if needed), wait until it runs, return its ingress handle.

    ``route_prefix=None`` deploys it without HTTP. With ``blocking=True``
    this call then waits until Ctrl-C and lets the ``KeyboardInterrupt``
    through (as Ray does), so the program's own handling or exit ends serve.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    _check_route_prefix(route_prefix)
    if not isinstance(target, Application):
        build_app(target, name)  # raises the right TypeError
    if logging_config is not None:
        target = _with_logging(target, logging_config)
    ingress, specs = build_app(target, name)
    start()
    handle = _deploy(name, route_prefix, ingress, specs, wait=_blocking)
    if blocking:
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            logger.warning("Got KeyboardInterrupt, exiting...")
            raise
    return handle


def _deploy(name: str, route_prefix: str | None, ingress: str, specs: list[Any], wait: bool) -> DeploymentHandle:
    controller = _controller()
    shoal.get(controller.deploy_application.remote(name, route_prefix, ingress, specs))
    if wait:
        _wait_running(controller, name)
    return DeploymentHandle(ingress, name)


def _with_logging(app: Application, logging_config: Any) -> Application:
    """The same graph with ``logging_config`` on every deployment that sets none of its own."""
    seen: dict[int, Application] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, Application):
            if id(value) not in seen:
                dep = value.deployment
                if "logging_config" not in dep._options:
                    dep = dep.options(logging_config=logging_config)
                seen[id(value)] = Application(dep, walk(value._args), walk(value._kwargs))
            return seen[id(value)]
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, tuple):
            return tuple(walk(v) for v in value)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    result: Application = walk(app)
    return result


def status() -> ServeStatus:
    """The status of serve's proxy, applications and deployments."""
    controller = _lookup_controller()
    if controller is None:
        return ServeStatus()
    return ServeStatus.from_dict(shoal.get(controller.status.remote()))


def delete(name: str, _blocking: bool = True) -> None:
    """Delete an application: its route goes first, then its replicas finish their requests and stop."""
    controller = _controller()
    shoal.get(controller.delete_application.remote(name))
    if _blocking:
        while shoal.get(controller.wait_for_application.remote(name, 10.0, True))["status"] != "NOT_STARTED":
            pass


def shutdown() -> None:
    """Delete every application and stop serve's proxy and controller."""
    controller = _lookup_controller()
    if controller is None:
        reset_clients()
        return
    try:
        shoal.get(controller.shutdown.remote(), timeout=120)
    finally:
        shoal.kill(controller)
        reset_clients()


def get_app_handle(name: str) -> DeploymentHandle:
    """A handle to the ingress deployment of a running application."""
    info = shoal.get(_controller().get_app_info.remote(name))
    if info is None:
        raise ServeException(f"Application '{name}' does not exist.")
    return DeploymentHandle(info["ingress"], name)


def get_deployment_handle(deployment_name: str, app_name: str | None = None) -> DeploymentHandle:
    """A handle to one deployment; ``app_name`` may be left out inside a replica or with one app running."""
    controller = _controller()
    if app_name is None:
        from shoal.serve.context import _current

        if _current is not None:
            app_name = _current.app_name
        else:
            apps = shoal.get(controller.list_applications.remote())
            if len(apps) != 1:
                raise ServeException(
                    f"pass app_name to get_deployment_handle: {len(apps)} applications are running ({sorted(apps)})"
                )
            app_name = apps[0]
    info = shoal.get(controller.get_app_info.remote(app_name))
    if info is None:
        raise ServeException(f"Application '{app_name}' does not exist.")
    if deployment_name not in info["deployments"]:
        raise ServeException(f"Deployment '{deployment_name}' does not exist in application '{app_name}'.")
    return DeploymentHandle(deployment_name, app_name)
