"""OptunaSearch: translation of tune domains, ask/tell, points to evaluate, samplers."""

from __future__ import annotations

import math

import optuna
import pytest

from shoal import tune
from shoal.tune.search import SearchGenerator
from shoal.tune.search.optuna import OptunaSearch


def run_loop(searcher, space, n, objective):
    gen = SearchGenerator(searcher)
    gen.set_search_properties("loss", "min", space)
    gen._configure(space, n)
    best = math.inf
    for i in range(n):
        s = gen.next_config(f"t{i}")
        value = objective(s.config)
        best = min(best, value)
        gen.on_trial_complete(f"t{i}", {"loss": value})
    return best, searcher


SPACE = {
    "x": tune.uniform(-5, 5),
    "n": tune.randint(0, 4),
    "q": tune.qrandint(0, 10, 5),
    "lr": tune.loguniform(1e-4, 1e-1),
    "act": tune.choice(["relu", "tanh"]),
    "obj": tune.choice([(1, 2), (3, 4)]),
    "nested": {"y": tune.quniform(0, 1, 0.5)},
    "const": "keep",
}


def test_every_domain_translates_and_stays_in_bounds():
    seen = []

    def objective(config):
        seen.append(config)
        return config["x"] ** 2

    run_loop(OptunaSearch(seed=0), SPACE, 15, objective)
    for config in seen:
        assert -5 <= config["x"] <= 5
        assert config["n"] in (0, 1, 2, 3)
        assert config["q"] in (0, 5, 10)
        assert 1e-4 <= config["lr"] <= 1e-1
        assert config["act"] in ("relu", "tanh")
        assert config["obj"] in ((1, 2), (3, 4))
        assert config["nested"]["y"] in (0.0, 0.5, 1.0)
        assert config["const"] == "keep"


def test_tell_reaches_the_study():
    _, searcher = run_loop(OptunaSearch(seed=0), {"x": tune.uniform(0, 1)}, 5, lambda c: c["x"])
    trials = searcher.study.trials
    assert len(trials) == 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert searcher.study.direction == optuna.study.StudyDirection.MINIMIZE


def test_errors_fail_and_missing_metrics_prune_the_optuna_trial():
    # As Ray's OptunaSearch: an error is FAIL (even with a last result), no metric is PRUNED.
    searcher = OptunaSearch(space={"x": tune.uniform(0, 1)}, metric="loss", mode="min", seed=0)
    for trial_id in "abcd":
        searcher.suggest(trial_id)
    searcher.on_trial_complete("a", None, error=True)
    searcher.on_trial_complete("b", {"loss": 0.5}, error=True)
    searcher.on_trial_complete("c", {"other": 1})
    searcher.on_trial_complete("d", None)
    state = optuna.trial.TrialState
    assert [t.state for t in searcher.study.trials] == [state.FAIL, state.FAIL, state.PRUNED, state.PRUNED]


def test_points_to_evaluate_and_evaluated_rewards():
    searcher = OptunaSearch(
        space={"x": tune.uniform(0, 1), "act": tune.choice(["a", "b"])},
        metric="loss",
        mode="min",
        points_to_evaluate=[{"x": 0.25, "act": "b"}],
        seed=0,
    )
    assert searcher.suggest("t0") == {"x": 0.25, "act": "b"}
    told = OptunaSearch(
        space={"x": tune.uniform(0, 1)},
        metric="loss",
        mode="min",
        points_to_evaluate=[{"x": 0.5}],
        evaluated_rewards=[3.0],
    )
    assert [t.value for t in told.study.trials] == [3.0]


def test_define_by_run_space():
    def space(trial):
        trial.suggest_float("x", 0, 1)
        if trial.suggest_categorical("deep", [True, False]):
            trial.suggest_int("layers", 2, 4)
        return {"fixed": 1}

    searcher = OptunaSearch(space=space, metric="loss", mode="min", seed=0)
    config = searcher.suggest("t0")
    assert config["fixed"] == 1 and 0 <= config["x"] <= 1
    assert ("layers" in config) == config["deep"]


def bowl(c):
    return (c["x"] - 1.3) ** 2 + (c["y"] + 0.7) ** 2


