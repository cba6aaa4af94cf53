"""Algorithms as shoal.tune trainables: ``Tuner("PPO", param_space=config)`` and ``Tuner(PPO, ...)``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

tune = pytest.importorskip("shoal.tune")

from shoal.rl.algorithms import Algorithm  # noqa: E402
from shoal.rl.algorithms.ppo import PPO, PPOConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def small_ppo(num_env_runners: int) -> PPOConfig:
    return (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=2)
        .training(train_batch_size=128, minibatch_size=64, num_epochs=1, lr=1e-3)
        .rl_module(model_config={"fcnet_hiddens": [16]})
        .debugging(seed=0)
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("trainable", "num_env_runners", "lrs"),
    # A trial with an env runner holds 2 CPUs (the algorithm's and the runner's bundle): one at a time.
    [("PPO", 1, [1e-3]), (PPO, 0, [1e-3, 3e-4])],
    ids=["by-name-with-a-runner", "by-class"],
)
def test_ppo_runs_as_tune_trials(tmp_path: Path, trainable, num_env_runners, lrs) -> None:
    # The config object is the param space (its dict form), with a search domain in it.
    config = small_ppo(num_env_runners).training(lr=tune.grid_search(lrs))
    grid = tune.Tuner(
        trainable,
        param_space=config,
        tune_config=tune.TuneConfig(metric="env_runners/episode_return_mean", mode="max"),
        run_config=tune.RunConfig(
            name="ppo",
            storage_path=str(tmp_path),
            stop={"training_iteration": 2},
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True),
            verbose=0,
        ),
    ).fit()
    assert grid.num_errors == 0, grid.errors
    assert sorted(r.config["lr"] for r in grid) == sorted(lrs)
    for result in grid:
        assert result.metrics["training_iteration"] == 2
        assert result.config["num_env_runners"] == num_env_runners
        assert result.metrics["env_runners"]["num_env_steps_sampled_lifetime"] >= 2 * 128
        assert "default_policy" in result.metrics["learners"]
        # Trials are named as in Ray: algorithm, env, trial id.
        assert os.path.basename(result.path).startswith("PPO_CartPole-v1_")
        with open(os.path.join(result.path, "params.json")) as f:
            assert json.load(f)["env"] == "CartPole-v1"
    # checkpoint_at_end saved the algorithm; it restores outside tune.
    best = grid.get_best_result()
    assert best.checkpoint is not None
    algo = Algorithm.from_checkpoint(best.checkpoint.path)
    try:
        assert isinstance(algo, PPO)
        assert algo.config.lr == best.config["lr"]
        assert algo.compute_single_action([0.0, 0.0, 0.0, 0.0], explore=False) in (0, 1)
    finally:
        algo.stop()


def test_an_unknown_algorithm_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown trainable 'PPP'\. Did you mean 'PPO'"):
        tune.Tuner("PPP", param_space=small_ppo(0))
