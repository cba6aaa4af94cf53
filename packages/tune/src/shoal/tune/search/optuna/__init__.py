"""Optuna-backed search: :class:`OptunaSearch`."""

from shoal.tune.search.optuna.optuna_search import OptunaSearch

__all__ = ["OptunaSearch"]
