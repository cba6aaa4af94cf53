"""Searcher wrappers: SearchGenerator, ConcurrencyLimiter, Repeater."""

from __future__ import annotations

import pytest

from shoal import tune
from shoal.tune.search import ConcurrencyLimiter, Repeater, Searcher, SearchGenerator, create_searcher
from shoal.tune.search.repeater import TRIAL_INDEX


class Counting(Searcher):
    """Suggests {"x": 0}, {"x": 1}, ... and remembers what it was told."""

    def __init__(self, limit=None):
        super().__init__(metric="m", mode="max")
        self.n = 0
        self.limit = limit
        self.completed = []
        self.results = []

    def suggest(self, trial_id):
        if self.limit is not None and self.n >= self.limit:
            return Searcher.FINISHED
        self.n += 1
        return {"x": self.n - 1}

    def on_trial_result(self, trial_id, result):
        self.results.append(trial_id)

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.completed.append((trial_id, result, error))


def test_search_generator_merges_constants_and_sample_from():
    gen = SearchGenerator(Counting())
    gen._configure({"x": tune.uniform(0, 1), "c": 7, "y": tune.sample_from(lambda s: s.config.x + 100)}, 2)
    a = gen.next_config("t0")
    assert a.config == {"x": 0, "c": 7, "y": 100}
    assert a.chosen[("x",)] == 0
    assert gen.next_config("t1").config["x"] == 1
    assert gen.next_config("t2") is None and gen.is_finished()


def test_search_generator_honours_finished_and_rejects_grids():
    gen = SearchGenerator(Counting(limit=1))
    gen._configure({}, 5)
    assert gen.next_config("t0").config == {"x": 0}
    assert gen.next_config("t1") is None
    assert gen.is_finished()
    with pytest.raises(ValueError, match="grid_search"):
        SearchGenerator(Counting())._configure({"a": tune.grid_search([1, 2])}, 1)


def test_concurrency_limiter():
    inner = Counting()
    lim = ConcurrencyLimiter(inner, max_concurrent=2)
    assert lim.suggest("a") == {"x": 0}
    assert lim.suggest("b") == {"x": 1}
    assert lim.suggest("c") is None
    lim.on_trial_result("a", {"m": 1})
    lim.on_trial_complete("a", {"m": 1})
    assert inner.completed == [("a", {"m": 1}, False)]
    assert lim.suggest("c") == {"x": 2}


def test_concurrency_limiter_batch_waits_for_the_whole_batch():
    inner = Counting()
    lim = ConcurrencyLimiter(inner, max_concurrent=2, batch=True)
    lim.suggest("a")
    lim.suggest("b")
    lim.on_trial_complete("a", {"m": 1})
    assert lim.suggest("c") is None and inner.completed == []
    lim.on_trial_complete("b", {"m": 2})
    assert [c[0] for c in inner.completed] == ["a", "b"]
    assert lim.suggest("c") == {"x": 2}


def test_repeater_reports_the_mean_once_per_group():
    inner = Counting()
    rep = Repeater(inner, repeat=3)
    configs = [rep.suggest(f"t{i}") for i in range(6)]
    assert [c["x"] for c in configs] == [0, 0, 0, 1, 1, 1]
    assert [c[TRIAL_INDEX] for c in configs] == [0, 1, 2, 0, 1, 2]
    rep.on_trial_complete("t0", {"m": 1.0})
    rep.on_trial_complete("t1", {"m": 2.0})
    assert inner.completed == []
    rep.on_trial_complete("t2", {"m": 6.0})
    assert inner.completed == [("t0", {"m": 3.0}, False)]


def test_repeater_without_index():
    rep = Repeater(Counting(), repeat=2, set_index=False)
    assert rep.suggest("a") == {"x": 0}


def test_bad_wrappers():
    with pytest.raises(ValueError, match="max_concurrent"):
        ConcurrencyLimiter(Counting(), 0)
    with pytest.raises(ValueError, match="repeat"):
        Repeater(Counting(), 0)
    with pytest.raises(TypeError, match="Searcher"):
        SearchGenerator(object())
    with pytest.raises(ValueError, match="unknown search algorithm"):
        create_searcher("grid-ish")


def test_searcher_save_and_restore(tmp_path):
    s = Counting()
    s.suggest("a")
    s.save(str(tmp_path / "state.pkl"))
    fresh = Counting()
    fresh.restore(str(tmp_path / "state.pkl"))
    assert fresh.n == 1
