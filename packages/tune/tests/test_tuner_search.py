"""Search algorithms and pausing schedulers through the Tuner on a shoal runtime."""

from __future__ import annotations

import pytest

from shoal import tune
from shoal.tune.schedulers import HyperBandForBOHB, HyperBandScheduler, MedianStoppingRule
from shoal.tune.search import ConcurrencyLimiter, Repeater
from shoal.tune.search.bohb import TuneBOHB
from shoal.tune.search.hyperopt import HyperOptSearch
from shoal.tune.search.optuna import OptunaSearch

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def run_config(tmp_path, **kwargs):
    return tune.RunConfig(name="exp", storage_path=str(tmp_path), verbose=0, **kwargs)


def objective(config):
    tune.report({"loss": (config["x"] - 2) ** 2 + config["nested"]["y"], "const": config["const"]})


SPACE = {"x": tune.uniform(-5, 5), "nested": {"y": tune.choice([0, 1])}, "const": "c"}


@pytest.mark.parametrize(
    "make",
    [
        lambda: OptunaSearch(seed=0),
        lambda: HyperOptSearch(random_state_seed=0, n_initial_points=3),
        lambda: TuneBOHB(seed=0),
    ],
    ids=["optuna", "hyperopt", "bohb"],
)
def test_model_based_searchers_run_trials(tmp_path, make):
    grid = tune.Tuner(
        objective,
        param_space=SPACE,
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=6, search_alg=make()),
        run_config=run_config(tmp_path),
    ).fit()
    assert len(grid) == 6 and grid.num_errors == 0
    assert all(r.metrics["const"] == "c" and r.config["nested"]["y"] in (0, 1) for r in grid)
    best = grid.get_best_result()
    assert best.metrics["loss"] == min(r.metrics["loss"] for r in grid)


def test_optuna_sees_every_result(tmp_path):
    searcher = OptunaSearch(seed=0)
    tune.Tuner(
        objective,
        param_space=SPACE,
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=5, search_alg=searcher),
        run_config=run_config(tmp_path),
    ).fit()
    values = sorted(t.value for t in searcher.study.trials)
    assert len(values) == 5 and all(v is not None for v in values)


def test_concurrency_limiter_and_repeater(tmp_path):
    searcher = Repeater(ConcurrencyLimiter(OptunaSearch(seed=1), max_concurrent=1), repeat=2)
    grid = tune.Tuner(
        objective,
        param_space=SPACE,
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=4, search_alg=searcher),
        run_config=run_config(tmp_path),
    ).fit()
    configs = [r.config for r in grid]
    assert [c["__trial_index__"] for c in configs] == [0, 1, 0, 1]
    assert configs[0]["x"] == configs[1]["x"] and configs[2]["x"] == configs[3]["x"]


def test_searcher_and_param_space_both_defining_a_space(tmp_path):
    tuner = tune.Tuner(
        objective,
        param_space=SPACE,
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            search_alg=OptunaSearch(space={"x": tune.uniform(0, 1)}, metric="loss", mode="min"),
        ),
        run_config=run_config(tmp_path),
    )
    with pytest.raises(ValueError, match="define the space in one place"):
        tuner.fit()


def test_grid_search_needs_the_basic_generator(tmp_path):
    tuner = tune.Tuner(
        objective,
        param_space={"x": tune.grid_search([1, 2])},
        tune_config=tune.TuneConfig(metric="loss", mode="min", search_alg=OptunaSearch()),
        run_config=run_config(tmp_path),
    )
    with pytest.raises(ValueError, match="grid_search"):
        tuner.fit()


class Ramp(tune.Trainable):
    """score = q * iterations; checkpoints so that pauses resume where they left off."""

    def setup(self, config):
        self.value = 0.0
        self.resumed_at = None

    def step(self):
        self.value += self.config["q"]
        return {"score": self.value, "resumed_at": self.resumed_at}

    def save_checkpoint(self, checkpoint_dir):
        return {"value": self.value}

    def load_checkpoint(self, checkpoint):
        self.value = checkpoint["value"]
        self.resumed_at = self.iteration


QS = [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4, 0.6]


def test_hyperband_pauses_and_resumes_class_trainables(tmp_path):
    grid = tune.Tuner(
        Ramp,
        param_space={"q": tune.grid_search(QS)},
        tune_config=tune.TuneConfig(
            metric="score", mode="max", scheduler=HyperBandScheduler(max_t=9, reduction_factor=3)
        ),
        run_config=run_config(tmp_path),
    ).fit()
    iters = {r.config["q"]: r.metrics["training_iteration"] for r in grid}
    assert iters == {0.9: 9, 0.8: 3, 0.7: 3, 0.6: 1, 0.5: 1, 0.4: 1, 0.3: 1, 0.2: 1, 0.1: 1}
    best = grid.get_best_result()
    assert best.metrics["score"] == pytest.approx(0.9 * 9)  # resumed with its state, not from zero
    assert best.config["q"] == 0.9


def test_bohb_with_hyperband_for_bohb(tmp_path):
    grid = tune.Tuner(
        Ramp,
        param_space={"q": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            num_samples=9,
            search_alg=TuneBOHB(seed=0),
            scheduler=HyperBandForBOHB(max_t=9, reduction_factor=3),
        ),
        run_config=run_config(tmp_path),
    ).fit()
    assert len(grid) == 9 and grid.num_errors == 0
    top = grid.get_best_result()
    assert top.metrics["training_iteration"] == 9
    assert top.config["q"] == max(r.config["q"] for r in grid)


def test_median_stopping_on_the_runtime(tmp_path):
    def constant(config):
        for _ in range(4):
            tune.report({"score": config["q"]})

    grid = tune.Tuner(
        constant,
        param_space={"q": tune.grid_search([0.9, 0.8, 0.1, 0.84])},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            max_concurrent_trials=1,
            scheduler=MedianStoppingRule(time_attr="training_iteration", grace_period=2, min_samples_required=2),
        ),
        run_config=run_config(tmp_path),
    ).fit()
    # As Ray Tune does with this setup: with one trial at a time nothing waits, so 0.8 (too few
    # others to judge) never yields; 0.1 falls at t=2 (median 0.85) and 0.84 at t=3 (0.85).
    assert {r.config["q"]: r.metrics["training_iteration"] for r in grid} == {0.9: 4, 0.8: 4, 0.1: 2, 0.84: 3}
    assert [list(r.metrics_dataframe["training_iteration"]) for r in grid] == [[1, 2, 3, 4]] * 2 + [[1, 2], [1, 2, 3]]
