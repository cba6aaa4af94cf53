"""What goes into the autoscaler state machine (events) and what comes out (decisions).

Every event has an ``event_id``; each decision names the event that caused it
(``cause``), so a launch can be traced back to the observation that asked for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from shoal.autoscaler.demand import ClusterLoad
from shoal.autoscaler.node_provider import ProviderNode

__all__ = [
    "Event",
    "Observed",
    "LaunchSucceeded",
    "LaunchFailed",
    "DrainFinished",
    "TerminateFinished",
    "Decision",
    "LaunchNodes",
    "DrainNode",
    "TerminateNodes",
]

_ids = itertools.count(1)


def _next_id() -> str:
    return f"ev-{next(_ids)}"


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every stimulus; ``now`` is the (possibly virtual) time in seconds."""

    now: float
    event_id: str = field(default_factory=_next_id)


@dataclass(frozen=True, kw_only=True)
class Observed(Event):
    """One round's view: the provider's nodes and the head's load."""

    provider_nodes: Sequence[ProviderNode]
    load: ClusterLoad


@dataclass(frozen=True, kw_only=True)
class LaunchSucceeded(Event):
    launch_id: str
    node_ids: Sequence[str]


@dataclass(frozen=True, kw_only=True)
class LaunchFailed(Event):
    launch_id: str
    #: Already redacted: no credentials.
    error: str
    category: str = "transient"


@dataclass(frozen=True, kw_only=True)
class DrainFinished(Event):
    node_id: str
    accepted: bool
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class TerminateFinished(Event):
    node_ids: Sequence[str]
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Decision:
    """Base of every instruction to the shell; ``cause`` is the event id behind it."""

    cause: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class LaunchNodes(Decision):
    launch_id: str
    node_type: str
    count: int


@dataclass(frozen=True, kw_only=True)
class DrainNode(Decision):
    node_id: str


@dataclass(frozen=True, kw_only=True)
class TerminateNodes(Decision):
    node_ids: tuple[str, ...]
