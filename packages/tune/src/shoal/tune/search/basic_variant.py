"""Random and grid search: :class:`BasicVariantGenerator`, the default search algorithm."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from shoal.tune.search.sample import _rng
from shoal.tune.search.search_algorithm import SearchAlgorithm, Suggestion
from shoal.tune.search.variant_generator import (
    Path,
    assign_value,
    grid_combinations,
    parse_spec_vars,
    resolve,
)

__all__ = ["BasicVariantGenerator"]


def _points_paths(point: dict[str, Any], prefix: Path = ()) -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    for k, v in point.items():
        if isinstance(v, dict) and v and "grid_search" not in v:
            out.update(_points_paths(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v
    return out


class BasicVariantGenerator(SearchAlgorithm):
    """Draw ``num_samples`` configs at random; each is repeated for every grid-search combination.

    ``points_to_evaluate`` are partial configs tried first (each takes one of
    the samples; what they leave out is drawn as usual). With
    ``constant_grid_search=True`` one random draw is shared by every grid
    combination of a sample. ``max_concurrent`` (0: no limit) caps the live
    trials; ``random_state`` (a seed or numpy Generator) makes draws repeatable.
    """

    def __init__(
        self,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        max_concurrent: int = 0,
        constant_grid_search: bool = False,
        random_state: Any = None,
    ) -> None:
        if points_to_evaluate is not None and not (
            isinstance(points_to_evaluate, list) and all(isinstance(p, dict) for p in points_to_evaluate)
        ):
            raise TypeError(f"points_to_evaluate must be a list of dicts, got {points_to_evaluate!r}")
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 0:
            raise ValueError(f"max_concurrent must be an integer >= 0, got {max_concurrent!r}")
        self._points = [copy.deepcopy(p) for p in (points_to_evaluate or [])]
        self._max_concurrent = max_concurrent
        self._constant_grid_search = constant_grid_search
        self._rng: np.random.Generator = np.random.default_rng() if random_state is None else _rng(random_state)
        self._space: dict[str, Any] = {}
        self._num_samples = 1
        self._grids: list[tuple[Path, list[Any]]] = []
        # Position of the next variant: which sample, which grid combination within it.
        self._sample_index = 0
        self._grid_index = 0
        self._combos: list[tuple[Any, ...]] = [()]
        self._shared_draw: dict[Path, Any] | None = None
        self._created = 0
        self._live: set[str] = set()
        self._finished = False
        self._configured = False

    def _configure(self, param_space: dict[str, Any], num_samples: int) -> None:
        self._space = param_space
        self._num_samples = num_samples
        _, _, self._grids = parse_spec_vars(param_space)
        self._configured = True
        self._start_sample()

    def _start_sample(self) -> None:
        grids = self._grids
        if self._sample_index < len(self._points):
            fixed = _points_paths(self._points[self._sample_index])
            grids = [(p, v) for p, v in grids if p not in fixed]
        self._active_grids = grids
        self._combos = grid_combinations(grids)
        self._grid_index = 0
        self._shared_draw = None

    @property
    def total_samples(self) -> int:
        return self._created

    def is_finished(self) -> bool:
        return self._finished or (self._num_samples >= 0 and self._sample_index >= self._num_samples)

    def set_finished(self) -> None:
        self._finished = True

    def next_config(self, trial_id: str) -> Suggestion | None:
        if not self._configured:
            raise RuntimeError("BasicVariantGenerator used before the Tuner configured it")
        if self.is_finished():
            return None
        if self._max_concurrent and len(self._live) >= self._max_concurrent:
            return None
        point = _points_paths(self._points[self._sample_index]) if self._sample_index < len(self._points) else {}
        combo = self._combos[self._grid_index]
        sampled = dict(point)
        if self._constant_grid_search and self._shared_draw is not None:
            sampled.update({p: v for p, v in self._shared_draw.items() if p not in sampled})
        space = self._space
        if point:
            # A point may name values for grid paths too: those stop being grids for this sample.
            space = copy.deepcopy(self._space)
            for path, value in point.items():
                try:
                    assign_value(space, path, value)
                except (KeyError, IndexError, TypeError):
                    raise ValueError(
                        f"points_to_evaluate names {'/'.join(map(str, path))!r}, which is not in the param space"
                    ) from None
        config, chosen = resolve(space, combo, self._rng, sampled=sampled)
        for path in point:
            chosen.setdefault(path, point[path])
        if self._constant_grid_search and self._shared_draw is None:
            grid_paths = {p for p, _ in self._active_grids}
            self._shared_draw = {p: v for p, v in chosen.items() if p not in grid_paths}
        self._grid_index += 1
        if self._grid_index >= len(self._combos):
            self._sample_index += 1
            if not self.is_finished():
                self._start_sample()
        self._created += 1
        self._live.add(trial_id)
        return Suggestion(config, chosen)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self._live.discard(trial_id)
