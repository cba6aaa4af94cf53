"""The backend seam: the abstract :class:`Backend`, the specs that cross it, and the registry."""

from __future__ import annotations

from shoal.backend.base import ActorInfo, Backend, RuntimeInfo
from shoal.backend.registry import ENTRY_POINT_GROUP, available_backends, load_backend
from shoal.backend.specs import (
    STREAMING,
    ActorMethodSpec,
    ActorSpec,
    ActorTaskSpec,
    CallableDescriptor,
    PlacementGroupSpec,
    SchedulingSpec,
    TaskSpec,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "STREAMING",
    "ActorInfo",
    "ActorMethodSpec",
    "ActorSpec",
    "ActorTaskSpec",
    "Backend",
    "CallableDescriptor",
    "PlacementGroupSpec",
    "RuntimeInfo",
    "SchedulingSpec",
    "TaskSpec",
    "available_backends",
    "load_backend",
]
