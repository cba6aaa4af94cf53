"""save / restore / from_checkpoint round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shoal.rl.algorithms import Algorithm, Checkpoint, TrainingResult
from shoal.rl.algorithms.dqn import DQN, DQNConfig
from shoal.rl.algorithms.ppo import PPO, PPOConfig


def ppo_config(seed: int = 0) -> PPOConfig:
    return (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=1, num_envs_per_env_runner=4)
        .training(train_batch_size=400, minibatch_size=100, num_epochs=2, lr=1e-3)
        .rl_module(model_config={"fcnet_hiddens": [32]})
        .debugging(seed=seed)
    )


def weights_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_save_and_from_checkpoint_round_trip(shoal_runtime, tmp_path: Path) -> None:
    algo = ppo_config().build_algo()
    try:
        algo.train()
        last = algo.train()
        saved = algo.save(tmp_path / "ckpt")
        weights = algo.get_weights()
        kl = algo.learner_group.get_state()["extra"]["kl_coeff"]
    finally:
        algo.stop()
    assert isinstance(saved, TrainingResult) and isinstance(saved.checkpoint, Checkpoint)
    assert saved.checkpoint.path == str(tmp_path / "ckpt")
    assert saved.metrics["training_iteration"] == 2
    meta = json.loads((tmp_path / "ckpt" / "shoal_rl_checkpoint.json").read_text())
    assert meta["algorithm"] == "PPO" and meta["training_iteration"] == 2

    restored = Algorithm.from_checkpoint(saved.checkpoint.path)
    try:
        assert type(restored) is PPO
        assert restored.iteration == 2
        assert restored.config.train_batch_size == 400 and restored.config.seed == 0
        assert weights_equal(restored.get_weights(), weights)
        assert restored.learner_group.get_state()["extra"]["kl_coeff"] == kl
        nxt = restored.train()
        assert nxt["training_iteration"] == 3
        assert nxt["env_runners"]["num_env_steps_sampled_lifetime"] == last["num_env_steps_sampled_lifetime"] + 400
        assert nxt["iterations_since_restore"] == 1
    finally:
        restored.stop()


def test_restore_into_a_running_algorithm(shoal_runtime, tmp_path: Path) -> None:
    source = ppo_config(seed=1).build_algo()
    try:
        source.train()
        path = source.save_to_path(tmp_path / "a")
        expected = source.get_weights()
        optimizer = source.learner_group.get_state()["optimizer"]
        counters = source.train()["env_runners"]["num_env_steps_sampled_lifetime"]
    finally:
        source.stop()
    target = ppo_config(seed=2).build_algo()
    try:
        target.train()
        target.train()
        target.restore(path)
        assert target.iteration == 1
        assert weights_equal(target.get_weights(), expected)
        # Adam's moments come back too, not only the weights.
        restored_opt = target.learner_group.get_state()["optimizer"]
        for slot, state in optimizer["state"].items():
            assert all(np.array_equal(np.asarray(state[k]), np.asarray(restored_opt["state"][slot][k])) for k in state)
        # Env state is not part of a checkpoint (as in RLlib): sampling resumes with fresh episodes.
        result = target.train()
        assert result["training_iteration"] == 2
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] == counters
    finally:
        target.stop()


def test_dqn_checkpoint_keeps_target_network_and_optionally_the_buffer(shoal_runtime, tmp_path: Path) -> None:
    cfg = (
        DQNConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=8)
        .training(num_steps_sampled_before_learning_starts=64, store_buffer_in_checkpoints=True)
        .reporting(min_sample_timesteps_per_iteration=256)
        .rl_module(model_config={"fcnet_hiddens": [16], "head_fcnet_hiddens": [16]})
        .debugging(seed=3)
    )
    algo = cfg.build_algo()
    try:
        algo.train()
        state = algo.learner_group.get_state()
        path = algo.save_to_path(tmp_path / "dqn")
        buffer_len = len(algo.replay_buffer)
    finally:
        algo.stop()
    restored = DQN.from_checkpoint(path)
    try:
        restored_state = restored.learner_group.get_state()
        assert weights_equal(restored_state["extra"]["target"], state["extra"]["target"])
        assert len(restored.replay_buffer) == buffer_len == 256
        restored.train()
    finally:
        restored.stop()
    with pytest.raises(TypeError, match="holds a DQN, not a PPO"):
        PPO.from_checkpoint(path)


def test_restore_from_a_missing_checkpoint_is_a_clear_error(shoal_runtime, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"is not a shoal\.rl checkpoint"):
        Algorithm.from_checkpoint(tmp_path)
