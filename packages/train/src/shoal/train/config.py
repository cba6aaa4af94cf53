"""Run configuration: how many workers, where results go, what to keep, how often to retry."""

from __future__ import annotations

import datetime
import numbers
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckpointConfig", "FailureConfig", "RunConfig", "ScalingConfig", "DEFAULT_STORAGE_PATH"]

#: Where runs go when ``RunConfig.storage_path`` is not set (Ray uses ``~/ray_results``).
DEFAULT_STORAGE_PATH = os.path.join(os.path.expanduser("~"), "shoal_results")

_PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass
class ScalingConfig:
    """How many training workers to start and what each of them holds.

    Args:
        num_workers: number of worker actors (one process each).
        use_gpu: give every worker one GPU (unless ``resources_per_worker`` says how many).
        resources_per_worker: resources each worker reserves; default ``{"CPU": 1}``, or
            ``{"GPU": 1}`` with ``use_gpu``.
        placement_strategy: strategy of the placement group that holds the workers
            (``PACK``, ``SPREAD``, ``STRICT_PACK``, ``STRICT_SPREAD``).
    """

    num_workers: int = 1
    use_gpu: bool = False
    resources_per_worker: dict[str, float] | None = None
    placement_strategy: str = "PACK"

    def __post_init__(self) -> None:
        if not _is_int(self.num_workers) or self.num_workers < 1:
            raise ValueError(f"ScalingConfig(num_workers=...) must be an integer >= 1, got {self.num_workers!r}")
        if not isinstance(self.use_gpu, bool):
            raise TypeError(f"ScalingConfig(use_gpu=...) must be a bool, got {self.use_gpu!r}")
        if self.placement_strategy not in _PLACEMENT_STRATEGIES:
            raise ValueError(
                f"ScalingConfig(placement_strategy=...) must be one of {', '.join(_PLACEMENT_STRATEGIES)}, "
                f"got {self.placement_strategy!r}"
            )
        if self.resources_per_worker is not None:
            if not isinstance(self.resources_per_worker, dict):
                raise TypeError(
                    f"ScalingConfig(resources_per_worker=...) must be a dict, got {self.resources_per_worker!r}"
                )
            for key, amount in self.resources_per_worker.items():
                if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or amount < 0:
                    raise ValueError(
                        f"ScalingConfig(resources_per_worker=...): {key!r} needs a number >= 0, got {amount!r}"
                    )
            gpus = self.resources_per_worker.get("GPU", 0)
            if not self.use_gpu and gpus > 0:
                raise ValueError(
                    "ScalingConfig: use_gpu is False but resources_per_worker asks for GPUs; "
                    "set use_gpu=True or remove 'GPU' from resources_per_worker"
                )
            if self.use_gpu and "GPU" in self.resources_per_worker and gpus == 0:
                raise ValueError(
                    "ScalingConfig: use_gpu is True but resources_per_worker sets 'GPU' to 0; "
                    "set use_gpu=False or ask for a positive number of GPUs"
                )

    @property
    def worker_resources(self) -> dict[str, float]:
        """The bundle each worker reserves (zero amounts dropped)."""
        if self.resources_per_worker is None:
            resources = {"GPU": 1.0} if self.use_gpu else {"CPU": 1.0}
        else:
            resources = {k: float(v) for k, v in self.resources_per_worker.items() if v}
        if self.use_gpu:
            resources.setdefault("GPU", 1.0)
        return resources

    @property
    def num_cpus_per_worker(self) -> float:
        return self.worker_resources.get("CPU", 0.0)

    @property
    def num_gpus_per_worker(self) -> float:
        return self.worker_resources.get("GPU", 0.0)

    @property
    def total_resources(self) -> dict[str, float]:
        """What the whole worker group reserves."""
        return {k: v * self.num_workers for k, v in self.worker_resources.items()}


