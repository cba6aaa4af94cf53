"""Experiment state on disk, for ``Tuner.restore``: ``experiment_state-<time>.json`` and ``tuner.pkl``.

The JSON file lists every trial readably (status, config, last result,
checkpoints) and carries the controller's state (trials, search algorithm,
scheduler, stopper) pickled in base64, as Ray's state file carries its
cloudpickle fallbacks. It is rewritten atomically, so a driver killed at any
moment leaves either the previous or the new version.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import pickle
from typing import Any

import cloudpickle

from shoal.tune.execution._logger import _default
from shoal.tune.experiment.trial import Trial

__all__ = ["STATE_GLOB", "TUNER_FILE", "latest_state_file", "load_state", "save_state", "write_atomic"]

STATE_GLOB = "experiment_state-*.json"
TUNER_FILE = "tuner.pkl"


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _trial_summary(trial: Trial) -> dict[str, Any]:
    return {
        "trial_id": trial.trial_id,
        "trainable_name": trial.trainable_name,
        "status": trial.status,
        "experiment_tag": trial.experiment_tag,
        "dir_name": trial.dir_name,
        "config": trial.config,
        "last_result": trial.last_result,
        "num_failures": trial.num_failures,
        "error_msg": trial.error_msg,
        "checkpoints": [r.checkpoint.path for r in trial.checkpoints],
    }


def save_state(path: str, state: dict[str, Any], trials: list[Trial], runner_data: dict[str, Any]) -> None:
    """Write the experiment state file at ``path``."""
    blob = base64.b64encode(cloudpickle.dumps(state)).decode("ascii")
    doc = {
        "trial_data": [_trial_summary(t) for t in trials],
        "runner_data": runner_data,
        "pickled_state": blob,
    }
    write_atomic(path, json.dumps(doc, default=_default).encode())


def latest_state_file(experiment_path: str) -> str | None:
    files = sorted(glob.glob(os.path.join(glob.escape(experiment_path), STATE_GLOB)))
    return files[-1] if files else None


def load_state(experiment_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pickled controller state and the runner data of the newest state file."""
    path = latest_state_file(experiment_path)
    if path is None:
        raise ValueError(f"no experiment state ({STATE_GLOB}) in {experiment_path!r}: nothing to restore")
    with open(path) as f:
        doc = json.load(f)
    state = pickle.loads(base64.b64decode(doc["pickled_state"]))
    return state, doc.get("runner_data", {})
