"""``DataParallelTrainer``: run one training function on N workers (SPMD)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoal.train.backend import BackendConfig
from shoal.train.checkpoint import Checkpoint
from shoal.train.config import RunConfig, ScalingConfig
from shoal.train.data_config import DataConfig, check_datasets
from shoal.train.result import Result

__all__ = ["DataParallelTrainer"]


class DataParallelTrainer:
    """Runs ``train_loop_per_worker`` on ``scaling_config.num_workers`` workers at once.

    Each worker is an actor holding one bundle of a placement group. Inside the
    function, :func:`shoal.train.get_context` gives the worker's rank,
    :func:`shoal.train.report` reports metrics and checkpoints,
    :func:`shoal.train.get_checkpoint` the checkpoint to resume from, and
    :func:`shoal.train.get_dataset_shard` this worker's shard of ``datasets``.

    Args:
        train_loop_per_worker: ``fn(config)`` or ``fn()``.
        train_loop_config: passed to the function as its argument.
        backend_config: the framework's setup (``TorchConfig``...); none by default.
        scaling_config: how many workers and what each holds.
        run_config: name, storage, checkpoint retention, failure handling, callbacks.
        datasets: ``{name: dataset}``; each worker gets a shard (see ``dataset_config``).
        dataset_config: which datasets are split among workers.
        resume_from_checkpoint: the checkpoint that ``get_checkpoint()`` returns on a fresh start.
    """

    _default_backend_config: Callable[[], BackendConfig] = BackendConfig

    def __init__(
        self,
        train_loop_per_worker: Callable[..., Any],
        *,
        train_loop_config: dict[str, Any] | None = None,
        backend_config: BackendConfig | None = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        datasets: dict[str, Any] | None = None,
        dataset_config: DataConfig | None = None,
        resume_from_checkpoint: Checkpoint | None = None,
    ) -> None:
        if not callable(train_loop_per_worker):
            raise TypeError(f"train_loop_per_worker must be a function, got {train_loop_per_worker!r}")
        if train_loop_config is not None and not isinstance(train_loop_config, dict):
            raise TypeError(f"train_loop_config must be a dict, got {type(train_loop_config).__name__}")
        if backend_config is not None and not isinstance(backend_config, BackendConfig):
            raise TypeError(f"backend_config must be a shoal.train BackendConfig, got {backend_config!r}")
        if scaling_config is not None and not isinstance(scaling_config, ScalingConfig):
            raise TypeError(f"scaling_config must be a shoal.train.ScalingConfig, got {scaling_config!r}")
        if run_config is not None and not isinstance(run_config, RunConfig):
            raise TypeError(f"run_config must be a shoal.train.RunConfig, got {run_config!r}")
        if dataset_config is not None and not isinstance(dataset_config, DataConfig):
            raise TypeError(f"dataset_config must be a shoal.train.DataConfig, got {dataset_config!r}")
        if resume_from_checkpoint is not None and not isinstance(resume_from_checkpoint, Checkpoint):
            raise TypeError(f"resume_from_checkpoint must be a shoal.train.Checkpoint, got {resume_from_checkpoint!r}")
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = train_loop_config
        self.backend_config = backend_config or type(self)._default_backend_config()
        self.scaling_config = scaling_config or ScalingConfig()
        self.run_config = run_config or RunConfig()
        self.datasets = check_datasets(datasets)
        self.dataset_config = dataset_config or DataConfig()
        self.resume_from_checkpoint = resume_from_checkpoint

    def fit(self) -> Result:
        """Train until every worker's function returns; the :class:`Result` of the run.

        Raises:
            shoal.train.TrainingFailedError: (a ``WorkerGroupError``) when workers
                failed more often than ``FailureConfig.max_failures`` allows; it
                names each failed rank with its error and traceback.
        """
        from shoal.train._controller import TrainController

        controller = TrainController(
            self.train_loop_per_worker,
            self.train_loop_config,
            self.backend_config,
            self.scaling_config,
            self.run_config,
            self.datasets,
            self.dataset_config,
            self.resume_from_checkpoint,
        )
        return controller.run()

    def as_trainable(self) -> Any:
        """This trainer as a shoal.tune trainable; ``Tuner(trainer, ...)`` calls it.

        Each trial runs one ``fit()``. ``param_space`` may set
        ``train_loop_config`` (merged into this trainer's, nested dicts key by
        key), ``scaling_config`` and ``datasets``. A trial reserves one
        placement group: an empty head bundle for itself and one bundle per
        worker, and its workers run in those bundles. Every step the workers
        report is one tune result; checkpoints land in the trial's folder.
        A failed trial is retried by tune's ``FailureConfig`` from its latest
        checkpoint (the trainer's own failure config applies only when the
        Tuner is given no ``run_config``).
        """
        from shoal.train._tune import TrainTrainable

        return TrainTrainable(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scaling_config={self.scaling_config!r})"
