"""Trainers as shoal.tune trainables: ``Tuner(trainer, param_space={"train_loop_config": ...})``."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time

import pytest

import shoal
from shoal import train
from shoal.train import DataParallelTrainer

# shoal-tune is an optional extra of shoal-train (shoal-train[tune]).
tune = pytest.importorskip("shoal.tune")
from shoal.tune.schedulers import ASHAScheduler  # noqa: E402

pytestmark = pytest.mark.usefixtures("shoal_runtime")

HALF_CPU = train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5})


def tune_run_config(tmp_path, **kwargs):
    return tune.RunConfig(name="exp", storage_path=str(tmp_path), verbose=0, **kwargs)


def checkpoint_dirs(path):
    return sorted(d for d in os.listdir(path) if d.startswith("checkpoint_"))


@contextlib.contextmanager
def step_checkpoint(step):
    """A checkpoint from rank 0 only (the other ranks report None), as users write them."""
    if train.get_context().get_world_rank() != 0:
        yield None
        return
    with tempfile.TemporaryDirectory() as d:  # report() copies it before returning
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump({"step": step}, f)
        yield train.Checkpoint.from_directory(d)


def load_step():
    checkpoint = train.get_checkpoint()
    if checkpoint is None:
        return -1
    with checkpoint.as_directory() as d, open(os.path.join(d, "state.json")) as f:
        return json.load(f)["step"]


# -- the trainable's shape ---------------------------------------------------------------


def test_a_trial_reserves_an_empty_head_and_one_bundle_per_worker():
    trainer = DataParallelTrainer(lambda: None, scaling_config=HALF_CPU)
    trainable = trainer.as_trainable()
    pgf = trainable._shoal_resources({})
    assert isinstance(pgf, tune.PlacementGroupFactory)
    assert pgf.head_bundle_is_empty
    assert pgf.bundles == [{"CPU": 0.5}, {"CPU": 0.5}]
    assert pgf.required_resources == {"CPU": 1.0}
    # param_space may change the scaling per trial.
    bigger = trainable._shoal_resources({"scaling_config": train.ScalingConfig(num_workers=3)})
    assert bigger.bundles == [{"CPU": 1.0}] * 3
    assert trainable.__name__ == "DataParallelTrainer"


# -- trials ------------------------------------------------------------------------------


def counting_loop(config):
    start = load_step() + 1
    for step in range(start, config["steps"]):
        metrics = {
            "loss": config["scale"] / (step + 1),
            "step": step,
            "world_size": train.get_context().get_world_size(),
        }
        with step_checkpoint(step) as checkpoint:
            train.report(metrics, checkpoint=checkpoint)


def test_asha_stops_a_poor_trainer_trial_and_results_land_in_the_grid(tmp_path):
    trainer = DataParallelTrainer(counting_loop, train_loop_config={"steps": 6}, scaling_config=HALF_CPU)
    grid = tune.Tuner(
        trainer,
        param_space={"train_loop_config": {"scale": tune.grid_search([1.0, 100.0])}},
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            # One trial at a time makes ASHA's decision exact: the good trial fills the rungs first.
            max_concurrent_trials=1,
            scheduler=ASHAScheduler(max_t=6, grace_period=1, reduction_factor=2),
        ),
        run_config=tune_run_config(tmp_path),
    ).fit()
    assert grid.num_errors == 0, grid.errors
    good, poor = grid[0], grid[1]
    assert good.config == {"train_loop_config": {"scale": 1.0}}
    assert good.metrics["training_iteration"] == 6 and good.metrics["step"] == 5
    assert good.metrics["world_size"] == 2
    assert poor.metrics["training_iteration"] == 1  # cut at the first rung
    # Workers write checkpoints straight into the trial folder; tune takes them in place.
    assert os.path.dirname(good.checkpoint.path) == good.path
    assert checkpoint_dirs(good.path) == [f"checkpoint_{i:06d}" for i in range(6)]
    with open(os.path.join(good.checkpoint.path, "state.json")) as f:
        assert json.load(f) == {"step": 5}
    # Steps in flight when ASHA stopped the poor trial left no checkpoint behind.
    assert checkpoint_dirs(poor.path) == ["checkpoint_000000"]
    assert grid.get_best_result().config["train_loop_config"]["scale"] == 1.0
    assert len(grid.get_dataframe()) == 2
    # The trial's result.json is tune's, one line per step.
    with open(os.path.join(good.path, "result.json")) as f:
        assert [json.loads(line)["step"] for line in f] == list(range(6))


def flaky_loop(config):
    start = load_step() + 1
    for step in range(start, 4):
        marker = os.path.join(config["dir"], "failed_once")
        if step == 2 and train.get_context().get_world_rank() == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("rank 1 fails once at step 2")
        with step_checkpoint(step) as checkpoint:
            train.report({"step": step, "start": start}, checkpoint=checkpoint)


def test_a_failed_trainer_trial_is_retried_by_tune_from_its_latest_checkpoint(tmp_path):
    trainer = DataParallelTrainer(flaky_loop, train_loop_config={"dir": str(tmp_path)}, scaling_config=HALF_CPU)
    grid = tune.Tuner(
        trainer, run_config=tune_run_config(tmp_path, failure_config=tune.FailureConfig(max_failures=1))
    ).fit()
    assert grid.num_errors == 0, grid.errors
    result = grid[0]
    assert result.metrics["step"] == 3
    # The retry resumed from the last checkpoint tune got (step 1's, or step 0's when rank 0's
    # step-1 report came after the failure ended the attempt), not from scratch.
    with open(os.path.join(result.path, "result.json")) as f:
        rows = [json.loads(line) for line in f]
    resumed = next(i for i, row in enumerate(rows) if row["start"] > 0)
    assert rows[resumed]["start"] == rows[resumed - 1]["step"] + 1 >= 1
    assert [row["step"] for row in rows[resumed:]] == list(range(rows[resumed]["start"], 4))
    assert checkpoint_dirs(result.path) == [f"checkpoint_{i:06d}" for i in range(4)]


def test_a_trainer_trial_beyond_max_failures_errors_with_the_rank_that_failed(tmp_path):
    trainer = DataParallelTrainer(flaky_loop, train_loop_config={"dir": str(tmp_path)}, scaling_config=HALF_CPU)
    grid = tune.Tuner(trainer, run_config=tune_run_config(tmp_path)).fit()
    assert grid.num_errors == 1
    error = grid.errors[0]
    assert isinstance(error, train.TrainingFailedError)
    assert "rank 1" in str(error) and "fails once at step 2" in str(error)
    assert grid[0].metrics["step"] in (0, 1)  # step 1 counts only if rank 0 reported it in time


def test_the_trainers_run_config_applies_when_the_tuner_has_none(tmp_path):
    trainer = DataParallelTrainer(
        counting_loop,
        train_loop_config={"steps": 3, "scale": 1.0},
        scaling_config=HALF_CPU,
        run_config=train.RunConfig(storage_path=str(tmp_path), checkpoint_config=train.CheckpointConfig(num_to_keep=1)),
    )
    grid = tune.Tuner(trainer).fit()
    assert grid.num_errors == 0, grid.errors
    path = grid[0].path
    assert path.startswith(str(tmp_path)) and os.path.basename(os.path.dirname(path)).startswith("DataParallelTrainer")
    assert checkpoint_dirs(path) == ["checkpoint_000002"]  # num_to_keep=1, kept by tune


def test_param_space_may_only_set_trainer_arguments(tmp_path):
    trainer = DataParallelTrainer(counting_loop, scaling_config=HALF_CPU)
    grid = tune.Tuner(trainer, param_space={"lr": 0.1}, run_config=tune_run_config(tmp_path)).fit()
    assert isinstance(grid.errors[0], ValueError)
    assert "may set only ['train_loop_config', 'scaling_config', 'datasets']" in str(grid.errors[0])


def test_train_loop_config_is_merged_key_by_key(tmp_path):
    def loop(config):
        train.report({"seen": json.dumps(config, sort_keys=True)})

    trainer = DataParallelTrainer(
        loop, train_loop_config={"lr": 1.0, "opt": {"name": "sgd", "momentum": 0.9}}, scaling_config=HALF_CPU
    )
    grid = tune.Tuner(
        trainer,
        param_space={"train_loop_config": {"opt": {"momentum": tune.grid_search([0.0])}}},
        run_config=tune_run_config(tmp_path),
    ).fit()
    assert json.loads(grid[0].metrics["seen"]) == {"lr": 1.0, "opt": {"momentum": 0.0, "name": "sgd"}}


# -- torch, two trials at once -------------------------------------------------------------


def torch_loop(config):
    import torch

    from shoal.train.torch import prepare_model

    ctx = train.get_context()
    if ctx.get_world_rank() == 0:
        # Both trials must run at once: each waits here until the other has started.
        open(os.path.join(config["barrier"], str(config["lr"])), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(config["barrier"])) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the other trial never started")
            time.sleep(0.05)
    torch.manual_seed(0)
    model = prepare_model(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    gen = torch.Generator().manual_seed(ctx.get_world_rank())
    x = torch.randn(16, 4, generator=gen)
    y = x.sum(dim=1, keepdim=True)
    for step in range(load_step() + 1, 3):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        metrics = {"loss": loss.item(), "step": step, "world_size": ctx.get_world_size(), "pg": _placement_group()}
        with step_checkpoint(step) as checkpoint:
            train.report(metrics, checkpoint=checkpoint)


def _placement_group():
    return shoal.get_runtime_context().get_placement_group_id()


@pytest.mark.shoal_backends("local")  # two torch ranks need two processes
@pytest.mark.timeout(180)
def test_two_torch_trainer_trials_of_two_workers_run_at_once(tmp_path):
    from shoal.train.torch import TorchTrainer

    barrier = tmp_path / "barrier"
    barrier.mkdir()
    trainer = TorchTrainer(torch_loop, train_loop_config={"barrier": str(barrier)}, scaling_config=HALF_CPU)
    # 2 trials x 2 workers x 0.5 CPU fill the 2 CPUs: every worker must run in its trial's own
    # bundles (a second placement group per trainer would wait forever).
    grid = tune.Tuner(
        trainer,
        param_space={"train_loop_config": {"lr": tune.grid_search([0.1, 0.01])}},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=tune_run_config(tmp_path),
    ).fit()
    assert grid.num_errors == 0, grid.errors
    assert [r.metrics["training_iteration"] for r in grid] == [3, 3]
    assert all(r.metrics["world_size"] == 2 for r in grid)
    assert grid[0].metrics["pg"] != grid[1].metrics["pg"]  # each trial's workers in its own group
    assert all(checkpoint_dirs(r.path) == ["checkpoint_000000", "checkpoint_000001", "checkpoint_000002"] for r in grid)
    assert grid.get_best_result().config == {"train_loop_config": {"lr": 0.1}}


def reports_group(config):
    train.report({"pg": _placement_group()})


def fit_inside_a_trial(config):
    # The older Ray pattern: a function trainable that runs a whole fit() itself.
    trainer = DataParallelTrainer(
        reports_group, scaling_config=train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.5})
    )
    result = trainer.fit()
    tune.report({"trial_pg": _placement_group(), "worker_pg": result.metrics["pg"]})


# On inline, threads started in actors do not see the actor's placement group (a core gap).
@pytest.mark.shoal_backends("local")
@pytest.mark.parametrize(
    ("resources", "same_group"),
    [
        # The trial holds the head bundle; the second one fits the worker.
        (tune.PlacementGroupFactory([{"CPU": 0.5}, {"CPU": 0.5}]), True),
        # One bundle, held by the trial itself: the workers get a group of their own.
        ({"cpu": 0.5}, False),
    ],
    ids=["worker-bundle", "no-room"],
)
def test_a_fit_inside_a_function_trial_uses_the_trials_bundles_when_they_fit(tmp_path, resources, same_group):
    grid = tune.Tuner(
        tune.with_resources(fit_inside_a_trial, resources),
        run_config=tune_run_config(tmp_path),
    ).fit()
    assert grid.num_errors == 0, grid.errors
    metrics = grid[0].metrics
    assert (metrics["worker_pg"] == metrics["trial_pg"]) is same_group


def counts_shard_rows(config):
    shard = train.get_dataset_shard("train")
    train.report({"rows": sum(len(b["id"]) for b in shard.iter_batches(batch_size=8))})


@pytest.mark.shoal_backends("local")
def test_a_trainer_with_shoal_data_datasets_runs_as_a_trial(tmp_path):
    data = pytest.importorskip("shoal.data")
    trainer = DataParallelTrainer(counts_shard_rows, datasets={"train": data.range(40)}, scaling_config=HALF_CPU)
    # The datasets' tasks start from the trial and run in its group: it reserves a bundle for them.
    pgf = trainer.as_trainable()._shoal_resources({})
    assert pgf.bundles == [{"CPU": 1.0}, {"CPU": 0.5}, {"CPU": 0.5}]
    grid = tune.Tuner(trainer, run_config=tune_run_config(tmp_path)).fit()
    assert grid.num_errors == 0, grid.errors
    assert grid[0].metrics["rows"] == 20  # rank 0's half
