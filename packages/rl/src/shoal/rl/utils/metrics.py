"""Keys of the result dict, laid out like RLlib's new API stack, and the episode statistics window."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ENV_RUNNER_RESULTS",
    "EPISODE_LEN_MEAN",
    "EPISODE_RETURN_MAX",
    "EPISODE_RETURN_MEAN",
    "EPISODE_RETURN_MIN",
    "EVALUATION_RESULTS",
    "LEARNER_RESULTS",
    "NUM_ENV_STEPS_SAMPLED_LIFETIME",
    "EpisodeWindow",
]

ENV_RUNNER_RESULTS = "env_runners"
LEARNER_RESULTS = "learners"
EVALUATION_RESULTS = "evaluation"
TIMERS = "timers"
FAULT_TOLERANCE = "fault_tolerance"
ALL_MODULES = "__all_modules__"
EPISODE_RETURN_MEAN = "episode_return_mean"
EPISODE_RETURN_MAX = "episode_return_max"
EPISODE_RETURN_MIN = "episode_return_min"
EPISODE_LEN_MEAN = "episode_len_mean"
NUM_ENV_STEPS_SAMPLED = "num_env_steps_sampled"
NUM_ENV_STEPS_SAMPLED_LIFETIME = "num_env_steps_sampled_lifetime"
NUM_EPISODES = "num_episodes"
NUM_EPISODES_LIFETIME = "num_episodes_lifetime"


def _mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else math.nan


class EpisodeWindow:
    """Returns, lengths and durations of the last ``size`` finished episodes.

    Statistics are NaN until the first episode ends (RLlib leaves the keys
    out instead; NaN keeps the result's shape fixed for loggers and Tune).
    """

    def __init__(self, size: int = 100) -> None:
        self.returns: deque[float] = deque(maxlen=size)
        self.lengths: deque[int] = deque(maxlen=size)
        self.durations: deque[float] = deque(maxlen=size)

    def add(self, episodes: dict[str, list[Any]]) -> None:
        self.returns.extend(episodes["returns"])
        self.lengths.extend(episodes["lengths"])
        self.durations.extend(episodes["durations"])

    def stats(self) -> dict[str, float]:
        r, n = self.returns, self.lengths
        return {
            EPISODE_RETURN_MEAN: _mean(r),
            EPISODE_RETURN_MAX: max(r) if r else math.nan,
            EPISODE_RETURN_MIN: min(r) if r else math.nan,
            EPISODE_LEN_MEAN: _mean(n),
            "episode_len_max": max(n) if n else math.nan,
            "episode_len_min": min(n) if n else math.nan,
            "episode_duration_sec_mean": _mean(self.durations),
        }

    def get_state(self) -> dict[str, Any]:
        return {"returns": list(self.returns), "lengths": list(self.lengths), "durations": list(self.durations)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.returns.clear()
        self.lengths.clear()
        self.durations.clear()
        self.add(state)
