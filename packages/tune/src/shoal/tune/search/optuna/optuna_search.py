"""Optuna as a searcher: :class:`OptunaSearch` proposes configs with ``study.ask`` / ``study.tell``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from shoal.tune.search.sample import (
    Categorical,
    Domain,
    Float,
    Integer,
    LogUniform,
    Quantized,
    Uniform,
)
from shoal.tune.search.searcher import Searcher
from shoal.tune.search.variant_generator import flatten_dict, parse_spec_vars, unflatten_dict

__all__ = ["OptunaSearch"]

_PRIMITIVE = (type(None), bool, int, float, str)


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    # study.tell logs every finished trial at INFO; keep it out of the user's terminal
    # without changing optuna's verbosity for the rest of the program.
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _to_distribution(name: str, domain: Domain) -> tuple[BaseDistribution, list[Any] | None]:
    """The optuna distribution for a domain, and the category list when values are mapped to indices."""
    sampler = domain.get_sampler()
    q = None
    if isinstance(sampler, Quantized):
        q = sampler.q
        sampler = sampler.sampler
    if isinstance(domain, Categorical):
        if all(isinstance(c, _PRIMITIVE) for c in domain.categories):
            return CategoricalDistribution(domain.categories), None
        # Optuna stores only primitives; propose an index and map it back.
        return CategoricalDistribution(list(range(len(domain.categories)))), list(domain.categories)
    if isinstance(domain, Float):
        log = isinstance(sampler, LogUniform)
        if not isinstance(sampler, (Uniform, LogUniform)):
            raise ValueError(f"OptunaSearch cannot translate {name!r}: {sampler} sampling has no optuna equivalent")
        if log and q is not None:
            raise ValueError(f"OptunaSearch cannot translate {name!r}: optuna has no quantized log-uniform floats")
        return FloatDistribution(domain.lower, domain.upper, log=log, step=q), None
    if isinstance(domain, Integer):
        log = isinstance(sampler, LogUniform)
        if log and q not in (None, 1):
            raise ValueError(f"OptunaSearch cannot translate {name!r}: optuna has no quantized log-uniform ints")
        if q is None or q == 1:
            # tune's integer domains exclude upper; optuna's include it.
            return IntDistribution(domain.lower, domain.upper - 1, log=log), None
        step = int(q)
        low = -(-domain.lower // step) * step
        high = (domain.upper // step) * step
        return IntDistribution(low, high, step=step), None
    raise ValueError(f"OptunaSearch cannot translate {name!r} ({domain!r})")


class OptunaSearch(Searcher):
    """Propose configs with an Optuna sampler (TPE by default; CMA-ES, GP, random... all work).

    ``space`` is a dict of tune domains or optuna distributions, or a
    define-by-run function ``space(trial)`` that calls ``trial.suggest_*``
    and may return a dict of constants; leave it None to translate the
    Tuner's ``param_space``. ``metric``/``mode`` may be lists for multi-
    objective studies. ``points_to_evaluate`` are enqueued first;
    ``evaluated_rewards`` (one per point) adds them as already evaluated.
    """

    def __init__(
        self,
        space: dict[str, Any] | Callable[[optuna.Trial], dict[str, Any] | None] | None = None,
        metric: str | list[str] | None = None,
        mode: str | list[str] | None = None,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        sampler: optuna.samplers.BaseSampler | None = None,
        seed: int | None = None,
        evaluated_rewards: list[Any] | None = None,
    ) -> None:
        if isinstance(mode, list):
            for m in mode:
                if m not in ("min", "max"):
                    raise ValueError(f"mode must be 'min' or 'max', got {m!r}")
            if not isinstance(metric, list) or len(metric) != len(mode):
                raise ValueError("a list of modes needs a list of metrics of the same length")
            self._metrics: list[str] | None = list(metric)
            self._modes: list[str] | None = list(mode)
            super().__init__(metric=metric[0], mode=mode[0])
        else:
            if isinstance(metric, list):
                raise ValueError("a list of metrics needs a list of modes of the same length")
            self._metrics = None
            self._modes = None
            super().__init__(metric=metric, mode=mode)
        if sampler is not None and seed is not None:
            raise ValueError("pass either a sampler or a seed to OptunaSearch, not both (seed the sampler)")
        if sampler is not None and not isinstance(sampler, optuna.samplers.BaseSampler):
            raise TypeError(f"sampler must be an optuna sampler, got {sampler!r}")
        if evaluated_rewards is not None and (
            points_to_evaluate is None or len(points_to_evaluate) != len(evaluated_rewards)
        ):
            raise ValueError("evaluated_rewards needs points_to_evaluate of the same length")
        self._sampler = sampler
        self._seed = seed
        self._points = list(points_to_evaluate or [])
        self._rewards = list(evaluated_rewards) if evaluated_rewards is not None else None
        self._define_by_run: Callable[..., Any] | None = None
        self._dists: dict[str, BaseDistribution] | None = None
        self._mapped: dict[str, list[Any]] = {}
        self._ot_trials: dict[str, optuna.trial.Trial] = {}
        self._study: optuna.Study | None = None
        if callable(space):
            self._define_by_run = space
        elif space is not None:
            self._set_space(space)
        if self._metric is not None and self._mode is not None and (self._dists is not None or self._define_by_run):
            self._setup_study()

    def _set_space(self, space: dict[str, Any]) -> None:
        if not isinstance(space, dict):
            raise TypeError(f"space must be a dict or a define-by-run function, got {space!r}")
        flat = flatten_dict(space)
        if flat and all(isinstance(v, BaseDistribution) for v in flat.values()):
            self._dists = dict(flat)
            return
        _, domains, grids = parse_spec_vars(space)
        if grids:
            raise ValueError("OptunaSearch does not take grid_search; use BasicVariantGenerator for grids")
        dists = {}
        for path, domain in domains:
            if domain.is_function():
                continue  # resolved by the Tuner after the suggestion
            name = "/".join(map(str, path))
            dist, mapped = _to_distribution(name, domain)
            dists[name] = dist
            if mapped is not None:
                self._mapped[name] = mapped
        self._dists = dists

    def _directions(self) -> list[optuna.study.StudyDirection]:
        modes = self._modes if self._modes is not None else [self._mode]
        return [
            optuna.study.StudyDirection.MINIMIZE if m == "min" else optuna.study.StudyDirection.MAXIMIZE for m in modes
        ]

    def _setup_study(self) -> None:
        sampler = self._sampler if self._sampler is not None else optuna.samplers.TPESampler(seed=self._seed)
        directions = self._directions()
        with _quiet_optuna():
            if len(directions) == 1:
                self._study = optuna.create_study(sampler=sampler, direction=directions[0])
            else:
                self._study = optuna.create_study(sampler=sampler, directions=directions)
            for i, point in enumerate(self._points):
                params = flatten_dict(point)
                params = {k: self._to_optuna_value(k, v) for k, v in params.items()}
                if self._rewards is None:
                    self._study.enqueue_trial(params)
                    continue
                assert self._dists is not None, "evaluated_rewards needs a dict space"
                reward = self._rewards[i]
                values = list(reward) if isinstance(reward, (list, tuple)) else [reward]
                self._study.add_trial(
                    optuna.trial.create_trial(
                        params=params,
                        distributions={k: self._dists[k] for k in params},
                        values=values,
                    )
                )

    def _to_optuna_value(self, name: str, value: Any) -> Any:
        mapped = self._mapped.get(name)
        return mapped.index(value) if mapped is not None else value

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        if self._study is not None:
            return False
        super().set_search_properties(metric, mode, config)
        if self._dists is None and self._define_by_run is None:
            _, domains, _ = parse_spec_vars(config)
            if not any(not d.is_function() for _, d in domains):
                raise ValueError("OptunaSearch has no search space: pass `space=` or put tune domains in param_space")
            self._set_space(config)
        elif self._dists is not None and any(not d.is_function() for _, d in parse_spec_vars(config)[1]):
            raise ValueError(
                "OptunaSearch got a `space` and the Tuner's param_space also has search domains: "
                "define the space in one place"
            )
        if self._metric is None or self._mode is None:
            raise ValueError("OptunaSearch needs a metric and a mode (pass them here or to TuneConfig)")
        self._setup_study()
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._study is None:
            raise RuntimeError(
                "OptunaSearch has no study yet: give it a space, metric and mode, or use it through the Tuner"
            )
        with _quiet_optuna():
            if self._define_by_run is not None:
                ot_trial = self._study.ask()
                constants = self._define_by_run(ot_trial) or {}
                if not isinstance(constants, dict):
                    raise TypeError(f"the define-by-run space returned {constants!r}, not a dict or None")
                params = {**ot_trial.params, **flatten_dict(constants)}
            else:
                assert self._dists is not None
                ot_trial = self._study.ask(fixed_distributions=self._dists)
                params = dict(ot_trial.params)
        self._ot_trials[trial_id] = ot_trial
        for name, mapped in self._mapped.items():
            if name in params:
                params[name] = mapped[params[name]]
        return unflatten_dict(params)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or self._metrics is not None:
            return  # optuna takes intermediate values for single-objective studies only
        value = result.get(self._metric) if self._metric else None
        step = result.get("training_iteration")
        if isinstance(value, (int, float)) and isinstance(step, int):
            with _quiet_optuna(), contextlib.suppress(NotImplementedError, ValueError):
                ot_trial.report(float(value), step)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.pop(trial_id, None)
        if ot_trial is None or self._study is None:
            return
        metrics = self._metrics if self._metrics is not None else [self._metric or ""]
        values = None
        if result is not None and not error and all(m in result for m in metrics):
            values = [float(result[m]) for m in metrics]
        with _quiet_optuna():
            if values is None:
                # As in Ray: a failed trial is FAIL; one that ended without the metric (stopped
                # before reporting it, or removed while pending or paused) is PRUNED.
                state = optuna.trial.TrialState.FAIL if error else optuna.trial.TrialState.PRUNED
                self._study.tell(ot_trial, state=state)
            else:
                self._study.tell(ot_trial, values if len(values) > 1 else values[0])

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        if self._study is None or self._dists is None:
            raise RuntimeError("add_evaluated_point needs OptunaSearch set up with a dict space, metric and mode")
        params = {k: self._to_optuna_value(k, v) for k, v in flatten_dict(parameters).items()}
        state = (
            optuna.trial.TrialState.FAIL
            if error
            else optuna.trial.TrialState.PRUNED
            if pruned
            else optuna.trial.TrialState.COMPLETE
        )
        trial = optuna.trial.create_trial(
            state=state,
            params=params,
            distributions={k: self._dists[k] for k in params},
            value=value if state == optuna.trial.TrialState.COMPLETE else None,
            intermediate_values=dict(enumerate(intermediate_values)) if intermediate_values else None,
        )
        self._study.add_trial(trial)

    @property
    def study(self) -> optuna.Study | None:
        """The optuna study behind the search (to inspect or plot)."""
        return self._study
