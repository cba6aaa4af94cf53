"""DQN: learning CartPole, epsilon schedule, target updates and the result layout."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from shoal.rl import Columns
from shoal.rl.algorithms.dqn import DQNConfig


def cartpole_config(seed: int = 0) -> DQNConfig:
    return (
        DQNConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=4)
        .training(
            lr=1e-3,
            train_batch_size=64,
            n_step=3,
            epsilon=[(0, 1.0), (10_000, 0.02)],
            target_network_update_freq=500,
            training_intensity=16,
        )
        .rl_module(model_config={"fcnet_hiddens": [64], "head_fcnet_hiddens": [64]})
        .learners(num_cpus_per_learner=1)
        .debugging(seed=seed)
    )


@pytest.mark.timeout(100)
def test_dqn_learns_cartpole(shoal_runtime) -> None:
    algo = cartpole_config().build_algo()
    try:
        start = time.monotonic()
        best = 0.0
        while time.monotonic() - start < 75:
            result = algo.train()
            best = max(best, result["env_runners"]["episode_return_mean"])
            if best >= 120:
                break
        assert best >= 120, f"mean return only reached {best}"
    finally:
        algo.stop()


def test_dqn_result_and_schedules(shoal_runtime) -> None:
    algo = (
        cartpole_config()
        .training(num_steps_sampled_before_learning_starts=200, target_network_update_freq=300)
        .reporting(min_sample_timesteps_per_iteration=500)
        .build_algo()
    )
    try:
        r1 = algo.train()
        r2 = algo.train()
    finally:
        algo.stop()
    # Each training step samples 4 envs x 4 steps; an iteration runs until 500 steps were sampled.
    assert r1["env_runners"]["num_env_steps_sampled"] == 512
    assert r1["num_training_step_calls_per_iteration"] == 32
    learner = r2["learners"]["default_policy"]
    assert math.isfinite(learner["qf_loss"]) and math.isfinite(learner["qf_mean"])
    # 1024 steps sampled, target updated every 300: at 304, 608 and 912.
    assert learner["num_target_updates"] == 3 and learner["last_target_update_ts"] == 912
    assert learner["curr_epsilon"] == pytest.approx(1.0 - 0.98 * 1024 / 10_000)
    assert r1["learners"]["default_policy"]["curr_epsilon"] > learner["curr_epsilon"]
    # Learning starts with the training step that passes 200 sampled steps (at 208); from then on each
    # step of 16 samples makes 16 * training_intensity 16 / batch 64 = 4 updates of 64 rows.
    steps_learning = (1024 - 208) // 16 + 1
    assert r2["learners"]["__all_modules__"]["num_env_steps_trained_lifetime"] == steps_learning * 4 * 64
    assert learner["replay_buffer_size"] == 1024
    assert {"replay_buffer_sampling_timer", "learner_update_timer"} <= set(r2["timers"])


def test_dqn_module_and_greedy_action(shoal_runtime) -> None:
    algo = cartpole_config().build_algo()
    try:
        module = algo.get_module()
        obs = np.array([0.0, 0.1, -0.1, 0.0], dtype=np.float32)
        with torch.no_grad():
            out = module.forward_inference({Columns.OBS: torch.from_numpy(obs[None])})
        assert out[Columns.ACTIONS].shape == (1,)
        assert algo.compute_single_action(obs, explore=False) == int(out[Columns.ACTIONS][0])
        assert int(out[Columns.ACTIONS][0]) == int(out[Columns.QF_PREDS][0].argmax())
    finally:
        algo.stop()


def test_dqn_without_dueling_or_double_q_and_uniform_replay(shoal_runtime) -> None:
    algo = (
        cartpole_config()
        .training(
            dueling=False,
            double_q=False,
            n_step=1,
            replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 1000},
            num_steps_sampled_before_learning_starts=100,
            td_error_loss_fn="mse",
        )
        .reporting(min_sample_timesteps_per_iteration=300)
        .build_algo()
    )
    try:
        assert algo.get_module().vf is None
        result = algo.train()
        assert math.isfinite(result["learners"]["default_policy"]["qf_loss"])
        assert result["learners"]["default_policy"]["replay_buffer_size"] == 304
    finally:
        algo.stop()


def test_seeded_dqn_runs_are_reproducible(shoal_runtime) -> None:
    def run(seed: int) -> tuple[list[float], dict[str, np.ndarray]]:
        algo = (
            cartpole_config(seed=seed)
            .env_runners(num_env_runners=1)
            .training(num_steps_sampled_before_learning_starts=64)
            .reporting(min_sample_timesteps_per_iteration=160)
            .build_algo()
        )
        try:
            returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(2)]
            return returns, algo.get_weights()
        finally:
            algo.stop()

    returns_a, weights_a = run(4)
    returns_b, weights_b = run(4)
    returns_c, weights_c = run(5)
    assert returns_a == returns_b
    assert all(np.array_equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert returns_a != returns_c
    assert not all(np.array_equal(weights_a[k], weights_c[k]) for k in weights_a)
