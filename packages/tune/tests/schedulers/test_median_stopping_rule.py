"""The median stopping rule against synthetic curves.

The expected outcomes were checked against Ray's MedianStoppingRule, driven through
the same sequence of results (one or two slots, pending trials first, then paused ones).
"""

from __future__ import annotations

import math

from shoal import tune
from shoal.tune.experiment.trial import Trial
from shoal.tune.schedulers import MedianStoppingRule, TrialScheduler


def constant(config, it):
    return config["x"]


def rule(**kwargs):
    return MedianStoppingRule(time_attr="training_iteration", **kwargs)


def final_iterations(s):
    return {t.config["x"]: t.last_result["training_iteration"] for t in s.ctl.trials}


def test_stops_trials_below_the_median_of_the_others(sim):
    s = sim(
        constant,
        {"x": tune.grid_search([0.9, 0.8, 0.1, 0.85])},
        max_t=5,
        slots=1,
        scheduler=rule(grace_period=2, min_samples_required=2),
    ).run()
    # 0.1 is below the median of 0.9 and 0.8 at t=2. 0.8 had only 0.9 to compare with at
    # t=2 (it yielded); resumed, it falls at t=3, where the trials that got there before it
    # (0.9 and 0.85) have a median of 0.875.
    assert final_iterations(s) == {0.9: 5, 0.8: 3, 0.1: 2, 0.85: 5}
    assert s.compute == 15
    assert all(t.status == Trial.TERMINATED for t in s.ctl.trials)


def test_a_trial_that_cannot_be_judged_yields_to_waiting_trials(sim):
    s = sim(
        constant,
        {"x": tune.grid_search([0.9, 0.8, 0.1, 0.85])},
        max_t=5,
        slots=1,
        scheduler=rule(grace_period=2, min_samples_required=2),
    ).run()
    first, second = s.ctl.trials[0].trial_id, s.ctl.trials[1].trial_id
    # The first two trials reach t=2 with fewer than 2 others to compare with: each pauses so
    # that the next pending trial runs, and resumes later from its checkpoint.
    moves = [(name, tid) for name, tid in s.log if name in ("StartTrial", "ContinueTrial", "PauseTrial")]
    assert moves[:6] == [
        ("StartTrial", first),
        ("ContinueTrial", first),
        ("PauseTrial", first),
        ("StartTrial", second),
        ("ContinueTrial", second),
        ("PauseTrial", second),
    ]
    assert (first, 2) in s.starts and (second, 2) in s.starts


def test_min_time_slice_spaces_the_yields(sim):
    s = sim(
        constant,
        {"x": tune.grid_search([0.9, 0.8, 0.1, 0.85])},
        max_t=6,
        slots=1,
        scheduler=rule(grace_period=1, min_samples_required=2, min_time_slice=2),
    ).run()
    assert final_iterations(s) == {0.9: 6, 0.8: 2, 0.1: 1, 0.85: 6}
    assert s.compute == 15
    pauses = [s.trial(tid).config["x"] for tid in s.names("PauseTrial")]
    assert pauses == [0.9, 0.8, 0.85, 0.9]


def test_two_slots_and_rising_curves(sim):
    s = sim(
        lambda config, it: config["x"] * it,
        {"x": tune.grid_search([0.9, 0.8, 0.1, 0.85, 0.2, 0.95])},
        max_t=6,
        slots=2,
        scheduler=rule(grace_period=2, min_samples_required=2),
    ).run()
    assert final_iterations(s) == {0.9: 6, 0.8: 6, 0.1: 2, 0.85: 6, 0.2: 2, 0.95: 6}
    assert s.compute == 28


def test_grace_period_protects_young_trials(sim):
    s = sim(
        constant,
        {"x": tune.grid_search([0.9, 0.8, 0.7, 0.1])},
        max_t=3,
        slots=1,
        scheduler=rule(grace_period=10, min_samples_required=1),
    ).run()
    assert all(t.last_result["training_iteration"] == 3 for t in s.ctl.trials)
    assert s.names("PauseTrial") == []


