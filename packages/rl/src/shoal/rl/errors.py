"""Errors raised by shoal.rl; each is also a ``ValueError`` where it reports bad input."""

from __future__ import annotations

from shoal.exceptions import ShoalError

__all__ = ["EnvError", "UnsupportedSpaceException"]


class EnvError(ShoalError, ValueError):
    """The environment could not be found or created."""


class UnsupportedSpaceException(ShoalError, ValueError):
    """The algorithm cannot handle the environment's observation or action space."""
