"""Tuner end to end on a shoal runtime: function and class trainables, files on disk, errors."""

from __future__ import annotations

import json
import os
import tempfile

import pytest

from shoal import tune
from shoal.exceptions import TaskError
from shoal.tune.schedulers import ASHAScheduler, PopulationBasedTraining

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def run_config(tmp_path, name="exp", **kwargs):
    return tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0, **kwargs)


def counting(config):
    for i in range(3):
        metrics = {"score": config["x"] * (i + 1), "nested": {"i": i}}
        if i != 1:
            tune.report(metrics)
            continue
        # tune copies the checkpoint during report(), so the folder may go right after.
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"i": i}, f)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def test_function_trainable_results_and_files(tmp_path):
    tuner = tune.Tuner(
        counting,
        param_space={"x": tune.grid_search([1, 3, 2]), "c": "const"},
        tune_config=tune.TuneConfig(metric="score", mode="max"),
        run_config=run_config(tmp_path),
    )
    grid = tuner.fit()
    assert len(grid) == 3 and grid.num_terminated == 3 and grid.num_errors == 0
    assert grid.experiment_path == str(tmp_path / "exp")
    best = grid.get_best_result()
    assert best.config == {"x": 3, "c": "const"}
    assert best.metrics["score"] == 9 and best.metrics["training_iteration"] == 3
    assert best.metrics["done"] is True
    assert grid.get_best_result(mode="min").config["x"] == 1

    # Ray's layout: one folder per trial with params, results, progress and checkpoints.
    names = sorted(os.listdir(grid.experiment_path))
    assert "tuner.pkl" in names and any(n.startswith("experiment_state-") for n in names)
    trial_dir = best.path
    assert os.path.basename(trial_dir).startswith(f"counting_{best.metrics['trial_id']}_1_x=3")
    with open(os.path.join(trial_dir, "params.json")) as f:
        assert json.load(f) == {"x": 3, "c": "const"}
    with open(os.path.join(trial_dir, "result.json")) as f:
        rows = [json.loads(line) for line in f]
    assert [r["training_iteration"] for r in rows] == [1, 2, 3]
    assert [r["score"] for r in rows] == [3, 6, 9]
    assert rows[0]["config"] == {"x": 3, "c": "const"}
    with open(os.path.join(trial_dir, "progress.csv")) as f:
        lines = f.read().splitlines()
    header = lines[0].split(",")
    assert header[:2] == ["score", "nested/i"] and "config" not in header and "training_iteration" in header
    assert len(lines) == 4

    assert best.checkpoint is not None
    assert best.checkpoint.path == os.path.join(trial_dir, "checkpoint_000000")
    with best.checkpoint.as_directory() as d, open(os.path.join(d, "state.json")) as f:
        assert json.load(f) == {"i": 1}
    assert [m["training_iteration"] for _, m in best.best_checkpoints] == [2]
    assert list(best.metrics_dataframe["score"]) == [3, 6, 9]
    df = grid.get_dataframe()
    assert sorted(df["config/x"]) == [1, 2, 3] and "logdir" in df.columns and "nested/i" in df.columns
    first_best = grid.get_dataframe(filter_metric="score", filter_mode="min")
    assert list(first_best["training_iteration"]) == [1, 1, 1]


def test_returned_dict_is_the_last_result(tmp_path):
    def once(config):
        return {"score": config["x"] + 1}

    grid = tune.Tuner(once, param_space={"x": 1}, run_config=run_config(tmp_path)).fit()
    assert grid[0].metrics["score"] == 2
    assert grid[0].metrics["training_iteration"] == 1


def failing(config):
    if config["x"] == 2:
        raise ValueError("bad x")
    tune.report({"score": config["x"]})


def test_a_failing_trial_is_marked_and_the_rest_go_on(tmp_path):
    grid = tune.Tuner(failing, param_space={"x": tune.grid_search([1, 2, 3])}, run_config=run_config(tmp_path)).fit()
    assert grid.num_errors == 1 and grid.num_terminated == 2
    (error,) = grid.errors
    # As in Ray: a task error that is also the trainable's own exception class.
    assert isinstance(error, ValueError) and isinstance(error, TaskError)
    assert isinstance(error.cause, ValueError) and str(error.cause) == "bad x"
    assert "ValueError: bad x" in str(error) and "in failing" in str(error)
    bad = next(r for r in grid if r.error is not None)
    with open(os.path.join(bad.path, "error.txt")) as f:
        text = f.read()
    assert "ValueError: bad x" in text and "in failing" in text
    assert sorted(r.metrics["score"] for r in grid if r.error is None) == [1, 3]


