"""Small environments for the tests, pickled by value so worker processes need not import this file."""

from __future__ import annotations

import sys
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
from gymnasium import spaces

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class FailingCartPole(gym.Env):
    """CartPole that raises on step ``fail_at`` of its first incarnation (or always with ``always``)."""

    def __init__(self, config: Any) -> None:
        self._env = gym.make("CartPole-v1")
        self.observation_space = self._env.observation_space
        self.action_space = self._env.action_space
        self._fail = config.get("always", False) or not getattr(config, "recreated_worker", False)
        self._fail_at = config.get("fail_at", 30)
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        return self._env.reset(seed=seed)

    def step(self, action: Any) -> Any:
        self._steps += 1
        if self._fail and self._steps >= self._fail_at:
            raise RuntimeError("simulated env crash")
        return self._env.step(action)


class CountingEnv(gym.Env):
    """Observation is the step count; reward 1 per step; terminates at ``terminate_at``, truncates at ``limit``."""

    def __init__(self, config: Any = None) -> None:
        config = config or {}
        self.observation_space = spaces.Box(0.0, 1000.0, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.terminate_at = config.get("terminate_at", 10**9)
        self.limit = config.get("limit", 5)
        self.t = 0
        self.worker_index = getattr(config, "worker_index", None)
        self.vector_index = getattr(config, "vector_index", None)

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action: Any) -> Any:
        self.t += 1
        obs = np.array([float(self.t)], np.float32)
        return obs, 1.0, self.t >= self.terminate_at, self.t >= self.limit, {}


class DictObsEnv(gym.Env):
    observation_space = spaces.Dict({"a": spaces.Box(0, 1, (2,))})
    action_space = spaces.Discrete(2)

    def __init__(self, config: Any = None) -> None:
        pass


class BrokenEnv(gym.Env):
    def __init__(self, config: Any = None) -> None:
        raise OSError("cannot open the simulator")
