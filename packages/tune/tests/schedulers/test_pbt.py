"""Population based training: exploit copies a top trial's checkpoint, explore perturbs its config."""

from __future__ import annotations

import random

import pytest

from shoal import tune
from shoal.tune.schedulers import PopulationBasedTraining
from shoal.tune.schedulers.pbt import explore


def by_lr(config, it):
    return config["lr"] * it


def test_bottom_trial_restarts_from_a_top_trials_checkpoint(sim):
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=2,
        hyperparam_mutations={"lr": tune.uniform(0.0, 10.0)},
        resample_probability=0.0,
        quantile_fraction=0.25,
        seed=0,
    )
    s = sim(by_lr, {"lr": tune.grid_search([1.0, 2.0, 3.0, 4.0])}, max_t=6, slots=4, scheduler=pbt).run()
    worst = next(t for t in s.ctl.trials if t.experiment_tag.startswith("0_"))
    assert "@perturbed[lr=" in worst.experiment_tag
    # Round-robin order: at iteration 2 the worst trial is the first to report, with no one
    # to compare to; at its next perturbation (iteration 4) the best trial has reported
    # iteration 3 with a checkpoint, and the copy carries on from there.
    restarts = [it for tid, it in s.starts if tid == worst.trial_id and it > 0]
    assert restarts and restarts[0] == 3
    assert worst.config["lr"] in (pytest.approx(4.0 * 1.2), pytest.approx(4.0 * 0.8))
    assert worst.last_result["training_iteration"] == 6
    # The best trial is never replaced.
    best = next(t for t in s.ctl.trials if t.experiment_tag.startswith("3_"))
    assert best.config == {"lr": 4.0}


def test_explore_resamples_perturbs_and_steps_through_lists():
    rng = random.Random(1)
    mutations = {
        "lr": tune.loguniform(1e-4, 1e-1),
        "layers": [1, 2, 3, 4],
        "fn": lambda: 7,
        "nested": {"m": [0.1, 0.9]},
    }
    config = {"lr": 0.01, "layers": 2, "fn": 3, "nested": {"m": 0.1}, "fixed": "keep"}
    for _ in range(50):
        new = explore(config, mutations, 0.0, (1.2, 0.8), rng)
        assert new["lr"] in (pytest.approx(0.012), pytest.approx(0.008))
        assert new["layers"] in (1, 3)
        assert new["fn"] in (3, 2)  # int perturbed and truncated
        assert new["nested"]["m"] in (0.1, 0.9)
        assert new["fixed"] == "keep"
    always = explore(config, mutations, 1.0, (1.2, 0.8), rng)
    assert 1e-4 <= always["lr"] <= 1e-1 and always["fn"] == 7


def test_needs_mutations():
    with pytest.raises(ValueError, match="hyperparam_mutations"):
        PopulationBasedTraining(metric="m", mode="max")


def test_missing_attrs_are_an_error_unless_allowed():
    from shoal.tune.experiment.trial import Trial

    pbt = PopulationBasedTraining(metric="m", mode="max", hyperparam_mutations={"a": [1, 2]})
    trial = Trial("f", {"a": 1}, "t_00000")
    pbt.on_trial_add(None, trial)
    with pytest.raises(ValueError, match="time_total_s"):
        pbt.on_trial_result(None, trial, {"m": 1.0})
    relaxed = PopulationBasedTraining(metric="m", mode="max", hyperparam_mutations={"a": [1, 2]}, require_attrs=False)
    relaxed.on_trial_add(None, trial)
    assert relaxed.on_trial_result(None, trial, {"m": 1.0}) == "CONTINUE"
