"""Checkpoint retention (num_to_keep by score or recency), deletion from storage, and the snapshot."""

from __future__ import annotations

import os

import pytest

from shoal.train import CheckpointConfig, Result
from shoal.train._checkpoint_manager import CheckpointManager
from shoal.train._storage import StorageContext
from shoal.train.checkpoint import Checkpoint


def register(manager, storage, name, metrics):
    path = storage.checkpoint_path(name)
    os.makedirs(path)
    with open(os.path.join(path, "state"), "w") as f:
        f.write(name)
    return manager.register(Checkpoint(path), metrics, name)


@pytest.fixture
def storage(tmp_path):
    s = StorageContext(str(tmp_path), "run")
    os.makedirs(s.experiment_fs_path)
    return s


def on_disk(storage):
    root = storage.experiment_fs_path
    return sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))


def test_keeps_the_most_recent_without_a_score(storage):
    m = CheckpointManager(storage, CheckpointConfig(num_to_keep=2))
    for i in range(5):
        register(m, storage, f"checkpoint_{i:06d}", {"i": i})
    assert [r.metrics["i"] for r in m.kept] == [3, 4]
    assert on_disk(storage) == ["checkpoint_000003", "checkpoint_000004"]
    assert m.latest.metrics == {"i": 4}


@pytest.mark.parametrize(
    ("order", "scores", "kept"), [("max", [0.3, 0.9, 0.1, 0.7], [0.7, 0.9]), ("min", [0.7, 0.1, 0.9, 0.3], [0.3, 0.1])]
)
def test_keeps_the_best_by_score_and_always_the_latest(storage, order, scores, kept):
    m = CheckpointManager(
        storage, CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="acc", checkpoint_score_order=order)
    )
    for i, acc in enumerate(scores):
        register(m, storage, f"checkpoint_{i:06d}", {"acc": acc})
    assert [r.metrics["acc"] for r in m.kept] == kept
    # A worse latest checkpoint is kept too, so that a restart resumes from it.
    register(m, storage, "checkpoint_000004", {"acc": 0.5})
    assert [r.metrics["acc"] for r in m.kept] == [0.5, *kept]
    assert m.latest.metrics == {"acc": 0.5}
    assert len(on_disk(storage)) == 3
    # Once a newer one arrives, the worse former latest goes.
    register(m, storage, "checkpoint_000005", {"acc": kept[-1]})
    assert "checkpoint_000004" not in on_disk(storage)


def test_missing_score_ranks_worst(storage, caplog):
    m = CheckpointManager(storage, CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="acc"))
    register(m, storage, "checkpoint_a", {"acc": 0.5})
    register(m, storage, "checkpoint_b", {"loss": 1.0})
    register(m, storage, "checkpoint_c", {"acc": 0.1})
    assert [r.dir_name for r in m.kept] == ["checkpoint_c", "checkpoint_a"]  # worst first
    assert "acc" in caplog.text and "missing" in caplog.text


def test_snapshot_is_reloaded_and_read_by_result_from_path(storage):
    m = CheckpointManager(storage, CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="acc"))
    for i, acc in enumerate([0.2, 0.8, 0.5]):
        register(m, storage, f"checkpoint_{i:06d}", {"acc": acc})
    m.report_count = 7
    m.save()
    again = CheckpointManager(storage, CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="acc"))
    assert again.load()
    assert [r.dir_name for r in again.kept] == ["checkpoint_000002", "checkpoint_000001"]
    assert again.latest.dir_name == "checkpoint_000002" and again.report_count == 7
    result = Result.from_path(storage.experiment_fs_path)
    assert result.checkpoint.path == storage.checkpoint_path("checkpoint_000002")
    assert result.metrics == {"acc": 0.5}
    # Read back without the run's CheckpointConfig, retained checkpoints come oldest first.
    assert [m["acc"] for _, m in result.best_checkpoints] == [0.8, 0.5]
    assert result.get_best_checkpoint("acc", "max").path.endswith("checkpoint_000001")
    assert result.get_best_checkpoint("acc", "min").path.endswith("checkpoint_000002")
    assert list(result.metrics_dataframe["acc"]) == [0.8, 0.5]
    with pytest.raises(RuntimeError, match="does not exist"):
        Result.from_path(os.path.join(storage.storage_fs_path, "nope"))
    with pytest.raises(ValueError, match="mode"):
        result.get_best_checkpoint("acc", "best")
