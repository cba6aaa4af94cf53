"""shoal.serve: HTTP model serving with Ray Serve's API.

Deployments (``@serve.deployment``) run as replica actors behind an HTTP
proxy (uvicorn, 127.0.0.1:8000 by default); ``serve.run(app)`` deploys an
application and returns a :class:`DeploymentHandle` for Python calls.
Requests travel from the proxy or a handle straight to a replica over a
Unix socket, routed by the power of two choices; a controller actor keeps
replicas healthy, rolls updates and autoscales.
"""

from __future__ import annotations

from shoal.serve._version import __version__
from shoal.serve.api import delete, get_app_handle, get_deployment_handle, run, shutdown, start, status
from shoal.serve.batching import batch
from shoal.serve.config import AutoscalingConfig, DeploymentConfig, HTTPOptions, LoggingConfig
from shoal.serve.context import ReplicaContext, get_replica_context
from shoal.serve.deployment import Application, Deployment, deployment
from shoal.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator
from shoal.serve.ingress import ingress
from shoal.serve.multiplex import get_multiplexed_model_id, multiplexed
from shoal.serve.status import ApplicationStatus, DeploymentStatus, ServeStatus

__all__ = [
    "Application",
    "ApplicationStatus",
    "AutoscalingConfig",
    "Deployment",
    "DeploymentConfig",
    "DeploymentHandle",
    "DeploymentResponse",
    "DeploymentResponseGenerator",
    "DeploymentStatus",
    "HTTPOptions",
    "LoggingConfig",
    "ReplicaContext",
    "ServeStatus",
    "__version__",
    "batch",
    "delete",
    "deployment",
    "get_app_handle",
    "get_deployment_handle",
    "get_multiplexed_model_id",
    "get_replica_context",
    "ingress",
    "multiplexed",
    "run",
    "shutdown",
    "start",
    "status",
]
