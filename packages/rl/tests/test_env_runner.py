"""The env runner: lockstep envs, bootstrapping at truncation, seeding, spaces, env creation, weight broadcast."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
from rl_test_envs import CountingEnv

from shoal.rl import Columns, EnvContext, register_env
from shoal.rl.algorithms.ppo import PPOConfig, PPOTorchRLModule
from shoal.rl.core import RLModuleSpec
from shoal.rl.env.env_runner import EnvRunnerSpec, SingleAgentEnvRunner
from shoal.rl.env.registry import make_env_creator
from shoal.rl.env.spaces import ActionAdapter, ObsPreprocessor


def runner_for(env, env_config=None, num_envs=2, seed=0, **spec_kw) -> SingleAgentEnvRunner:
    creator = make_env_creator(env)
    probe = creator(EnvContext(env_config or {}))
    module_spec = RLModuleSpec(PPOTorchRLModule, probe.observation_space, probe.action_space, {"fcnet_hiddens": [8]})
    spec = EnvRunnerSpec(
        env_creator=creator,
        module_spec=module_spec,
        env_config=env_config or {},
        num_envs=num_envs,
        seed=seed,
        compute_bootstrap_values=True,
        driver_pid=os.getpid(),
        **spec_kw,
    )
    return SingleAgentEnvRunner(spec)


def test_sample_shapes_and_episode_accounting() -> None:
    runner = runner_for(CountingEnv, {"limit": 3}, num_envs=2)
    out = runner.sample(num_timesteps=10)
    batch = out["batch"]
    # ceil(10 / 2) = 5 steps of 2 envs.
    assert batch[Columns.OBS].shape == (5, 2, 1) and batch[Columns.ACTIONS].shape == (5, 2)
    assert out["num_env_steps"] == 10
    # Truncated at step 3 of each env: one finished episode per env.
    assert batch[Columns.TRUNCATEDS][:, 0].tolist() == [False, False, True, False, False]
    assert not batch[Columns.TERMINATEDS].any()
    assert out["episodes"]["returns"] == [3.0, 3.0] and out["episodes"]["lengths"] == [3, 3]
    # After the reset the observation counts from 0 again.
    assert batch[Columns.OBS][:, 0, 0].tolist() == [0.0, 1.0, 2.0, 0.0, 1.0]
    # Episodes carry over into the next call.
    nxt = runner.sample(num_timesteps=2)
    assert nxt["batch"][Columns.OBS][0, 0, 0] == 2.0 and nxt["batch"][Columns.TRUNCATEDS][0, 0]


def test_next_values_bootstrap_truncation_and_zero_termination() -> None:
    runner = runner_for(CountingEnv, {"limit": 3, "terminate_at": 100}, num_envs=1)
    batch = runner.sample(num_timesteps=4)["batch"]
    values = runner.module.compute_values(np.array([[1.0], [2.0], [3.0], [1.0]], np.float32))
    nxt = batch[Columns.NEXT_VF_PREDS][:, 0]
    # Step 2 was truncated: its next value is V(final obs = 3), not V(reset obs = 0).
    assert nxt[:3] == pytest.approx(values[:3], abs=1e-6)
    assert nxt[3] == pytest.approx(values[3], abs=1e-6)
    terminating = runner_for(CountingEnv, {"limit": 100, "terminate_at": 2}, num_envs=1)
    tb = terminating.sample(num_timesteps=3)["batch"]
    assert tb[Columns.TERMINATEDS][:, 0].tolist() == [False, True, False]
    assert tb[Columns.NEXT_VF_PREDS][1, 0] == 0.0


def test_env_context_tells_envs_where_they_run() -> None:
    runner = runner_for(CountingEnv, {"limit": 3}, num_envs=3)
    assert [e.vector_index for e in runner.envs] == [0, 1, 2]
    assert {e.worker_index for e in runner.envs} == {0}


def test_same_seed_same_samples_and_episodes() -> None:
    a = runner_for("CartPole-v1", num_envs=3, seed=5)
    b = runner_for("CartPole-v1", num_envs=3, seed=5)
    weights = {"seq_no": 0, "state": a.module.get_state()}
    out_a = a.sample(weights, 90)
    out_b = b.sample(weights, 90)
    for k in out_a["batch"]:
        assert np.array_equal(out_a["batch"][k], out_b["batch"][k]), k
    c = runner_for("CartPole-v1", num_envs=3, seed=6)
    assert not np.array_equal(c.sample(weights, 90)["batch"][Columns.OBS], out_a["batch"][Columns.OBS])


def test_sample_episodes_runs_exactly_the_requested_episodes() -> None:
    runner = runner_for(CountingEnv, {"limit": 4}, num_envs=3)
    out = runner.sample_episodes(num_episodes=2)
    assert out["episodes"]["lengths"] == [4, 4] and out["num_env_steps"] == 8
    out = runner.sample_episodes(num_episodes=5)
    assert len(out["episodes"]["lengths"]) == 5 and out["num_env_steps"] == 20
    with pytest.raises(ValueError, match="exactly one of"):
        runner.sample_episodes()


def test_observation_preprocessing() -> None:
    box = ObsPreprocessor(gym.spaces.Box(0, 1, (2, 3)))
    assert box([np.ones((2, 3)), np.zeros((2, 3))]).shape == (2, 6)
    disc = ObsPreprocessor(gym.spaces.Discrete(4, start=1))
    assert disc([1, 4]).tolist() == [[1, 0, 0, 0], [0, 0, 0, 1]]


def test_action_adapter_rescales_to_the_box_bounds() -> None:
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 10.0], np.float32))
    adapter = ActionAdapter(space, normalize_actions=True)
    out = adapter.to_env(np.array([[0.0, -1.0], [5.0, 1.0]], np.float32))
    assert np.allclose(out[0], [0.0, 0.0]) and np.allclose(out[1], [2.0, 10.0])
    clip_only = ActionAdapter(gym.spaces.Box(-1.0, 1.0, (1,)), normalize_actions=False, clip_actions=True)
    assert clip_only.to_env(np.array([[3.0]]))[0].tolist() == [1.0]
    discrete = ActionAdapter(gym.spaces.Discrete(3, start=2))
    assert discrete.to_env(np.array([0, 2])) == [2, 4]


def small_ppo(env: object, env_config: dict | None = None, num_env_runners: int = 1) -> PPOConfig:
    return (
        PPOConfig()
        .environment(env, env_config=env_config or {})
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=2)
        .training(train_batch_size=80, minibatch_size=40, num_epochs=1)
        .rl_module(model_config={"fcnet_hiddens": [8]})
        .debugging(seed=0)
    )


def test_registered_env_is_built_in_runner_processes_that_never_registered_it(shoal_runtime) -> None:
    register_env("shoal-rl-test-counting", lambda ctx: CountingEnv(ctx))
    algo = small_ppo("shoal-rl-test-counting", {"limit": 8}).build_algo()
    try:
        runners = algo.env_runner_group.foreach_env_runner(lambda r: (type(r.envs[0]).__name__, r.envs[0].limit))
        assert runners == [("CountingEnv", 8)]
        result = algo.train()
        # CountingEnv pays 1 per step and truncates at `limit`.
        assert result["env_runners"]["episode_len_mean"] == 8 == result["env_runners"]["episode_return_mean"]
    finally:
        algo.stop()


def test_creator_function_gets_env_config_and_runner_indices(shoal_runtime) -> None:
    algo = small_ppo(lambda ctx: CountingEnv(ctx), {"limit": 4}, num_env_runners=2).build_algo()
    try:
        seen = algo.env_runner_group.foreach_env_runner(
            lambda r: [(e.limit, e.worker_index, e.vector_index) for e in r.envs]
        )
        assert seen == [[(4, 1, 0), (4, 1, 1)], [(4, 2, 0), (4, 2, 1)]]
        assert algo.train()["env_runners"]["episode_len_mean"] == 4
    finally:
        algo.stop()


def test_env_config_of_a_gymnasium_id_goes_to_gymnasium_make(shoal_runtime) -> None:
    algo = small_ppo("CartPole-v1", {"max_episode_steps": 10}, num_env_runners=0).build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    # An untrained policy keeps the pole up for about 20 steps, so most episodes hit the 10-step limit.
    assert result["env_runners"]["episode_len_max"] == 10
    assert result["env_runners"]["episode_return_max"] == 10


def test_runners_sample_with_the_weights_broadcast_to_them(shoal_runtime) -> None:
    algo = small_ppo("CartPole-v1", num_env_runners=2).build_algo()
    try:
        sent = algo.get_weights()
        result = algo.train()
        # Both runners sampled the iteration with the weights they were sent; the learner then moved on.
        states = algo.env_runner_group.foreach_env_runner(lambda r: (r.weights_seq_no, r.module.get_state()))
        for seq_no, state in states:
            assert seq_no == result["env_runners"]["weights_seq_no"] - 1
            assert all(np.array_equal(state[k], sent[k]) for k in sent)
        learned = algo.get_weights()
        assert not all(np.array_equal(learned[k], sent[k]) for k in sent)
        algo.train()
        states = algo.env_runner_group.foreach_env_runner(lambda r: r.module.get_state())
        assert all(np.array_equal(s[k], learned[k]) for s in states for k in learned)
    finally:
        algo.stop()
