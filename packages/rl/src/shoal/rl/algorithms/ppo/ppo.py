"""PPO: on-policy actor-critic with a clipped surrogate objective (Schulman et al., 2017)."""

from __future__ import annotations

from typing import Any

from shoal.rl.algorithms.algorithm import Algorithm
from shoal.rl.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from shoal.rl.algorithms.ppo.ppo_learner import PPOLearner
from shoal.rl.algorithms.ppo.ppo_rl_module import PPOTorchRLModule

__all__ = ["PPO", "PPOConfig"]


class PPOConfig(AlgorithmConfig):
    """Settings of :class:`PPO`; defaults are RLlib's.

    >>> config = (
    ...     PPOConfig()
    ...     .environment("CartPole-v1")
    ...     .env_runners(num_env_runners=1, num_envs_per_env_runner=8)
    ...     .training(lr=3e-4, train_batch_size=2000, minibatch_size=250, num_epochs=10)
    ... )
    """

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        super().__init__(algo_class=algo_class or PPO)
        self.num_env_runners = 2
        self.lr = 5e-5
        self.train_batch_size = 4000
        self.minibatch_size = 128
        self.num_epochs = 30
        self.grad_clip = None
        self.use_critic = True
        self.use_gae = True
        self.lambda_ = 1.0
        self.use_kl_loss = True
        self.kl_coeff = 0.2
        self.kl_target = 0.01
        self.vf_loss_coeff = 1.0
        self.entropy_coeff: Any = 0.0
        self.clip_param = 0.3
        self.vf_clip_param = 10.0

    def training(
        self,
        *,
        use_critic: bool = NotProvided,
        use_gae: bool = NotProvided,
        lambda_: float = NotProvided,
        use_kl_loss: bool = NotProvided,
        kl_coeff: float = NotProvided,
        kl_target: float = NotProvided,
        vf_loss_coeff: float = NotProvided,
        entropy_coeff: Any = NotProvided,
        clip_param: float = NotProvided,
        vf_clip_param: float = NotProvided,
        **kwargs: Any,
    ) -> PPOConfig:
        """PPO's settings plus the common ones (``lr``, ``gamma``, ``train_batch_size``, ...).

        ``lambda_``: GAE lambda. ``clip_param``: surrogate clip range.
        ``vf_clip_param``: cap on the squared value error. ``kl_coeff`` /
        ``kl_target``: adaptive KL penalty (with ``use_kl_loss``).
        ``entropy_coeff`` and ``lr`` take a number or a
        ``[(timestep, value), ...]`` schedule over sampled env steps.
        """
        super().training(**kwargs)
        self._set(
            use_critic=use_critic,
            use_gae=use_gae,
            lambda_=lambda_,
            use_kl_loss=use_kl_loss,
            kl_coeff=kl_coeff,
            kl_target=kl_target,
            vf_loss_coeff=vf_loss_coeff,
            entropy_coeff=entropy_coeff,
            clip_param=clip_param,
            vf_clip_param=vf_clip_param,
        )
        return self

    def validate(self) -> None:
        super().validate()
        self._check_number("lambda", 0, 1)
        self._check_number("kl_coeff", 0)
        self._check_number("kl_target", 0)
        self._check_number("vf_loss_coeff", 0)
        self._check_number("clip_param", 0)
        self._check_number("vf_clip_param", 0)
        self._check_schedule("entropy_coeff")
        if self.minibatch_size is not None and self.minibatch_size > self.total_train_batch_size:
            raise ValueError(
                f"minibatch_size ({self.minibatch_size}) must be <= train_batch_size ({self.total_train_batch_size})"
            )
        if not self.use_critic and self.use_gae:
            raise ValueError("use_gae=True needs use_critic=True (GAE bootstraps from the value function)")


class PPO(Algorithm):
    """Proximal Policy Optimization for Discrete and Box action spaces."""

    config: PPOConfig
    learner_class = PPOLearner
    module_class = PPOTorchRLModule
    supports_continuous_actions = True
    compute_bootstrap_values = True

    @classmethod
    def get_default_config(cls) -> PPOConfig:
        return PPOConfig(algo_class=cls)

    def training_step(self) -> None:
        cfg = self.config
        assert self.env_runner_group is not None and self.learner_group is not None
        runners = max(1, cfg.num_env_runners)
        num_timesteps = cfg.get_rollout_fragment_length() * cfg.num_envs_per_env_runner * runners
        weights = self._runner_weights()
        with self._timer("env_runner_sampling_timer"):
            samples = self.env_runner_group.sample(weights, num_timesteps, explore=cfg.explore)
        sampled = self._record_samples(samples)
        with self._timer("learner_update_timer"):
            metrics = self.learner_group.update(
                [s["batch"] for s in samples], timesteps=self._counters["num_env_steps_sampled_lifetime"]
            )
        self._record_learner(metrics, sampled)
        with self._timer("synch_weights"):
            self._weights_changed()
            self._runner_weights()