def test_soft_stop_pauses_and_finishes_the_trial_last(sim):
    s = sim(
        constant,
        {"x": tune.grid_search([0.9, 0.8, 0.1])},
        max_t=4,
        slots=1,
        scheduler=rule(grace_period=2, min_samples_required=2, hard_stop=False),
    ).run()
    low = next(t for t in s.ctl.trials if t.config["x"] == 0.1)
    assert low.trial_id in s.names("PauseTrial")
    assert low.last_result["training_iteration"] == 4
    assert s.names("StopTrial")[-1] == low.trial_id
    assert s.compute == 12  # resumed from its checkpoint, nothing recomputed


class Controller:
    """Just enough of the trial controller for on_trial_result: who else is waiting."""

    no_more_trials = False

    def __init__(self, *trials):
        self.trials = list(trials)

    def get_live_trials(self):
        return self.trials


def trial(trial_id, status=Trial.RUNNING):
    t = Trial("f", {}, trial_id)
    t.status = status
    return t


def feed(sched, ctl, t, rows):
    return [sched.on_trial_result(ctl, t, {"training_iteration": it, "m": m}) for it, m in rows]


def test_only_trials_that_reached_the_time_count_and_their_means_start_at_the_grace_period():
    sched = MedianStoppingRule(time_attr="training_iteration", metric="m", mode="max", grace_period=2)
    a, b, c, d = (trial(x) for x in "abcd")
    ctl = Controller(a, b, c, d)
    for t in (a, b, c, d):
        sched.on_trial_add(ctl, t)
    # a's early 0s fall before the grace period and do not drag its mean down: 10 from t=2 on.
    feed(sched, ctl, a, [(1, 0.0), (2, 10.0), (3, 10.0)])
    feed(sched, ctl, b, [(1, 8.0), (2, 8.0), (3, 8.0)])
    feed(sched, ctl, c, [(1, 9.0)])  # never reached t=3: not compared
    assert sched._running_mean("a", 3) == 10.0 and math.isnan(sched._running_mean("c", 3))
    # d at t=3: others that reached 3 are a and b, but 2 < min_samples_required (3) -> no stop.
    assert feed(sched, ctl, d, [(2, 1.0), (3, 1.0)]) == [TrialScheduler.CONTINUE] * 2
    feed(sched, ctl, c, [(2, 9.0), (3, 9.0)])
    e = trial("e")
    sched.on_trial_add(ctl, e)
    # Now a (10), b (8), c (9), d (1) reached t=3: median 8.5; e's best 8.4 is below it.
    assert feed(sched, ctl, e, [(3, 8.4)]) == [TrialScheduler.STOP]


def test_non_finite_means_are_left_out():
    sched = MedianStoppingRule(
        time_attr="training_iteration", metric="m", mode="min", grace_period=0, min_samples_required=2
    )
    ctl = Controller()
    rows = {"a": 1.0, "b": 2.0, "c": float("nan"), "d": 1.4}
    actions = {}
    for tid, m in rows.items():
        t = trial(tid)
        sched.on_trial_add(ctl, t)
        actions[tid] = feed(sched, ctl, t, [(1, m)])[0]
    # d (min mode) is compared with a and b only (the nan mean of c is not counted):
    # median 1.5, and 1.4 beats it.
    assert actions["d"] == TrialScheduler.CONTINUE
    e = trial("e")
    sched.on_trial_add(ctl, e)
    assert feed(sched, ctl, e, [(1, 1.6)]) == [TrialScheduler.STOP]  # median of 1, 2, 1.4 is 1.4


def test_yielding_needs_someone_waiting():
    sched = MedianStoppingRule(time_attr="training_iteration", metric="m", mode="max", grace_period=1)
    alone = trial("a")
    assert feed(sched, Controller(alone), alone, [(1, 1.0), (2, 1.0)]) == [TrialScheduler.CONTINUE] * 2
    running = trial("b")
    waiting = trial("c", Trial.PENDING)
    ctl = Controller(running, waiting)
    assert feed(sched, ctl, running, [(1, 1.0)]) == [TrialScheduler.PAUSE]
    # It yields once per time: not again at t=1 (after resuming from scratch), but at t=2.
    assert feed(sched, ctl, running, [(1, 1.0), (2, 1.0)]) == [TrialScheduler.CONTINUE, TrialScheduler.PAUSE]
