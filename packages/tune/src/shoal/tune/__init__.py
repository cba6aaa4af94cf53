"""shoal.tune: hyperparameter search with Ray Tune's API.

``Tuner`` runs trials of a trainable over a search space. Configurations
come from a search algorithm (random and grid search by default; Optuna,
HyperOpt and BOHB in :mod:`shoal.tune.search`); a scheduler in
:mod:`shoal.tune.schedulers` (FIFO, ASHA, HyperBand, median stopping, PBT)
stops, pauses and promotes them. Trials run as shoal actors; results land in
Ray Tune's on-disk layout and experiments can be resumed with
``Tuner.restore``.

    from shoal import tune

    def objective(config):
        for step in range(10):
            tune.report({"score": config["x"] * step})

    tuner = tune.Tuner(objective, param_space={"x": tune.uniform(0, 1)},
                       tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=8))
    best = tuner.fit().get_best_result()
"""

from typing import TYPE_CHECKING, Any

from shoal.tune._version import __version__

if TYPE_CHECKING:
    from shoal.tune.callback import Callback
    from shoal.tune.checkpoint import Checkpoint
    from shoal.tune.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
    from shoal.tune.error import TuneError
    from shoal.tune.experiment.trial import Trial
    from shoal.tune.registry import register_trainable
    from shoal.tune.result import Result
    from shoal.tune.result_grid import ResultGrid
    from shoal.tune.search.sample import (
        choice,
        grid_search,
        lograndint,
        loguniform,
        qlograndint,
        qloguniform,
        qrandint,
        qrandn,
        quniform,
        randint,
        randn,
        sample_from,
        uniform,
    )
    from shoal.tune.stopper import Stopper
    from shoal.tune.trainable.session import TuneContext, get_checkpoint, get_context, report
    from shoal.tune.trainable.trainable import Trainable
    from shoal.tune.trainable.util import PlacementGroupFactory, with_parameters, with_resources
    from shoal.tune.tuner import Tuner

__all__ = [
    "Callback",
    "Checkpoint",
    "CheckpointConfig",
    "FailureConfig",
    "PlacementGroupFactory",
    "Result",
    "ResultGrid",
    "RunConfig",
    "Stopper",
    "Trainable",
    "Trial",
    "TuneConfig",
    "TuneContext",
    "TuneError",
    "Tuner",
    "__version__",
    "choice",
    "get_checkpoint",
    "get_context",
    "grid_search",
    "loguniform",
    "lograndint",
    "qloguniform",
    "qlograndint",
    "qrandint",
    "qrandn",
    "quniform",
    "randint",
    "randn",
    "register_trainable",
    "report",
    "sample_from",
    "uniform",
    "with_parameters",
    "with_resources",
]

# Loaded on first use, so that a trial worker importing shoal.tune.execution.worker does
# not pay for the Tuner, the search spaces (numpy) and the result grid (pandas-ready).
_LAZY = {
    "Callback": "shoal.tune.callback",
    "Checkpoint": "shoal.tune.checkpoint",
    "CheckpointConfig": "shoal.tune.config",
    "FailureConfig": "shoal.tune.config",
    "RunConfig": "shoal.tune.config",
    "TuneConfig": "shoal.tune.config",
    "TuneError": "shoal.tune.error",
    "register_trainable": "shoal.tune.registry",
    "Trial": "shoal.tune.experiment.trial",
    "Result": "shoal.tune.result",
    "ResultGrid": "shoal.tune.result_grid",
    "Stopper": "shoal.tune.stopper",
    "TuneContext": "shoal.tune.trainable.session",
    "get_checkpoint": "shoal.tune.trainable.session",
    "get_context": "shoal.tune.trainable.session",
    "report": "shoal.tune.trainable.session",
    "Trainable": "shoal.tune.trainable.trainable",
    "PlacementGroupFactory": "shoal.tune.execution.placement_groups",
    "with_parameters": "shoal.tune.trainable.util",
    "with_resources": "shoal.tune.trainable.util",
    "Tuner": "shoal.tune.tuner",
    **{
        name: "shoal.tune.search.sample"
        for name in (
            "choice",
            "grid_search",
            "loguniform",
            "lograndint",
            "qloguniform",
            "qlograndint",
            "qrandint",
            "qrandn",
            "quniform",
            "randint",
            "randn",
            "sample_from",
            "uniform",
        )
    },
}
_SUBMODULES = ("schedulers", "search", "stopper", "execution", "experiment", "trainable", "registry")


def __getattr__(name: str) -> Any:
    import importlib

    module_name = _LAZY.get(name)
    if module_name is not None:
        value = getattr(importlib.import_module(module_name), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"shoal.tune.{name}")
    raise AttributeError(f"module 'shoal.tune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
