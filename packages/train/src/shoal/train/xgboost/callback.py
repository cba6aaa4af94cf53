"""``ShoalTrainReportCallback``: an xgboost callback that reports each round's metrics and checkpoints."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from xgboost import Booster
from xgboost.callback import TrainingCallback

from shoal.train.checkpoint import Checkpoint
from shoal.train.context import get_context, report

__all__ = ["RayTrainReportCallback", "ShoalTrainReportCallback"]


def _flatten(evals_log: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"train": {"rmse": [..]}}`` -> ``{"train-rmse": last value}``."""
    out: dict[str, Any] = {}
    for data_name, metrics in evals_log.items():
        for metric, values in metrics.items():
            last = values[-1]
            out[f"{data_name}-{metric}"] = last[0] if isinstance(last, tuple) else last
    return out


class ShoalTrainReportCallback(TrainingCallback):
    """Pass to ``xgboost.train(callbacks=[...])`` inside an XGBoostTrainer's training function.

    After every boosting round it calls :func:`shoal.train.report` with the
    evaluation metrics (named ``"<eval name>-<metric>"``); every ``frequency``
    rounds, and at the end with ``checkpoint_at_end``, rank 0 saves the model as
    ``filename`` in a checkpoint reported with the metrics.

    Args:
        metrics: metric names to report (all when None); a dict renames them.
        filename: the model file's name in the checkpoint.
        frequency: checkpoint every this many rounds (0: only at the end).
        checkpoint_at_end: checkpoint after the last round.
        results_postprocessing_fn: turns the metrics dict into the one reported.
    """

    CHECKPOINT_NAME = "model.ubj"

    def __init__(
        self,
        metrics: str | list[str] | dict[str, str] | None = None,
        filename: str = CHECKPOINT_NAME,
        frequency: int = 0,
        checkpoint_at_end: bool = True,
        results_postprocessing_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 0:
            raise ValueError(f"frequency must be an integer >= 0, got {frequency!r}")
        self._metrics = [metrics] if isinstance(metrics, str) else metrics
        self._filename = filename
        self._frequency = frequency
        self._checkpoint_at_end = checkpoint_at_end
        self._postprocess = results_postprocessing_fn
        self._last: dict[str, Any] = {}
        self._last_checkpoint_round: int | None = None

    @classmethod
    def get_model(cls, checkpoint: Checkpoint, filename: str = CHECKPOINT_NAME) -> Booster:
        """The Booster saved in ``checkpoint`` by this callback."""
        with checkpoint.as_directory() as d:
            booster = Booster()
            booster.load_model(os.path.join(d, filename))
            return booster

    def _report_dict(self, evals_log: dict[str, Any]) -> dict[str, Any]:
        flat = _flatten(evals_log)
        if self._metrics is None:
            out = flat
        elif isinstance(self._metrics, dict):
            out = {new: flat[old] for new, old in self._metrics.items()}
        else:
            out = {k: flat[k] for k in self._metrics}
        return self._postprocess(out) if self._postprocess else out

    def _report(self, metrics: dict[str, Any], model: Booster | None) -> None:
        if model is None or get_context().get_world_rank() != 0:
            report(metrics)
            return
        d = tempfile.mkdtemp(prefix="shoal_xgb_")
        try:
            model.save_model(os.path.join(d, self._filename))
            report(metrics, checkpoint=Checkpoint.from_directory(d))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def after_iteration(self, model: Booster, epoch: int, evals_log: dict[str, Any]) -> bool:
        self._last = self._report_dict(evals_log)
        if self._frequency and (epoch + 1) % self._frequency == 0:
            self._last_checkpoint_round = epoch
            self._report(self._last, model)
        else:
            self._report(self._last, None)
        return False

    def after_training(self, model: Booster) -> Booster:
        if self._checkpoint_at_end and self._last_checkpoint_round != model.num_boosted_rounds() - 1:
            self._report(self._last, model)
        return model


#: Ray's name for the same callback, for code moved from Ray.
RayTrainReportCallback = ShoalTrainReportCallback
