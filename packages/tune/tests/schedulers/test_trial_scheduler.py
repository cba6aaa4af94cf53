"""FIFOScheduler and the scheduler registry."""

from __future__ import annotations

import pytest

from shoal import tune
from shoal.tune.schedulers import ASHAScheduler, FIFOScheduler, create_scheduler


def test_fifo_runs_every_trial_to_the_end_in_order(sim):
    s = sim(lambda c, it: c["x"], {"x": tune.grid_search([3, 1, 2])}, max_t=4, slots=1).run()
    assert [t.config["x"] for t in s.ctl.trials] == [3, 1, 2]
    assert [tid for tid, _ in s.starts] == ["t_00000", "t_00001", "t_00002"]
    assert s.compute == 12


def test_set_search_properties_refuses_a_conflict():
    sched = ASHAScheduler(metric="a", mode="max")
    assert sched.set_search_properties("a", "max")
    assert not sched.set_search_properties("b", None)
    assert not sched.set_search_properties(None, "min")
    assert FIFOScheduler().set_search_properties("x", "min")


def test_create_scheduler():
    assert isinstance(create_scheduler("async_hyperband", max_t=5), ASHAScheduler)
    with pytest.raises(ValueError, match="unknown scheduler"):
        create_scheduler("nope")
