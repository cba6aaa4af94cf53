"""The trial controller's decisions, driven by synthetic events (no runtime)."""

from __future__ import annotations

import pytest

from shoal import tune
from shoal.tune.error import TuneError
from shoal.tune.execution import controller as c
from shoal.tune.experiment.trial import Trial
from shoal.tune.schedulers import FIFOScheduler, TrialScheduler
from shoal.tune.stopper import MaximumIterationStopper, as_stopper


def flat(config, it):
    return config.get("x", 0) * it


def test_concurrency_follows_free_cpus(sim):
    s = sim(flat, {"x": tune.uniform(0, 1)}, num_samples=5, max_t=3, slots=2).run()
    assert s.max_running == 2
    assert len(s.ctl.trials) == 5
    assert all(t.status == Trial.TERMINATED for t in s.ctl.trials)
    assert s.compute == 15


def test_max_concurrent_trials(sim):
    s = sim(flat, {"x": tune.uniform(0, 1)}, num_samples=4, max_t=2, slots=4, max_concurrent=1).run()
    assert s.max_running == 1


def test_results_are_recorded_before_the_trial_finishes(sim):
    s = sim(flat, {"x": 1}, num_samples=1, max_t=2, slots=1)
    s.checkpoint_every = 2
    s.run()
    kinds = [name for name, _ in s.log]
    assert kinds == [
        "StartTrial",
        "RecordResult",
        "ContinueTrial",
        "CheckpointRegistered",
        "RecordResult",
        "StopTrial",
        "TrialFinished",
    ]


def test_stop_criteria_end_each_trial(sim):
    s = sim(flat, {"x": 1}, num_samples=3, max_t=10, stopper=as_stopper({"training_iteration": 3})).run()
    assert [t.last_result["training_iteration"] for t in s.ctl.trials] == [3, 3, 3]
    assert all(t.last_result["done"] for t in s.ctl.trials)

    s = sim(flat, {"x": 1}, num_samples=2, max_t=10, stopper=MaximumIterationStopper(4)).run()
    assert [t.last_result["training_iteration"] for t in s.ctl.trials] == [4, 4]


def test_stopper_stop_all_ends_the_experiment(sim):
    class AfterFive(tune.Stopper):
        def __init__(self):
            self.n = 0

        def __call__(self, trial_id, result):
            self.n += 1
            return False

        def stop_all(self):
            return self.n >= 5

    s = sim(flat, {"x": 1}, num_samples=10, max_t=100, slots=2, stopper=AfterFive()).run()
    assert s.ctl.stop_reason == "a stopper ended the experiment"
    assert len(s.ctl.trials) == 2  # the ones never started were dropped
    assert s.names("StopTrial") and all(t.status == Trial.TERMINATED for t in s.ctl.trials)


def test_a_failure_retries_from_the_latest_checkpoint(sim):
    failed = set()

    def fail_once(trial_id, it):
        if trial_id == "t_00000" and it == 3 and trial_id not in failed:
            failed.add(trial_id)
            return True
        return False

    s = sim(flat, {"x": 1}, num_samples=2, max_t=5, max_failures=1, fail=fail_once).run()
    t0 = s.trial("t_00000")
    assert t0.status == Trial.TERMINATED
    assert t0.num_failures == 1
    assert ("t_00000", 2) in s.starts  # restarted from the checkpoint of iteration 2
    assert t0.last_result["training_iteration"] == 5
    assert [n for n, tid in s.log if tid == "t_00000"].count("RecordError") == 1


def test_failures_beyond_max_failures_mark_the_trial_errored(sim):
    s = sim(flat, {"x": 1}, num_samples=3, max_t=4, max_failures=1, fail=lambda tid, it: tid == "t_00001" and it == 2)
    s.run()
    bad = s.trial("t_00001")
    assert bad.status == Trial.ERROR
    assert bad.num_failures == 2
    assert str(bad.error) == "fail t_00001@2"
    others = [t for t in s.ctl.trials if t is not bad]
    assert all(t.status == Trial.TERMINATED and t.last_result["training_iteration"] == 4 for t in others)


def test_fail_fast_stops_everything(sim):
    s = sim(flat, {"x": 1}, num_samples=6, max_t=5, slots=2, fail_fast=True, fail=lambda tid, it: it == 2)
    s.run()
    statuses = sorted(t.status for t in s.ctl.trials)
    assert statuses == [Trial.ERROR, Trial.TERMINATED]
    assert "fail_fast" in s.ctl.stop_reason


def test_fail_fast_raise_keeps_the_error(sim):
    s = sim(flat, {"x": 1}, num_samples=2, max_t=5, slots=1, fail_fast="raise", fail=lambda tid, it: True)
    s.run()
    assert str(s.ctl.fail_error) == "fail t_00000@1"


def test_time_budget_kills_running_trials(sim):
    s = sim(flat, {"x": 1}, num_samples=4, max_t=100, slots=2, time_budget_s=10.0)
    s.apply(s.ctl.fill())
    assert len(s.running) == 2
    assert s.ctl.handle(c.TimeEvent(5.0)) == []
    commands = s.ctl.handle(c.TimeEvent(10.0))
    kills = [cmd for cmd in commands if isinstance(cmd, c.StopTrial)]
    assert len(kills) == 2 and all(k.kill for k in kills)
    assert s.ctl.is_finished()
    assert len(s.ctl.trials) == 2


def test_late_events_of_a_stopped_run_are_ignored(sim):
    s = sim(flat, {"x": 1}, num_samples=1, max_t=100, slots=1, time_budget_s=1.0)
    s.apply(s.ctl.fill())
    stale = s.events.popleft()
    s.ctl.handle(c.TimeEvent(2.0))
    assert s.ctl.handle(stale) == []
    assert s.ctl.handle(c.ErrorEvent(stale.trial_id, stale.run, RuntimeError("late"))) == []
    assert s.ctl.trials[0].status == Trial.TERMINATED


