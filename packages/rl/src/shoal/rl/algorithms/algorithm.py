"""Algorithm: env runners plus a learner, trained one ``train()`` call at a time.

Shaped like Ray Tune's class trainable (``setup`` / ``step`` /
``save_checkpoint`` / ``load_checkpoint`` / ``cleanup`` and
``default_resource_request``) so a Tuner can run it as a trial, and like
RLlib's Algorithm for everything users call directly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np

from shoal.rl._version import __version__
from shoal.rl.algorithms.algorithm_config import AlgorithmConfig
from shoal.rl.core.columns import DEFAULT_MODULE_ID
from shoal.rl.core.learner import Learner, LearnerGroup
from shoal.rl.core.rl_module import RLModule, RLModuleSpec
from shoal.rl.env.env_context import EnvContext
from shoal.rl.env.env_runner import EnvRunnerSpec
from shoal.rl.env.env_runner_group import EnvRunnerGroup
from shoal.rl.env.registry import make_env_creator
from shoal.rl.env.spaces import ActionAdapter, ObsPreprocessor, check_action_space, check_observation_space
from shoal.rl.errors import EnvError
from shoal.rl.utils import metrics as M

__all__ = ["Algorithm", "Checkpoint", "TrainingResult"]

logger = logging.getLogger(__name__)

CHECKPOINT_STATE_FILE = "algorithm_state.pkl"
CHECKPOINT_META_FILE = "shoal_rl_checkpoint.json"
CHECKPOINT_VERSION = "1"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint directory written by :meth:`Algorithm.save`."""

    path: str

    def __fspath__(self) -> str:
        return self.path


@dataclass
class TrainingResult:
    """What :meth:`Algorithm.save` returns: the checkpoint and the metrics of the last iteration."""

    checkpoint: Checkpoint
    metrics: dict[str, Any] = field(default_factory=dict)


