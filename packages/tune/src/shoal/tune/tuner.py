"""The entry point: :class:`Tuner` runs an experiment and returns a :class:`~shoal.tune.ResultGrid`."""

from __future__ import annotations

import copy
import datetime
import logging
import os
import time
from typing import Any

import cloudpickle

import shoal
from shoal.tune.callback import Callback
from shoal.tune.config import RunConfig, TuneConfig
from shoal.tune.error import TuneError
from shoal.tune.execution._state import STATE_GLOB, TUNER_FILE, latest_state_file, load_state, write_atomic
from shoal.tune.execution.controller import ControllerSettings, TrialController
from shoal.tune.execution.runner import TrialRunner, check_capacity
from shoal.tune.experiment.trial import Trial
from shoal.tune.result_grid import ResultGrid
from shoal.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler
from shoal.tune.search.basic_variant import BasicVariantGenerator
from shoal.tune.search.search_algorithm import SearchAlgorithm, SearchGenerator
from shoal.tune.search.searcher import ConcurrencyLimiter, Searcher
from shoal.tune.search.variant_generator import parse_spec_vars
from shoal.tune.stopper import as_stopper
from shoal.tune.trainable.trainable import is_function_trainable
from shoal.tune.trainable.util import resolve_resources, resolve_trainable, trainable_name

__all__ = ["Tuner"]

logger = logging.getLogger(__name__)

DEFAULT_STORAGE_PATH = "~/shoal_results"


def _timestamp() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def _capacity() -> dict[str, float]:
    total = shoal.cluster_resources()
    return {k: float(v) for k, v in total.items() if not k.startswith("node:") and k != "object_store_memory" and v > 0}


def _run_config_of_trainer(trainer: Any) -> RunConfig | None:
    """A tune RunConfig carrying over what a shoal.train trainer's RunConfig says, if it has one."""
    from shoal.tune.config import CheckpointConfig, FailureConfig

    rc = getattr(trainer, "run_config", None)
    if rc is None:
        return None
    cc, fc = getattr(rc, "checkpoint_config", None), getattr(rc, "failure_config", None)
    checkpoint_config = None
    if cc is not None:
        checkpoint_config = CheckpointConfig(
            num_to_keep=cc.num_to_keep,
            checkpoint_score_attribute=cc.checkpoint_score_attribute,
            checkpoint_score_order=cc.checkpoint_score_order,
        )
    storage_path = getattr(rc, "storage_path", None)
    if getattr(rc, "storage_filesystem", None) is not None or (
        isinstance(storage_path, str) and "://" in storage_path and not storage_path.startswith("file://")
    ):
        raise ValueError(
            "the trainer's RunConfig stores to a remote filesystem, which shoal.tune does not support; "
            "pass Tuner(run_config=tune.RunConfig(storage_path=<local path>))"
        )
    if isinstance(storage_path, str) and storage_path.startswith("file://"):
        storage_path = storage_path[len("file://") :]
    # The name is left out: a trainer's RunConfig always has one (a generated default), and
    # the experiment is named after the trainable unless the Tuner's RunConfig says otherwise.
    return RunConfig(
        storage_path=storage_path,
        checkpoint_config=checkpoint_config,
        failure_config=FailureConfig(max_failures=fc.max_failures) if fc is not None else None,
    )