def test_num_to_keep_deletes_older_checkpoints(sim):
    s = sim(flat, {"x": 1}, num_samples=1, max_t=5, slots=1, num_to_keep=2)
    s.run()
    assert len(s.names("DeleteCheckpoint")) == 3
    trial = s.ctl.trials[0]
    assert [r.index for r in trial.checkpoints] == [4, 5]


def test_num_to_keep_by_score_keeps_the_best_and_the_latest(sim):
    def peak(config, it):
        return -abs(it - 2)  # best at iteration 2

    s = sim(peak, {"x": 1}, num_samples=1, max_t=5, slots=1, num_to_keep=1, checkpoint_score_attribute="score")
    s.run()
    assert [r.index for r in s.ctl.trials[0].checkpoints] == [2, 5]


def test_periodic_saves_for_class_trainables(sim):
    s = sim(flat, {"x": 1}, num_samples=1, max_t=6, slots=1, class_trainable=True, checkpoint_frequency=2)
    s.checkpoint_every = 0
    s.run()
    assert len(s.names("SaveTrial")) == 2  # after iterations 2 and 4 (6 is the last)
    assert [r.index for r in s.ctl.trials[0].checkpoints] == [2, 4]


def test_checkpoint_at_end_saves_on_stop(sim):
    s = sim(flat, {"x": 1}, num_samples=1, max_t=1, slots=1, class_trainable=True, checkpoint_at_end=True)
    s.checkpoint_every = 0
    s.apply(s.ctl.fill())
    out = s.ctl.handle(s.events.popleft())
    assert [type(cmd).__name__ for cmd in out] == ["RecordResult", "StopTrial", "TrialFinished"]
    assert out[1].save and not out[1].kill
    # The final checkpoint arrives after the trial finished and is still registered.
    s.ctl.handle(c.SavedEvent("t_00000", "/sim/t_00000/checkpoint_000007", {"iteration": 1}))
    assert s.ctl.trials[0].checkpoint.path == "/sim/t_00000/checkpoint_000007"


def test_a_trial_too_big_for_the_cluster_is_an_error(sim):
    s = sim(flat, {"x": 1}, num_samples=1, slots=1)
    s.settings.resources_for = lambda config: ({"CPU": 4.0}, None, "PACK")
    with pytest.raises(TuneError, match="more than the cluster has"):
        s.ctl.fill()


def test_a_scheduler_that_never_chooses_is_reported(sim):
    class Stubborn(FIFOScheduler):
        def choose_trial_to_run(self, tune_controller):
            return None

    s = sim(flat, {"x": 1}, num_samples=2, slots=1, scheduler=Stubborn())
    with pytest.raises(TuneError, match="cannot make progress"):
        s.ctl.fill()


def test_unknown_scheduler_decision_is_an_error(sim):
    class Odd(FIFOScheduler):
        def on_trial_result(self, tune_controller, trial, result):
            return "MAYBE"

    s = sim(flat, {"x": 1}, num_samples=1, slots=1, scheduler=Odd())
    s.apply(s.ctl.fill())
    with pytest.raises(TuneError, match="MAYBE"):
        s.ctl.handle(s.events.popleft())


def test_scheduler_stop_trial_on_a_paused_trial(sim):
    class PauseThenStop(FIFOScheduler):
        def on_trial_result(self, tune_controller, trial, result):
            if trial.trial_id == "t_00000":
                return TrialScheduler.PAUSE
            for other in tune_controller.get_trials():
                if other.status == Trial.PAUSED:
                    tune_controller.stop_trial(other)
            return TrialScheduler.CONTINUE

    s = sim(flat, {"x": 1}, num_samples=2, max_t=2, slots=1, scheduler=PauseThenStop()).run()
    t0 = s.trial("t_00000")
    assert t0.status == Trial.TERMINATED
    assert t0.last_result["training_iteration"] == 1


def test_trial_names_tags_and_dirs(sim):
    s = sim(
        flat,
        {"x": tune.grid_search([1, 2]), "lr": 0.1},
        slots=1,
        max_t=1,
        trial_name_creator=lambda t: f"run-{t.config['x']}",
        experiment_date="2024-01-01_00-00-00",
    ).run()
    t0, t1 = s.ctl.trials
    assert (str(t0), str(t1)) == ("run-1", "run-2")
    assert t0.experiment_tag == "0_x=1"
    assert t0.dir_name == "sim_t_00000_0_x=1_2024-01-01_00-00-00"
    assert t0.path == "/sim/sim_t_00000_0_x=1_2024-01-01_00-00-00"


def test_prepare_resume_restarts_unfinished_and_optionally_errored(sim):
    s = sim(flat, {"x": 1}, num_samples=3, max_t=3, slots=1)
    t = [Trial("sim", {}, f"t_{i:05d}") for i in range(4)]
    t[0].status, t[1].status, t[2].status, t[3].status = Trial.TERMINATED, Trial.RUNNING, Trial.ERROR, Trial.PAUSED
    s.ctl._trials = t
    s.ctl._live = {x.trial_id: x for x in t if not x.is_finished()}
    s.ctl.prepare_resume(resume_unfinished=True, resume_errored=True, restart_errored=False)
    assert [x.status for x in t] == [Trial.TERMINATED, Trial.PENDING, Trial.PENDING, Trial.PAUSED]
    assert [x.trial_id for x in s.ctl.get_live_trials()] == ["t_00001", "t_00002", "t_00003"]
