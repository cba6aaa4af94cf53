"""Trial schedulers: decide which trials continue, pause or stop.

``FIFOScheduler`` (the default) runs every trial to the end;
``ASHAScheduler``/``AsyncHyperBandScheduler``, ``HyperBandScheduler``,
``HyperBandForBOHB`` and ``MedianStoppingRule`` stop poor trials early;
``PopulationBasedTraining`` copies good trials over bad ones and perturbs them.
"""

from __future__ import annotations

from typing import Any

from shoal.tune.schedulers.async_hyperband import ASHAScheduler, AsyncHyperBandScheduler
from shoal.tune.schedulers.hb_bohb import HyperBandForBOHB
from shoal.tune.schedulers.hyperband import HyperBandScheduler
from shoal.tune.schedulers.median_stopping_rule import MedianStoppingRule
from shoal.tune.schedulers.pbt import PopulationBasedTraining
from shoal.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

__all__ = [
    "ASHAScheduler",
    "AsyncHyperBandScheduler",
    "FIFOScheduler",
    "HyperBandForBOHB",
    "HyperBandScheduler",
    "MedianStoppingRule",
    "PopulationBasedTraining",
    "TrialScheduler",
    "create_scheduler",
]

_BY_NAME = {
    "fifo": FIFOScheduler,
    "async_hyperband": AsyncHyperBandScheduler,
    "asynchyperband": AsyncHyperBandScheduler,
    "hyperband": HyperBandScheduler,
    "hb_bohb": HyperBandForBOHB,
    "median_stopping_rule": MedianStoppingRule,
    "medianstopping": MedianStoppingRule,
    "pbt": PopulationBasedTraining,
}


def create_scheduler(scheduler: str, **kwargs: Any) -> TrialScheduler:
    """A scheduler by name.

    ``"fifo"``, ``"async_hyperband"``, ``"hyperband"``, ``"hb_bohb"``,
    ``"median_stopping_rule"`` or ``"pbt"``; ``kwargs`` go to its constructor.
    """
    cls = _BY_NAME.get(scheduler)
    if cls is None:
        raise ValueError(f"unknown scheduler {scheduler!r}; known: {sorted(_BY_NAME)}")
    return cls(**kwargs)
