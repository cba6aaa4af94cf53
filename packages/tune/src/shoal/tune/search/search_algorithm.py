"""What the trial controller asks for new configurations: :class:`SearchAlgorithm`.

Two kinds exist, as in Ray Tune: :class:`~shoal.tune.search.BasicVariantGenerator`
(random and grid search, counts ``num_samples`` itself) and
:class:`SearchGenerator`, which wraps any :class:`~shoal.tune.search.Searcher`
(Optuna, HyperOpt, BOHB, your own) and turns its suggestions into full configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal.tune.search.searcher import Searcher
from shoal.tune.search.variant_generator import Path, flatten_dict, parse_spec_vars, resolve

__all__ = ["SearchAlgorithm", "SearchGenerator", "Suggestion"]


@dataclass
class Suggestion:
    """A concrete config and the values chosen for its search variables (for the trial's name)."""

    config: dict[str, Any]
    chosen: dict[Path, Any]


class SearchAlgorithm:
    """Proposes configurations for new trials and hears how they went."""

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        """Take the Tuner's metric, mode and param space; False if they cannot be used."""
        return True

    def _configure(self, param_space: dict[str, Any], num_samples: int) -> None:
        """Receive the param space and the number of samples (-1: no limit) before the first call."""
        raise NotImplementedError

    def next_config(self, trial_id: str) -> Suggestion | None:
        """A config for the trial ``trial_id``, or None when there is none to give right now."""
        raise NotImplementedError

    def is_finished(self) -> bool:
        """True when no more configurations will come."""
        raise NotImplementedError

    def set_finished(self) -> None:
        raise NotImplementedError

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        pass

    def on_pause(self, trial_id: str) -> None:
        pass

    def on_unpause(self, trial_id: str) -> None:
        pass

    @property
    def total_samples(self) -> int:
        """Trials created so far."""
        raise NotImplementedError

    @property
    def metric(self) -> str | None:
        return None

    @property
    def mode(self) -> str | None:
        return None


def _deep_update(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v


_MISSING = object()


def _lookup(suggestion: dict[str, Any], path: Path) -> Any:
    node: Any = suggestion
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        else:
            flat = "/".join(map(str, path))
            return suggestion.get(flat, _MISSING) if isinstance(suggestion, dict) else _MISSING
    return node


class SearchGenerator(SearchAlgorithm):
    """Wraps a :class:`Searcher`: asks it for each trial and merges its answer into the param space."""

    def __init__(self, searcher: Searcher) -> None:
        if not isinstance(searcher, Searcher):
            raise TypeError(f"searcher must be a shoal.tune.search.Searcher, got {searcher!r}")
        self.searcher = searcher
        self._space: dict[str, Any] = {}
        self._num_samples = 1
        self._counter = 0
        self._finished = False

    @property
    def metric(self) -> str | None:
        return self.searcher.metric

    @property
    def mode(self) -> str | None:
        return self.searcher.mode

    def _check_no_grids(self, param_space: dict[str, Any]) -> None:
        _, _, grids = parse_spec_vars(param_space)
        if grids:
            names = ", ".join("/".join(map(str, p)) for p, _ in grids)
            raise ValueError(
                f"grid_search ({names}) cannot be used with {type(self.searcher).__name__}: "
                "grid search needs BasicVariantGenerator (the default search algorithm)"
            )

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        self._check_no_grids(config)
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def _configure(self, param_space: dict[str, Any], num_samples: int) -> None:
        self._check_no_grids(param_space)
        self._space = param_space
        self._num_samples = num_samples

    def next_config(self, trial_id: str) -> Suggestion | None:
        if self._finished:
            return None
        if self._num_samples >= 0 and self._counter >= self._num_samples:
            self._finished = True
            return None
        suggestion = self.searcher.suggest(trial_id)
        if suggestion == Searcher.FINISHED:
            self._finished = True
            return None
        if suggestion is None:
            return None
        if not isinstance(suggestion, dict):
            raise TypeError(f"{type(self.searcher).__name__}.suggest returned {suggestion!r}, not a dict")
        _, domains, _ = parse_spec_vars(self._space)
        sampled = {}
        for path, _domain in domains:
            value = _lookup(suggestion, path)
            if value is not _MISSING:
                sampled[path] = value
        config, chosen = resolve(self._space, sampled=sampled)
        _deep_update(config, _nested(suggestion))
        for key, value in flatten_dict(_nested(suggestion)).items():
            chosen.setdefault(tuple(key.split("/")), value)
        self._counter += 1
        return Suggestion(config, chosen)

    def is_finished(self) -> bool:
        if self._num_samples >= 0 and self._counter >= self._num_samples:
            self._finished = True
        return self._finished

    def set_finished(self) -> None:
        self._finished = True

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def on_pause(self, trial_id: str) -> None:
        self.searcher.on_pause(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self.searcher.on_unpause(trial_id)

    @property
    def total_samples(self) -> int:
        return self._counter


def _nested(suggestion: dict[str, Any]) -> dict[str, Any]:
    """Searchers may answer with ``"a/b"`` keys; turn those into nested dicts."""
    out: dict[str, Any] = {}
    for k, v in suggestion.items():
        if isinstance(k, str) and "/" in k:
            parts = k.split("/")
            node = out
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = v
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            _deep_update(out[k], v)
        else:
            out[k] = v
    return out
