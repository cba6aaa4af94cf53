"""ASHA against synthetic learning curves whose outcome is worked out by hand."""

from __future__ import annotations

import math
import random

import pytest

from shoal import tune
from shoal.tune.experiment.trial import Trial
from shoal.tune.schedulers import ASHAScheduler, AsyncHyperBandScheduler, TrialScheduler


def linear(config, it):
    return config["x"] * it


def test_rungs_stop_trials_below_the_top_third(sim):
    # One trial at a time, in this order; score = x * iteration, rungs at 1, 3 (and 9 = max_t).
    xs = [0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6]
    s = sim(
        linear,
        {"x": tune.grid_search(xs)},
        max_t=9,
        slots=1,
        scheduler=ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3),
    ).run()
    final = {t.config["x"]: t.last_result["training_iteration"] for t in s.ctl.trials}
    # Worked out by hand: a trial continues at a rung if it is at or above the 2/3
    # percentile of the scores recorded there before it.
    assert final == {0.5: 9, 0.9: 9, 0.1: 1, 0.7: 3, 0.3: 1, 0.8: 9, 0.2: 1, 0.6: 1}
    assert s.compute == 9 * 3 + 3 + 4
    assert all(t.status == Trial.TERMINATED for t in s.ctl.trials)
    assert all(t.last_result["done"] for t in s.ctl.trials)


def test_best_config_survives_and_compute_is_cut(sim):
    xs = random.Random(0).sample([i / 20 for i in range(20)], 20)
    s = sim(
        linear,
        {"x": tune.grid_search(xs)},
        max_t=27,
        slots=4,
        scheduler=ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3),
    ).run()
    best = max(s.ctl.trials, key=lambda t: t.config["x"])
    assert best.last_result["training_iteration"] == 27
    assert s.compute < 20 * 27 / 2  # FIFO would compute 540 iterations


def test_min_mode_prefers_low_scores(sim):
    xs = [0.5, 0.1, 0.9]
    s = sim(
        linear,
        {"x": tune.grid_search(xs)},
        max_t=4,
        slots=1,
        mode="min",
        scheduler=ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2),
    ).run()
    final = {t.config["x"]: t.last_result["training_iteration"] for t in s.ctl.trials}
    assert final[0.1] == 4
    assert final[0.9] == 1


def test_stop_last_trials_false_lets_trials_run_past_max_t(sim):
    s = sim(
        linear,
        {"x": tune.grid_search([0.5])},
        max_t=6,
        slots=1,
        scheduler=ASHAScheduler(max_t=3, grace_period=1, reduction_factor=3, stop_last_trials=False),
    ).run()
    assert s.ctl.trials[0].last_result["training_iteration"] == 6


def test_brackets_offset_the_first_rung():
    sched = AsyncHyperBandScheduler(metric="m", mode="max", max_t=27, grace_period=1, reduction_factor=3, brackets=3)
    assert [b.milestones for b in sched._brackets] == [[1, 3, 9, 27], [3, 9, 27], [9, 27]]


def test_brackets_are_drawn_with_softmax_weights_of_their_rung_counts():
    # Ray weighs bracket s by e**len(rungs): here e**4 : e**3 : e**2.
    sched = AsyncHyperBandScheduler(
        metric="m", mode="max", max_t=27, grace_period=1, reduction_factor=3, brackets=3, seed=0
    )
    n = 4000
    for i in range(n):
        sched.on_trial_add(None, Trial("f", {}, f"a_{i:05d}"))
    counts = [list(sched._trial_bracket.values()).count(b) / n for b in range(3)]
    expected = [math.e**2, math.e, 1.0]
    expected = [w / sum(expected) for w in expected]  # 0.665, 0.245, 0.090
    assert counts == pytest.approx(expected, abs=0.03)


def test_missing_metric_is_a_clear_error():
    sched = ASHAScheduler()
    with pytest.raises(ValueError, match="needs a `metric` and a `mode`"):
        sched.on_trial_add(None, Trial("f", {}, "a_00000"))


def test_results_without_the_metric_continue():
    sched = ASHAScheduler(metric="m", mode="max", max_t=10)
    trial = Trial("f", {}, "a_00000")
    sched.on_trial_add(None, trial)
    assert sched.on_trial_result(None, trial, {"training_iteration": 5}) == TrialScheduler.CONTINUE


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_t": 0}, "max_t"),
        ({"grace_period": 0}, "grace_period"),
        ({"grace_period": 20, "max_t": 10}, "grace_period"),
        ({"reduction_factor": 1}, "reduction_factor"),
        ({"brackets": 0}, "brackets"),
        ({"mode": "up"}, "mode"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ASHAScheduler(**kwargs)
