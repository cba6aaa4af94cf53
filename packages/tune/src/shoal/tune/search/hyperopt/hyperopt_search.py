"""HyperOpt's TPE as a searcher: :class:`HyperOptSearch`.

hyperopt has no ask/tell object, but its pieces give one: a ``Trials``
history, a ``Domain`` over the space, and ``tpe.suggest`` which turns the
history into new trial documents. ``suggest`` inserts a new document (ask);
``on_trial_complete`` writes the loss into it (tell).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hyperopt import STATUS_FAIL, STATUS_OK, Domain, Trials, base, hp, space_eval, tpe
from hyperopt.fmin import generate_trial

from shoal.tune.search.sample import Categorical, Float, Integer, LogUniform, Normal, Quantized, Uniform
from shoal.tune.search.searcher import Searcher
from shoal.tune.search.variant_generator import flatten_dict, parse_spec_vars, unflatten_dict

__all__ = ["HyperOptSearch"]


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _to_hp(name: str, domain: Any) -> Any:
    sampler = domain.get_sampler()
    q = None
    if isinstance(sampler, Quantized):
        q = sampler.q
        sampler = sampler.sampler
    if isinstance(domain, Categorical):
        return hp.choice(name, domain.categories)
    if isinstance(domain, Float):
        if isinstance(sampler, Uniform):
            return (
                hp.quniform(name, domain.lower, domain.upper, q) if q else hp.uniform(name, domain.lower, domain.upper)
            )
        if isinstance(sampler, LogUniform):
            lo, hi = math.log(domain.lower), math.log(domain.upper)
            return hp.qloguniform(name, lo, hi, q) if q else hp.loguniform(name, lo, hi)
        if isinstance(sampler, Normal):
            return hp.qnormal(name, sampler.mean, sampler.sd, q) if q else hp.normal(name, sampler.mean, sampler.sd)
    if isinstance(domain, Integer):
        if isinstance(sampler, Uniform):
            if q is None or q == 1:
                return hp.uniformint(name, domain.lower, domain.upper - 1)
            return hp.quniform(name, -(-domain.lower // q) * q, (domain.upper // q) * q, q)
        if isinstance(sampler, LogUniform):
            # qloguniform rounds to multiples of q; the upper bound stays exclusive for q == 1.
            step = q or 1
            hi = domain.upper - 1 if step == 1 else domain.upper
            return hp.qloguniform(name, math.log(domain.lower), math.log(hi), step)
    raise ValueError(f"HyperOptSearch cannot translate {name!r} ({domain!r})")


class HyperOptSearch(Searcher):
    """Propose configs with hyperopt's Tree-structured Parzen Estimator.

    ``space`` is a dict of tune domains or a hyperopt space (``hp.*``
    expressions); leave it None to translate the Tuner's ``param_space``.
    The first ``n_initial_points`` configs are random; ``gamma`` is TPE's
    good/bad split; ``points_to_evaluate`` (complete configs) run first.
    """

    def __init__(
        self,
        space: dict[str, Any] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        n_initial_points: int = 20,
        random_state_seed: int | None = None,
        gamma: float = 0.25,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        if isinstance(n_initial_points, bool) or not isinstance(n_initial_points, int) or n_initial_points < 0:
            raise ValueError(f"n_initial_points must be an integer >= 0, got {n_initial_points!r}")
        if not 0 < gamma < 1:
            raise ValueError(f"gamma must be in (0, 1), got {gamma!r}")
        self._n_initial = n_initial_points
        self._gamma = gamma
        self._rng = np.random.default_rng(random_state_seed)
        self._points = [dict(p) for p in (points_to_evaluate or [])]
        self._space: Any = None
        self._int_names: set[str] = set()
        self._categories: dict[str, list[Any]] = {}
        self._domain: Domain | None = None
        self._trials = Trials()
        self._live: dict[str, int] = {}
        if space is not None:
            self._set_space(space)

    def _set_space(self, space: dict[str, Any]) -> None:
        if not isinstance(space, dict):
            raise TypeError(f"space must be a dict, got {space!r}")
        _, domains, grids = parse_spec_vars(space)
        if grids:
            raise ValueError("HyperOptSearch does not take grid_search; use BasicVariantGenerator for grids")
        if domains:
            hp_space = {}
            for path, domain in domains:
                if domain.is_function():
                    continue
                name = "/".join(map(str, path))
                hp_space[name] = _to_hp(name, domain)
                if isinstance(domain, Integer):
                    self._int_names.add(name)
                if isinstance(domain, Categorical):
                    self._categories[name] = list(domain.categories)
            self._space = hp_space
        else:
            self._space = space  # already a hyperopt space
        self._domain = Domain(lambda _spec: 0, self._space)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        if self._space is not None:
            return False
        super().set_search_properties(metric, mode, config)
        if not any(not d.is_function() for _, d in parse_spec_vars(config)[1]):
            raise ValueError("HyperOptSearch has no search space: pass `space=` or put tune domains in param_space")
        self._set_space(config)
        return True

    def _point_doc(self, tid: int, point: dict[str, Any]) -> dict[str, Any]:
        flat = flatten_dict(point)
        values = {}
        for name, value in flat.items():
            if name in self._categories:
                # hyperopt records a choice as the index of the chosen category.
                values[name] = self._categories[name].index(value)
            else:
                values[name] = value
        return generate_trial(tid, values)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._domain is None:
            raise RuntimeError("HyperOptSearch has no space yet: pass `space=` or use it through the Tuner")
        if self._metric is None or self._mode is None:
            raise RuntimeError("HyperOptSearch needs a metric and a mode (pass them here or to TuneConfig)")
        tid = self._trials.new_trial_ids(1)[0]
        if self._points:
            doc = self._point_doc(tid, self._points.pop(0))
        else:
            seed = int(self._rng.integers(0, 2**31 - 1))
            docs = tpe.suggest(
                [tid],
                self._domain,
                self._trials,
                seed,
                n_startup_jobs=self._n_initial,
                gamma=self._gamma,
                verbose=False,
            )
            doc = docs[0]
        doc["state"] = base.JOB_STATE_RUNNING
        self._trials.insert_trial_docs([doc])
        self._trials.refresh()
        self._live[trial_id] = tid
        values = base.spec_from_misc(doc["misc"])
        config = _plain(space_eval(self._space, values))
        if isinstance(config, dict):
            config = {k: round(v) if k in self._int_names else v for k, v in config.items()}
        return unflatten_dict(config) if isinstance(config, dict) else config

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        tid = self._live.pop(trial_id, None)
        if tid is None:
            return
        doc = next(d for d in self._trials.trials if d["tid"] == tid)
        value = None if result is None or error or self._metric is None else result.get(self._metric)
        if value is None or not isinstance(value, (int, float)) or math.isnan(value):
            doc["state"] = base.JOB_STATE_ERROR
            doc["result"] = {"status": STATUS_FAIL}
        else:
            loss = float(value) if self._mode == "min" else -float(value)
            doc["state"] = base.JOB_STATE_DONE
            doc["result"] = {"loss": loss, "status": STATUS_OK}
        self._trials.refresh()