BOWL = {"x": tune.uniform(-5, 5), "y": tune.uniform(-5, 5)}


def test_cma_es_proposes_through_the_searcher():
    # optuna's CmaEsSampler needs the cmaes package (extra shoal-tune[cmaes]).
    pytest.importorskip("cmaes")
    sampler = optuna.samplers.CmaEsSampler(seed=0, n_startup_trials=3)
    _, searcher = run_loop(OptunaSearch(sampler=sampler), BOWL, 12, bowl)
    trials = searcher.study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 12
    assert all(-5 <= t.params["x"] <= 5 and -5 <= t.params["y"] <= 5 for t in trials)
    # After its random start, every proposal came from the CMA-ES optimiser (relative sampling
    # over the space the searcher declared with ask(fixed_distributions=...)).
    assert [("cma:generation" in t.system_attrs) for t in trials] == [False] * 3 + [True] * 9


@pytest.mark.timeout(120)
def test_gp_sampler_improves_on_its_random_start():
    # optuna's GPSampler needs torch (installed with shoal-train's or shoal-rl's extras).
    pytest.importorskip("torch")
    sampler = optuna.samplers.GPSampler(seed=0, n_startup_trials=4)
    _, searcher = run_loop(OptunaSearch(sampler=sampler), BOWL, 10, bowl)
    values = [t.value for t in searcher.study.trials]
    assert len(values) == 10
    assert min(values[4:]) < min(values[:4])


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # QMCSampler
@pytest.mark.parametrize("sampler", ["qmc", "nsga2", "random"])
def test_other_samplers(sampler):
    make = {
        "qmc": lambda: optuna.samplers.QMCSampler(seed=0, warn_independent_sampling=False),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=0, population_size=4),
        "random": lambda: optuna.samplers.RandomSampler(seed=0),
    }[sampler]
    _, searcher = run_loop(OptunaSearch(sampler=make()), {**BOWL, "k": tune.choice(["a", "b"])}, 8, bowl)
    trials = searcher.study.trials
    assert len(trials) == 8 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all(-5 <= t.params["x"] <= 5 and t.params["k"] in ("a", "b") for t in trials)


def test_multi_objective():
    multi = OptunaSearch(space={"x": tune.uniform(0, 1)}, metric=["a", "b"], mode=["min", "max"], seed=0)
    multi.suggest("t0")
    multi.on_trial_complete("t0", {"a": 1.0, "b": 2.0})
    assert multi.study.trials[0].values == [1.0, 2.0]


def test_optuna_beats_random_on_a_smooth_objective():
    # Averaged over seeds, TPE finds a lower value than random draws with the same budget.
    def objective(c):
        return (c["x"] - 1.3) ** 2 + (c["y"] + 0.7) ** 2

    space = {"x": tune.uniform(-5, 5), "y": tune.uniform(-5, 5)}
    tpe, rnd = [], []
    for seed in range(4):
        tpe.append(run_loop(OptunaSearch(seed=seed), space, 40, objective)[0])
        rnd.append(run_loop(OptunaSearch(sampler=optuna.samplers.RandomSampler(seed=seed)), space, 40, objective)[0])
    assert sum(tpe) < sum(rnd)


def test_space_and_param_space_conflict():
    searcher = OptunaSearch(space={"x": tune.uniform(0, 1)})
    with pytest.raises(ValueError, match="define the space in one place"):
        searcher.set_search_properties("m", "min", {"y": tune.uniform(0, 1)})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sampler": optuna.samplers.TPESampler(), "seed": 1}, ValueError, "either a sampler or a seed"),
        ({"sampler": "tpe"}, TypeError, "optuna sampler"),
        ({"metric": ["a", "b"], "mode": "min"}, ValueError, "list of metrics"),
        ({"points_to_evaluate": [{"x": 1}], "evaluated_rewards": [1, 2]}, ValueError, "same length"),
        ({"space": {"x": tune.randn(0, 1)}}, ValueError, "no optuna equivalent"),
        ({"space": {"x": tune.grid_search([1])}}, ValueError, "grid_search"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        OptunaSearch(**kwargs)


def test_suggest_before_setup_is_an_error():
    with pytest.raises(RuntimeError, match="no study yet"):
        OptunaSearch().suggest("t0")
