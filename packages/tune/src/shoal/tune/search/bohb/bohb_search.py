"""BOHB's model-based proposer: :class:`TuneBOHB` (use it with ``HyperBandForBOHB``).

BOHB (Falkner et al., 2018) keeps, per budget (training iterations), the
losses of the configs evaluated there. For a new config it takes the largest
budget with enough observations, splits them into a good and a bad set, fits
a kernel density estimate to each, draws candidates around good configs and
keeps the one with the highest ratio ``l(x) / g(x)``; a fixed fraction of
configs is drawn at random so every region stays reachable.

Configs live in a unit cube: floats and ints are scaled (log-scaled for log
domains) to ``[0, 1]``; categories are indices with an Aitchison-Aitken kernel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shoal.tune.search.sample import (
    Categorical,
    Domain,
    Float,
    Integer,
    LogUniform,
    Normal,
    Quantized,
)
from shoal.tune.search.searcher import Searcher
from shoal.tune.search.variant_generator import Path, flatten_dict, parse_spec_vars

__all__ = ["TuneBOHB"]

_DEFAULTS = {
    "min_points_in_model": None,  # None: number of dimensions + 1
    "top_n_percent": 15,
    "num_samples": 64,
    "random_fraction": 1 / 3,
    "bandwidth_factor": 3.0,
    "min_bandwidth": 1e-3,
}


class _Dim:
    """One search variable mapped to [0, 1] (continuous) or to category indices."""

    def __init__(self, path: Path, domain: Domain) -> None:
        self.path = path
        self.domain = domain
        sampler = domain.get_sampler()
        self.q = sampler.q if isinstance(sampler, Quantized) else None
        inner = sampler.sampler if isinstance(sampler, Quantized) else sampler
        self.log = isinstance(inner, LogUniform)
        self.categorical = isinstance(domain, Categorical)
        self.n_categories = len(domain.categories) if isinstance(domain, Categorical) else 0
        if isinstance(domain, (Float, Integer)):
            lo, hi = float(domain.lower), float(domain.upper)
            if isinstance(inner, Normal):
                # Unbounded normal domains: model the central +-4 sd.
                lo = max(lo, inner.mean - 4 * inner.sd)
                hi = min(hi, inner.mean + 4 * inner.sd)
            if isinstance(domain, Integer) and (self.q is None or self.q == 1):
                hi = hi - 1 + 0.999  # ints in [lower, upper): the last one gets a full unit of room
            self.lo = math.log(lo) if self.log else lo
            self.hi = math.log(hi) if self.log else hi

    def encode(self, value: Any) -> float:
        if self.categorical:
            return float(self.domain.categories.index(value))  # type: ignore[attr-defined]
        v = math.log(value) if self.log else float(value)
        return 0.5 if self.hi == self.lo else min(max((v - self.lo) / (self.hi - self.lo), 0.0), 1.0)

    def decode(self, x: float) -> Any:
        if self.categorical:
            return self.domain.categories[int(x)]  # type: ignore[attr-defined]
        v = self.lo + float(x) * (self.hi - self.lo)
        if self.log:
            v = math.exp(v)
        if self.q is not None:
            v = round(v / self.q) * self.q
        domain = self.domain
        if isinstance(domain, Integer):
            v = math.floor(v) if self.q in (None, 1) else round(v)
            return min(max(v, domain.lower), domain.upper - (1 if self.q in (None, 1) else 0))
        assert isinstance(domain, Float)
        return float(min(max(v, domain.lower), domain.upper))


class TuneBOHB(Searcher):
    """BOHB's KDE proposer over HyperBand budgets; pair it with ``HyperBandForBOHB``.

    ``space`` is a dict of tune domains (None: use the Tuner's param_space).
    ``bohb_config`` overrides the model settings: ``min_points_in_model``,
    ``top_n_percent`` (15), ``num_samples`` (64 candidates), ``random_fraction``
    (1/3), ``bandwidth_factor`` (3), ``min_bandwidth`` (1e-3).
    """

    def __init__(
        self,
        space: dict[str, Any] | None = None,
        bohb_config: dict[str, Any] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        seed: int | None = None,
        max_concurrent: int = 0,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        unknown = set(bohb_config or {}) - set(_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown bohb_config keys: {sorted(unknown)} (known: {sorted(_DEFAULTS)})")
        self._cfg = {**_DEFAULTS, **(bohb_config or {})}
        self._rng = np.random.default_rng(seed)
        self._points = [dict(p) for p in (points_to_evaluate or [])]
        self._max_concurrent = max_concurrent
        self._dims: list[_Dim] = []
        self._space: dict[str, Any] | None = None
        self._live: dict[str, np.ndarray] = {}
        self._paused: set[str] = set()
        # budget -> {trial_id: (vector, loss)}; one entry per trial and budget, the latest wins.
        self._obs: dict[float, dict[str, tuple[np.ndarray, float]]] = {}
        if space is not None:
            self._set_space(space)

    def _set_space(self, space: dict[str, Any]) -> None:
        _, domains, grids = parse_spec_vars(space)
        if grids:
            raise ValueError("TuneBOHB does not take grid_search; use BasicVariantGenerator for grids")
        self._dims = [_Dim(p, d) for p, d in domains if not d.is_function()]
        if not self._dims:
            raise ValueError("TuneBOHB has no search space: pass `space=` or put tune domains in param_space")
        self._space = space

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        if self._space is not None:
            return False
        super().set_search_properties(metric, mode, config)
        self._set_space(config)
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self._max_concurrent = max_concurrent
        return True

    # -- proposing -----------------------------------------------------------

    def _min_points(self) -> int:
        configured = self._cfg["min_points_in_model"]
        return int(configured) if configured is not None else len(self._dims) + 1

    def _model_budget(self) -> float | None:
        # The largest budget with enough observations for two KDEs (good and bad).
        need = self._min_points() + 2
        usable = [b for b, obs in self._obs.items() if len(obs) >= need]
        return max(usable) if usable else None

    def _random_vector(self) -> np.ndarray:
        x = np.empty(len(self._dims))
        for i, d in enumerate(self._dims):
            x[i] = self._rng.integers(0, d.n_categories) if d.categorical else self._rng.uniform()
        return x

    def _bandwidths(self, data: np.ndarray) -> np.ndarray:
        n = max(len(data), 1)
        bw = np.empty(data.shape[1])
        for i, d in enumerate(self._dims):
            if d.categorical:
                # Fraction of points that differ from the most common value, scaled like a bandwidth.
                counts = np.bincount(data[:, i].astype(int), minlength=d.n_categories)
                bw[i] = min(0.5, max(self._cfg["min_bandwidth"], 1.0 - counts.max() / n))
            else:
                std = float(np.std(data[:, i]))
                bw[i] = max(self._cfg["min_bandwidth"], 1.06 * std * n ** (-1 / 5))
        return bw

    def _density(self, x: np.ndarray, data: np.ndarray, bw: np.ndarray) -> np.ndarray:
        """Product-kernel KDE of ``data`` evaluated at each row of ``x``."""
        dens = np.ones((x.shape[0], data.shape[0]))
        for i, d in enumerate(self._dims):
            xi = x[:, i][:, None]
            di = data[:, i][None, :]
            if d.categorical:
                other = bw[i] / max(d.n_categories - 1, 1)
                dens *= np.where(xi == di, 1.0 - bw[i], other)
            else:
                dens *= np.exp(-0.5 * ((xi - di) / bw[i]) ** 2) / bw[i]
        return dens.mean(axis=1) + 1e-32

    def _model_vector(self, budget: float) -> np.ndarray:
        obs = list(self._obs[budget].values())
        vectors = np.array([v for v, _ in obs])
        losses = np.array([loss for _, loss in obs])
        order = np.argsort(losses)
        n = len(obs)
        n_min = self._min_points()
        n_good = max(n_min, math.floor(self._cfg["top_n_percent"] * n / 100))
        n_bad = max(n_min, n - n_good)
        good = vectors[order[:n_good]]
        bad = vectors[order[-n_bad:]]
        bw_good = self._bandwidths(good)
        bw_bad = self._bandwidths(bad)
        k = int(self._cfg["num_samples"])
        centers = good[self._rng.integers(0, len(good), size=k)]
        candidates = centers.copy()
        factor = float(self._cfg["bandwidth_factor"])
        for i, d in enumerate(self._dims):
            if d.categorical:
                flip = self._rng.uniform(size=k) < min(1.0, bw_good[i] * factor)
                candidates[flip, i] = self._rng.integers(0, d.n_categories, size=int(flip.sum()))
            else:
                noise = self._rng.normal(0.0, bw_good[i] * factor, size=k)
                candidates[:, i] = np.clip(centers[:, i] + noise, 0.0, 1.0)
        ratio = self._density(candidates, good, bw_good) / self._density(candidates, bad, bw_bad)
        return candidates[int(np.argmax(ratio))]

    def _vector_to_config(self, x: np.ndarray) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for i, d in enumerate(self._dims):
            node = config
            for key in d.path[:-1]:
                node = node.setdefault(key, {})
            node[d.path[-1]] = d.decode(x[i])
        return config

    def _config_to_vector(self, config: dict[str, Any]) -> np.ndarray:
        flat = flatten_dict(config)
        return np.array([d.encode(flat["/".join(map(str, d.path))]) for d in self._dims])

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._space is None:
            raise RuntimeError("TuneBOHB has no space yet: pass `space=` or use it through the Tuner")
        if self._metric is None or self._mode is None:
            raise RuntimeError("TuneBOHB needs a metric and a mode (pass them here or to TuneConfig)")
        if self._max_concurrent and len(self._live) - len(self._paused) >= self._max_concurrent:
            return None
        if self._points:
            # Values a point leaves out are drawn at random, as BasicVariantGenerator does.
            flat = flatten_dict(self._vector_to_config(self._random_vector()))
            flat.update(flatten_dict(self._points.pop(0)))
            config: dict[str, Any] = {}
            for path, value in flat.items():
                node = config
                parts = path.split("/")
                for key in parts[:-1]:
                    node = node.setdefault(key, {})
                node[parts[-1]] = value
            x = self._config_to_vector(config)
        else:
            budget = self._model_budget()
            if budget is None or self._rng.uniform() < self._cfg["random_fraction"]:
                x = self._random_vector()
            else:
                x = self._model_vector(budget)
            config = self._vector_to_config(x)
            x = self._config_to_vector(config)  # the model sees the rounded values it proposed
        self._live[trial_id] = x
        return config

    # -- learning -------------------------------------------------------------

    def _record(self, trial_id: str, result: dict[str, Any]) -> None:
        x = self._live.get(trial_id)
        if x is None or self._metric not in result:
            return
        value = result[self._metric]
        if not isinstance(value, (int, float)) or math.isnan(value):
            return
        info = result.get("hyperband_info") or {}
        budget = info.get("budget", result.get("training_iteration"))
        if budget is None:
            return
        loss = float(value) if self._mode == "min" else -float(value)
        self._obs.setdefault(float(budget), {})[trial_id] = (x, loss)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._record(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if result is not None and not error:
            self._record(trial_id, result)
        self._live.pop(trial_id, None)
        self._paused.discard(trial_id)

    def on_pause(self, trial_id: str) -> None:
        self._paused.add(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self._paused.discard(trial_id)
