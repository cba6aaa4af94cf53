"""HyperOptSearch: TPE through hyperopt's Trials/Domain as ask and tell."""

from __future__ import annotations

import math

import pytest

from shoal import tune
from shoal.tune.search import SearchGenerator
from shoal.tune.search.hyperopt import HyperOptSearch

SPACE = {
    "x": tune.uniform(-5, 5),
    "n": tune.randint(1, 4),
    "q": tune.qrandint(0, 10, 5),
    "lr": tune.loguniform(1e-4, 1e-1),
    "act": tune.choice(["relu", "tanh"]),
    "z": tune.randn(0, 1),
    "nested": {"y": tune.quniform(0, 1, 0.5)},
}


def run_loop(searcher, space, n, objective, mode="min"):
    gen = SearchGenerator(searcher)
    gen.set_search_properties("loss", mode, space)
    gen._configure(space, n)
    configs = []
    for i in range(n):
        s = gen.next_config(f"t{i}")
        configs.append(s.config)
        gen.on_trial_complete(f"t{i}", {"loss": objective(s.config)})
    return configs


def test_domains_translate_with_tune_bounds():
    configs = run_loop(HyperOptSearch(random_state_seed=0, n_initial_points=5), SPACE, 25, lambda c: c["x"] ** 2)
    for c in configs:
        assert -5 <= c["x"] <= 5
        assert c["n"] in (1, 2, 3) and isinstance(c["n"], int)
        assert c["q"] in (0, 5, 10)
        assert 1e-4 <= c["lr"] <= 1e-1
        assert c["act"] in ("relu", "tanh")
        assert isinstance(c["z"], float)
        assert c["nested"]["y"] in (0.0, 0.5, 1.0)


def test_ask_and_tell_reproduce_hyperopts_own_loop():
    # Same seed, same objective: the configs match hyperopt.fmin's one for one.
    import numpy as np
    from hyperopt import Trials, fmin, hp, tpe

    def objective(x):
        return (x - 3) ** 2

    configs = run_loop(
        HyperOptSearch(random_state_seed=1, n_initial_points=5),
        {"x": tune.uniform(-10, 10)},
        20,
        lambda c: objective(c["x"]),
    )
    reference = Trials()
    fmin(
        objective,
        hp.uniform("x", -10, 10),
        algo=lambda *a, **k: tpe.suggest(*a, **k, n_startup_jobs=5, verbose=False),
        max_evals=20,
        trials=reference,
        rstate=np.random.default_rng(1),
        show_progressbar=False,
    )
    expected = [float(d["misc"]["vals"]["x"][0]) for d in reference.trials]
    assert [c["x"] for c in configs] == pytest.approx(expected)


def test_max_mode_and_errors_are_recorded():
    searcher = HyperOptSearch(space={"x": tune.uniform(0, 1)}, metric="score", mode="max", random_state_seed=0)
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", {"score": 2.0})
    searcher.on_trial_complete("b", None, error=True)
    # A max metric becomes a negated loss; the failed trial leaves the history TPE learns from.
    assert [t["result"] for t in searcher._trials.trials] == [{"loss": -2.0, "status": "ok"}]


def test_points_to_evaluate_go_first():
    searcher = HyperOptSearch(
        space={"x": tune.uniform(0, 1), "act": tune.choice(["a", "b"])},
        metric="loss",
        mode="min",
        points_to_evaluate=[{"x": 0.5, "act": "b"}],
    )
    assert searcher.suggest("t0") == {"x": 0.5, "act": "b"}
    assert not math.isclose(searcher.suggest("t1")["x"], 0.5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="gamma"):
        HyperOptSearch(gamma=1.5)
    with pytest.raises(ValueError, match="grid_search"):
        HyperOptSearch(space={"x": tune.grid_search([1, 2])})
    with pytest.raises(RuntimeError, match="no space yet"):
        HyperOptSearch().suggest("t0")
