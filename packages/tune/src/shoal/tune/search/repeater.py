"""Evaluate each suggestion several times: :class:`Repeater`."""

from __future__ import annotations

import copy
import math
from typing import Any

from shoal.tune.search.searcher import Searcher

__all__ = ["Repeater", "TRIAL_INDEX"]

#: Config key that tells each repeat of a config which repeat it is.
TRIAL_INDEX = "__trial_index__"


class _Group:
    def __init__(self, primary: str, config: dict[str, Any], size: int) -> None:
        self.primary = primary
        self.config = config
        self.size = size
        self.members: list[str] = [primary]
        self.scores: dict[str, float | None] = {}

    def full(self) -> bool:
        return len(self.members) >= self.size

    def done(self) -> bool:
        return len(self.scores) >= self.size


class Repeater(Searcher):
    """Run every config of the wrapped searcher ``repeat`` times and tell it the mean score.

    Useful when trials are noisy (e.g. random seeds). With ``set_index=True``
    each repeat's config gets ``"__trial_index__"`` (0 .. repeat-1). Set the
    Tuner's ``num_samples`` to a multiple of ``repeat``.
    """

    def __init__(self, searcher: Searcher, repeat: int = 1, set_index: bool = True) -> None:
        if not isinstance(searcher, Searcher):
            raise TypeError(f"searcher must be a Searcher, got {searcher!r}")
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"repeat must be an integer >= 1, got {repeat!r}")
        self.searcher = searcher
        self.repeat = repeat
        self._set_index = set_index
        self._groups: list[_Group] = []
        self._trial_group: dict[str, _Group] = {}
        self._current: _Group | None = None
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    @property
    def metric(self) -> str | None:
        return self.searcher.metric

    @property
    def mode(self) -> str | None:
        return self.searcher.mode

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self._current is None or self._current.full():
            config = self.searcher.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return config
            assert isinstance(config, dict)
            self._current = _Group(trial_id, config, self.repeat)
            self._groups.append(self._current)
        else:
            self._current.members.append(trial_id)
        group = self._current
        self._trial_group[trial_id] = group
        config = copy.deepcopy(group.config)
        if self._set_index:
            config[TRIAL_INDEX] = group.members.index(trial_id)
        return config

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        group = self._trial_group.get(trial_id)
        if group is None:
            return
        score = None
        if result is not None and not error and self.metric in result:
            score = float(result[self.metric])
        group.scores[trial_id] = score
        if group.done():
            values = [s for s in group.scores.values() if s is not None]
            mean = math.fsum(values) / len(values) if values else None
            metric = self.metric or ""
            self.searcher.on_trial_complete(
                group.primary,
                result=None if mean is None else {metric: mean},
                error=mean is None,
            )
