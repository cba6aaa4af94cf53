"""AlgorithmConfig: the builder every algorithm is configured with, in RLlib's shape.

``PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=1)
.training(lr=3e-4).build_algo()``. Builder methods only record values
(so Tune search spaces can stand in for them); :meth:`AlgorithmConfig.validate`
checks everything when the algorithm is built and names the bad setting.
"""

from __future__ import annotations

import copy
import difflib
import math
from typing import TYPE_CHECKING, Any

from shoal.rl.core.rl_module import DefaultModelConfig, RLModuleSpec, resolve_model_config
from shoal.rl.env.registry import get_registered_env

if TYPE_CHECKING:
    from shoal.rl.algorithms.algorithm import Algorithm

__all__ = ["AlgorithmConfig", "NotProvided"]


class _NotProvided:
    """Marks a builder argument the caller left out (None is a real value for several settings)."""

    def __repr__(self) -> str:
        return "NotProvided"


NotProvided: Any = _NotProvided()

# to_dict() key -> attribute name, where they differ.
_KEY_TO_ATTR = {"lambda": "lambda_", "framework": "framework_str"}
_ATTR_TO_KEY = {v: k for k, v in _KEY_TO_ATTR.items()}
# Attributes that are not settings.
_INTERNAL = {"algo_class", "_is_frozen", "_env_creators"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class AlgorithmConfig:
    """Settings of an algorithm, set through chained builder methods.

    Subclasses (PPOConfig, DQNConfig) add their ``training`` arguments and
    defaults. ``to_dict`` / ``from_dict`` give the flat dict Tune passes
    around; ``build_algo`` validates and returns the Algorithm.
    """

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        self.algo_class = algo_class
        self._env_creators: dict[str, Any] = {}
        # .environment()
        self.env: Any = None
        self.env_config: dict[str, Any] = {}
        self.observation_space: Any = None
        self.action_space: Any = None
        self.clip_rewards: bool | float | None = None
        self.normalize_actions = True
        self.clip_actions = False
        self.disable_env_checking = False
        # .framework()
        self.framework_str = "torch"
        # .env_runners()
        self.num_env_runners = 0
        self.num_envs_per_env_runner = 1
        self.rollout_fragment_length: int | str = "auto"
        self.num_cpus_per_env_runner: float = 1
        self.num_gpus_per_env_runner: float = 0
        self.batch_mode = "truncate_episodes"
        self.explore = True
        self.sample_timeout_s: float | None = 60.0
        # .learners()
        self.num_learners = 0
        self.num_gpus_per_learner: float = 0
        self.num_cpus_per_learner: float | str = "auto"
        # .training()
        self.gamma = 0.99
        self.lr: Any = 0.001
        self.train_batch_size = 32
        self.train_batch_size_per_learner: int | None = None
        self.minibatch_size: int | None = None
        self.num_epochs = 1
        self.shuffle_batch_per_epoch = True
        self.grad_clip: float | None = None
        self.grad_clip_by = "global_norm"
        # .rl_module()
        self.model_config: dict[str, Any] = {}
        self.rl_module_spec: RLModuleSpec | None = None
        # .evaluation()
        self.evaluation_interval: int | None = None
        self.evaluation_duration: int = 10
        self.evaluation_duration_unit = "episodes"
        self.evaluation_num_env_runners = 0
        self.evaluation_config: dict[str, Any] | None = None
        # .reporting()
        self.metrics_num_episodes_for_smoothing = 100
        self.min_time_s_per_iteration: float | None = None
        self.min_sample_timesteps_per_iteration = 0
        self.min_train_timesteps_per_iteration = 0
        # .debugging()
        self.seed: int | None = None
        self.log_level = "WARN"
        # .fault_tolerance()
        self.restart_failed_env_runners = True
        self.max_num_env_runner_restarts = 1000
        # RLlib's default is 100; a runner that fails ten times in a row on the same call has a bug
        # that another restart will not fix, and each restart costs a process start.
        self.num_consecutive_env_runner_failures_tolerance = 10
        self._is_frozen = False

    # -- freezing ----------------------------------------------------------------

    def __setattr__(self, key: str, value: Any) -> None:
        if getattr(self, "_is_frozen", False) and key != "_is_frozen":
            raise AttributeError(
                f"Cannot set attribute ({key}) of an already frozen AlgorithmConfig! "
                "Use config.copy(copy_frozen=False) to get a config you can change."
            )
        super().__setattr__(key, value)

    def freeze(self) -> None:
        """Make the config read-only (the algorithm's own copy is frozen)."""
        self._is_frozen = True

    @property
    def is_frozen(self) -> bool:
        return self._is_frozen

    def copy(self, copy_frozen: bool | None = None) -> AlgorithmConfig:
        """A deep copy; ``copy_frozen=False`` gives an unfrozen one, None keeps the state."""
        frozen = self._is_frozen if copy_frozen is None else copy_frozen
        state = {k: v for k, v in self.__dict__.items() if k not in ("algo_class", "_is_frozen", "env")}
        new = type(self).__new__(type(self))
        object.__setattr__(new, "_is_frozen", False)
        for k, v in copy.deepcopy(state).items():
            object.__setattr__(new, k, v)
        # Classes and creators are shared, not copied.
        object.__setattr__(new, "algo_class", self.algo_class)
        object.__setattr__(new, "env", self.env)
        object.__setattr__(new, "_is_frozen", frozen)
        return new

    # -- builder methods -------------------------------------------------------

    def _set(self, **kwargs: Any) -> AlgorithmConfig:
        for key, value in kwargs.items():
            if value is not NotProvided:
                setattr(self, key, value)
        return self

    def environment(
        self,
        env: Any = NotProvided,
        *,
        env_config: dict[str, Any] | None = NotProvided,
        observation_space: Any = NotProvided,
        action_space: Any = NotProvided,
        clip_rewards: bool | float | None = NotProvided,
        normalize_actions: bool = NotProvided,
        clip_actions: bool = NotProvided,
        disable_env_checking: bool = NotProvided,
    ) -> AlgorithmConfig:
        """The environment: a gymnasium id, a name given to ``register_env``, an env class or a creator.

        ``env_config`` goes to the creator (as an EnvContext) or, for a
        gymnasium id, as keyword arguments to ``gymnasium.make``.
        """
        self._set(
            env=env,
            env_config=env_config,
            observation_space=observation_space,
            action_space=action_space,
            clip_rewards=clip_rewards,
            normalize_actions=normalize_actions,
            clip_actions=clip_actions,
            disable_env_checking=disable_env_checking,
        )
        self._capture_registered_env()
        return self

    def _capture_registered_env(self) -> None:
        if isinstance(self.env, str):
            creator = get_registered_env(self.env)
            if creator is not None:
                self._env_creators = {self.env: creator}

    def framework(self, framework: str = NotProvided, **kwargs: Any) -> AlgorithmConfig:
        """Only ``"torch"`` is supported."""
        return self._set(framework_str=framework)

    def api_stack(
        self, enable_rl_module_and_learner: bool = NotProvided, enable_env_runner_and_connector_v2: bool = NotProvided
    ) -> AlgorithmConfig:
        """Accepted for RLlib compatibility; shoal.rl only has the new API stack."""
        if enable_rl_module_and_learner is False or enable_env_runner_and_connector_v2 is False:
            raise ValueError("shoal.rl implements only RLlib's new API stack; the old stack cannot be enabled")
        return self

    def env_runners(
        self,
        *,
        num_env_runners: int = NotProvided,
        num_envs_per_env_runner: int = NotProvided,
        rollout_fragment_length: int | str = NotProvided,
        num_cpus_per_env_runner: float = NotProvided,
        num_gpus_per_env_runner: float = NotProvided,
        batch_mode: str = NotProvided,
        explore: bool = NotProvided,
        sample_timeout_s: float | None = NotProvided,
    ) -> AlgorithmConfig:
        """How experience is collected: runner actors (0: sample in this process), envs each, steps per env."""
        return self._set(
            num_env_runners=num_env_runners,
            num_envs_per_env_runner=num_envs_per_env_runner,
            rollout_fragment_length=rollout_fragment_length,
            num_cpus_per_env_runner=num_cpus_per_env_runner,
            num_gpus_per_env_runner=num_gpus_per_env_runner,
            batch_mode=batch_mode,
            explore=explore,
            sample_timeout_s=sample_timeout_s,
        )

    def learners(
        self,
        *,
        num_learners: int = NotProvided,
        num_gpus_per_learner: float = NotProvided,
        num_cpus_per_learner: float | str = NotProvided,
    ) -> AlgorithmConfig:
        """Where the learner runs: 0 in this process, 1 in its own actor (with GPUs if asked)."""
        return self._set(
            num_learners=num_learners,
            num_gpus_per_learner=num_gpus_per_learner,
            num_cpus_per_learner=num_cpus_per_learner,
        )

    def training(
        self,
        *,
        gamma: float = NotProvided,
        lr: Any = NotProvided,
        train_batch_size: int = NotProvided,
        train_batch_size_per_learner: int | None = NotProvided,
        minibatch_size: int | None = NotProvided,
        num_epochs: int = NotProvided,
        shuffle_batch_per_epoch: bool = NotProvided,
        grad_clip: float | None = NotProvided,
        grad_clip_by: str = NotProvided,
    ) -> AlgorithmConfig:
        """Training settings shared by all algorithms (subclasses add their own)."""
        return self._set(
            gamma=gamma,
            lr=lr,
            train_batch_size=train_batch_size,
            train_batch_size_per_learner=train_batch_size_per_learner,
            minibatch_size=minibatch_size,
            num_epochs=num_epochs,
            shuffle_batch_per_epoch=shuffle_batch_per_epoch,
            grad_clip=grad_clip,
            grad_clip_by=grad_clip_by,
        )

    def rl_module(
        self,
        *,
        model_config: dict[str, Any] | DefaultModelConfig = NotProvided,
        rl_module_spec: RLModuleSpec = NotProvided,
    ) -> AlgorithmConfig:
        """The network: ``model_config`` for the default module, or a custom ``rl_module_spec``."""
        if isinstance(model_config, DefaultModelConfig):
            import dataclasses

            model_config = dataclasses.asdict(model_config)
        return self._set(model_config=model_config, rl_module_spec=rl_module_spec)

    def evaluation(
        self,
        *,
        evaluation_interval: int | None = NotProvided,
        evaluation_duration: int = NotProvided,
        evaluation_duration_unit: str = NotProvided,
        evaluation_num_env_runners: int = NotProvided,
        evaluation_config: dict[str, Any] | None = NotProvided,
    ) -> AlgorithmConfig:
        """Evaluate every ``evaluation_interval`` iterations for ``evaluation_duration`` episodes (or timesteps).

        ``evaluation_config`` overrides settings for evaluation (``explore``,
        ``env_config``, ``num_envs_per_env_runner``); evaluation acts greedily
        (``explore=False``) unless it says otherwise.
        """
        return self._set(
            evaluation_interval=evaluation_interval,
            evaluation_duration=evaluation_duration,
            evaluation_duration_unit=evaluation_duration_unit,
            evaluation_num_env_runners=evaluation_num_env_runners,
            evaluation_config=evaluation_config,
        )

    def reporting(
        self,
        *,
        metrics_num_episodes_for_smoothing: int = NotProvided,
        min_time_s_per_iteration: float | None = NotProvided,
        min_sample_timesteps_per_iteration: int = NotProvided,
        min_train_timesteps_per_iteration: int = NotProvided,
    ) -> AlgorithmConfig:
        """Episode window of the return statistics and the minimum work of one ``train()`` call."""
        return self._set(
            metrics_num_episodes_for_smoothing=metrics_num_episodes_for_smoothing,
            min_time_s_per_iteration=min_time_s_per_iteration,
            min_sample_timesteps_per_iteration=min_sample_timesteps_per_iteration,
            min_train_timesteps_per_iteration=min_train_timesteps_per_iteration,
        )

    def debugging(self, *, seed: int | None = NotProvided, log_level: str = NotProvided) -> AlgorithmConfig:
        """``seed`` makes runs reproducible on the same machine and backend."""
        return self._set(seed=seed, log_level=log_level)

    def fault_tolerance(
        self,
        *,
        restart_failed_env_runners: bool = NotProvided,
        max_num_env_runner_restarts: int = NotProvided,
        num_consecutive_env_runner_failures_tolerance: int = NotProvided,
    ) -> AlgorithmConfig:
        """Whether and how often failed env runner actors are replaced."""
        return self._set(
            restart_failed_env_runners=restart_failed_env_runners,
            max_num_env_runner_restarts=max_num_env_runner_restarts,
            num_consecutive_env_runner_failures_tolerance=num_consecutive_env_runner_failures_tolerance,
        )

    # -- dict form -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """All settings as a flat dict (``lambda_`` is spelled ``lambda``, as in RLlib)."""
        if not self._is_frozen:
            # A frozen config (an algorithm's own) keeps the creator it was built with.
            self._capture_registered_env()
        out = {}
        for attr, value in self.__dict__.items():
            if attr in _INTERNAL:
                continue
            out[_ATTR_TO_KEY.get(attr, attr)] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value
        if self._env_creators:
            # Carries creators of register_env names to processes that never registered them.
            out["_env_creators"] = dict(self._env_creators)
        out["class"] = type(self)
        return out

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any]) -> AlgorithmConfig:
        """A config of this class with the settings of ``config_dict`` (as made by ``to_dict``)."""
        return cls().update_from_dict(config_dict)

    def update_from_dict(self, config_dict: dict[str, Any]) -> AlgorithmConfig:
        """Set the settings named in ``config_dict``; ValueError for names that are not settings."""
        known = {_ATTR_TO_KEY.get(a, a) for a in self.__dict__ if a not in _INTERNAL}
        for key, value in config_dict.items():
            if key == "class":
                continue
            if key == "_env_creators":
                self._env_creators = dict(value or {})
                continue
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"{type(self).__name__} has no setting {key!r}.{hint}")
            setattr(self, _KEY_TO_ATTR.get(key, key), value)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style read of a setting."""
        return getattr(self, _KEY_TO_ATTR.get(key, key), default)

    def __getitem__(self, key: str) -> Any:
        attr = _KEY_TO_ATTR.get(key, key)
        if attr not in self.__dict__ or attr in _INTERNAL:
            raise KeyError(key)
        return getattr(self, attr)

    # -- derived values ---------------------------------------------------------

    @property
    def total_train_batch_size(self) -> int:
        if self.train_batch_size_per_learner is not None:
            return int(self.train_batch_size_per_learner) * max(1, self.num_learners)
        return int(self.train_batch_size)

    def get_rollout_fragment_length(self, worker_index: int = 0) -> int:
        """Steps per env in each sample call; ``"auto"`` divides the train batch over all envs."""
        if self.rollout_fragment_length != "auto":
            return int(self.rollout_fragment_length)
        envs = max(1, self.num_env_runners) * self.num_envs_per_env_runner
        return max(1, math.ceil(self.total_train_batch_size / envs))

    def get_model_config(self, module_class: Any = None) -> dict[str, Any]:
        defaults = getattr(module_class, "default_model_config", {}) if module_class is not None else {}
        return resolve_model_config(self.model_config, defaults)

    def get_evaluation_config_object(self) -> AlgorithmConfig:
        """A copy with ``evaluation_config`` applied and ``explore=False`` unless it says otherwise."""
        cfg = self.copy(copy_frozen=False)
        overrides = {"explore": False, **(self.evaluation_config or {})}
        cfg.update_from_dict(overrides)
        return cfg

    # -- validation --------------------------------------------------------------

    def validate(self) -> None:
        """Check every setting; raises ValueError (or TypeError) naming the first bad one."""
        if self.framework_str != "torch":
            raise ValueError(f"framework must be 'torch' (the only one shoal.rl supports), got {self.framework_str!r}")
        if self.env is None:
            raise ValueError("no environment set: call config.environment(env=...) before building the algorithm")
        if not isinstance(self.env_config, dict):
            raise TypeError(f"env_config must be a dict, got {type(self.env_config).__name__}")
        self._check_int("num_env_runners", 0)
        self._check_int("num_envs_per_env_runner", 1)
        self._check_int("num_learners", 0)
        if self.num_learners > 1:
            raise ValueError(
                f"num_learners={self.num_learners}: shoal.rl runs one learner (0 = in this process, 1 = in an "
                "actor); data-parallel learners are not supported yet"
            )
        self._check_number("num_gpus_per_learner", 0)
        self._check_number("num_cpus_per_env_runner", 0)
        self._check_number("num_gpus_per_env_runner", 0)
        if self.num_cpus_per_learner != "auto":
            self._check_number("num_cpus_per_learner", 0)
        if self.rollout_fragment_length != "auto":
            self._check_int("rollout_fragment_length", 1)
        if self.batch_mode != "truncate_episodes":
            raise ValueError(
                f"batch_mode must be 'truncate_episodes' (the only mode shoal.rl implements), got {self.batch_mode!r}"
            )
        self._check_number("gamma", 0, 1)
        self._check_schedule("lr")
        self._check_int("train_batch_size", 1)
        if self.train_batch_size_per_learner is not None:
            self._check_int("train_batch_size_per_learner", 1)
        if self.minibatch_size is not None:
            self._check_int("minibatch_size", 1)
        self._check_int("num_epochs", 1)
        if self.grad_clip is not None:
            self._check_number("grad_clip", 0)
        if self.grad_clip_by not in ("global_norm", "norm", "value"):
            raise ValueError(f"grad_clip_by must be 'global_norm', 'norm' or 'value', got {self.grad_clip_by!r}")
        if not isinstance(self.model_config, dict):
            raise TypeError(
                f"model_config must be a dict or a DefaultModelConfig, got {type(self.model_config).__name__}"
            )
        resolve_model_config(self.model_config)
        if self.rl_module_spec is not None and not isinstance(self.rl_module_spec, RLModuleSpec):
            raise TypeError(f"rl_module_spec must be an RLModuleSpec, got {type(self.rl_module_spec).__name__}")
        if self.evaluation_interval is not None:
            self._check_int("evaluation_interval", 1)
        self._check_int("evaluation_duration", 1)
        if self.evaluation_duration_unit not in ("episodes", "timesteps"):
            raise ValueError(
                f"evaluation_duration_unit must be 'episodes' or 'timesteps', got {self.evaluation_duration_unit!r}"
            )
        self._check_int("evaluation_num_env_runners", 0)
        if self.evaluation_config is not None and not isinstance(self.evaluation_config, dict):
            raise TypeError(f"evaluation_config must be a dict, got {type(self.evaluation_config).__name__}")
        self._check_int("metrics_num_episodes_for_smoothing", 1)
        if self.min_time_s_per_iteration is not None:
            self._check_number("min_time_s_per_iteration", 0)
        self._check_int("min_sample_timesteps_per_iteration", 0)
        self._check_int("min_train_timesteps_per_iteration", 0)
        if self.seed is not None and not _is_int(self.seed):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")
        if self.log_level not in ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"log_level must be DEBUG, INFO, WARN, ERROR or CRITICAL, got {self.log_level!r}")
        self._check_int("max_num_env_runner_restarts", 0)
        self._check_int("num_consecutive_env_runner_failures_tolerance", 0)
        if self.sample_timeout_s is not None:
            self._check_number("sample_timeout_s", 0)
        if self.clip_rewards not in (None, True, False) and not (
            _is_number(self.clip_rewards) and self.clip_rewards > 0
        ):
            raise ValueError(f"clip_rewards must be None, a bool or a number > 0, got {self.clip_rewards!r}")

    def _check_int(self, name: str, minimum: int) -> None:
        value = getattr(self, name)
        if not _is_int(value) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

    def _check_number(self, name: str, minimum: float, maximum: float | None = None) -> None:
        value = getattr(self, _KEY_TO_ATTR.get(name, name))
        if not _is_number(value) or value < minimum or (maximum is not None and value > maximum):
            bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
            raise ValueError(f"{name} must be a number {bound}, got {value!r}")

    def _check_schedule(self, name: str) -> None:
        from shoal.rl.utils.schedules import make_schedule

        value = getattr(self, name)
        if _is_number(value):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
            return
        make_schedule(value, name)

    # -- building ----------------------------------------------------------------

    def build_algo(self, env: Any = None, logger_creator: Any = None) -> Algorithm:
        """Validate and build the algorithm (``env`` overrides the configured one)."""
        if self.algo_class is None:
            raise ValueError(f"{type(self).__name__} has no algorithm class; use PPOConfig(), DQNConfig(), ...")
        cfg = self.copy(copy_frozen=False)
        if env is not None:
            cfg.env = env
            cfg._capture_registered_env()
        return self.algo_class(config=cfg, logger_creator=logger_creator)

    def build(self, env: Any = None, logger_creator: Any = None) -> Algorithm:
        """The older spelling of :meth:`build_algo`."""
        return self.build_algo(env=env, logger_creator=logger_creator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env={self.env!r}, algo_class={getattr(self.algo_class, '__name__', None)})"