class Tuner:
    """Run trials of ``trainable`` over ``param_space`` and collect their results.

    ``trainable`` is a function ``fn(config)`` that calls ``tune.report``, a
    :class:`~shoal.tune.Trainable` subclass, a class of the trainable shape
    (shoal.rl's algorithms), a trainer object offering ``as_trainable()``
    (shoal.train's trainers) or a registered name (``"PPO"``). ``param_space``
    holds constants, search domains (``tune.uniform``...) and
    ``tune.grid_search``; a config object with ``to_dict()`` stands for its dict.
    """

    def __init__(
        self,
        trainable: Any = None,
        *,
        param_space: dict[str, Any] | None = None,
        tune_config: TuneConfig | None = None,
        run_config: RunConfig | None = None,
    ) -> None:
        if trainable is None:
            raise TypeError("Tuner needs a trainable: a function, a Trainable class, a trainer or a registered name")
        if param_space is not None and not isinstance(param_space, dict):
            to_dict = getattr(param_space, "to_dict", None)
            if not callable(to_dict):
                raise TypeError(
                    f"param_space must be a dict (or a config object with to_dict()), got {type(param_space).__name__}"
                )
            # An algorithm config (shoal.rl's PPOConfig...) is searched as its dict form, as in Ray.
            param_space = to_dict()
            if not isinstance(param_space, dict):
                raise TypeError(f"param_space.to_dict() must return a dict, got {type(param_space).__name__}")
        if tune_config is not None and not isinstance(tune_config, TuneConfig):
            raise TypeError(f"tune_config must be a tune.TuneConfig, got {tune_config!r}")
        if run_config is not None and not isinstance(run_config, RunConfig):
            raise TypeError(f"run_config must be a tune.RunConfig, got {run_config!r}")
        self._trainable = resolve_trainable(trainable)
        self._param_space = dict(param_space or {})
        self._tune_config = tune_config or TuneConfig()
        if run_config is None and hasattr(trainable, "as_trainable"):
            # A trainer's own RunConfig (name, storage, checkpoints, failures) applies to its
            # trials unless the Tuner is given one, as in Ray.
            run_config = _run_config_of_trainer(trainable)
        self._run_config = run_config or RunConfig()
        self._restored: tuple[dict[str, Any], dict[str, bool]] | None = None
        self._experiment_path: str | None = None
        self._results: ResultGrid | None = None

    # -- restore ----------------------------------------------------------------

    @classmethod
    def can_restore(cls, path: str | os.PathLike[str], storage_filesystem: Any = None) -> bool:
        """True if ``path`` holds an experiment that :meth:`restore` can resume."""
        path = os.path.expanduser(os.fspath(path))
        return os.path.exists(os.path.join(path, TUNER_FILE)) and latest_state_file(path) is not None

    @classmethod
    def restore(
        cls,
        path: str | os.PathLike[str],
        trainable: Any,
        resume_unfinished: bool = True,
        resume_errored: bool = False,
        restart_errored: bool = False,
        param_space: dict[str, Any] | None = None,
        storage_filesystem: Any = None,
    ) -> Tuner:
        """A Tuner that continues the experiment in ``path``; ``fit()`` runs what is left.

        Finished trials are kept as they are. Unfinished trials resume from their
        latest checkpoint (from scratch if they have none) unless
        ``resume_unfinished=False``; failed trials resume with
        ``resume_errored`` or start over with ``restart_errored``.
        """
        path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if not cls.can_restore(path):
            raise ValueError(f"{path!r} does not hold an experiment to restore (no {TUNER_FILE} and {STATE_GLOB})")
        with open(os.path.join(path, TUNER_FILE), "rb") as f:
            saved = cloudpickle.load(f)
        run_config = copy.copy(saved["run_config"])
        run_config.name = os.path.basename(path)
        run_config.storage_path = os.path.dirname(path)
        tuner = cls(
            trainable,
            param_space=param_space if param_space is not None else saved["param_space"],
            tune_config=saved["tune_config"],
            run_config=run_config,
        )
        state, _ = load_state(path)
        flags = {
            "resume_unfinished": resume_unfinished,
            "resume_errored": resume_errored,
            "restart_errored": restart_errored,
        }
        tuner._restored = (state, flags)
        tuner._experiment_path = path
        return tuner

    # -- running ----------------------------------------------------------------------

    def _search_alg(self, tc: TuneConfig) -> SearchAlgorithm:
        alg = tc.search_alg
        if alg is None:
            # As in Ray: the default generator creates no trial while max_concurrent_trials are
            # live (running, paused or pending), so no trial waits behind the limit.
            return BasicVariantGenerator(max_concurrent=tc.max_concurrent_trials or 0)
        if isinstance(alg, SearchAlgorithm):
            return alg
        if isinstance(alg, Searcher):
            if tc.max_concurrent_trials and not alg.set_max_concurrency(tc.max_concurrent_trials):
                alg = ConcurrencyLimiter(alg, tc.max_concurrent_trials)
            return SearchGenerator(alg)
        raise TypeError(f"search_alg must be a Searcher or a SearchAlgorithm, got {alg!r}")

    def _setup_search(self, search_alg: SearchAlgorithm, scheduler: TrialScheduler, tc: TuneConfig) -> None:
        if not search_alg.set_search_properties(tc.metric, tc.mode, self._param_space):
            _, domains, _ = parse_spec_vars(self._param_space)
            if any(not d.is_function() for _, d in domains):
                raise ValueError(
                    "the search algorithm already has a search space and the Tuner's param_space has "
                    "search domains too: define the space in one place"
                )
        owner = type(search_alg.searcher if isinstance(search_alg, SearchGenerator) else search_alg).__name__
        if tc.metric and search_alg.metric and tc.metric != search_alg.metric:
            raise ValueError(f"TuneConfig(metric={tc.metric!r}) conflicts with {owner}'s metric {search_alg.metric!r}")
        if tc.mode and search_alg.mode and tc.mode != search_alg.mode:
            raise ValueError(f"TuneConfig(mode={tc.mode!r}) conflicts with {owner}'s mode {search_alg.mode!r}")
        if not scheduler.set_search_properties(tc.metric, tc.mode):
            raise ValueError(
                f"{type(scheduler).__name__} was created with a metric/mode different from TuneConfig's "
                f"({tc.metric!r}, {tc.mode!r}); set them in one place"
            )

    def fit(self) -> ResultGrid:
        """Run the experiment to the end and return its results.

        A trial that fails does not stop the others (see ``FailureConfig``);
        its error is in the :class:`ResultGrid`.
        """
        tc, rc = self._tune_config, self._run_config
        cc, fc = rc.checkpoint_config, rc.failure_config
        assert cc is not None and fc is not None
        class_trainable = not is_function_trainable(self._trainable)
        if not class_trainable and (cc.checkpoint_frequency or cc.checkpoint_at_end):
            raise ValueError(
                "checkpoint_frequency and checkpoint_at_end apply to Trainable classes only; a function "
                "trainable checkpoints by passing checkpoint= to tune.report()"
            )
        name = trainable_name(self._trainable)
        stamp = _timestamp()
        if self._experiment_path is None:
            storage = os.path.abspath(os.path.expanduser(os.fspath(rc.storage_path or DEFAULT_STORAGE_PATH)))
            self._experiment_path = os.path.join(storage, rc.name or f"{name}_{stamp}")
        path = self._experiment_path
        os.makedirs(path, exist_ok=True)
        capacity = _capacity()
        check_capacity(capacity)

        if self._restored is None:
            search_alg = self._search_alg(tc)
            scheduler = tc.scheduler if tc.scheduler is not None else FIFOScheduler()
            if not isinstance(scheduler, TrialScheduler):
                raise TypeError(f"scheduler must be a TrialScheduler, got {scheduler!r}")
            self._setup_search(search_alg, scheduler, tc)
            search_alg._configure(self._param_space, tc.num_samples)
            stopper = as_stopper(rc.stop)
            id_prefix = os.urandom(3).hex()[:5]
            experiment_date = stamp
            self._write_tuner_file(path)
        else:
            state = self._restored[0]
            search_alg, scheduler, stopper = state["search_alg"], state["scheduler"], state["stopper"]
            id_prefix, experiment_date = state["id_prefix"], state["experiment_date"]

        metric = tc.metric or search_alg.metric or scheduler.metric
        mode = tc.mode or search_alg.mode or scheduler.mode
        slots = int(capacity.get("CPU", 1))
        max_pending = max(16, int(slots * 1.1)) if isinstance(search_alg, BasicVariantGenerator) else 1
        trainable = self._trainable
        settings = ControllerSettings(
            trainable_name=name,
            experiment_path=path,
            id_prefix=id_prefix,
            capacity=capacity,
            resources_for=lambda config: resolve_resources(trainable, config),
            start_time=time.time(),
            metric=metric,
            mode=mode,
            max_concurrent=tc.max_concurrent_trials,
            max_pending=max_pending,
            stopper=stopper,
            max_failures=fc.max_failures,
            fail_fast=fc.fail_fast,
            time_budget_s=tc.time_budget_s,  # type: ignore[arg-type]
            checkpoint_frequency=cc.checkpoint_frequency,
            checkpoint_at_end=bool(cc.checkpoint_at_end),
            class_trainable=class_trainable,
            num_to_keep=cc.num_to_keep,
            checkpoint_score_attribute=cc.checkpoint_score_attribute,
            checkpoint_score_order=cc.checkpoint_score_order,
            trial_name_creator=tc.trial_name_creator,
            trial_dirname_creator=tc.trial_dirname_creator,
            experiment_date=experiment_date,
        )
        controller = TrialController(search_alg, scheduler, settings)
        if self._restored is not None:
            state, flags = self._restored
            controller._trials = list(state["trials"])
            controller._live = {t.trial_id: t for t in controller._trials if not t.is_finished()}
            controller._counter = state["counter"]
            controller._runs = dict(state["runs"])
            controller.prepare_resume(**flags)
        callbacks = list(rc.callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be tune.Callback instances, got {cb!r}")
        runner = TrialRunner(
            controller,
            self._trainable,
            experiment_name=os.path.basename(path),
            experiment_path=path,
            state_file=os.path.join(path, f"experiment_state-{stamp}.json"),
            state_extra={"id_prefix": id_prefix, "experiment_date": experiment_date, "num_samples": tc.num_samples},
            callbacks=callbacks,
            verbose=1 if rc.verbose is None else rc.verbose,
            reuse_actors=True if tc.reuse_actors is None else tc.reuse_actors,
            stopper=stopper,
        )
        runner.run()
        self._restored = None
        self._results = ResultGrid(controller.trials, path, metric, mode)
        if controller.fail_error is not None:
            raise controller.fail_error
        return self._results

    def _write_tuner_file(self, path: str) -> None:
        saved = {
            "param_space": self._param_space,
            "tune_config": self._tune_config,
            "run_config": self._run_config,
        }
        try:
            data = cloudpickle.dumps(saved)
        except Exception as e:  # noqa: BLE001 - restore will say what is missing
            logger.warning("could not save %s (Tuner.restore will not work): %s", TUNER_FILE, e)
            return
        write_atomic(os.path.join(path, TUNER_FILE), data)

    def get_results(self) -> ResultGrid:
        """The results of the last ``fit()``, or of a restored experiment without running it."""
        if self._results is not None:
            return self._results
        if self._restored is not None:
            trials: list[Trial] = list(self._restored[0]["trials"])
            tc = self._tune_config
            return ResultGrid(trials, self._experiment_path or "", tc.metric, tc.mode)
        raise TuneError("no results yet: call fit() first")