class Algorithm:
    """Base of PPO and DQN.

    Build one with ``SomeConfig().environment(...).build_algo()`` (or
    ``Algorithm(config=...)`` with a config or a dict, as Tune does). Each
    :meth:`train` call runs :meth:`training_step` until the iteration's
    minimum time and steps are reached and returns a result dict laid out
    like RLlib's new API stack.
    """

    learner_class: type[Learner] = Learner
    module_class: type[RLModule] = RLModule
    supports_continuous_actions = False
    # What the env runners record besides the basics (see EnvRunnerSpec).
    record_next_obs = False
    compute_bootstrap_values = False

    @classmethod
    def get_default_config(cls) -> AlgorithmConfig:
        return AlgorithmConfig(algo_class=cls)

    def __init__(
        self,
        config: AlgorithmConfig | dict[str, Any] | None = None,
        env: Any = None,
        logger_creator: Any = None,
        **kwargs: Any,
    ) -> None:
        cfg = self._make_config(config)
        if env is not None:
            cfg.env = env
            cfg._capture_registered_env()
        self._iteration = 0
        self._time_total = 0.0
        self._time_since_restore = 0.0
        self._iterations_since_restore = 0
        self._last_result: dict[str, Any] = {}
        self._stopped = False
        self.env_runner_group: EnvRunnerGroup | None = None
        self.eval_env_runner_group: EnvRunnerGroup | None = None
        self.learner_group: LearnerGroup | None = None
        self.setup(cfg)

    @classmethod
    def _make_config(cls, config: AlgorithmConfig | dict[str, Any] | None) -> AlgorithmConfig:
        if config is None:
            return cls.get_default_config()
        if isinstance(config, AlgorithmConfig):
            expected = type(cls.get_default_config())
            if not isinstance(config, expected):
                raise TypeError(f"{cls.__name__} needs a {expected.__name__}, got a {type(config).__name__}")
            cfg = config.copy(copy_frozen=False)
            cfg.algo_class = cls
            return cfg
        if isinstance(config, dict):
            return cls.get_default_config().update_from_dict(config)
        raise TypeError(f"config must be an AlgorithmConfig or a dict, got {type(config).__name__}")

    # -- Trainable API: setup ----------------------------------------------------

    def setup(self, config: AlgorithmConfig | dict[str, Any]) -> None:
        """Validate the config, check the env, and start the learner and env runners."""
        cfg = config if isinstance(config, AlgorithmConfig) else self._make_config(config)
        cfg.validate()
        self.validate_config(cfg)
        self.config = cfg
        logging.getLogger("shoal.rl").setLevel(cfg.log_level)
        self._env_creator = make_env_creator(cfg.env, cfg._env_creators, cfg.disable_env_checking)
        obs_space, act_space = self._probe_spaces(cfg)
        self.observation_space = obs_space
        self.action_space = act_space
        check_observation_space(obs_space, type(self).__name__)
        check_action_space(act_space, type(self).__name__, self.supports_continuous_actions)
        self.module_spec = self._module_spec(cfg)
        if cfg.num_gpus_per_learner and cfg.num_learners == 0:
            import torch

            if not torch.cuda.is_available():
                raise ValueError(
                    f"num_gpus_per_learner={cfg.num_gpus_per_learner} but torch sees no CUDA device here; "
                    "set num_gpus_per_learner=0 or run where a GPU is visible"
                )
        if cfg.num_gpus_per_learner and cfg.num_learners > 0:
            import shoal

            # A learner actor asking for GPUs the cluster does not have would wait forever to be placed.
            have = float(shoal.cluster_resources().get("GPU", 0.0))
            if have < cfg.num_gpus_per_learner:
                raise ValueError(
                    f"num_gpus_per_learner={cfg.num_gpus_per_learner} but the cluster has {have:g} GPUs, so the "
                    "learner actor could never start; set num_gpus_per_learner=0 or add a GPU node first"
                )
        cpus_per_learner = 1.0 if cfg.num_cpus_per_learner == "auto" else float(cfg.num_cpus_per_learner)
        self.learner_group = LearnerGroup(
            self.learner_class,
            cfg,
            self.module_spec,
            num_learners=cfg.num_learners,
            num_gpus_per_learner=cfg.num_gpus_per_learner,
            num_cpus_per_learner=cpus_per_learner,
        )
        self.env_runner_group = self._make_runner_group(cfg, cfg.num_env_runners, seed_offset=0)
        self._counters: dict[str, int] = {
            M.NUM_ENV_STEPS_SAMPLED_LIFETIME: 0,
            M.NUM_EPISODES_LIFETIME: 0,
            "num_env_steps_trained_lifetime": 0,
            "num_training_step_calls": 0,
        }
        self._episodes = M.EpisodeWindow(cfg.metrics_num_episodes_for_smoothing)
        self._weights_seq_no = 0
        self._weights_cache: tuple[int, dict[str, Any]] | None = None
        self._action_rng = np.random.default_rng(None if cfg.seed is None else [cfg.seed, 104729])
        self._obs_prep = ObsPreprocessor(obs_space)
        self._action_adapter = ActionAdapter(act_space, cfg.normalize_actions, cfg.clip_actions)
        self._local_module: RLModule | None = None
        self._local_module_seq_no = -1
        self.setup_algorithm()
        cfg.freeze()

    def validate_config(self, config: AlgorithmConfig) -> None:
        """Algorithm-specific checks of the config (subclasses extend)."""

    def setup_algorithm(self) -> None:
        """Algorithm-specific state (replay buffers, ...), made after runners and learner exist."""

    def _probe_spaces(self, cfg: AlgorithmConfig) -> tuple[Any, Any]:
        """Make one env here to learn its spaces (and fail at build if it cannot be made)."""
        try:
            env = self._env_creator(EnvContext(cfg.env_config, worker_index=0, num_workers=cfg.num_env_runners))
        except EnvError:
            raise
        except Exception as e:
            raise EnvError(f"could not create the environment {cfg.env!r}: {type(e).__name__}: {e}") from e
        try:
            obs_space = cfg.observation_space or getattr(env, "observation_space", None)
            act_space = cfg.action_space or getattr(env, "action_space", None)
        finally:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - only the spaces were needed
                pass
        if obs_space is None or act_space is None:
            raise EnvError(f"the environment {cfg.env!r} has no observation_space or action_space")
        return obs_space, act_space

    def _module_spec(self, cfg: AlgorithmConfig) -> RLModuleSpec:
        given = cfg.rl_module_spec or RLModuleSpec()
        module_class = given.module_class or self.module_class
        model_config = dict(cfg.get_model_config(module_class))
        model_config.update(self.module_model_config_extras(cfg))
        if given.model_config is not None:
            model_config.update(
                given.model_config if isinstance(given.model_config, dict) else vars(given.model_config)
            )
        return RLModuleSpec(
            module_class=module_class,
            observation_space=given.observation_space or self.observation_space,
            action_space=given.action_space or self.action_space,
            model_config=model_config,
        )

    def module_model_config_extras(self, cfg: AlgorithmConfig) -> dict[str, Any]:
        """Settings from the algorithm config that the module needs (DQN's ``dueling``, ...)."""
        return {}

    def _make_runner_group(self, cfg: AlgorithmConfig, num_runners: int, seed_offset: int) -> EnvRunnerGroup:
        spec = EnvRunnerSpec(
            env_creator=self._env_creator,
            module_spec=self.module_spec,
            env_config=dict(cfg.env_config),
            num_envs=cfg.num_envs_per_env_runner,
            num_workers=num_runners,
            seed=cfg.seed,
            normalize_actions=cfg.normalize_actions,
            clip_actions=cfg.clip_actions,
            clip_rewards=cfg.clip_rewards,
            record_next_obs=self.record_next_obs,
            compute_bootstrap_values=self.compute_bootstrap_values,
            driver_pid=os.getpid(),
            seed_offset=seed_offset,
        )
        return EnvRunnerGroup(
            spec,
            num_runners,
            num_cpus_per_env_runner=cfg.num_cpus_per_env_runner,
            num_gpus_per_env_runner=cfg.num_gpus_per_env_runner,
            restart_failed_env_runners=cfg.restart_failed_env_runners,
            max_num_env_runner_restarts=cfg.max_num_env_runner_restarts,
            num_consecutive_env_runner_failures_tolerance=cfg.num_consecutive_env_runner_failures_tolerance,
            sample_timeout_s=cfg.sample_timeout_s,
        )

    # -- weights -------------------------------------------------------------

    def _runner_weights(self) -> dict[str, Any]:
        """``{"seq_no", "state"}`` of the current weights, fetched from the learner once per version."""
        if self._weights_cache is None or self._weights_cache[0] != self._weights_seq_no:
            assert self.learner_group is not None
            self._weights_cache = (self._weights_seq_no, self.learner_group.get_weights())
        return {"seq_no": self._weights_cache[0], "state": self._weights_cache[1]}

    def _weights_changed(self) -> None:
        self._weights_seq_no += 1

    def get_module(self, module_id: str = DEFAULT_MODULE_ID) -> RLModule:
        """The trained module with the current weights (``forward_inference`` for greedy actions)."""
        if module_id != DEFAULT_MODULE_ID:
            raise KeyError(f"no module {module_id!r}; single-agent algorithms have only {DEFAULT_MODULE_ID!r}")
        assert self.learner_group is not None
        local = self.learner_group.local_learner
        if local is not None:
            return local.module
        if self._local_module is None:
            self._local_module = self.module_spec.build()
            self._local_module.eval()
        if self._local_module_seq_no != self._weights_seq_no:
            self._local_module.set_state(self._runner_weights()["state"])
            self._local_module_seq_no = self._weights_seq_no
        return self._local_module

    def get_weights(self) -> dict[str, np.ndarray]:
        """The module's weights as numpy arrays."""
        return dict(self._runner_weights()["state"])

    def set_weights(self, weights: dict[str, Any]) -> None:
        """Load module weights into the learner (the runners get them at the next sample)."""
        assert self.learner_group is not None
        self.learner_group.set_weights(weights)
        self._weights_changed()

    def compute_single_action(
        self, observation: Any, explore: bool | None = None, unsquash_action: bool | None = None, **kwargs: Any
    ) -> Any:
        """An action for one observation: an int for Discrete spaces, an array for Box spaces.

        ``explore=None`` follows ``config.explore``; False takes the greedy
        action. Box actions are rescaled to the space's bounds unless
        ``unsquash_action=False``.
        """
        explore = self.config.explore if explore is None else explore
        module = self.get_module()
        obs = self._obs_prep([observation])
        was_training = module.training
        module.eval()
        try:
            actions, _ = module.sample_actions(obs, explore, self._action_rng, **self._explore_kwargs(explore))
        finally:
            module.train(was_training)
        unsquash = self.config.normalize_actions if unsquash_action is None else unsquash_action
        if self._action_adapter.discrete:
            return self._action_adapter.to_env(actions)[0]
        if unsquash:
            return self._action_adapter.to_env(actions)[0]
        return np.asarray(actions[0], dtype=np.float32).reshape(self._action_adapter.shape)

    def _explore_kwargs(self, explore: bool) -> dict[str, Any]:
        """Extra arguments of ``sample_actions`` (DQN's epsilon)."""
        return {}

    # -- training ----------------------------------------------------------------

    def training_step(self) -> None:
        """One round of sampling and learning; implemented per algorithm."""
        raise NotImplementedError

    @contextmanager
    def _timer(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._iter_timers[name] = self._iter_timers.get(name, 0.0) + time.perf_counter() - t0

    def _record_samples(self, samples: list[dict[str, Any]]) -> int:
        """Count steps and episodes of runner results; returns the env steps sampled."""
        steps = 0
        for s in samples:
            steps += s["num_env_steps"]
            self._episodes.add(s["episodes"])
            n_eps = len(s["episodes"]["returns"])
            self._iter_counts[M.NUM_EPISODES] = self._iter_counts.get(M.NUM_EPISODES, 0) + n_eps
            self._counters[M.NUM_EPISODES_LIFETIME] += n_eps
            for k, v in s["timers"].items():
                self._iter_runner_timers.setdefault(k, []).append(v)
        self._counters[M.NUM_ENV_STEPS_SAMPLED_LIFETIME] += steps
        self._iter_counts[M.NUM_ENV_STEPS_SAMPLED] = self._iter_counts.get(M.NUM_ENV_STEPS_SAMPLED, 0) + steps
        return steps

    def _record_learner(self, metrics: dict[str, Any], steps_trained: int) -> None:
        self._iter_learner.append(metrics)
        self._counters["num_env_steps_trained_lifetime"] += steps_trained
        self._iter_counts["num_env_steps_trained"] = self._iter_counts.get("num_env_steps_trained", 0) + steps_trained

    def step(self) -> dict[str, Any]:
        """One iteration (Trainable API): training steps until the iteration's minimums are met."""
        cfg = self.config
        self._iter_timers: dict[str, float] = {}
        self._iter_counts: dict[str, int] = {}
        self._iter_runner_timers: dict[str, list[float]] = {}
        self._iter_learner: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        calls = 0
        while True:
            with self._timer("training_step"):
                self.training_step()
            calls += 1
            self._counters["num_training_step_calls"] += 1
            elapsed = time.perf_counter() - t0
            if cfg.min_time_s_per_iteration and elapsed < cfg.min_time_s_per_iteration:
                continue
            if self._iter_counts.get(M.NUM_ENV_STEPS_SAMPLED, 0) < cfg.min_sample_timesteps_per_iteration:
                continue
            if self._iter_counts.get("num_env_steps_trained", 0) < cfg.min_train_timesteps_per_iteration:
                continue
            break
        result = self._compile_result(calls, time.perf_counter() - t0)
        if cfg.evaluation_interval and (self._iteration + 1) % cfg.evaluation_interval == 0:
            result[M.EVALUATION_RESULTS] = self.evaluate()
        return result

    def _compile_result(self, calls: int, duration: float) -> dict[str, Any]:
        assert self.env_runner_group is not None
        sampled = self._iter_counts.get(M.NUM_ENV_STEPS_SAMPLED, 0)
        runners: dict[str, Any] = dict(self._episodes.stats())
        runners.update(
            {
                M.NUM_ENV_STEPS_SAMPLED: sampled,
                M.NUM_ENV_STEPS_SAMPLED_LIFETIME: self._counters[M.NUM_ENV_STEPS_SAMPLED_LIFETIME],
                M.NUM_EPISODES: self._iter_counts.get(M.NUM_EPISODES, 0),
                M.NUM_EPISODES_LIFETIME: self._counters[M.NUM_EPISODES_LIFETIME],
                "num_env_steps_sampled_lifetime_throughput": sampled / duration if duration > 0 else math.nan,
                "weights_seq_no": self._weights_seq_no,
            }
        )
        for k, vals in self._iter_runner_timers.items():
            runners[k] = float(np.mean(vals))
        module_metrics = _reduce_metrics(self._iter_learner)
        trained = self._iter_counts.get("num_env_steps_trained", 0)
        module_metrics.setdefault("num_module_steps_trained", trained)
        module_metrics["num_module_steps_trained_lifetime"] = self._counters["num_env_steps_trained_lifetime"]
        module_metrics["num_trainable_parameters"] = self._num_trainable_parameters()
        module_metrics["weights_seq_no"] = self._weights_seq_no
        module_metrics.update(self.extra_learner_metrics())
        learners = {
            DEFAULT_MODULE_ID: module_metrics,
            M.ALL_MODULES: {
                "num_env_steps_trained": trained,
                "num_env_steps_trained_lifetime": self._counters["num_env_steps_trained_lifetime"],
                "num_module_steps_trained": trained,
                "num_trainable_parameters": module_metrics["num_trainable_parameters"],
            },
        }
        timers = {"training_iteration": duration, **self._iter_timers}
        if calls:
            timers["training_step"] = self._iter_timers.get("training_step", 0.0) / calls
        return {
            M.TIMERS: timers,
            M.ENV_RUNNER_RESULTS: runners,
            M.LEARNER_RESULTS: learners,
            "num_training_step_calls_per_iteration": calls,
            M.NUM_ENV_STEPS_SAMPLED_LIFETIME: self._counters[M.NUM_ENV_STEPS_SAMPLED_LIFETIME],
            M.FAULT_TOLERANCE: {
                "num_healthy_workers": self.env_runner_group.num_healthy_remote_workers,
                "num_remote_worker_restarts": self.env_runner_group.num_remote_worker_restarts,
            },
        }

    def extra_learner_metrics(self) -> dict[str, Any]:
        """Algorithm-level values reported with the learner's metrics (DQN's epsilon, ...)."""
        return {}

    def _num_trainable_parameters(self) -> int:
        if not hasattr(self, "_n_params"):
            self._n_params = self.module_spec.build().num_trainable_parameters()
        return self._n_params

    def train(self) -> dict[str, Any]:
        """Run one iteration and return its result dict (with Tune's bookkeeping keys)."""
        if self._stopped:
            raise RuntimeError("this algorithm was stopped; build a new one")
        start = time.time()
        result = self.step()
        took = time.time() - start
        self._iteration += 1
        self._iterations_since_restore += 1
        self._time_total += took
        self._time_since_restore += took
        now = datetime.now()
        result.update(
            done=False,
            training_iteration=self._iteration,
            date=now.strftime("%Y-%m-%d_%H-%M-%S"),
            timestamp=int(time.time()),
            time_this_iter_s=took,
            time_total_s=self._time_total,
            time_since_restore=self._time_since_restore,
            iterations_since_restore=self._iterations_since_restore,
            pid=os.getpid(),
            hostname=socket.gethostname(),
            config=self.config.to_dict(),
        )
        self._last_result = result
        return result

    @property
    def iteration(self) -> int:
        """Number of finished ``train()`` calls."""
        return self._iteration

    training_iteration = iteration

    # -- evaluation --------------------------------------------------------------

    def evaluate(self) -> dict[str, Any]:
        """Run ``evaluation_duration`` episodes (or timesteps) with the current weights.

        Returns ``{"env_runners": {"episode_return_mean", ...}}``; acts
        greedily unless ``evaluation_config`` sets ``explore=True``.
        """
        cfg = self.config
        eval_cfg = cfg.get_evaluation_config_object()
        if self.eval_env_runner_group is None:
            self.eval_env_runner_group = self._make_eval_group(eval_cfg)
        t0 = time.perf_counter()
        weights = self._runner_weights()
        if cfg.evaluation_duration_unit == "episodes":
            results = self.eval_env_runner_group.sample_episodes(
                weights, num_episodes=cfg.evaluation_duration, explore=eval_cfg.explore
            )
        else:
            results = self.eval_env_runner_group.sample_episodes(
                weights, num_timesteps=cfg.evaluation_duration, explore=eval_cfg.explore
            )
        window = M.EpisodeWindow(max(1, sum(len(r["episodes"]["returns"]) for r in results)))
        steps = 0
        for r in results:
            window.add(r["episodes"])
            steps += r["num_env_steps"]
        runners = dict(window.stats())
        runners.update(
            {
                M.NUM_EPISODES: len(window.returns),
                M.NUM_ENV_STEPS_SAMPLED: steps,
                "sample": time.perf_counter() - t0,
                "weights_seq_no": self._weights_seq_no,
            }
        )
        return {
            M.ENV_RUNNER_RESULTS: runners,
            "num_healthy_workers": self.eval_env_runner_group.num_healthy_remote_workers,
            "num_remote_worker_restarts": self.eval_env_runner_group.num_remote_worker_restarts,
        }

    def _make_eval_group(self, eval_cfg: AlgorithmConfig) -> EnvRunnerGroup:
        # Evaluation envs get seeds of their own so they do not replay the training episodes.
        return self._make_runner_group(eval_cfg, eval_cfg.evaluation_num_env_runners, seed_offset=7_654_321)

    # -- checkpoints ----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Everything a checkpoint holds, as a picklable dict."""
        assert self.learner_group is not None
        return {
            "algorithm_class": type(self),
            "config": self.config.to_dict(),
            "learner": self.learner_group.get_state(),
            "counters": dict(self._counters),
            "episodes": self._episodes.get_state(),
            "iteration": self._iteration,
            "time_total": self._time_total,
            "weights_seq_no": self._weights_seq_no,
            "action_rng": self._action_rng.bit_generator.state,
            "algorithm": self.get_algorithm_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Load :meth:`get_state`'s output; the runners get the weights at the next sample."""
        assert self.learner_group is not None
        self.learner_group.set_state(state["learner"])
        self._counters.update(state["counters"])
        self._episodes.set_state(state["episodes"])
        self._iteration = state["iteration"]
        self._time_total = state["time_total"]
        self._action_rng.bit_generator.state = state["action_rng"]
        self.set_algorithm_state(state.get("algorithm") or {})
        # A new version number makes every runner load the restored weights.
        self._weights_seq_no = max(self._weights_seq_no, state["weights_seq_no"]) + 1
        self._weights_cache = None
        self._time_since_restore = 0.0
        self._iterations_since_restore = 0

    def get_algorithm_state(self) -> dict[str, Any]:
        """Algorithm-specific state for checkpoints (subclasses extend)."""
        return {}

    def set_algorithm_state(self, state: dict[str, Any]) -> None:
        """Load what :meth:`get_algorithm_state` returned."""

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        """Write the checkpoint files into ``checkpoint_dir`` (Trainable API)."""
        path = Path(checkpoint_dir)
        path.mkdir(parents=True, exist_ok=True)
        with open(path / CHECKPOINT_STATE_FILE, "wb") as f:
            cloudpickle.dump(self.get_state(), f)
        meta = {
            "type": "Algorithm",
            "checkpoint_version": CHECKPOINT_VERSION,
            "algorithm": type(self).__name__,
            "shoal_rl_version": __version__,
            "training_iteration": self._iteration,
        }
        (path / CHECKPOINT_META_FILE).write_text(json.dumps(meta, indent=2))

    def load_checkpoint(self, checkpoint: str | dict[str, Any]) -> None:
        """Restore from a checkpoint directory or a state dict (Trainable API)."""
        state = checkpoint if isinstance(checkpoint, dict) else _read_state(checkpoint)
        self.set_state(state)

    def save_to_path(self, path: str | os.PathLike[str] | None = None) -> str:
        """Write a checkpoint to ``path`` (a new temporary directory if None) and return the path."""
        target = str(path) if path is not None else tempfile.mkdtemp(prefix="shoal_rl_checkpoint_")
        self.save_checkpoint(target)
        return target

    def save(self, checkpoint_dir: str | os.PathLike[str] | None = None) -> TrainingResult:
        """Write a checkpoint; ``result.checkpoint.path`` is where it went."""
        path = self.save_to_path(checkpoint_dir)
        return TrainingResult(checkpoint=Checkpoint(path), metrics=dict(self._last_result))

    def restore_from_path(self, path: str | os.PathLike[str]) -> None:
        """Load the state saved at ``path`` into this algorithm."""
        self.load_checkpoint(str(path))

    def restore(self, checkpoint_path: Any) -> None:
        """Load a checkpoint given as a path, a :class:`Checkpoint` or :meth:`save`'s result."""
        self.restore_from_path(_checkpoint_path(checkpoint_path))

    @classmethod
    def from_checkpoint(cls, path: Any, **kwargs: Any) -> Algorithm:
        """Build the saved algorithm with its saved config and restore its state."""
        state = _read_state(_checkpoint_path(path))
        algo_cls: type[Algorithm] = state["algorithm_class"]
        if not issubclass(algo_cls, cls):
            raise TypeError(f"the checkpoint at {path} holds a {algo_cls.__name__}, not a {cls.__name__}")
        algo = algo_cls(config=state["config"])
        algo.set_state(state)
        return algo

    # -- Tune -------------------------------------------------------------------

    @classmethod
    def default_resource_request(cls, config: AlgorithmConfig | dict[str, Any]) -> list[dict[str, float]]:
        """Resource bundles a trial needs: the driver (with a local learner), each env runner, a remote learner."""
        cfg = cls._make_config(config)
        cpus_per_learner = 1 if cfg.num_cpus_per_learner == "auto" else float(cfg.num_cpus_per_learner)
        driver: dict[str, float] = {"CPU": 1.0}
        bundles = [driver]
        if cfg.num_learners == 0:
            if cfg.num_gpus_per_learner:
                driver["GPU"] = float(cfg.num_gpus_per_learner)
        else:
            learner = {"CPU": cpus_per_learner}
            if cfg.num_gpus_per_learner:
                learner["GPU"] = float(cfg.num_gpus_per_learner)
            bundles.append(learner)
        for _ in range(cfg.num_env_runners):
            runner = {"CPU": float(cfg.num_cpus_per_env_runner)}
            if cfg.num_gpus_per_env_runner:
                runner["GPU"] = float(cfg.num_gpus_per_env_runner)
            bundles.append(runner)
        return bundles

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        """Trainable API: an algorithm cannot switch configs in place."""
        return False

    # -- shutdown -----------------------------------------------------------------

    def cleanup(self) -> None:
        """Trainable API name of :meth:`stop`."""
        self.stop()

    def stop(self) -> None:
        """End the env runners and the learner; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        for group in (self.env_runner_group, self.eval_env_runner_group):
            if group is not None:
                group.stop()
        if self.learner_group is not None:
            self.learner_group.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env={self.config.env!r}, iteration={self._iteration})"


def _reduce_metrics(per_call: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of each learner metric over the training steps of an iteration; ``num_*`` counts are summed."""
    out: dict[str, Any] = {}
    keys = {k for m in per_call for k in m}
    for k in sorted(keys):
        vals = [m[k] for m in per_call if k in m and isinstance(m[k], (int, float))]
        if not vals:
            continue
        out[k] = sum(vals) if k.startswith("num_") else float(np.mean(vals))
    return out


def _checkpoint_path(obj: Any) -> str:
    if isinstance(obj, TrainingResult):
        obj = obj.checkpoint
    path = getattr(obj, "path", obj)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a checkpoint path, Checkpoint or TrainingResult, got {obj!r}")
    return str(path)


def _read_state(path: str) -> dict[str, Any]:
    file = Path(path) / CHECKPOINT_STATE_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not a shoal.rl checkpoint: {CHECKPOINT_STATE_FILE} is missing")
    with open(file, "rb") as f:
        state: dict[str, Any] = cloudpickle.load(f)
    return state
