"""AlgorithmConfig builders, dict form, validation, and the errors build_algo() raises."""

from __future__ import annotations

import pytest
import torch
from rl_test_envs import BrokenEnv, CountingEnv, DictObsEnv

from shoal.rl import EnvError, UnsupportedSpaceException, register_env
from shoal.rl.algorithms import DQN, PPO, DQNConfig, PPOConfig, get_algorithm_class
from shoal.rl.algorithms.registry import get_algorithm_config
from shoal.rl.core import DefaultModelConfig


def test_builders_chain_and_record_values() -> None:
    cfg = (
        PPOConfig()
        .environment("CartPole-v1", env_config={"x": 1})
        .env_runners(num_env_runners=3, num_envs_per_env_runner=4, rollout_fragment_length=50)
        .training(lr=1e-3, gamma=0.9, lambda_=0.95, clip_param=0.2, minibatch_size=64, num_epochs=3)
        .learners(num_learners=1)
        .evaluation(evaluation_interval=2, evaluation_duration=5)
        .debugging(seed=3)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[32]))
    )
    assert cfg.env == "CartPole-v1" and cfg.env_config == {"x": 1}
    assert (cfg.num_env_runners, cfg.num_envs_per_env_runner, cfg.rollout_fragment_length) == (3, 4, 50)
    assert (cfg.lr, cfg.gamma, cfg.lambda_, cfg.clip_param) == (1e-3, 0.9, 0.95, 0.2)
    assert cfg.num_learners == 1 and cfg.seed == 3
    assert cfg.evaluation_interval == 2 and cfg.evaluation_duration == 5
    assert cfg.model_config["fcnet_hiddens"] == [32]
    # Arguments left out keep their values.
    cfg.training(lr=5e-4)
    assert cfg.gamma == 0.9 and cfg.lr == 5e-4


def test_defaults_follow_rllib() -> None:
    ppo = PPOConfig()
    assert (ppo.lr, ppo.train_batch_size, ppo.minibatch_size, ppo.num_epochs) == (5e-5, 4000, 128, 30)
    assert (ppo.clip_param, ppo.kl_coeff, ppo.lambda_, ppo.num_env_runners) == (0.3, 0.2, 1.0, 2)
    dqn = DQNConfig()
    assert (dqn.lr, dqn.train_batch_size, dqn.target_network_update_freq, dqn.n_step) == (5e-4, 32, 500, 1)
    assert dqn.epsilon == [(0, 1.0), (10_000, 0.05)] and dqn.double_q and dqn.dueling
    assert dqn.replay_buffer_config["type"] == "PrioritizedEpisodeReplayBuffer"


def test_auto_rollout_fragment_length_splits_the_batch_over_all_envs() -> None:
    cfg = PPOConfig().training(train_batch_size=1000).env_runners(num_env_runners=2, num_envs_per_env_runner=3)
    assert cfg.get_rollout_fragment_length() == 167
    assert PPOConfig().env_runners(num_env_runners=0).training(train_batch_size=10).get_rollout_fragment_length() == 10
    assert DQNConfig().get_rollout_fragment_length() == 1


def test_to_dict_from_dict_round_trip() -> None:
    cfg = PPOConfig().environment("CartPole-v1").training(lambda_=0.9, lr=0.01).debugging(seed=5)
    d = cfg.to_dict()
    assert d["lambda"] == 0.9 and "lambda_" not in d and d["framework"] == "torch"
    again = PPOConfig.from_dict(d)
    assert again.lambda_ == 0.9 and again.lr == 0.01 and again.seed == 5 and again.env == "CartPole-v1"
    assert again.to_dict() == d


def test_update_from_dict_rejects_unknown_settings_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"no setting 'lamda'.*Did you mean 'lambda'"):
        PPOConfig().update_from_dict({"lamda": 0.5})


def test_dqn_replay_buffer_config_is_merged() -> None:
    cfg = DQNConfig().training(replay_buffer_config={"capacity": 100})
    assert cfg.replay_buffer_config["capacity"] == 100
    assert cfg.replay_buffer_config["type"] == "PrioritizedEpisodeReplayBuffer"


