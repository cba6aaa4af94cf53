"""Errors raised by shoal.tune."""

from __future__ import annotations

from shoal.exceptions import ShoalError

__all__ = ["TuneError"]


class TuneError(ShoalError):
    """An experiment could not run as configured (bad settings, a stalled search...)."""
