"""All results of an experiment: :class:`ResultGrid`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shoal.tune.experiment.trial import Trial
from shoal.tune.result import Result, _read_results
from shoal.tune.search.variant_generator import flatten_dict

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ResultGrid"]

_SCOPES = ("all", "last", "avg", "last-5-avg", "last-10-avg")


def _trial_result(trial: Trial) -> Result:
    best = [(r.checkpoint, r.metrics) for r in trial.checkpoints]
    return Result(
        metrics=dict(trial.last_result) if trial.last_result else {},
        checkpoint=trial.checkpoint,
        error=trial.error if trial.status == Trial.ERROR else None,
        path=trial.path or "",
        best_checkpoints=best,
    )


class ResultGrid:
    """The :class:`Result` of every trial, in creation order, with helpers to pick the best."""

    def __init__(
        self,
        trials: list[Trial],
        experiment_path: str,
        metric: str | None = None,
        mode: str | None = None,
    ) -> None:
        self._trials = list(trials)
        self._results = [_trial_result(t) for t in self._trials]
        self._experiment_path = experiment_path
        self._metric = metric
        self._mode = mode

    @property
    def experiment_path(self) -> str:
        """The experiment folder (``storage_path/name``)."""
        return self._experiment_path

    @property
    def filesystem(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, i: int) -> Result:
        return self._results[i]

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    @property
    def errors(self) -> list[BaseException]:
        """The errors of the trials that failed."""
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self) -> int:
        return sum(1 for t in self._trials if t.status == Trial.ERROR)

    @property
    def num_terminated(self) -> int:
        return sum(1 for t in self._trials if t.status == Trial.TERMINATED)

    def get_best_result(
        self,
        metric: str | None = None,
        mode: str | None = None,
        scope: str = "last",
        filter_nan_and_inf: bool = True,
    ) -> Result:
        """The result of the best trial by ``metric`` and ``mode`` (defaults: TuneConfig's).

        ``scope`` picks which value of each trial counts: ``"last"`` (its last
        result), ``"avg"``, ``"last-5-avg"``, ``"last-10-avg"``, or ``"all"``
        (its best result ever).
        """
        if len(self._trials) == 1:
            return self._results[0]
        metric = metric or self._metric
        mode = mode or self._mode
        if not metric:
            raise ValueError(
                "No metric is provided. Either pass in a `metric` arg to `get_best_result` "
                "or specify a metric in the `TuneConfig` of your `Tuner`."
            )
        if mode not in ("min", "max"):
            raise ValueError(
                f"mode must be 'min' or 'max' (pass `mode` to get_best_result or to TuneConfig), got {mode!r}"
            )
        if scope not in _SCOPES:
            raise ValueError(f"scope must be one of {_SCOPES}, got {scope!r}")
        best_index = None
        best_value = -math.inf
        sign = 1.0 if mode == "max" else -1.0
        for i, trial in enumerate(self._trials):
            stats = trial.metric_analysis.get(metric)
            if stats is None:
                continue
            # scope "all" means the trial's best result ever.
            key = scope if scope != "all" else mode
            value = stats[key]
            if filter_nan_and_inf and not math.isfinite(value):
                continue
            if best_index is None or sign * value > best_value:
                best_index, best_value = i, sign * value
        if best_index is None:
            raise RuntimeError(
                f"No best trial found for the given metric: {metric}. This means that no trial has "
                "reported this metric, or all values reported for this metric are NaN."
            )
        return self._results[best_index]

    def get_dataframe(self, filter_metric: str | None = None, filter_mode: str | None = None) -> pd.DataFrame:
        """One row per trial: its last result (or its best by ``filter_metric``), flattened, plus ``logdir``."""
        import pandas as pd

        if (filter_metric is None) != (filter_mode is None):
            raise ValueError("pass both filter_metric and filter_mode, or neither")
        if filter_mode not in (None, "min", "max"):
            raise ValueError(f"filter_mode must be 'min' or 'max', got {filter_mode!r}")
        rows = []
        for trial in self._trials:
            row: dict[str, Any] | None = dict(trial.last_result) if trial.last_result else None
            if filter_metric is not None:
                candidates = [r for r in _read_results(trial.path or "") if filter_metric in r]
                if candidates:
                    pick = max if filter_mode == "max" else min
                    row = pick(candidates, key=lambda r: r[filter_metric])
            if row is None:
                continue
            flat = flatten_dict(row)
            flat["logdir"] = trial.path
            rows.append(flat)
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"ResultGrid<{len(self)} results, {self.num_errors} errors, {self.num_terminated} terminated>"
