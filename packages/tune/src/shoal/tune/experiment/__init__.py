"""Trials: :class:`Trial`."""

from shoal.tune.experiment.trial import Trial

__all__ = ["Trial"]
