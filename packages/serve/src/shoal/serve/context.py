"""What a replica knows about itself: ``serve.get_replica_context()``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal.serve.exceptions import ServeException

__all__ = ["ReplicaContext", "get_replica_context"]


@dataclass(frozen=True)
class ReplicaContext:
    """The application, deployment and replica that the calling code runs in."""

    app_name: str
    deployment: str
    replica_id: str
    servable_object: Any

    @property
    def replica_tag(self) -> str:
        """Ray's older name for ``replica_id``."""
        return self.replica_id


_current: ReplicaContext | None = None


def _set_replica_context(ctx: ReplicaContext | None) -> None:
    global _current
    _current = ctx


def get_replica_context() -> ReplicaContext:
    """The context of the replica this code runs in; ServeException outside a replica."""
    if _current is None:
        raise ServeException("get_replica_context() may only be called from within a replica of a deployment")
    return _current
