"""Trial files in Ray Tune's layout.

``params.json``, ``params.pkl``, ``result.json`` (one JSON result per line),
``progress.csv`` and, for failed trials, ``error.txt`` and ``error.pkl``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any

import cloudpickle

from shoal.tune.experiment.trial import Trial
from shoal.tune.search.variant_generator import flatten_dict

__all__ = ["TrialLogger", "json_safe"]

EXPERIMENT_FILES = ("params.json", "params.pkl", "result.json", "progress.csv")


def _default(value: Any) -> Any:
    # numpy scalars and arrays without importing numpy here.
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def json_safe(value: Any) -> str:
    """JSON text for results and configs; non-JSON values become their repr, as in Ray."""
    return json.dumps(value, default=_default)


class TrialLogger:
    """Writes each trial's files; opens and closes files per write so nothing stays open."""

    def __init__(self) -> None:
        self._csv_fields: dict[str, list[str]] = {}

    def on_start(self, trial: Trial) -> None:
        assert trial.path is not None
        os.makedirs(trial.path, exist_ok=True)
        with open(os.path.join(trial.path, "params.json"), "w") as f:
            f.write(json.dumps(trial.config, default=_default, indent=2, sort_keys=True))
        try:
            payload = cloudpickle.dumps(trial.config)
        except Exception:  # noqa: BLE001 - a config that cannot pickle still gets params.json
            payload = None
        if payload is not None:
            with open(os.path.join(trial.path, "params.pkl"), "wb") as f:
                f.write(payload)

    def on_result(self, trial: Trial, result: dict[str, Any]) -> None:
        assert trial.path is not None
        with open(os.path.join(trial.path, "result.json"), "a") as f:
            f.write(json_safe(result) + "\n")
        row = flatten_dict({k: v for k, v in result.items() if k != "config"})
        fields = self._csv_fields.get(trial.trial_id)
        path = os.path.join(trial.path, "progress.csv")
        write_header = False
        if fields is None:
            fields = _existing_header(path)
            if fields is None:
                # Like Ray: the first result fixes the columns.
                fields = list(row)
                write_header = True
            self._csv_fields[trial.trial_id] = fields
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        if write_header:
            writer.writeheader()
        writer.writerow({k: _csv_value(row.get(k)) for k in fields})
        with open(path, "a", newline="") as f:
            f.write(buf.getvalue())

    def on_error(self, trial: Trial) -> None:
        assert trial.path is not None
        os.makedirs(trial.path, exist_ok=True)
        with open(os.path.join(trial.path, "error.txt"), "a") as f:
            f.write(f"Failure # {trial.num_failures} (occurred at {_now()})\n{trial.error_msg or ''}\n")
        try:
            payload = cloudpickle.dumps(trial.error)
        except Exception:  # noqa: BLE001
            return
        with open(os.path.join(trial.path, "error.pkl"), "wb") as f:
            f.write(payload)

    def on_finish(self, trial: Trial) -> None:
        self._csv_fields.pop(trial.trial_id, None)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict, tuple)):
        return json_safe(value)
    return _finite(value)


def _existing_header(path: str) -> list[str] | None:
    try:
        with open(path, newline="") as f:
            line = f.readline()
    except FileNotFoundError:
        return None
    if not line.strip():
        return None
    return next(csv.reader([line]))


def _now() -> str:
    import datetime

    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
