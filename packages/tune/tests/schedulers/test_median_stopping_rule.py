"""The median stopping rule against constant synthetic curves."""

from __future__ import annotations

from shoal import tune
from shoal.tune.schedulers import MedianStoppingRule


def constant(config, it):
    return config["x"]


def test_stops_trials_below_the_median_of_the_others(sim):
    s = sim(
        constant,
        {"x": tune.grid_search([0.9, 0.8, 0.1, 0.85])},
        max_t=5,
        slots=1,
        scheduler=MedianStoppingRule(time_attr="training_iteration", grace_period=2, min_samples_required=2),
    ).run()
    final = {t.config["x"]: t.last_result["training_iteration"] for t in s.ctl.trials}
    # 0.8 is judged against one other trial only (fewer than 2): it runs on.
    assert final == {0.9: 5, 0.8: 5, 0.1: 2, 0.85: 5}


def test_grace_period_protects_young_trials(sim):
    s = sim(
        constant,
        {"x": tune.grid_search([0.9, 0.8, 0.7, 0.1])},
        max_t=3,
        slots=1,
        scheduler=MedianStoppingRule(time_attr="training_iteration", grace_period=10, min_samples_required=1),
    ).run()
    assert all(t.last_result["training_iteration"] == 3 for t in s.ctl.trials)


def test_soft_stop_pauses_and_finishes_the_trial_last(sim):
    s = sim(
        constant,
        {"x": tune.grid_search([0.9, 0.8, 0.1])},
        max_t=4,
        slots=1,
        scheduler=MedianStoppingRule(
            time_attr="training_iteration", grace_period=2, min_samples_required=2, hard_stop=False
        ),
    ).run()
    low = next(t for t in s.ctl.trials if t.config["x"] == 0.1)
    assert low.trial_id in s.names("PauseTrial")
    assert low.last_result["training_iteration"] == 4
    assert s.compute == 12  # resumed from its checkpoint, nothing recomputed
