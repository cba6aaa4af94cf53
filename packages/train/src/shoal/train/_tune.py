"""A trainer as a shoal.tune trainable: ``Tuner(trainer, param_space={"train_loop_config": {...}})``.

Each trial runs one whole ``fit()`` of the trainer in the trial's function
thread. The trial reserves one placement group: an empty head bundle for
the trial itself (it only coordinates) and one bundle per training worker,
so the workers of every running trial are already paid for when the trial
starts; the worker group places its actors into those bundles
(``_worker_group``). Each step the workers report becomes one
``tune.report``; the workers write checkpoints straight into the trial's
folder, where tune takes them as they are. Schedulers that stop a trial
unwind its ``fit()`` at the report, which kills the trial's workers.

shoal.tune is imported only here, and only when tune runs the trial.
"""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING, Any

from shoal.train import _storage
from shoal.train.checkpoint import Checkpoint
from shoal.train.config import ScalingConfig

if TYPE_CHECKING:
    from shoal.train.trainer import DataParallelTrainer

__all__ = ["DATA_BUNDLE", "PARAM_SPACE_KEYS", "TrainTrainable", "TuneLink"]

#: The trainer arguments a Tuner's ``param_space`` may set (as in Ray).
PARAM_SPACE_KEYS = ("train_loop_config", "scaling_config", "datasets")
#: What a trial of a trainer with datasets reserves for the datasets' own tasks. (Ray Data's
#: tasks leave the trial's placement group; shoal.data's are captured by it, so the group
#: must hold room for them or they wait forever.)
DATA_BUNDLE = {"CPU": 1.0}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``, nested dicts merged key by key (Ray's rule for trainer params)."""
    out = copy.copy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _next_checkpoint_number(trial_dir: str) -> int:
    """One past the highest ``checkpoint_NNNNNN`` already in the trial folder (0 if none).

    A restarted trial must not write over the checkpoint it resumes from, nor
    over what an earlier run of it left behind.
    """
    numbers = [-1]
    for name in _storage.list_dir(None, trial_dir):
        suffix = name[len(_storage.CHECKPOINT_PREFIX) :]
        if name.startswith(_storage.CHECKPOINT_PREFIX) and suffix.isdigit():
            numbers.append(int(suffix))
    return max(numbers) + 1


class TuneLink:
    """What a ``fit()`` that runs as a tune trial needs from the trial."""

    def __init__(self) -> None:
        from shoal import tune

        ctx = tune.get_context()
        trial_dir = ctx.get_trial_dir()
        if trial_dir is None:
            raise RuntimeError("a trainer's trainable runs only as a tune trial (Tuner(trainer, ...).fit())")
        self.trial_dir = os.path.abspath(trial_dir)
        self.trial_name = ctx.get_trial_name() or os.path.basename(self.trial_dir)
        self.experiment_name = ctx.get_experiment_name() or os.path.basename(os.path.dirname(self.trial_dir))
        os.makedirs(self.trial_dir, exist_ok=True)
        self.storage = _storage.StorageContext(os.path.dirname(self.trial_dir), os.path.basename(self.trial_dir))
        self.first_index = _next_checkpoint_number(self.trial_dir)
        self._handed: set[str] = set()  # checkpoint folders given to tune in this run
        latest = tune.get_checkpoint()
        # The trial's latest checkpoint (after a retry, a restore or a PBT exploit), local as tune's are.
        self.checkpoint = Checkpoint(latest.path) if latest is not None else None

    def report(self, metrics: dict[str, Any], checkpoint: Checkpoint | None) -> None:
        """Hand one step to tune; returns when tune wants the next (raises inside if tune stops the trial)."""
        from shoal import tune

        tune_checkpoint = None
        if checkpoint is not None:
            tune_checkpoint = tune.Checkpoint(checkpoint.path)
            self._handed.add(os.path.basename(checkpoint.path))
        tune.report(dict(metrics), checkpoint=tune_checkpoint)

    def remove_unreported(self) -> None:
        """Delete checkpoints the workers wrote in this run but tune never got.

        Workers persist a checkpoint before the driver takes their report, so
        when tune stops a trial (or the group fails) the steps in flight leave
        folders behind that no result refers to.
        """
        for name in _storage.list_dir(None, self.trial_dir):
            suffix = name[len(_storage.CHECKPOINT_PREFIX) :]
            if not (name.startswith(_storage.CHECKPOINT_PREFIX) and suffix.isdigit()):
                continue
            if int(suffix) >= self.first_index and name not in self._handed:
                _storage.delete_dir(None, os.path.join(self.trial_dir, name))


class TrainTrainable:
    """The function trainable made by ``trainer.as_trainable()``: ``fn(config)`` runs one ``fit()``."""

    def __init__(self, trainer: DataParallelTrainer) -> None:
        self._trainer = trainer
        self.__name__ = type(trainer).__name__
        self.__qualname__ = self.__name__
        # Read by shoal.tune for each trial's config: its resources.
        self._shoal_resources = self.resources_for

    def _scaling(self, config: dict[str, Any]) -> ScalingConfig:
        scaling = config.get("scaling_config", self._trainer.scaling_config)
        if isinstance(scaling, dict):
            scaling = ScalingConfig(**scaling)
        if not isinstance(scaling, ScalingConfig):
            raise TypeError(f"param_space['scaling_config'] must be a ScalingConfig or a dict, got {scaling!r}")
        return scaling

    def resources_for(self, config: dict[str, Any]) -> Any:
        """The trial's bundles: an empty head (the trial only coordinates) and one per worker.

        With datasets, one more bundle (``DATA_BUNDLE``, before the workers') holds
        the dataset's tasks: they start from the trial and so run in its group,
        whose worker bundles the workers fill.
        """
        from shoal.tune import PlacementGroupFactory

        scaling = self._scaling(config)
        worker = dict(scaling.worker_resources)
        data = [dict(DATA_BUNDLE)] if (self._trainer.datasets or config.get("datasets")) else []
        return PlacementGroupFactory(
            [{}] + data + [dict(worker) for _ in range(scaling.num_workers)], strategy=scaling.placement_strategy
        )

    def _check_keys(self, config: dict[str, Any]) -> None:
        unknown = sorted(set(config) - set(PARAM_SPACE_KEYS))
        if unknown:
            raise ValueError(
                f"param_space of a {type(self._trainer).__name__} may set only {list(PARAM_SPACE_KEYS)}; "
                f"got {unknown} (put the training function's settings under 'train_loop_config')"
            )

    def __call__(self, config: dict[str, Any]) -> None:
        from shoal.train._controller import TrainController

        self._check_keys(config)
        trainer = self._trainer
        loop_config = trainer.train_loop_config
        if "train_loop_config" in config:
            override = config["train_loop_config"]
            if not isinstance(override, dict):
                raise TypeError(f"param_space['train_loop_config'] must be a dict, got {type(override).__name__}")
            loop_config = _merge(loop_config or {}, override)
        datasets = trainer.datasets
        if "datasets" in config:
            from shoal.train.data_config import check_datasets

            datasets = check_datasets({**datasets, **config["datasets"]})
        link = TuneLink()
        controller = TrainController(
            trainer.train_loop_per_worker,
            loop_config,
            trainer.backend_config,
            self._scaling(config),
            trainer.run_config,
            datasets,
            trainer.dataset_config,
            trainer.resume_from_checkpoint,
            tune_link=link,
        )
        controller.run()

    def __repr__(self) -> str:
        return f"TrainTrainable({self._trainer!r})"
