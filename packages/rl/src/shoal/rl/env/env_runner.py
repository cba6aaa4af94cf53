"""SingleAgentEnvRunner: steps a set of gymnasium environments with the current policy.

One runner owns ``num_envs`` environments and steps them in lockstep, so the
policy runs once per step on a batch of ``num_envs`` observations. It lives
in the driver (``num_env_runners=0``) or as an actor; the algorithm sends it
the module's weights with each ``sample`` call and gets back time-major numpy
arrays of shape ``[T, num_envs, ...]`` plus the episodes that finished.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoal.rl.core.columns import Columns
from shoal.rl.core.rl_module import RLModule, RLModuleSpec
from shoal.rl.env.env_context import EnvContext
from shoal.rl.env.registry import EnvCreator
from shoal.rl.env.spaces import ActionAdapter, ObsPreprocessor

__all__ = ["EnvRunnerSpec", "SingleAgentEnvRunner"]


@dataclass
class EnvRunnerSpec:
    """Everything an env runner needs, sent once to its constructor."""

    env_creator: EnvCreator
    module_spec: RLModuleSpec
    env_config: dict[str, Any] = field(default_factory=dict)
    num_envs: int = 1
    num_workers: int = 0
    seed: int | None = None
    normalize_actions: bool = True
    clip_actions: bool = False
    clip_rewards: bool | float | None = None
    # DQN stores the observation after each step; PPO the value of it.
    record_next_obs: bool = False
    compute_bootstrap_values: bool = False
    # The driver's pid: a runner in the driver process leaves torch's thread settings alone.
    driver_pid: int = 0
    # Seeds of sub-environment i are derived from seed_offset + i.
    seed_offset: int = 0


class SingleAgentEnvRunner:
    """Collects experience from ``spec.num_envs`` copies of the environment.

    ``worker_index`` is 0 for the runner in the driver and 1..N for remote
    ones; ``restarts`` counts how often this runner slot was recreated after
    a failure (it changes the seeds so a replacement does not replay the
    episodes of the runner it replaces).
    """

    def __init__(self, spec: EnvRunnerSpec, worker_index: int = 0, restarts: int = 0) -> None:
        import torch

        if os.getpid() != spec.driver_pid:
            # A runner process steps small batches: one thread avoids oversubscribing the cores.
            torch.set_num_threads(1)
        self.spec = spec
        self.worker_index = worker_index
        self.restarts = restarts
        self.num_envs = spec.num_envs
        ctx = EnvContext(
            spec.env_config,
            worker_index=worker_index,
            remote=worker_index > 0,
            num_workers=spec.num_workers,
            recreated_worker=restarts > 0,
        )
        self.envs = [spec.env_creator(ctx.copy_with_overrides(vector_index=i)) for i in range(self.num_envs)]
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.module: RLModule = spec.module_spec.build()
        self.module.eval()
        self.weights_seq_no = -1
        self._prep = ObsPreprocessor(self.observation_space)
        self._actions = ActionAdapter(self.action_space, spec.normalize_actions, spec.clip_actions)
        seed_parts = [spec.seed, worker_index, restarts] if spec.seed is not None else None
        self.rng = np.random.default_rng(seed_parts)
        self._obs: np.ndarray | None = None
        self._ep_return = np.zeros(self.num_envs, dtype=np.float64)
        self._ep_len = np.zeros(self.num_envs, dtype=np.int64)
        self._ep_start = np.zeros(self.num_envs, dtype=np.float64)
        self.num_env_steps_sampled_lifetime = 0
        self.num_episodes_lifetime = 0

    # -- helpers ---------------------------------------------------------------

    def _env_seed(self, i: int) -> int | None:
        if self.spec.seed is None:
            return None
        return (self.spec.seed + self.spec.seed_offset + 1000 * self.worker_index + 100_003 * self.restarts + i) % (
            2**31
        )

    def _reset_all(self) -> np.ndarray:
        raw = [env.reset(seed=self._env_seed(i))[0] for i, env in enumerate(self.envs)]
        self._ep_return[:] = 0.0
        self._ep_len[:] = 0
        self._ep_start[:] = time.perf_counter()
        return self._prep(raw)

    def _clip_reward(self, r: float) -> float:
        clip = self.spec.clip_rewards
        if clip is None or clip is False:
            return r
        if clip is True:
            return float(np.sign(r))
        return float(min(max(r, -clip), clip))

    def set_weights(self, weights: dict[str, Any] | None) -> None:
        """Load ``{"seq_no": n, "state": module_state}`` unless version ``n`` is already loaded."""
        if weights is None:
            return
        seq_no = int(weights.get("seq_no", -1))
        if seq_no >= 0 and seq_no == self.weights_seq_no:
            return
        self.module.set_state(weights["state"])
        self.weights_seq_no = seq_no

    # -- sampling ------------------------------------------------------------

    def sample(
        self,
        weights: dict[str, Any] | None = None,
        num_timesteps: int | None = None,
        explore: bool = True,
        **action_kwargs: Any,
    ) -> dict[str, Any]:
        """Step every env ``ceil(num_timesteps / num_envs)`` times (default once) and return the data.

        Episodes continue across calls (``truncate_episodes`` batch mode).
        Returns ``{"batch": {column: [T, num_envs, ...] array}, "episodes":
        {"returns", "lengths", "durations"}, "num_env_steps", "timers", ...}``.
        """
        self.set_weights(weights)
        t0 = time.perf_counter()
        steps = max(1, math.ceil((num_timesteps or self.num_envs) / self.num_envs))
        n = self.num_envs
        if self._obs is None:
            self._obs = self._reset_all()
        obs_buf = np.empty((steps, n, self._prep.dim), dtype=np.float32)
        rew_buf = np.empty((steps, n), dtype=np.float32)
        term_buf = np.zeros((steps, n), dtype=bool)
        trunc_buf = np.zeros((steps, n), dtype=bool)
        next_obs_buf = np.empty_like(obs_buf) if self.spec.record_next_obs else None
        act_buf: np.ndarray | None = None
        extra_bufs: dict[str, np.ndarray] = {}
        # (t, i, final observation) of truncated steps, whose value PPO bootstraps from.
        truncated_obs: list[tuple[int, int, Any]] = []
        ep_returns: list[float] = []
        ep_lens: list[int] = []
        ep_durations: list[float] = []
        infer_time = 0.0
        env_time = 0.0
        obs = self._obs
        for t in range(steps):
            obs_buf[t] = obs
            ti = time.perf_counter()
            actions, extras = self.module.sample_actions(obs, explore, self.rng, **action_kwargs)
            infer_time += time.perf_counter() - ti
            if act_buf is None:
                act_buf = np.empty((steps, *actions.shape), dtype=actions.dtype)
                for k, v in extras.items():
                    extra_bufs[k] = np.empty((steps, *v.shape), dtype=v.dtype)
            act_buf[t] = actions
            for k, v in extras.items():
                extra_bufs[k][t] = v
            te = time.perf_counter()
            env_actions = self._actions.to_env(actions)
            raw_next: list[Any] = []
            for i, env in enumerate(self.envs):
                o, r, terminated, truncated, _ = env.step(env_actions[i])
                r = self._clip_reward(float(r))
                rew_buf[t, i] = r
                self._ep_return[i] += r
                self._ep_len[i] += 1
                if terminated or truncated:
                    term_buf[t, i] = terminated
                    trunc_buf[t, i] = truncated and not terminated
                    ep_returns.append(float(self._ep_return[i]))
                    ep_lens.append(int(self._ep_len[i]))
                    now = time.perf_counter()
                    ep_durations.append(now - self._ep_start[i])
                    self._ep_return[i] = 0.0
                    self._ep_len[i] = 0
                    self._ep_start[i] = now
                    if trunc_buf[t, i] and self.spec.compute_bootstrap_values:
                        truncated_obs.append((t, i, o))
                    if next_obs_buf is not None:
                        next_obs_buf[t, i] = self._prep([o])[0]
                    o, _ = env.reset()
                raw_next.append(o)
            env_time += time.perf_counter() - te
            obs = self._prep(raw_next)
            if next_obs_buf is not None:
                done = term_buf[t] | trunc_buf[t]
                next_obs_buf[t, ~done] = obs[~done]
        self._obs = obs
        assert act_buf is not None
        batch: dict[str, np.ndarray] = {
            Columns.OBS: obs_buf,
            Columns.ACTIONS: act_buf,
            Columns.REWARDS: rew_buf,
            Columns.TERMINATEDS: term_buf,
            Columns.TRUNCATEDS: trunc_buf,
            **extra_bufs,
        }
        if next_obs_buf is not None:
            batch[Columns.NEXT_OBS] = next_obs_buf
        if self.spec.compute_bootstrap_values:
            batch[Columns.NEXT_VF_PREDS] = self._next_values(batch, obs, truncated_obs)
        num_steps = steps * n
        self.num_env_steps_sampled_lifetime += num_steps
        self.num_episodes_lifetime += len(ep_returns)
        return {
            "batch": batch,
            "episodes": {"returns": ep_returns, "lengths": ep_lens, "durations": ep_durations},
            "num_env_steps": num_steps,
            "worker_index": self.worker_index,
            "weights_seq_no": self.weights_seq_no,
            "timers": {
                "sample": time.perf_counter() - t0,
                "env_step_timer": env_time / num_steps,
                "rlmodule_inference_timer": infer_time / steps,
            },
        }

    def _next_values(self, batch: dict[str, np.ndarray], last_obs: np.ndarray, truncated_obs: list[Any]) -> np.ndarray:
        """Value of the observation that follows each step: 0 after termination, V(final obs) after truncation."""
        vf = batch[Columns.VF_PREDS]
        steps = vf.shape[0]
        extra_obs = [last_obs]
        if truncated_obs:
            extra_obs.append(self._prep([o for _, _, o in truncated_obs]))
        values = self.module.compute_values(np.concatenate(extra_obs))
        nxt = np.empty_like(vf)
        nxt[:-1] = vf[1:]
        nxt[steps - 1] = values[: self.num_envs]
        for k, (t, i, _) in enumerate(truncated_obs):
            nxt[t, i] = values[self.num_envs + k]
        nxt[batch[Columns.TERMINATEDS]] = 0.0
        return nxt

    def sample_episodes(
        self,
        weights: dict[str, Any] | None = None,
        num_episodes: int | None = None,
        num_timesteps: int | None = None,
        explore: bool = False,
        **action_kwargs: Any,
    ) -> dict[str, Any]:
        """Run fresh episodes: ``num_episodes`` whole ones, or as many as end within ``num_timesteps``.

        Used for evaluation. Envs are reset first and, when counting
        episodes, no more than ``num_episodes`` are started, so short
        episodes are not favoured.
        """
        if (num_episodes is None) == (num_timesteps is None):
            raise ValueError("pass exactly one of num_episodes and num_timesteps")
        self.set_weights(weights)
        t0 = time.perf_counter()
        obs = self._reset_all()
        self._obs = None  # training sampling starts fresh after an evaluation
        n = self.num_envs
        active = np.ones(n, dtype=bool)
        started = n
        if num_episodes is not None:
            active[num_episodes:] = False
            started = min(n, num_episodes)
        ep_returns: list[float] = []
        ep_lens: list[int] = []
        ep_durations: list[float] = []
        steps = 0
        while active.any():
            if num_timesteps is not None and steps >= num_timesteps:
                break
            idx = np.flatnonzero(active)
            actions, _ = self.module.sample_actions(obs[idx], explore, self.rng, **action_kwargs)
            env_actions = self._actions.to_env(actions)
            for j, i in enumerate(idx):
                o, r, terminated, truncated, _ = self.envs[i].step(env_actions[j])
                steps += 1
                self._ep_return[i] += self._clip_reward(float(r))
                self._ep_len[i] += 1
                if terminated or truncated:
                    ep_returns.append(float(self._ep_return[i]))
                    ep_lens.append(int(self._ep_len[i]))
                    now = time.perf_counter()
                    ep_durations.append(now - self._ep_start[i])
                    self._ep_return[i] = 0.0
                    self._ep_len[i] = 0
                    self._ep_start[i] = now
                    if num_episodes is not None and started >= num_episodes:
                        active[i] = False
                        continue
                    started += 1
                    o, _ = self.envs[i].reset()
                obs[i] = self._prep([o])[0]
        return {
            "episodes": {"returns": ep_returns, "lengths": ep_lens, "durations": ep_durations},
            "num_env_steps": steps,
            "worker_index": self.worker_index,
            "weights_seq_no": self.weights_seq_no,
            "timers": {"sample": time.perf_counter() - t0},
        }

    # -- misc ----------------------------------------------------------------

    def get_spaces(self) -> tuple[Any, Any]:
        return self.observation_space, self.action_space

    def ping(self) -> str:
        return "pong"

    def apply(self, func: Any) -> Any:
        """``func(self)``: run code against this runner in its process."""
        return func(self)

    def stop(self) -> None:
        """Close the environments."""
        for env in self.envs:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - a failing close must not mask shutdown
                pass
        self.envs = []
