"""Synchronous HyperBand and HyperBandForBOHB against synthetic curves."""

from __future__ import annotations

import pytest

from shoal import tune
from shoal.tune.experiment.trial import Trial
from shoal.tune.schedulers import HyperBandForBOHB, HyperBandScheduler


def linear(config, it):
    return config["x"] * it


XS = [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4, 0.6]


def test_one_full_bracket_halves_by_eta(sim):
    # max_t=9, eta=3: the first bracket takes 9 trials to 1 iteration, keeps 3 to 3, keeps 1 to 9.
    s = sim(
        linear,
        {"x": tune.grid_search(XS)},
        max_t=9,
        slots=3,
        scheduler=HyperBandScheduler(max_t=9, reduction_factor=3),
    ).run()
    final = {t.config["x"]: t.last_result["training_iteration"] for t in s.ctl.trials}
    assert final == {0.9: 9, 0.8: 3, 0.7: 3, 0.6: 1, 0.5: 1, 0.4: 1, 0.3: 1, 0.2: 1, 0.1: 1}
    # Paused trials resume from their checkpoints, so no iteration is computed twice.
    assert s.compute == 9 + 3 * 2 + 6
    assert all(t.status == Trial.TERMINATED for t in s.ctl.trials)
    resumed = {tid: it for tid, it in s.starts if it > 0}
    assert sorted(resumed.values()) == [1, 1, 3]


def test_a_bracket_that_cannot_fill_is_settled_when_the_search_ends(sim):
    s = sim(
        linear,
        {"x": tune.grid_search([0.3, 0.9, 0.1, 0.5, 0.7])},
        max_t=9,
        slots=2,
        scheduler=HyperBandScheduler(max_t=9, reduction_factor=3),
    ).run()
    final = {t.config["x"]: t.last_result["training_iteration"] for t in s.ctl.trials}
    assert final == {0.9: 9, 0.3: 1, 0.1: 1, 0.5: 1, 0.7: 1}
    assert s.compute == 5 + 2 + 6


def test_trials_pause_at_milestones_until_the_round_is_done(sim):
    s = sim(
        linear,
        {"x": tune.grid_search(XS)},
        max_t=9,
        slots=3,
        scheduler=HyperBandScheduler(max_t=9, reduction_factor=3),
    ).run()
    assert len(s.names("PauseTrial")) >= 8
    assert s.max_running <= 3


def test_brackets_fill_in_order():
    sched = HyperBandScheduler(metric="m", mode="max", max_t=9, reduction_factor=3)
    trials = [Trial("f", {}, f"t_{i:05d}") for i in range(9 + 5 + 3 + 1)]
    for t in trials:
        sched.on_trial_add(None, t)
    sizes = [(b.s, b.size, b.milestone, len(b.trials)) for b in sched._brackets]
    assert sizes == [(2, 9, 1, 9), (1, 5, 3, 5), (0, 3, 9, 3), (2, 9, 1, 1)]


def test_hb_bohb_reports_the_budget(sim):
    seen = []
    sched = HyperBandForBOHB(max_t=9, reduction_factor=3)
    s = sim(linear, {"x": tune.grid_search(XS)}, max_t=9, slots=3, scheduler=sched)
    original = s.search_alg.on_trial_result

    def record(trial_id, result):
        if "hyperband_info" in result:  # a final (done) result skips the scheduler
            seen.append(result["hyperband_info"]["budget"])
        original(trial_id, result)

    s.search_alg.on_trial_result = record
    s.run()
    assert set(seen) == {1, 3, 9}


@pytest.mark.parametrize(("kwargs", "match"), [({"max_t": 0}, "max_t"), ({"reduction_factor": 1}, "reduction_factor")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HyperBandScheduler(**kwargs)
