"""Trainables: the class API (:class:`Trainable`), function support and wrappers."""

from shoal.tune.trainable.session import TuneContext, get_checkpoint, get_context, report
from shoal.tune.trainable.trainable import FunctionTrainable, Trainable, wrap_function
from shoal.tune.trainable.util import PlacementGroupFactory, with_parameters, with_resources

__all__ = [
    "FunctionTrainable",
    "PlacementGroupFactory",
    "Trainable",
    "TuneContext",
    "get_checkpoint",
    "get_context",
    "report",
    "with_parameters",
    "with_resources",
    "wrap_function",
]
