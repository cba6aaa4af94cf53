"""Stoppers."""

from __future__ import annotations

import pytest

from shoal.tune.stopper import (
    CombinedStopper,
    ExperimentPlateauStopper,
    FunctionStopper,
    MaximumIterationStopper,
    TimeoutStopper,
    TrialPlateauStopper,
    as_stopper,
)


def test_dict_function_and_max_iteration():
    stop = as_stopper({"acc": 0.9, "training_iteration": 5})
    assert not stop("t", {"acc": 0.5, "training_iteration": 1})
    assert stop("t", {"acc": 0.95})
    assert stop("t", {"training_iteration": 5})
    assert as_stopper(lambda tid, r: r["x"] > 1)("t", {"x": 2})
    assert as_stopper(None) is None and as_stopper({}) is None
    m = MaximumIterationStopper(2)
    assert [m("a", {}), m("a", {}), m("b", {})] == [False, True, False]
    with pytest.raises(ValueError, match="must be a number"):
        as_stopper({"acc": "high"})
    with pytest.raises(TypeError, match="stop must be"):
        as_stopper(3)


def test_combined_and_plateaus():
    combined = CombinedStopper(MaximumIterationStopper(3), FunctionStopper(lambda tid, r: r.get("bad", False)))
    assert not combined("t", {})
    assert combined("t", {"bad": True})
    plateau = TrialPlateauStopper("loss", std=0.01, num_results=3, grace_period=3)
    assert [plateau("t", {"loss": v}) for v in (1.0, 0.5, 0.5, 0.5, 0.5)] == [False, False, False, True, True]
    exp = ExperimentPlateauStopper("loss", std=0.001, top=2, mode="min")
    exp("a", {"loss": 1.0})
    assert not exp.stop_all()
    exp("b", {"loss": 1.0})
    assert exp.stop_all()


def test_timeout_stopper_starts_with_the_first_result():
    stop = TimeoutStopper(1e-6)
    assert not stop.stop_all()
    stop("t", {})
    import time

    time.sleep(0.01)
    assert stop.stop_all()
