"""ResultGrid: best results by scope, errors, dataframes (from trials, no runtime)."""

from __future__ import annotations

import pytest

from shoal.tune import ResultGrid
from shoal.tune.experiment.trial import Trial


def make_trial(tid, values, status=Trial.TERMINATED):
    t = Trial("f", {"id": tid}, tid)
    for i, v in enumerate(values):
        t.update_last_result({"m": v, "training_iteration": i + 1, "config": {"id": tid}})
    t.status = status
    t.path = f"/nowhere/{tid}"
    return t


def test_best_result_by_scope():
    grid = ResultGrid([make_trial("a", [1, 9, 2]), make_trial("b", [3, 4, 5]), make_trial("c", [float("nan")])], "/x")
    assert grid.get_best_result("m", "max").config == {"id": "b"}  # last: 2 vs 5
    assert grid.get_best_result("m", "max", scope="all").config == {"id": "a"}
    assert grid.get_best_result("m", "max", scope="avg").config == {"id": "a"}  # 4 vs 4: first wins
    assert grid.get_best_result("m", "min", scope="all").config == {"id": "a"}
    assert grid.get_best_result("m", "min").config == {"id": "a"}


def test_errors_and_counts():
    bad = make_trial("e", [1], status=Trial.ERROR)
    bad.error = ValueError("x")
    grid = ResultGrid([make_trial("a", [1]), bad], "/x")
    assert grid.num_errors == 1 and grid.num_terminated == 1
    assert [str(e) for e in grid.errors] == ["x"]
    assert len(grid) == 2 and [r.config["id"] for r in grid] == ["a", "e"]
    assert "2 results" in repr(grid)


def test_best_result_needs_metric_and_mode():
    grid = ResultGrid([make_trial("a", [1]), make_trial("b", [2])], "/x")
    with pytest.raises(ValueError, match="No metric is provided"):
        grid.get_best_result()
    with pytest.raises(ValueError, match="mode must be"):
        grid.get_best_result("m")
    with pytest.raises(ValueError, match="scope"):
        grid.get_best_result("m", "max", scope="best")
    with pytest.raises(RuntimeError, match="No best trial found"):
        grid.get_best_result("other", "max")
    single = ResultGrid([make_trial("a", [1])], "/x")
    assert single.get_best_result().config == {"id": "a"}


def test_dataframe_without_files():
    grid = ResultGrid([make_trial("a", [1, 2]), make_trial("b", [])], "/x")
    df = grid.get_dataframe()
    assert list(df["m"]) == [2] and list(df["config/id"]) == ["a"] and list(df["logdir"]) == ["/nowhere/a"]
    with pytest.raises(ValueError, match="both"):
        grid.get_dataframe(filter_metric="m")
