"""Names and defaults shared by serve's processes."""

from __future__ import annotations

#: The controller is a detached named actor in serve's own namespace (as in Ray).
CONTROLLER_NAME = "SERVE_CONTROLLER_ACTOR"
SERVE_NAMESPACE = "serve"
DEFAULT_APP_NAME = "default"

#: How long a router's long poll waits on the controller before asking again.
LISTEN_TIMEOUT_S = 10.0
#: How often routers report their queued requests (for autoscaling) while they have any.
ROUTER_METRICS_PERIOD_S = 0.5
#: How often the controller reconciles deployments and polls replicas for load.
CONTROL_LOOP_PERIOD_S = 0.1
METRICS_PERIOD_S = 0.5
#: A replica still starting after this long gets a warning (it may be waiting for resources).
SLOW_START_WARNING_S = 30.0
#: Constructor failures of one deployment version before it is marked DEPLOY_FAILED.
MAX_CONSTRUCTOR_FAILURES = 3
#: After this long without an answer from the client, the proxy starts watching for a disconnect.
DISCONNECT_WATCH_DELAY_S = 0.05

ROUTES_KEY = ("routes",)


def replicas_key(app_name: str, deployment_name: str) -> tuple[str, str, str]:
    """The long-poll key under which the controller publishes a deployment's running replicas."""
    return ("replicas", app_name, deployment_name)
