"""EnvRunnerGroup: the env runners of an algorithm, in the driver or as actors, restarted when they fail."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import shoal
from shoal.rl.env.env_runner import EnvRunnerSpec, SingleAgentEnvRunner

__all__ = ["EnvRunnerGroup"]

logger = logging.getLogger(__name__)


class EnvRunnerGroup:
    """``num_env_runners`` runner actors, or one runner in this process when it is 0.

    Each weights version goes once into the object store (``shoal.put``) and
    every runner reads it from there. A runner whose call fails (its process
    died, its env raised, or it did not answer within ``sample_timeout_s``)
    is replaced by a new actor that gets the same share of the work, up to
    ``max_num_env_runner_restarts`` times in all and
    ``num_consecutive_env_runner_failures_tolerance`` times in a row per slot.
    """

    def __init__(
        self,
        spec: EnvRunnerSpec,
        num_env_runners: int = 0,
        *,
        num_cpus_per_env_runner: float = 1,
        num_gpus_per_env_runner: float = 0,
        restart_failed_env_runners: bool = True,
        max_num_env_runner_restarts: int = 1000,
        num_consecutive_env_runner_failures_tolerance: int = 10,
        sample_timeout_s: float | None = 60.0,
    ) -> None:
        self.spec = spec
        self.num_env_runners = num_env_runners
        self._actor_options: dict[str, Any] = {"num_cpus": num_cpus_per_env_runner, "max_restarts": 0}
        if num_gpus_per_env_runner:
            self._actor_options["num_gpus"] = num_gpus_per_env_runner
        self.restart_failed = restart_failed_env_runners
        self.max_restarts = max_num_env_runner_restarts
        self.max_consecutive = num_consecutive_env_runner_failures_tolerance
        self.sample_timeout_s = sample_timeout_s
        self.num_remote_worker_restarts = 0
        self._restarts: dict[int, int] = {}
        self.local_runner: SingleAgentEnvRunner | None = None
        self._weights_ref: tuple[Any, Any] | None = None
        self._actors: dict[int, Any] = {}
        if num_env_runners == 0:
            self.local_runner = SingleAgentEnvRunner(spec, worker_index=0)
        else:
            self._actor_cls = shoal.remote(SingleAgentEnvRunner)
            for index in range(1, num_env_runners + 1):
                self._actors[index] = self._create(index)
            # Surface constructor errors (a bad env_config, say) now rather than at the first sample.
            self._call_all("ping", [{} for _ in self._actors], restart=False)

    # -- runner actors -------------------------------------------------------

    def _create(self, index: int) -> Any:
        restarts = self._restarts.get(index, 0)
        return self._actor_cls.options(**self._actor_options).remote(self.spec, index, restarts)

    def _replace(self, index: int) -> None:
        old = self._actors.get(index)
        if old is not None:
            try:
                shoal.kill(old)
            except Exception:  # noqa: BLE001 - it may already be gone
                pass
        self._restarts[index] = self._restarts.get(index, 0) + 1
        self.num_remote_worker_restarts += 1
        self._actors[index] = self._create(index)

    def _call_all(self, method: str, kwargs_per_runner: list[dict[str, Any]], restart: bool = True) -> list[Any]:
        """Call ``method`` on every actor with its kwargs; replace and retry the ones that fail."""
        indices = list(self._actors)
        kw_of = dict(zip(indices, kwargs_per_runner, strict=True))
        pending = {i: getattr(self._actors[i], method).remote(**kw_of[i]) for i in indices}
        results: dict[int, Any] = {}
        failures: dict[int, int] = {}
        while pending:
            index, ref = next(iter(pending.items()))
            del pending[index]
            try:
                results[index] = shoal.get(ref, timeout=self.sample_timeout_s)
            except Exception as e:  # any failure of a runner is handled the same way
                failures[index] = failures.get(index, 0) + 1
                if not (restart and self.restart_failed):
                    raise
                if self.num_remote_worker_restarts >= self.max_restarts:
                    raise RuntimeError(
                        f"env runner {index} failed and the limit of {self.max_restarts} env runner "
                        "restarts (max_num_env_runner_restarts) is used up"
                    ) from e
                if failures[index] > self.max_consecutive:
                    raise RuntimeError(
                        f"env runner {index} failed {failures[index]} times in a row "
                        "(num_consecutive_env_runner_failures_tolerance); last error below"
                    ) from e
                logger.warning("env runner %d failed (%s: %s); restarting it", index, type(e).__name__, e)
                self._replace(index)
                pending[index] = getattr(self._actors[index], method).remote(**kw_of[index])
        return [results[i] for i in indices]

    # -- sampling ------------------------------------------------------------

    def _weights_arg(self, weights: dict[str, Any] | None) -> Any:
        if weights is None or self.local_runner is not None:
            return weights
        # One copy in the object store per weights version, read by every runner (and reused by
        # later calls while the version stays the same, as before DQN's learning starts).
        seq_no = weights.get("seq_no")
        if self._weights_ref is None or seq_no is None or self._weights_ref[0] != seq_no:
            self._weights_ref = (seq_no, shoal.put(weights))
        return self._weights_ref[1]

    def sample(
        self, weights: dict[str, Any] | None, num_timesteps: int, explore: bool = True, **action_kwargs: Any
    ) -> list[dict[str, Any]]:
        """Collect about ``num_timesteps`` env steps in all, split evenly over the runners."""
        if self.local_runner is not None:
            return [self.local_runner.sample(weights, num_timesteps, explore, **action_kwargs)]
        per_runner = math.ceil(num_timesteps / len(self._actors))
        ref = self._weights_arg(weights)
        kw = {"weights": ref, "num_timesteps": per_runner, "explore": explore, **action_kwargs}
        return self._call_all("sample", [kw for _ in self._actors])

    def sample_episodes(
        self,
        weights: dict[str, Any] | None,
        num_episodes: int | None = None,
        num_timesteps: int | None = None,
        explore: bool = False,
    ) -> list[dict[str, Any]]:
        """Run fresh episodes (or timesteps) split over the runners; used for evaluation."""
        if self.local_runner is not None:
            return [self.local_runner.sample_episodes(weights, num_episodes, num_timesteps, explore)]
        n = len(self._actors)
        ref = self._weights_arg(weights)
        if num_episodes is not None:
            shares = [num_episodes // n + (1 if i < num_episodes % n else 0) for i in range(n)]
            kws = [{"weights": ref, "num_episodes": s, "explore": explore} for s in shares]
            # A runner with no episode to run still loads the weights, so all stay in step.
            kws = [kw if kw["num_episodes"] else {"weights": ref, "num_timesteps": 0} for kw in kws]
        else:
            assert num_timesteps is not None
            kws = [{"weights": ref, "num_timesteps": math.ceil(num_timesteps / n), "explore": explore}] * n
        return self._call_all("sample_episodes", kws)

    # -- state ---------------------------------------------------------------

    @property
    def num_healthy_remote_workers(self) -> int:
        return len(self._actors)

    def foreach_env_runner(self, func: Callable[[SingleAgentEnvRunner], Any]) -> list[Any]:
        """``func(runner)`` on every runner (in its process); results in runner order."""
        if self.local_runner is not None:
            return [func(self.local_runner)]
        return self._call_all("apply", [{"func": func} for _ in self._actors])

    def remote_actors(self) -> list[Any]:
        """Handles of the runner actors, in worker-index order (empty with ``num_env_runners=0``)."""
        return [self._actors[i] for i in sorted(self._actors)]

    def stop(self) -> None:
        """Close the envs and end the runner actors."""
        if self.local_runner is not None:
            self.local_runner.stop()
            self.local_runner = None
        for actor in self._actors.values():
            try:
                shoal.get(actor.stop.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - a dead runner has nothing to close
                pass
            try:
                shoal.kill(actor)
            except Exception:  # noqa: BLE001
                pass
        self._actors.clear()
        self._weights_ref = None
