"""The autoscaler's errors, all under :class:`shoal.exceptions.ShoalError`."""

from __future__ import annotations

from shoal.exceptions import ConfigError, ShoalError

__all__ = [
    "LAUNCH_ERROR_CATEGORIES",
    "AutoscalerError",
    "ClusterConfigError",
    "HeadStartUnsupportedError",
    "NodeLaunchError",
    "NodeProviderError",
    "NodeProviderNotFoundError",
    "NodeProviderUnavailableError",
]

#: Why a launch failed; the autoscaler backs off differently for each.
#: ``config`` and ``auth`` do not fix themselves, so they wait the longest.
LAUNCH_ERROR_CATEGORIES = ("quota", "capacity", "config", "auth", "transient")


class AutoscalerError(ShoalError):
    """Base of the autoscaler's own errors."""


class ClusterConfigError(ConfigError):
    """A cluster config is invalid; ``errors`` holds ``(path, message)`` for each problem."""

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])

    def __reduce__(self):  # keep ``errors`` across pickling
        return (type(self), (self.args[0], self.errors))


class NodeProviderNotFoundError(AutoscalerError, ValueError):
    """No node provider is registered under the requested name."""


class NodeProviderUnavailableError(AutoscalerError, ImportError):
    """A node provider is known but its libraries are missing; the message says what to install."""


class NodeProviderError(AutoscalerError):
    """A node provider call failed (the cloud SDK's error, translated and redacted)."""

    def __init__(self, message: str, category: str = "transient") -> None:
        if category not in LAUNCH_ERROR_CATEGORIES:
            raise ValueError(f"category must be one of {LAUNCH_ERROR_CATEGORIES}, got {category!r}")
        super().__init__(message)
        self.category = category

    def __reduce__(self):
        return (type(self), (self.args[0], self.category))


class NodeLaunchError(NodeProviderError):
    """Creating nodes failed; ``category`` says why (quota, capacity, config, auth, transient)."""


class HeadStartUnsupportedError(AutoscalerError, NotImplementedError):
    """``shoal up`` cannot start a head node on this provider (it does not start node agents itself)."""
