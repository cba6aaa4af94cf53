"""Turning time-major fragments ``[T, num_envs]`` into training data: GAE advantages and n-step returns."""

from __future__ import annotations

import numpy as np

from shoal.rl.core.columns import Columns

__all__ = ["compute_gae", "flatten_time_major", "n_step_transitions"]


def compute_gae(
    rewards: np.ndarray,
    vf_preds: np.ndarray,
    next_vf_preds: np.ndarray,
    terminateds: np.ndarray,
    truncateds: np.ndarray,
    gamma: float,
    lambda_: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimates and value targets for arrays of shape ``[T, num_envs]``.

    ``next_vf_preds[t]`` is the value of the observation after step ``t``: 0
    when the episode terminated there, the value of the final observation
    when it was truncated, the value of the next step's observation otherwise.
    The recursion stops at every episode end.
    """
    deltas = rewards + gamma * next_vf_preds - vf_preds
    keep = gamma * lambda_ * (1.0 - (terminateds | truncateds).astype(np.float32))
    advantages = np.empty_like(deltas)
    running = np.zeros(deltas.shape[1:], dtype=deltas.dtype)
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + keep[t] * running
        advantages[t] = running
    return advantages, advantages + vf_preds


def n_step_transitions(batch: dict[str, np.ndarray], n_step: int, gamma: float) -> dict[str, np.ndarray]:
    """Flat ``(obs, action, n-step return, obs n steps later, terminated, gamma**k)`` transitions.

    ``batch`` is a fragment of shape ``[T, num_envs, ...]`` with ``new_obs``.
    Each transition sums up to ``n_step`` rewards, stopping at the end of
    its episode or of the fragment; ``discounts`` is ``gamma ** k`` for the
    ``k`` steps it used, the factor on the bootstrap value.
    """
    rewards = batch[Columns.REWARDS]
    term = batch[Columns.TERMINATEDS]
    done = term | batch[Columns.TRUNCATEDS]
    steps, n = rewards.shape
    t_idx = np.broadcast_to(np.arange(steps)[:, None], (steps, n))
    env_idx = np.broadcast_to(np.arange(n)[None, :], (steps, n))
    ret = np.zeros((steps, n), dtype=np.float32)
    disc = np.ones((steps, n), dtype=np.float32)
    last = t_idx.copy()
    alive = np.ones((steps, n), dtype=bool)
    for k in range(n_step):
        tk = t_idx + k
        use = alive & (tk < steps)
        tk_c = np.minimum(tk, steps - 1)
        ret = np.where(use, ret + disc * rewards[tk_c, env_idx], ret)
        disc = np.where(use, disc * gamma, disc)
        last = np.where(use, tk_c, last)
        alive = use & ~done[tk_c, env_idx]
    out = {
        Columns.OBS: batch[Columns.OBS],
        Columns.ACTIONS: batch[Columns.ACTIONS],
        Columns.REWARDS: ret,
        Columns.NEXT_OBS: batch[Columns.NEXT_OBS][last, env_idx],
        Columns.TERMINATEDS: term[last, env_idx],
        Columns.DISCOUNTS: disc,
    }
    return flatten_time_major(out)


def flatten_time_major(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Merge the leading ``[T, num_envs]`` axes of every column into one batch axis."""
    return {k: v.reshape(v.shape[0] * v.shape[1], *v.shape[2:]) for k, v in batch.items()}
