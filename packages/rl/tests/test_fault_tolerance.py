"""Env runner actors that die or whose env raises are replaced and sampling goes on."""

from __future__ import annotations

import pytest
from rl_test_envs import FailingCartPole

import shoal
from shoal.rl.algorithms.ppo import PPOConfig


def config(env: object = "CartPole-v1", env_config: dict | None = None) -> PPOConfig:
    return (
        PPOConfig()
        .environment(env, env_config=env_config or {})
        .env_runners(num_env_runners=2, num_envs_per_env_runner=2)
        .training(train_batch_size=200, minibatch_size=100, num_epochs=1)
        .rl_module(model_config={"fcnet_hiddens": [16]})
        .debugging(seed=0)
    )


def test_killed_env_runner_is_restarted(shoal_runtime) -> None:
    algo = config().build_algo()
    try:
        algo.train()
        victim = algo.env_runner_group.remote_actors()[0]
        shoal.kill(victim)
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled"] == 200
        assert result["fault_tolerance"] == {"num_healthy_workers": 2, "num_remote_worker_restarts": 1}
        assert algo.env_runner_group.remote_actors()[0] is not victim
        assert algo.train()["fault_tolerance"]["num_remote_worker_restarts"] == 1
    finally:
        algo.stop()


def test_env_that_raises_gets_a_fresh_runner(shoal_runtime) -> None:
    # Each runner's first incarnation raises on step 30 of one of its envs; replacements run clean.
    algo = config(FailingCartPole, {"fail_at": 30}).build_algo()
    try:
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled"] == 200
        assert result["fault_tolerance"]["num_remote_worker_restarts"] == 2
    finally:
        algo.stop()


def test_a_runner_that_keeps_failing_ends_training(shoal_runtime) -> None:
    algo = (
        config(FailingCartPole, {"fail_at": 5, "always": True})
        .fault_tolerance(num_consecutive_env_runner_failures_tolerance=2)
        .build_algo()
    )
    try:
        with pytest.raises(RuntimeError, match="failed 3 times in a row") as info:
            algo.train()
        assert "simulated env crash" in str(info.value.__cause__)
    finally:
        algo.stop()


def test_without_restarts_the_env_error_surfaces(shoal_runtime) -> None:
    algo = config(FailingCartPole, {"fail_at": 5}).fault_tolerance(restart_failed_env_runners=False).build_algo()
    try:
        with pytest.raises(RuntimeError, match="simulated env crash"):
            algo.train()
    finally:
        algo.stop()


def test_foreach_env_runner_runs_in_every_runner(shoal_runtime) -> None:
    algo = config().build_algo()
    try:
        assert algo.env_runner_group.foreach_env_runner(lambda r: (r.worker_index, r.num_envs)) == [(1, 2), (2, 2)]
    finally:
        algo.stop()
