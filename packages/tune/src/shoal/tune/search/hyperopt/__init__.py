"""HyperOpt-backed search: :class:`HyperOptSearch` (needs ``pip install 'shoal-tune[hyperopt]'``)."""

try:
    import hyperopt as _hyperopt  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "HyperOptSearch needs the hyperopt package; install it with: pip install 'shoal-tune[hyperopt]'"
    ) from e

from shoal.tune.search.hyperopt.hyperopt_search import HyperOptSearch

__all__ = ["HyperOptSearch"]