def flaky(config):
    # Fails once, right after its second report; the retry resumes from that checkpoint.
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "step")) as f:
            start = int(f.read())
    marker = os.path.join(tune.get_context().get_trial_dir(), "failed-once")
    for step in range(start, 5):
        if step == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("transient")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "step"), "w") as f:
                f.write(str(step + 1))
            tune.report({"step": step, "resumed_from": start}, checkpoint=tune.Checkpoint.from_directory(d))


def test_max_failures_retries_from_the_latest_checkpoint(tmp_path):
    grid = tune.Tuner(
        flaky,
        run_config=run_config(tmp_path, failure_config=tune.FailureConfig(max_failures=1)),
    ).fit()
    result = grid[0]
    assert result.error is None
    assert result.metrics["step"] == 4 and result.metrics["resumed_from"] == 2
    assert list(result.metrics_dataframe["training_iteration"]) == [1, 2, 3, 4, 5]
    with open(os.path.join(result.path, "error.txt")) as f:
        assert "RuntimeError: transient" in f.read()


def test_without_retries_the_flaky_trial_errors(tmp_path):
    grid = tune.Tuner(flaky, run_config=run_config(tmp_path)).fit()
    assert grid.num_errors == 1
    assert isinstance(grid.errors[0], RuntimeError) and str(grid.errors[0].cause) == "transient"


class Quadratic(tune.Trainable):
    def setup(self, config):
        self.x = config["start"]
        self.lr = config["lr"]

    def step(self):
        self.x -= self.lr * 2 * self.x
        return {"loss": self.x**2, "done": self.iteration + 1 >= 6}

    def save_checkpoint(self, checkpoint_dir):
        return {"x": self.x}

    def load_checkpoint(self, checkpoint):
        self.x = checkpoint["x"]


def test_class_trainable_with_checkpoint_frequency_and_at_end(tmp_path):
    grid = tune.Tuner(
        Quadratic,
        param_space={"start": 4.0, "lr": tune.grid_search([0.1, 0.25])},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
        run_config=run_config(
            tmp_path,
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=2, checkpoint_at_end=True, num_to_keep=2),
        ),
    ).fit()
    best = grid.get_best_result()
    assert best.config["lr"] == 0.25
    assert best.metrics["training_iteration"] == 6
    # Saved after iterations 2 and 4 and at the end; only the last two are kept.
    kept = sorted(n for n in os.listdir(best.path) if n.startswith("checkpoint_"))
    assert kept == ["checkpoint_000001", "checkpoint_000002"]
    assert best.checkpoint.path.endswith("checkpoint_000002")


def test_checkpoint_frequency_is_refused_for_functions(tmp_path):
    tuner = tune.Tuner(
        counting,
        param_space={"x": 1},
        run_config=run_config(tmp_path, checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=1)),
    )
    with pytest.raises(ValueError, match="Trainable classes only"):
        tuner.fit()


def test_stop_dict_and_max_concurrent(tmp_path):
    def endless(config):
        i = 0
        while True:
            i += 1
            tune.report({"i": i, "res": tune.get_context().get_trial_resources().required_resources})

    grid = tune.Tuner(
        endless,
        param_space={"x": tune.grid_search([1, 2])},
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
        run_config=run_config(tmp_path, stop={"i": 4}),
    ).fit()
    assert [r.metrics["i"] for r in grid] == [4, 4]
    assert grid[0].metrics["res"] == {"CPU": 1.0}


def sees_available_cpus(config):
    import time

    import shoal

    # Wait (briefly) until every trial of the grid holds its share, so the value seen is
    # the one while all of them run.
    deadline = time.monotonic() + 15
    cpus = shoal.available_resources().get("CPU", 0.0)
    while abs(cpus - config["expect"]) > 1e-9 and time.monotonic() < deadline:
        time.sleep(0.05)
        cpus = shoal.available_resources().get("CPU", 0.0)
    tune.report({"cpus": cpus})


# The inline backend does not reserve resources for actors, so only local shows what a trial holds.
@pytest.mark.shoal_backends("local")
@pytest.mark.parametrize(
    ("resources", "expect"), [({"cpu": 0.5}, 1.5), ({"CPU": 1.5, "gpu": 0}, 0.5), (None, 1.0)], ids=str
)
def test_a_trial_holds_what_it_asked_for(tmp_path, resources, expect):
    trainable = sees_available_cpus if resources is None else tune.with_resources(sees_available_cpus, resources)
    grid = tune.Tuner(trainable, param_space={"expect": expect}, run_config=run_config(tmp_path)).fit()
    assert grid.num_errors == 0, grid.errors
    assert grid[0].metrics["cpus"] == expect  # of the 2 CPUs of the runtime


