"""Population based training: :class:`PopulationBasedTraining`.

PBT (Jaderberg et al., 2017) trains a population of trials and, every
``perturbation_interval`` units of ``time_attr``, replaces each trial in the
bottom quantile by a copy of a trial in the top quantile (*exploit*: it
restarts from the donor's latest checkpoint) with mutated hyperparameters
(*explore*: resampled with ``resample_probability``, otherwise multiplied by
one of ``perturbation_factors``, or moved to a neighbouring list value).

Trainables must checkpoint for PBT to work: function trainables report a
checkpoint (at least at every perturbation), class trainables implement
``save_checkpoint``/``load_checkpoint`` (tune saves top-quantile trials).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
from collections.abc import Callable
from typing import Any

from shoal.tune.experiment.trial import Trial
from shoal.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler
from shoal.tune.search.sample import Domain, Float, Integer

__all__ = ["PopulationBasedTraining"]


class _State:
    __slots__ = ("last_perturbation_time", "last_score", "last_train_time")

    def __init__(self) -> None:
        self.last_score: float | None = None
        self.last_perturbation_time = 0.0
        self.last_train_time = 0.0


def _clip(domain: Domain, value: Any) -> Any:
    if isinstance(domain, Integer):
        return int(min(max(int(value), domain.lower), domain.upper - 1))
    if isinstance(domain, Float):
        return float(min(max(value, domain.lower), domain.upper))
    return value


def explore(
    config: dict[str, Any],
    mutations: dict[str, Any],
    resample_probability: float,
    perturbation_factors: tuple[float, ...],
    rng: random.Random,
) -> dict[str, Any]:
    """A mutated copy of ``config``: each key in ``mutations`` is resampled or perturbed."""
    new = copy.deepcopy(config)
    for key, spec in mutations.items():
        current = config.get(key)
        resample = rng.random() < resample_probability
        if isinstance(spec, dict):
            new[key] = explore(current or {}, spec, resample_probability, perturbation_factors, rng)
        elif isinstance(spec, (list, tuple)):
            values = list(spec)
            if resample or current not in values:
                new[key] = rng.choice(values)
            else:
                index = values.index(current) + rng.choice((-1, 1))
                new[key] = values[min(max(index, 0), len(values) - 1)]
        elif isinstance(spec, Domain):
            if resample or not isinstance(current, (int, float)):
                new[key] = spec.sample(random_state=rng.randrange(2**31))
            else:
                new[key] = _clip(spec, current * rng.choice(perturbation_factors))
        elif callable(spec):
            if resample or not isinstance(current, (int, float)):
                new[key] = spec()
            else:
                value = current * rng.choice(perturbation_factors)
                new[key] = int(value) if isinstance(current, int) and not isinstance(current, bool) else value
        else:
            raise TypeError(
                f"hyperparam_mutations[{key!r}] must be a list, a dict, a tune domain or a function, got {spec!r}"
            )
    return new


class PopulationBasedTraining(FIFOScheduler):
    """Asynchronous PBT: bottom-quantile trials copy a top-quantile trial and perturb its config."""

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        perturbation_interval: float = 60.0,
        burn_in_period: float = 0.0,
        hyperparam_mutations: dict[str, Any] | None = None,
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        perturbation_factors: tuple[float, float] = (1.2, 0.8),
        custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        log_config: bool = True,
        require_attrs: bool = True,
        synch: bool = False,
        seed: int | None = None,
    ) -> None:
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not perturbation_interval > 0:
            raise ValueError(f"perturbation_interval must be > 0, got {perturbation_interval!r}")
        if not 0 <= quantile_fraction <= 0.5:
            raise ValueError(f"quantile_fraction must be in [0, 0.5], got {quantile_fraction!r}")
        if not 0 <= resample_probability <= 1:
            raise ValueError(f"resample_probability must be in [0, 1], got {resample_probability!r}")
        if not hyperparam_mutations and custom_explore_fn is None:
            raise ValueError("PopulationBasedTraining needs hyperparam_mutations or a custom_explore_fn")
        if synch:
            raise ValueError("synch=True (synchronous PBT) is not supported by shoal.tune; use synch=False")
        self._time_attr = time_attr
        self._metric = metric
        self._mode = mode
        self._interval = perturbation_interval
        self._burn_in = burn_in_period
        self._mutations = dict(hyperparam_mutations or {})
        self._quantile = quantile_fraction
        self._resample = resample_probability
        self._factors = tuple(perturbation_factors)
        self._custom_explore = custom_explore_fn
        self._log_config = log_config
        self._require_attrs = require_attrs
        self._rng = random.Random(seed)
        self._state: dict[str, _State] = {}
        self._trials: dict[str, Trial] = {}
        self._num_perturbations = 0

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._require_metric()
        self._state[trial.trial_id] = _State()
        self._trials[trial.trial_id] = trial

    def _quantiles(self) -> tuple[list[Trial], list[Trial]]:
        scored = [(s.last_score, tid) for tid, s in self._state.items() if s.last_score is not None]
        scored.sort(key=lambda p: p[0])
        if len(scored) <= 1:
            return [], []
        n = math.ceil(len(scored) * self._quantile)
        n = min(n, len(scored) // 2)
        lower = [self._trials[tid] for _, tid in scored[:n]]
        upper = [self._trials[tid] for _, tid in scored[-n:]] if n else []
        return lower, upper

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        sign = self._require_metric()
        if self._time_attr not in result or self._metric not in result:
            if self._require_attrs:
                missing = [k for k in (self._time_attr, self._metric) if k not in result]
                raise ValueError(
                    f"PopulationBasedTraining needs {missing} in every result (or pass require_attrs=False)"
                )
            return TrialScheduler.CONTINUE
        state = self._state.setdefault(trial.trial_id, _State())
        self._trials[trial.trial_id] = trial
        t = float(result[self._time_attr])
        state.last_train_time = t
        if t < self._burn_in or t - state.last_perturbation_time < self._interval:
            return TrialScheduler.CONTINUE
        state.last_score = sign * float(result[self._metric])
        state.last_perturbation_time = t
        lower, upper = self._quantiles()
        if trial in upper:
            trial.save_requested = True  # keep a fresh checkpoint to donate
            return TrialScheduler.CONTINUE
        if trial not in lower:
            return TrialScheduler.CONTINUE
        donors = [d for d in upper if d.checkpoint is not None]
        if not donors:
            return TrialScheduler.CONTINUE
        donor = self._rng.choice(donors)
        self._exploit(tune_controller, trial, donor)
        return TrialScheduler.PAUSE

    def _exploit(self, tune_controller: Any, trial: Trial, donor: Trial) -> None:
        old_config = trial.config
        new_config = explore(donor.config, self._mutations, self._resample, self._factors, self._rng)
        if self._custom_explore is not None:
            new_config = self._custom_explore(new_config)
            if not isinstance(new_config, dict):
                raise TypeError(f"custom_explore_fn must return a dict, got {new_config!r}")
        checkpoint, counters = donor.restore_point()
        trial.exploit_from = (checkpoint, counters)
        trial.set_config(new_config)
        changes = ",".join(
            f"{k}={_fmt(new_config.get(k))}" for k in self._mutations if new_config.get(k) != donor.config.get(k)
        )
        base = trial.experiment_tag.split("@perturbed")[0]
        trial.set_experiment_tag(f"{base}@perturbed[{changes}]")
        state = self._state[trial.trial_id]
        state.last_score = self._state[donor.trial_id].last_score
        # The copy resumes at the donor's progress; the next perturbation counts from there.
        if self._time_attr == "training_iteration":
            state.last_perturbation_time = state.last_train_time = float(counters.get("iteration", 0))
        elif self._time_attr == "time_total_s":
            state.last_perturbation_time = state.last_train_time = float(counters.get("time_total", 0.0))
        self._num_perturbations += 1
        if self._log_config:
            self._log(tune_controller, trial, donor, old_config, new_config, counters)

    def _log(
        self,
        tune_controller: Any,
        trial: Trial,
        donor: Trial,
        old: dict[str, Any],
        new: dict[str, Any],
        counters: dict[str, Any],
    ) -> None:
        path = getattr(tune_controller, "experiment_path", None)
        if not path or not os.path.isdir(path):
            return
        row = [
            donor.trial_id,
            trial.trial_id,
            counters.get("iteration"),
            trial.last_result.get("training_iteration"),
            old,
            new,
        ]
        line = json.dumps(row, default=repr) + "\n"
        with open(os.path.join(path, "pbt_global.txt"), "a") as f:
            f.write(line)
        with open(os.path.join(path, f"pbt_policy_{trial.trial_id}.txt"), "a") as f:
            f.write(line)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        state = self._state.get(trial.trial_id)
        if state is not None and self._metric in result:
            state.last_score = self._require_metric() * float(result[self._metric])

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._state.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._state.pop(trial.trial_id, None)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        # The trial that lags furthest behind catches up first (pending trials count as time 0).
        best: Trial | None = None
        best_time = math.inf
        for trial in tune_controller.get_live_trials():
            if trial.status not in (Trial.PENDING, Trial.PAUSED):
                continue
            if not tune_controller.has_resources_for_trial(trial):
                continue
            state = self._state.get(trial.trial_id)
            t = state.last_train_time if state is not None else 0.0
            if t < best_time:
                best, best_time = trial, t
        return best

    def debug_string(self) -> str:
        return f"PopulationBasedTraining: {self._num_perturbations} perturbs"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
