"""DQN: off-policy Q-learning from a replay buffer with a target network (Mnih et al., 2015).

With double Q (van Hasselt et al., 2016), dueling heads (Wang et al., 2016),
n-step returns, prioritized replay (Schaul et al., 2016) and an
epsilon-greedy schedule over sampled env steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shoal.rl.algorithms.algorithm import Algorithm
from shoal.rl.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from shoal.rl.algorithms.dqn.dqn_learner import DQNLearner
from shoal.rl.algorithms.dqn.dqn_rl_module import DQNTorchRLModule
from shoal.rl.utils.postprocessing import n_step_transitions
from shoal.rl.utils.replay_buffers import make_replay_buffer
from shoal.rl.utils.schedules import make_schedule

__all__ = ["DQN", "DQNConfig"]


class DQNConfig(AlgorithmConfig):
    """Settings of :class:`DQN`; defaults are RLlib's.

    >>> config = (
    ...     DQNConfig()
    ...     .environment("CartPole-v1")
    ...     .training(lr=1e-3, n_step=3, epsilon=[(0, 1.0), (10_000, 0.02)])
    ... )
    """

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        super().__init__(algo_class=algo_class or DQN)
        self.lr = 5e-4
        self.train_batch_size = 32
        self.grad_clip = 40.0
        self.min_sample_timesteps_per_iteration = 1000
        self.target_network_update_freq = 500
        self.replay_buffer_config: dict[str, Any] = {
            "type": "PrioritizedEpisodeReplayBuffer",
            "capacity": 50_000,
            "alpha": 0.6,
            "beta": 0.4,
        }
        self.store_buffer_in_checkpoints = False
        self.num_steps_sampled_before_learning_starts = 1000
        self.tau = 1.0
        self.double_q = True
        self.dueling = True
        self.n_step = 1
        self.epsilon: Any = [(0, 1.0), (10_000, 0.05)]
        self.training_intensity: float | None = None
        self.td_error_loss_fn = "huber"

    def training(
        self,
        *,
        target_network_update_freq: int = NotProvided,
        replay_buffer_config: dict[str, Any] = NotProvided,
        store_buffer_in_checkpoints: bool = NotProvided,
        num_steps_sampled_before_learning_starts: int = NotProvided,
        tau: float = NotProvided,
        double_q: bool = NotProvided,
        dueling: bool = NotProvided,
        n_step: int = NotProvided,
        epsilon: Any = NotProvided,
        training_intensity: float | None = NotProvided,
        td_error_loss_fn: str = NotProvided,
        **kwargs: Any,
    ) -> DQNConfig:
        """DQN's settings plus the common ones (``lr``, ``gamma``, ``train_batch_size``, ...).

        ``replay_buffer_config`` is merged into the current one (``type``:
        ``"PrioritizedEpisodeReplayBuffer"`` or ``"EpisodeReplayBuffer"``,
        ``capacity``, ``alpha``, ``beta``). ``target_network_update_freq``
        counts sampled env steps. ``epsilon`` is a number or a
        ``[(timestep, value), ...]`` schedule. ``training_intensity``: replayed
        rows per sampled step (None: one update per training step).
        """
        super().training(**kwargs)
        if replay_buffer_config is not NotProvided and isinstance(replay_buffer_config, dict):
            replay_buffer_config = {**self.replay_buffer_config, **replay_buffer_config}
        self._set(
            target_network_update_freq=target_network_update_freq,
            replay_buffer_config=replay_buffer_config,
            store_buffer_in_checkpoints=store_buffer_in_checkpoints,
            num_steps_sampled_before_learning_starts=num_steps_sampled_before_learning_starts,
            tau=tau,
            double_q=double_q,
            dueling=dueling,
            n_step=n_step,
            epsilon=epsilon,
            training_intensity=training_intensity,
            td_error_loss_fn=td_error_loss_fn,
        )
        return self

    def get_rollout_fragment_length(self, worker_index: int = 0) -> int:
        """``"auto"`` is one step per env: sample a little, learn a little."""
        if self.rollout_fragment_length == "auto":
            return 1
        return int(self.rollout_fragment_length)

    def validate(self) -> None:
        super().validate()
        self._check_int("target_network_update_freq", 1)
        self._check_int("num_steps_sampled_before_learning_starts", 0)
        self._check_int("n_step", 1)
        self._check_number("tau", 0, 1)
        if self.td_error_loss_fn not in ("huber", "mse"):
            raise ValueError(f"td_error_loss_fn must be 'huber' or 'mse', got {self.td_error_loss_fn!r}")
        if self.training_intensity is not None:
            self._check_number("training_intensity", 0)
        if not isinstance(self.replay_buffer_config, dict):
            raise TypeError(f"replay_buffer_config must be a dict, got {type(self.replay_buffer_config).__name__}")
        make_replay_buffer(self.replay_buffer_config)
        make_schedule(self.epsilon, "epsilon")


class DQN(Algorithm):
    """Deep Q-Network for Discrete action spaces."""

    config: DQNConfig
    learner_class = DQNLearner
    module_class = DQNTorchRLModule
    record_next_obs = True

    @classmethod
    def get_default_config(cls) -> DQNConfig:
        return DQNConfig(algo_class=cls)

    def module_model_config_extras(self, cfg: AlgorithmConfig) -> dict[str, Any]:
        assert isinstance(cfg, DQNConfig)
        return {"dueling": bool(cfg.dueling)}

    def setup_algorithm(self) -> None:
        cfg = self.config
        self.replay_buffer = make_replay_buffer(cfg.replay_buffer_config, None if cfg.seed is None else cfg.seed + 17)
        self._epsilon = make_schedule(cfg.epsilon, "epsilon")
        self._last_target_update = 0
        self._num_target_updates = 0
        self._update_credit = 0.0

    def _explore_kwargs(self, explore: bool) -> dict[str, Any]:
        if not explore:
            return {}
        return {"epsilon": self._epsilon(self._counters["num_env_steps_sampled_lifetime"])}

    def training_step(self) -> None:
        cfg = self.config
        assert self.env_runner_group is not None and self.learner_group is not None
        runners = max(1, cfg.num_env_runners)
        num_timesteps = cfg.get_rollout_fragment_length() * cfg.num_envs_per_env_runner * runners
        epsilon = self._epsilon(self._counters["num_env_steps_sampled_lifetime"])
        weights = self._runner_weights()
        with self._timer("env_runner_sampling_timer"):
            samples = self.env_runner_group.sample(weights, num_timesteps, explore=cfg.explore, epsilon=epsilon)
        sampled = self._record_samples(samples)
        with self._timer("replay_buffer_add_data_timer"):
            for s in samples:
                self.replay_buffer.add(n_step_transitions(s["batch"], cfg.n_step, cfg.gamma))
        lifetime = self._counters["num_env_steps_sampled_lifetime"]
        if lifetime < cfg.num_steps_sampled_before_learning_starts:
            return
        if cfg.training_intensity:
            self._update_credit += sampled * cfg.training_intensity / cfg.total_train_batch_size
        else:
            self._update_credit += 1.0
        num_updates = int(self._update_credit)
        self._update_credit -= num_updates
        for _ in range(num_updates):
            with self._timer("replay_buffer_sampling_timer"):
                batch, idx = self.replay_buffer.sample(cfg.total_train_batch_size)
            with self._timer("learner_update_timer"):
                metrics = self.learner_group.update(batch, timesteps=lifetime)
            with self._timer("replay_buffer_update_prios_timer"):
                self.replay_buffer.update_priorities(idx, np.asarray(metrics.pop("td_error")))
            self._record_learner(metrics, len(idx))
        if lifetime - self._last_target_update >= cfg.target_network_update_freq:
            self._num_target_updates = self.learner_group.call("update_target")
            self._last_target_update = lifetime
        if num_updates:
            self._weights_changed()

    def extra_learner_metrics(self) -> dict[str, Any]:
        return {
            "last_target_update_ts": self._last_target_update,
            "num_target_updates": self._num_target_updates,
            "curr_epsilon": self._epsilon(self._counters["num_env_steps_sampled_lifetime"]),
            "replay_buffer_size": len(self.replay_buffer),
        }

    def get_algorithm_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "last_target_update": self._last_target_update,
            "num_target_updates": self._num_target_updates,
            "update_credit": self._update_credit,
        }
        if self.config.store_buffer_in_checkpoints:
            state["replay_buffer"] = self.replay_buffer.get_state()
        return state

    def set_algorithm_state(self, state: dict[str, Any]) -> None:
        self._last_target_update = state.get("last_target_update", 0)
        self._num_target_updates = state.get("num_target_updates", 0)
        self._update_credit = state.get("update_credit", 0.0)
        if "replay_buffer" in state:
            self.replay_buffer.set_state(state["replay_buffer"])