@pytest.mark.shoal_backends("local")
def test_concurrent_fractional_trials_each_hold_their_share(tmp_path):
    # The reported bug: two trials of {"cpu": 0} saw 0 CPUs left, as each trial held 1 CPU
    # anyway. {"cpu": 0} is refused now (as in Ray); fractional requests hold exactly that.
    grid = tune.Tuner(
        tune.with_resources(sees_available_cpus, {"cpu": 0.5}),
        param_space={"expect": 1.0, "i": tune.grid_search([0, 1])},
        run_config=run_config(tmp_path),
    ).fit()
    assert grid.num_errors == 0, grid.errors
    assert [r.metrics["cpus"] for r in grid] == [1.0, 1.0]
    with pytest.raises(ValueError, match="ask for nothing"):
        tune.with_resources(sees_available_cpus, {"cpu": 0})


def test_time_budget_ends_the_experiment(tmp_path):
    import time

    def slow(config):
        while True:
            time.sleep(0.05)
            tune.report({"alive": 1})

    start = time.monotonic()
    grid = tune.Tuner(
        slow,
        tune_config=tune.TuneConfig(num_samples=2, time_budget_s=1.0),
        run_config=run_config(tmp_path),
    ).fit()
    assert time.monotonic() - start < 20
    assert grid.num_terminated == len(grid) >= 1
    assert all(r.metrics["training_iteration"] >= 1 for r in grid)


def test_with_parameters_and_with_resources(tmp_path):
    big = list(range(10_000))

    def uses_data(config, data):
        cpus = tune.get_context().get_trial_resources().required_resources["CPU"]
        tune.report({"total": sum(data) * config["k"], "cpus": cpus})

    trainable = tune.with_resources(tune.with_parameters(uses_data, data=big), {"cpu": 2})
    grid = tune.Tuner(
        trainable,
        param_space={"k": tune.grid_search([1, 2])},
        run_config=run_config(tmp_path),
    ).fit()
    assert [r.metrics["total"] for r in grid] == [sum(big), 2 * sum(big)]
    assert [r.metrics["cpus"] for r in grid] == [2.0, 2.0]


def test_class_with_parameters(tmp_path):
    class Scaled(tune.Trainable):
        def setup(self, config, factor):
            self.value = config["v"] * factor

        def step(self):
            return {"value": self.value, "done": True}

    grid = tune.Tuner(
        tune.with_parameters(Scaled, factor=10), param_space={"v": 3}, run_config=run_config(tmp_path)
    ).fit()
    assert grid[0].metrics["value"] == 30


def test_callbacks_and_context(tmp_path):
    events = []

    class Recorder(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            events.append(("start", trial.trial_id))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            events.append(("result", trial.trial_id, result["name"], result["dir"]))

        def on_trial_complete(self, iteration, trials, trial, **info):
            events.append(("complete", trial.trial_id))

        def on_experiment_end(self, trials, **info):
            events.append(("end", len(trials)))

    def named(config):
        ctx = tune.get_context()
        tune.report({"name": ctx.get_trial_name(), "dir": os.path.basename(ctx.get_trial_dir())})

    grid = tune.Tuner(
        named,
        tune_config=tune.TuneConfig(trial_name_creator=lambda t: f"custom-{t.trial_id}"),
        run_config=run_config(tmp_path, callbacks=[Recorder()]),
    ).fit()
    tid = grid[0].metrics["trial_id"]
    assert events == [
        ("start", tid),
        ("result", tid, f"custom-{tid}", os.path.basename(grid[0].path)),
        ("complete", tid),
        ("end", 1),
    ]


def test_a_trainer_object_is_turned_into_a_trainable(tmp_path):
    class FakeTrainer:
        """Stands in for shoal.train trainers: tune only needs as_trainable()."""

        def __init__(self, base):
            self.base = base

        def as_trainable(self):
            base = self.base

            def train_fn(config):
                loop = config.get("train_loop_config", {})
                tune.report({"score": base + loop.get("lr", 0)})

            return train_fn

    grid = tune.Tuner(
        FakeTrainer(10),
        param_space={"train_loop_config": {"lr": tune.grid_search([1, 2])}},
        run_config=run_config(tmp_path),
    ).fit()
    assert [r.metrics["score"] for r in grid] == [11, 12]


def noisy_curve(config):
    for i in range(1, 9):
        tune.report({"score": config["q"] * i})


def test_asha_stops_poor_trials(tmp_path):
    grid = tune.Tuner(
        noisy_curve,
        param_space={"q": tune.grid_search([0.9, 0.1, 0.2, 0.8, 0.3, 0.05])},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            scheduler=ASHAScheduler(max_t=8, grace_period=1, reduction_factor=2),
            max_concurrent_trials=1,
        ),
        run_config=run_config(tmp_path),
    ).fit()
    iters = {r.config["q"]: r.metrics["training_iteration"] for r in grid}
    assert iters[0.9] == 8
    assert iters[0.1] == 1 and iters[0.05] == 1
    assert grid.get_best_result().config["q"] == 0.9