def test_register_env_travels_in_the_config_dict() -> None:
    register_env("counting-test-env", lambda ctx: CountingEnv(ctx))
    d = PPOConfig().environment("counting-test-env").to_dict()
    assert callable(d["_env_creators"]["counting-test-env"])
    assert PPOConfig.from_dict(d)._env_creators.keys() == {"counting-test-env"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lr": -1.0}, "lr must be >= 0"),
        ({"gamma": 1.5}, r"gamma must be a number in \[0, 1\]"),
        ({"num_env_runners": -1}, "num_env_runners must be an integer >= 0"),
        ({"num_learners": 2}, "data-parallel learners are not supported"),
        ({"minibatch_size": 5000}, r"minibatch_size \(5000\) must be <= train_batch_size"),
        ({"lr": [(0, 1e-3), "x"]}, "lr must be a number or a list of"),
        ({"framework": "tf2"}, "framework must be 'torch'"),
        ({"rollout_fragment_length": 0}, "rollout_fragment_length must be an integer >= 1"),
        ({"model_config": {"fcnet_hidens": [3]}}, "model_config has unknown keys"),
        ({"evaluation_duration_unit": "hours"}, "evaluation_duration_unit must be"),
    ],
)
def test_validate_names_the_bad_setting(settings: dict, message: str) -> None:
    cfg = PPOConfig().environment("CartPole-v1").update_from_dict(settings)
    with pytest.raises(ValueError, match=message):
        cfg.validate()


def test_validate_requires_an_env() -> None:
    with pytest.raises(ValueError, match=r"config.environment\(env=...\)"):
        PPOConfig().validate()


def test_old_api_stack_is_refused() -> None:
    with pytest.raises(ValueError, match="new API stack"):
        PPOConfig().api_stack(enable_rl_module_and_learner=False)


def test_algorithm_config_is_frozen_and_copies_are_not(shoal_runtime) -> None:
    algo = (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0)
        .training(train_batch_size=64, minibatch_size=32, num_epochs=1)
        .build_algo()
    )
    try:
        with pytest.raises(AttributeError, match="frozen"):
            algo.config.lr = 1.0
        copy = algo.config.copy(copy_frozen=False)
        copy.lr = 1.0
        assert copy.lr == 1.0 and algo.config.lr == 5e-5
    finally:
        algo.stop()


def test_unknown_gymnasium_id_is_an_env_error_at_build(shoal_runtime) -> None:
    with pytest.raises(EnvError, match=r"'CartPol-v1' is neither.*Did you mean 'CartPole-v1'"):
        PPOConfig().environment("CartPol-v1").build_algo()
    # EnvError is a ValueError, as RLlib's callers expect from bad input.
    with pytest.raises(ValueError):
        DQNConfig().environment("NoSuchEnv-v9").build()


def test_env_that_cannot_be_created_is_an_env_error(shoal_runtime) -> None:
    with pytest.raises(EnvError, match=r"could not create the environment.*cannot open the simulator"):
        PPOConfig().environment(BrokenEnv).build_algo()


def test_unsupported_spaces_fail_at_build(shoal_runtime) -> None:
    with pytest.raises(UnsupportedSpaceException, match="observation space Dict"):
        PPOConfig().environment(DictObsEnv).env_runners(num_env_runners=0).build_algo()
    with pytest.raises(UnsupportedSpaceException, match="DQN does not support continuous action spaces"):
        DQNConfig().environment("Pendulum-v1").build_algo()


def test_algorithms_by_name() -> None:
    assert get_algorithm_class("PPO") is PPO and get_algorithm_class("DQN") is DQN
    assert isinstance(get_algorithm_config("DQN"), DQNConfig)
    with pytest.raises(ValueError, match="unknown algorithm 'A3C'"):
        get_algorithm_class("A3C")


def test_default_resource_request_has_a_bundle_per_actor() -> None:
    cfg = PPOConfig().env_runners(num_env_runners=2, num_cpus_per_env_runner=1).learners(num_learners=1)
    assert PPO.default_resource_request(cfg) == [{"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 1.0}]
    assert PPO.default_resource_request({"num_env_runners": 0}) == [{"CPU": 1.0}]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without GPUs")
def test_asking_for_a_gpu_learner_without_gpus_fails_at_build(shoal_runtime) -> None:
    cfg = PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=0)
    with pytest.raises(ValueError, match="num_gpus_per_learner=1 but torch sees no CUDA device"):
        cfg.copy().learners(num_learners=0, num_gpus_per_learner=1).build_algo()
    # A remote learner actor asking for a GPU could never be placed: an error, not a hang.
    with pytest.raises(ValueError, match="num_gpus_per_learner=1 but the cluster has 0 GPUs"):
        cfg.copy().learners(num_learners=1, num_gpus_per_learner=1).build_algo()
