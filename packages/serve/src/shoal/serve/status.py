"""What ``serve.status()`` returns: applications, their deployments and replica counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "ApplicationStatus",
    "ApplicationStatusOverview",
    "DeploymentStatus",
    "DeploymentStatusOverview",
    "ProxyStatus",
    "ServeStatus",
]


class ApplicationStatus(str, Enum):  # noqa: UP042 - not StrEnum: str() shows the member, as in Ray
    """The states of an application; each equals its name as a string, as in Ray."""

    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    RUNNING = "RUNNING"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"


class DeploymentStatus(str, Enum):  # noqa: UP042 - as ApplicationStatus
    """The states of a deployment; each equals its name as a string, as in Ray."""

    UPDATING = "UPDATING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    UPSCALING = "UPSCALING"
    DOWNSCALING = "DOWNSCALING"


@dataclass
class DeploymentStatusOverview:
    status: DeploymentStatus
    message: str = ""
    replica_states: dict[str, int] = field(default_factory=dict)
    target_num_replicas: int = 0


@dataclass
class ApplicationStatusOverview:
    status: ApplicationStatus
    message: str = ""
    last_deployed_time_s: float = 0.0
    route_prefix: str | None = None
    deployments: dict[str, DeploymentStatusOverview] = field(default_factory=dict)


@dataclass
class ProxyStatus:
    host: str
    port: int | None
    status: str


@dataclass
class ServeStatus:
    """Serve's state: the proxy and every application."""

    proxies: dict[str, ProxyStatus] = field(default_factory=dict)
    applications: dict[str, ApplicationStatusOverview] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServeStatus:
        apps = {}
        for name, app in data.get("applications", {}).items():
            deps = {
                d: DeploymentStatusOverview(**{**info, "status": DeploymentStatus(info["status"])})
                for d, info in app["deployments"].items()
            }
            apps[name] = ApplicationStatusOverview(
                status=ApplicationStatus(app["status"]),
                message=app["message"],
                last_deployed_time_s=app["last_deployed_time_s"],
                route_prefix=app["route_prefix"],
                deployments=deps,
            )
        proxies = {}
        if data.get("proxy"):
            proxies["local"] = ProxyStatus(**data["proxy"])
        return cls(proxies=proxies, applications=apps)

    def to_dict(self) -> dict[str, Any]:
        import dataclasses

        return dataclasses.asdict(self)