def pbt_trainable(config):
    import time

    value = 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "value")) as f:
            value = float(f.read())
    else:
        # Start together, so that the population is compared while it trains.
        open(os.path.join(config["barrier"], str(config["lr"])), "w").close()
        deadline = time.monotonic() + 30
        while len(os.listdir(config["barrier"])) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    while True:
        time.sleep(0.02)
        value += config["lr"]
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "value"), "w") as f:
                f.write(str(value))
            tune.report({"value": value}, checkpoint=tune.Checkpoint.from_directory(d))


@pytest.mark.shoal_backends("local")
def test_pbt_copies_good_trials_over_bad_ones(tmp_path):
    # Four concurrent trials (half a CPU each); the inline backend runs one call at a time.
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=2,
        hyperparam_mutations={"lr": [0.1, 1.0, 2.0, 3.0]},
        resample_probability=0.0,
        seed=0,
    )
    grid = tune.Tuner(
        tune.with_resources(pbt_trainable, {"cpu": 0.5}),
        param_space={"lr": tune.grid_search([0.1, 1.0, 2.0, 3.0]), "barrier": str(barrier)},
        tune_config=tune.TuneConfig(metric="value", mode="max", scheduler=pbt),
        run_config=run_config(tmp_path, stop={"training_iteration": 8}),
    ).fit()
    assert grid.num_terminated == 4
    worst = next(r for r in grid if r.metrics["trial_id"].endswith("00000"))
    # The 0.1 trial was replaced by a copy of a better one: its value jumped past what 0.1 could reach.
    assert worst.metrics["value"] > 8 * 0.1 + 1e-9
    assert worst.config["lr"] != 0.1
    assert os.path.exists(os.path.join(grid.experiment_path, "pbt_global.txt"))


def test_report_outside_a_trial_is_an_error():
    with pytest.raises(RuntimeError, match="outside a tune trial"):
        tune.report({"x": 1})
    assert tune.get_checkpoint() is None
    assert tune.get_context().get_trial_id() is None


def test_bad_tuner_arguments(tmp_path):
    with pytest.raises(TypeError, match="needs a trainable"):
        tune.Tuner()
    with pytest.raises(TypeError, match="param_space must be a dict"):
        tune.Tuner(counting, param_space=[1])
    with pytest.raises(TypeError, match="Trainable"):
        tune.Tuner(int)
    with pytest.raises(ValueError, match="must take one argument"):
        tune.Tuner(lambda a, b: None).fit()
    with pytest.raises(TypeError, match=r"tune\.TuneConfig"):
        tune.Tuner(counting, tune_config={"metric": "x"})
    with pytest.raises(tune.TuneError, match="more than the cluster has"):
        tune.Tuner(tune.with_resources(counting, {"cpu": 64}), run_config=run_config(tmp_path)).fit()


def pid_reporter(config):
    tune.report({"pid": os.getpid()})


@pytest.mark.shoal_backends("local")
@pytest.mark.parametrize("reuse", [True, False])
def test_trial_workers_are_reused_unless_told_not_to(tmp_path, reuse):
    grid = tune.Tuner(
        pid_reporter,
        param_space={"x": tune.grid_search([1, 2, 3])},
        tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=reuse),
        run_config=run_config(tmp_path),
    ).fit()
    pids = {r.metrics["pid"] for r in grid}
    assert len(pids) == (1 if reuse else 3)
    assert os.getpid() not in pids


def test_checkpoint_callbacks(tmp_path):
    seen = []

    class OnCheckpoint(tune.Callback):
        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            seen.append(os.path.basename(checkpoint.path))

    tune.Tuner(counting, param_space={"x": 1}, run_config=run_config(tmp_path, callbacks=[OnCheckpoint()])).fit()
    assert seen == ["checkpoint_000000"]


def reports_resources(config):
    pgf = tune.get_context().get_trial_resources()
    tune.report({"res": pgf.required_resources, "bundles": pgf.bundles, "empty_head": pgf.head_bundle_is_empty})


@pytest.mark.parametrize("head", [{"CPU": 1}, {}], ids=["head-bundle", "empty-head"])
def test_placement_group_factory_trials(tmp_path, head):
    pgf = tune.PlacementGroupFactory([head, {"CPU": 1}])
    grid = tune.Tuner(
        tune.with_resources(reports_resources, pgf),
        param_space={"x": tune.grid_search([1, 2])},
        run_config=run_config(tmp_path),
    ).fit()
    assert grid.num_errors == 0, grid.errors
    assert [r.metrics["res"] for r in grid] == [{"CPU": 1.0 + head.get("CPU", 0)}] * 2
    assert grid[0].metrics["bundles"] == ([{"CPU": 1.0}] if not head else [{"CPU": 1.0}, {"CPU": 1.0}])
    assert grid[0].metrics["empty_head"] is (not head)
