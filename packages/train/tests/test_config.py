"""Configuration objects: defaults as in Ray Train and clear errors on bad values."""

from __future__ import annotations

import os

import pytest

from shoal import train


def test_scaling_config_defaults_and_resources():
    assert train.ScalingConfig().worker_resources == {"CPU": 1.0}
    gpu = train.ScalingConfig(num_workers=2, use_gpu=True)
    assert gpu.worker_resources == {"GPU": 1.0}
    assert gpu.total_resources == {"GPU": 2.0}
    custom = train.ScalingConfig(num_workers=3, resources_per_worker={"CPU": 2, "custom": 0.5, "memory": 0})
    assert custom.worker_resources == {"CPU": 2.0, "custom": 0.5}
    assert custom.total_resources == {"CPU": 6.0, "custom": 1.5}
    assert custom.num_cpus_per_worker == 2.0 and custom.num_gpus_per_worker == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_workers": 0}, ValueError, "num_workers"),
        ({"num_workers": 1.5}, ValueError, "num_workers"),
        ({"use_gpu": "yes"}, TypeError, "use_gpu"),
        ({"placement_strategy": "RANDOM"}, ValueError, "placement_strategy"),
        ({"resources_per_worker": {"CPU": -1}}, ValueError, "resources_per_worker"),
        ({"resources_per_worker": {"GPU": 1}}, ValueError, "use_gpu is False"),
        ({"use_gpu": True, "resources_per_worker": {"GPU": 0}}, ValueError, "use_gpu is True"),
    ],
)
def test_scaling_config_rejects_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        train.ScalingConfig(**kwargs)


def test_run_config_defaults(tmp_path):
    rc = train.RunConfig()
    assert rc.name.startswith("shoal_train_run-")
    assert rc.storage_path == os.path.join(os.path.expanduser("~"), "shoal_results")
    assert rc.failure_config == train.FailureConfig(max_failures=0)
    assert rc.checkpoint_config == train.CheckpointConfig()
    assert rc.callbacks == []
    assert train.RunConfig(storage_path=tmp_path).storage_path == str(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "a/b"}, ValueError, "name"),
        ({"storage_path": 3}, TypeError, "storage_path"),
        ({"storage_filesystem": "s3"}, TypeError, "storage_filesystem"),
        ({"failure_config": {"max_failures": 1}}, TypeError, "failure_config"),
        ({"checkpoint_config": 3}, TypeError, "checkpoint_config"),
        ({"callbacks": [object()]}, TypeError, "UserCallback"),
    ],
)
def test_run_config_rejects_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        train.RunConfig(**kwargs)


def test_checkpoint_and_failure_config_validation():
    with pytest.raises(ValueError, match="num_to_keep"):
        train.CheckpointConfig(num_to_keep=0)
    with pytest.raises(ValueError, match="checkpoint_score_order"):
        train.CheckpointConfig(checkpoint_score_order="best")
    with pytest.raises(ValueError, match="max_failures"):
        train.FailureConfig(max_failures=-2)
    assert train.FailureConfig(max_failures=-1).max_failures == -1


def test_trainer_rejects_bad_arguments():
    with pytest.raises(TypeError, match="train_loop_per_worker"):
        train.DataParallelTrainer("not a function")
    with pytest.raises(TypeError, match="train_loop_config"):
        train.DataParallelTrainer(lambda: None, train_loop_config=[1])
    with pytest.raises(TypeError, match="scaling_config"):
        train.DataParallelTrainer(lambda: None, scaling_config={"num_workers": 2})
    with pytest.raises(TypeError, match="datasets"):
        train.DataParallelTrainer(lambda: None, datasets={"train": [1, 2, 3]})
    with pytest.raises(TypeError, match="resume_from_checkpoint"):
        train.DataParallelTrainer(lambda: None, resume_from_checkpoint="/tmp")


def test_session_functions_outside_a_training_function():
    for fn, args in [
        (train.report, ({"x": 1},)),
        (train.get_checkpoint, ()),
        (train.get_context, ()),
        (train.get_dataset_shard, ("train",)),
    ]:
        with pytest.raises(RuntimeError, match="only inside a training function"):
            fn(*args)
