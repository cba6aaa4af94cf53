"""BOHB's model-based proposer: :class:`TuneBOHB` (pair it with ``schedulers.HyperBandForBOHB``)."""

from shoal.tune.search.bohb.bohb_search import TuneBOHB

__all__ = ["TuneBOHB"]