@dataclass
class CheckpointConfig:
    """Which reported checkpoints to keep in storage.

    Args:
        num_to_keep: keep at most this many (None: keep all). The latest checkpoint is
            always kept too, so that a restart can resume from it.
        checkpoint_score_attribute: metric that ranks checkpoints; None ranks by recency.
        checkpoint_score_order: ``"max"`` or ``"min"``: which end of the score is best.
    """

    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"

    def __post_init__(self) -> None:
        if self.num_to_keep is not None and (not _is_int(self.num_to_keep) or self.num_to_keep < 1):
            raise ValueError(
                f"CheckpointConfig(num_to_keep=...) must be None or an integer >= 1, got {self.num_to_keep!r}"
            )
        if self.checkpoint_score_order not in ("max", "min"):
            raise ValueError(
                f"CheckpointConfig(checkpoint_score_order=...) must be 'max' or 'min', "
                f"got {self.checkpoint_score_order!r}"
            )
        if self.checkpoint_score_attribute is not None and not isinstance(self.checkpoint_score_attribute, str):
            raise TypeError(
                f"CheckpointConfig(checkpoint_score_attribute=...) must be a string, "
                f"got {self.checkpoint_score_attribute!r}"
            )


@dataclass
class FailureConfig:
    """How many times the worker group is restarted after a failure (-1: without limit)."""

    max_failures: int = 0

    def __post_init__(self) -> None:
        if not _is_int(self.max_failures) or self.max_failures < -1:
            raise ValueError(f"FailureConfig(max_failures=...) must be an integer >= -1, got {self.max_failures!r}")


def _default_run_name() -> str:
    return "shoal_train_run-" + datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


@dataclass
class RunConfig:
    """Where a run stores its checkpoints and results, and how it reacts to failures.

    Results go to ``storage_path/name/``. ``storage_path`` is a local path or a URI
    that ``pyarrow.fs`` understands (``s3://bucket/prefix``); ``storage_filesystem``
    gives the filesystem explicitly. Running again with the same ``name`` resumes
    the run from its latest checkpoint.
    """

    name: str | None = None
    storage_path: str | os.PathLike[str] | None = None
    storage_filesystem: Any = None
    failure_config: FailureConfig | None = None
    checkpoint_config: CheckpointConfig | None = None
    callbacks: list[Any] | None = field(default=None)
    worker_runtime_env: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.name is None:
            self.name = _default_run_name()
        elif not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"RunConfig(name=...) must be a non-empty string without '/', got {self.name!r}")
        if self.storage_path is None:
            self.storage_path = DEFAULT_STORAGE_PATH
        elif isinstance(self.storage_path, os.PathLike):
            self.storage_path = os.fspath(self.storage_path)
        if not isinstance(self.storage_path, str):
            raise TypeError(f"RunConfig(storage_path=...) must be a path or URI string, got {self.storage_path!r}")
        if self.storage_filesystem is not None:
            import pyarrow.fs

            if not isinstance(self.storage_filesystem, pyarrow.fs.FileSystem):
                got = self.storage_filesystem
                raise TypeError(f"RunConfig(storage_filesystem=...) must be a pyarrow.fs.FileSystem, got {got!r}")
        if self.failure_config is None:
            self.failure_config = FailureConfig()
        elif not isinstance(self.failure_config, FailureConfig):
            raise TypeError(f"RunConfig(failure_config=...) must be a FailureConfig, got {self.failure_config!r}")
        if self.checkpoint_config is None:
            self.checkpoint_config = CheckpointConfig()
        elif not isinstance(self.checkpoint_config, CheckpointConfig):
            raise TypeError(
                f"RunConfig(checkpoint_config=...) must be a CheckpointConfig, got {self.checkpoint_config!r}"
            )
        self.callbacks = list(self.callbacks or [])
        from shoal.train.callback import UserCallback

        for cb in self.callbacks:
            if not isinstance(cb, UserCallback):
                raise TypeError(f"RunConfig(callbacks=...) takes shoal.train.UserCallback instances, got {cb!r}")
        if self.worker_runtime_env is not None and not isinstance(self.worker_runtime_env, dict):
            raise TypeError(f"RunConfig(worker_runtime_env=...) must be a dict, got {self.worker_runtime_env!r}")
