"""Search algorithms: where trial configurations come from.

``BasicVariantGenerator`` (random and grid search) is the default. Model-based
searchers live in submodules so that their libraries load only when used:
``shoal.tune.search.optuna.OptunaSearch``,
``shoal.tune.search.hyperopt.HyperOptSearch`` and
``shoal.tune.search.bohb.TuneBOHB``. Wrap any of them in
:class:`ConcurrencyLimiter` or :class:`Repeater`.
"""

from __future__ import annotations

from typing import Any

from shoal.tune.search.basic_variant import BasicVariantGenerator
from shoal.tune.search.repeater import Repeater
from shoal.tune.search.search_algorithm import SearchAlgorithm, SearchGenerator
from shoal.tune.search.searcher import ConcurrencyLimiter, Searcher

__all__ = [
    "BasicVariantGenerator",
    "ConcurrencyLimiter",
    "Repeater",
    "SearchAlgorithm",
    "SearchGenerator",
    "Searcher",
    "create_searcher",
]


def create_searcher(search_alg: str, **kwargs: Any) -> SearchAlgorithm | Searcher:
    """A search algorithm by name: ``"variant_generator"`` / ``"random"``, ``"optuna"``, ``"hyperopt"``, ``"bohb"``."""
    if search_alg in ("variant_generator", "random"):
        return BasicVariantGenerator(**kwargs)
    if search_alg == "optuna":
        from shoal.tune.search.optuna import OptunaSearch

        return OptunaSearch(**kwargs)
    if search_alg == "hyperopt":
        from shoal.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(**kwargs)
    if search_alg == "bohb":
        from shoal.tune.search.bohb import TuneBOHB

        return TuneBOHB(**kwargs)
    raise ValueError(
        f"unknown search algorithm {search_alg!r}; known: 'variant_generator', 'random', 'optuna', 'hyperopt', 'bohb'"
    )
