"""TuneBOHB: random until a budget has enough observations, then KDE-guided proposals."""

from __future__ import annotations

import pytest

from shoal import tune
from shoal.tune.search.bohb import TuneBOHB

SPACE = {"x": tune.uniform(0, 10), "k": tune.choice(["a", "b", "c"]), "n": tune.randint(1, 5)}


def loss(config):
    return (config["x"] - 7) ** 2 + (0 if config["k"] == "b" else 5) + config["n"]


def test_values_respect_the_domains():
    bohb = TuneBOHB(space=SPACE, metric="loss", mode="min", seed=0)
    for i in range(30):
        c = bohb.suggest(f"t{i}")
        assert 0 <= c["x"] <= 10 and c["k"] in ("a", "b", "c") and c["n"] in (1, 2, 3, 4)
        bohb.on_trial_complete(f"t{i}", {"loss": loss(c), "training_iteration": 1})


def test_model_proposals_beat_random_ones():
    def run(random_fraction, seed):
        bohb = TuneBOHB(
            space=SPACE, metric="loss", mode="min", seed=seed, bohb_config={"random_fraction": random_fraction}
        )
        values = []
        for i in range(40):
            c = bohb.suggest(f"t{i}")
            values.append(loss(c))
            bohb.on_trial_result(f"t{i}", {"loss": values[-1], "hyperband_info": {"budget": 3}})
            bohb.on_trial_complete(f"t{i}", None)
        return sum(values[-15:]) / 15

    guided = sum(run(0.0, s) for s in range(3))
    unguided = sum(run(1.0, s) for s in range(3))
    assert guided < unguided


def test_the_largest_budget_with_enough_points_is_modelled():
    bohb = TuneBOHB(space={"x": tune.uniform(0, 1)}, metric="m", mode="max", seed=0)
    for i in range(6):
        bohb.suggest(f"t{i}")
        bohb.on_trial_result(f"t{i}", {"m": float(i), "training_iteration": 1})
    for i in range(2):
        bohb.on_trial_result(f"t{i}", {"m": float(i), "training_iteration": 9})
    assert bohb._model_budget() == 1.0
    for i in range(2, 4):
        bohb.on_trial_result(f"t{i}", {"m": float(i), "training_iteration": 9})
    assert bohb._model_budget() == 9.0


def test_max_concurrent_and_bad_config():
    bohb = TuneBOHB(space={"x": tune.uniform(0, 1)}, metric="m", mode="max", max_concurrent=1)
    assert bohb.suggest("a") is not None
    assert bohb.suggest("b") is None
    bohb.on_pause("a")
    assert bohb.suggest("b") is not None
    with pytest.raises(ValueError, match="unknown bohb_config"):
        TuneBOHB(bohb_config={"gamma": 1})


def test_points_to_evaluate_go_first_and_partial_points_are_completed():
    space = {"x": tune.uniform(0, 10), "k": tune.choice(["a", "b", "c"]), "n": {"z": tune.randint(1, 5)}}
    bohb = TuneBOHB(
        space=space,
        metric="loss",
        mode="min",
        seed=0,
        points_to_evaluate=[{"x": 3.0, "k": "b", "n": {"z": 2}}, {"x": 4.0}],
    )
    assert bohb.suggest("t0") == {"x": 3.0, "k": "b", "n": {"z": 2}}
    partial = bohb.suggest("t1")
    assert partial["x"] == 4.0 and partial["k"] in ("a", "b", "c") and partial["n"]["z"] in (1, 2, 3, 4)
    # The points are observed like any other trial.
    bohb.on_trial_complete("t0", {"loss": 1.0, "training_iteration": 1})
    assert [obs[1] for obs in bohb._obs[1.0].values()] == [1.0]
    third = bohb.suggest("t2")
    assert third["x"] not in (3.0, 4.0)
