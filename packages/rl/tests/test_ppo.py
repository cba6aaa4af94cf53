"""PPO: learning CartPole, continuous actions, the result layout, evaluation, reproducibility."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from shoal.rl import Columns
from shoal.rl.algorithms.ppo import PPO, PPOConfig


def cartpole_config(num_env_runners: int = 1, seed: int | None = 0) -> PPOConfig:
    return (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=8)
        .training(
            lr=3e-4,
            train_batch_size=2000,
            minibatch_size=250,
            num_epochs=10,
            lambda_=0.95,
            vf_clip_param=1000.0,
        )
        .rl_module(model_config={"fcnet_hiddens": [64, 64], "vf_share_layers": False})
        # One torch thread: fastest for this network, and steady when other processes share the cores.
        .learners(num_cpus_per_learner=1)
        .debugging(seed=seed)
    )


@pytest.mark.timeout(90)
def test_ppo_learns_cartpole(shoal_runtime) -> None:
    algo = cartpole_config(num_env_runners=1).build_algo()
    try:
        start = time.monotonic()
        best = 0.0
        while time.monotonic() - start < 60:
            result = algo.train()
            best = max(best, result["env_runners"]["episode_return_mean"])
            if best >= 300:
                break
        # A random policy averages about 22.
        assert best >= 300, f"mean return only reached {best}"
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] <= 100_000
    finally:
        algo.stop()


def test_result_is_laid_out_like_rllib(shoal_runtime) -> None:
    algo = cartpole_config(num_env_runners=1).training(train_batch_size=400, minibatch_size=100).build_algo()
    try:
        r1 = algo.train()
        r2 = algo.train()
    finally:
        algo.stop()
    runners = r2["env_runners"]
    for key in ("episode_return_mean", "episode_return_max", "episode_return_min", "episode_len_mean"):
        assert math.isfinite(runners[key]), key
    assert runners["episode_return_min"] <= runners["episode_return_mean"] <= runners["episode_return_max"]
    # CartPole pays 1 per step, so return and length agree.
    assert runners["episode_return_mean"] == pytest.approx(runners["episode_len_mean"])
    assert runners["num_env_steps_sampled"] == 400
    assert runners["num_env_steps_sampled_lifetime"] == 800 == r2["num_env_steps_sampled_lifetime"]
    assert runners["num_episodes_lifetime"] == r1["env_runners"]["num_episodes"] + runners["num_episodes"]
    learner = r2["learners"]["default_policy"]
    for key in ("total_loss", "policy_loss", "vf_loss", "entropy", "mean_kl_loss", "curr_kl_coeff"):
        assert math.isfinite(learner[key]), key
    assert learner["default_optimizer_learning_rate"] == pytest.approx(3e-4)
    assert learner["num_trainable_parameters"] > 0
    assert r2["learners"]["__all_modules__"]["num_env_steps_trained_lifetime"] == 800
    assert {"training_iteration", "env_runner_sampling_timer", "learner_update_timer"} <= set(r2["timers"])
    assert (r1["training_iteration"], r2["training_iteration"]) == (1, 2)
    assert r2["time_total_s"] >= r2["time_this_iter_s"] > 0
    assert r2["config"]["lambda"] == 0.95
    assert r2["fault_tolerance"] == {"num_healthy_workers": 1, "num_remote_worker_restarts": 0}
    assert r2["done"] is False


def test_seeded_runs_are_reproducible(shoal_runtime) -> None:
    def run(seed: int) -> tuple[list[float], dict[str, np.ndarray]]:
        algo = (
            cartpole_config(num_env_runners=1, seed=seed)
            .training(train_batch_size=500, minibatch_size=100)
            .build_algo()
        )
        try:
            returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(2)]
            return returns, algo.get_weights()
        finally:
            algo.stop()

    returns_a, weights_a = run(11)
    returns_b, weights_b = run(11)
    returns_c, weights_c = run(12)
    assert returns_a == returns_b
    assert all(np.array_equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert returns_a != returns_c
    assert not all(np.array_equal(weights_a[k], weights_c[k]) for k in weights_a)


def test_module_inference_and_compute_single_action(shoal_runtime) -> None:
    algo = cartpole_config(num_env_runners=0).training(train_batch_size=200, minibatch_size=100).build_algo()
    try:
        algo.train()
        module = algo.get_module()
        obs = np.array([0.01, -0.02, 0.03, 0.04], dtype=np.float32)
        with torch.no_grad():
            out = module.forward_inference({Columns.OBS: torch.from_numpy(obs[None])})
        logits = out[Columns.ACTION_DIST_INPUTS]
        assert logits.shape == (1, 2)
        greedy = algo.compute_single_action(obs, explore=False)
        assert isinstance(greedy, int) and greedy == int(logits.argmax())
        explored = {algo.compute_single_action(obs, explore=True) for _ in range(50)}
        assert explored <= {0, 1}
    finally:
        algo.stop()


@pytest.mark.timeout(90)
def test_ppo_continuous_actions_on_pendulum(shoal_runtime) -> None:
    algo = (
        PPOConfig()
        .environment("Pendulum-v1")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=4)
        .training(lr=1e-3, train_batch_size=800, minibatch_size=200, num_epochs=2, gamma=0.95, lambda_=0.9)
        .rl_module(model_config={"fcnet_hiddens": [32, 32]})
        .debugging(seed=0)
        .build_algo()
    )
    try:
        result = algo.train()
        # Pendulum episodes are truncated at 200 steps; every reward is <= 0.
        assert result["env_runners"]["episode_len_mean"] == 200
        assert result["env_runners"]["episode_return_max"] <= 0
        assert math.isfinite(result["learners"]["default_policy"]["total_loss"])
        obs = np.array([1.0, 0.0, 0.0], dtype=np.float32)
        action = algo.compute_single_action(obs, explore=True)
        assert isinstance(action, np.ndarray) and action.shape == (1,) and -2.0 <= action[0] <= 2.0
        raw = algo.compute_single_action(obs, explore=False, unsquash_action=False)
        with torch.no_grad():
            dist_inputs = algo.get_module().forward_inference({Columns.OBS: torch.from_numpy(obs[None])})
        mean = dist_inputs[Columns.ACTION_DIST_INPUTS][0, :1].numpy()
        assert np.allclose(raw, mean, atol=1e-6)
    finally:
        algo.stop()


def test_evaluation_runs_whole_greedy_episodes(shoal_runtime) -> None:
    algo = (
        cartpole_config(num_env_runners=0)
        .training(train_batch_size=200, minibatch_size=100)
        .evaluation(evaluation_interval=2, evaluation_duration=3)
        .build_algo()
    )
    try:
        first = algo.train()
        second = algo.train()
        direct = algo.evaluate()
    finally:
        algo.stop()
    assert "evaluation" not in first
    ev = second["evaluation"]["env_runners"]
    assert ev["num_episodes"] == 3
    assert ev["num_env_steps_sampled"] == pytest.approx(3 * ev["episode_len_mean"])
    assert direct["env_runners"]["num_episodes"] == 3


def test_stop_is_idempotent_and_train_after_stop_fails(shoal_runtime) -> None:
    algo = cartpole_config(num_env_runners=1).training(train_batch_size=200, minibatch_size=100).build_algo()
    algo.stop()
    algo.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        algo.train()


def test_algorithm_accepts_a_dict_config_like_tune_passes(shoal_runtime) -> None:
    config = cartpole_config(num_env_runners=0).training(train_batch_size=200, minibatch_size=100).to_dict()
    algo = PPO(config=config)
    try:
        assert algo.config.train_batch_size == 200
        assert algo.train()["training_iteration"] == 1
    finally:
        algo.cleanup()


def test_learner_in_its_own_actor(shoal_runtime) -> None:
    algo = (
        cartpole_config(num_env_runners=0)
        .training(train_batch_size=200, minibatch_size=100)
        .learners(num_learners=1)
        .build_algo()
    )
    try:
        before = algo.get_weights()
        result = algo.train()
        after = algo.get_weights()
        assert result["learners"]["__all_modules__"]["num_env_steps_trained"] == 200
        assert not all(np.array_equal(before[k], after[k]) for k in before)
        # The driver's module copy follows the remote learner's weights.
        module_state = algo.get_module().get_state()
        assert all(np.array_equal(module_state[k], after[k]) for k in after)
        obs = np.zeros(4, dtype=np.float32)
        assert algo.compute_single_action(obs, explore=False) in (0, 1)
    finally:
        algo.stop()
