"""What the algorithms accept as observation and action spaces, and how observations become tensors.

Observations: ``Box`` (any shape, flattened) and ``Discrete`` (one-hot).
Actions: ``Discrete`` and, for algorithms that say so, ``Box``. Anything else
is an :class:`~shoal.rl.errors.UnsupportedSpaceException` at build time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shoal.rl.errors import UnsupportedSpaceException

__all__ = [
    "ObsPreprocessor",
    "ActionAdapter",
    "check_action_space",
    "check_observation_space",
    "flat_obs_dim",
]


def check_observation_space(space: Any, algo_name: str) -> None:
    """Raise UnsupportedSpaceException unless ``space`` is a Box or Discrete space."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        if not np.issubdtype(space.dtype, np.number):
            raise UnsupportedSpaceException(f"{algo_name} needs a numeric Box observation space, got {space}")
        return
    if isinstance(space, spaces.Discrete):
        return
    raise UnsupportedSpaceException(
        f"{algo_name} does not support the observation space {space} ({type(space).__name__}); "
        "supported: gymnasium.spaces.Box and gymnasium.spaces.Discrete. Flatten it with a "
        "gymnasium wrapper such as FlattenObservation."
    )


def check_action_space(space: Any, algo_name: str, continuous: bool) -> None:
    """Raise UnsupportedSpaceException unless the algorithm can act in ``space``."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return
    if isinstance(space, spaces.Box):
        if continuous:
            return
        raise UnsupportedSpaceException(
            f"{algo_name} does not support continuous action spaces (got {space}); "
            "use an algorithm for continuous actions such as PPO, or discretize the actions."
        )
    kinds = "Discrete and Box" if continuous else "Discrete"
    raise UnsupportedSpaceException(
        f"{algo_name} does not support the action space {space} ({type(space).__name__}); supported: {kinds}."
    )


def flat_obs_dim(space: Any) -> int:
    """Length of the flat float vector an observation of ``space`` becomes."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return int(space.n)
    return int(np.prod(space.shape, dtype=np.int64))


class ObsPreprocessor:
    """Turns a batch of observations into a float32 array of shape ``[batch, flat_obs_dim]``."""

    def __init__(self, space: Any) -> None:
        from gymnasium import spaces

        self._discrete = isinstance(space, spaces.Discrete)
        self._start = int(getattr(space, "start", 0)) if self._discrete else 0
        self.dim = flat_obs_dim(space)

    def __call__(self, obs: Any) -> np.ndarray:
        if self._discrete:
            idx = np.asarray(obs, dtype=np.int64).reshape(-1) - self._start
            out = np.zeros((idx.shape[0], self.dim), dtype=np.float32)
            out[np.arange(idx.shape[0]), idx] = 1.0
            return out
        arr = np.asarray(obs, dtype=np.float32)
        return arr.reshape(arr.shape[0], self.dim) if arr.ndim else arr.reshape(1, self.dim)


class ActionAdapter:
    """Turns the policy's actions into what ``env.step`` takes.

    With ``normalize_actions`` the policy acts in [-1, 1] per dimension and the
    action is rescaled to the Box bounds (where both are finite); with
    ``clip_actions`` it is clipped to the bounds. Discrete actions become ints
    offset by the space's ``start``.
    """

    def __init__(self, space: Any, normalize_actions: bool = True, clip_actions: bool = False) -> None:
        from gymnasium import spaces

        self.discrete = isinstance(space, spaces.Discrete)
        if self.discrete:
            self._start = int(space.start)
            self.shape: tuple[int, ...] = ()
            self.dim = int(space.n)
            return
        self.shape = tuple(space.shape)
        self.dim = int(np.prod(self.shape, dtype=np.int64))
        self._low = np.asarray(space.low, dtype=np.float32).reshape(-1)
        self._high = np.asarray(space.high, dtype=np.float32).reshape(-1)
        self._dtype = space.dtype
        bounded = np.isfinite(self._low) & np.isfinite(self._high)
        self._rescale = normalize_actions and bool(bounded.all())
        self._clip = clip_actions or self._rescale

    def to_env(self, action: np.ndarray) -> list[Any]:
        """One env action per row of ``action``."""
        if self.discrete:
            return [int(a) + self._start for a in action]
        a = np.asarray(action, dtype=np.float32).reshape(-1, self.dim)
        if self._rescale:
            a = self._low + (np.clip(a, -1.0, 1.0) + 1.0) * 0.5 * (self._high - self._low)
        elif self._clip:
            a = np.clip(a, self._low, self._high)
        return [row.reshape(self.shape).astype(self._dtype, copy=False) for row in a]
