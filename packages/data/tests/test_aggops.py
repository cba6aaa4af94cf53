"""Two-phase grouped aggregation of blocks (no runtime)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shoal.data import AbsMax, AggregateFn, Count, Max, Mean, Min, Std, Sum
from shoal.data._aggops import group_offsets, iter_groups, merge_aggregate, partial_aggregate


def _two_phase(table: pa.Table, keys: list[str], aggs: list, pieces: int = 3) -> pa.Table:
    bounds = np.linspace(0, table.num_rows, pieces + 1).astype(int)
    partials = [partial_aggregate(table.slice(a, b - a), keys, aggs) for a, b in itertools.pairwise(bounds)]
    return merge_aggregate(partials, keys, aggs)


def test_builtins_match_pandas_over_split_blocks() -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"k": rng.integers(0, 7, 1000), "v": rng.normal(size=1000)})
    aggs = [Count(), Sum("v"), Min("v"), Max("v"), Mean("v"), Std("v"), AbsMax("v")]
    out = _two_phase(pa.Table.from_pandas(df), ["k"], aggs, pieces=5).to_pandas()
    g = df.groupby("k")["v"]
    assert list(out["k"]) == sorted(df["k"].unique())  # sorted by key
    np.testing.assert_array_equal(out["count()"], g.count().values)
    np.testing.assert_allclose(out["sum(v)"], g.sum().values)
    np.testing.assert_allclose(out["min(v)"], g.min().values)
    np.testing.assert_allclose(out["max(v)"], g.max().values)
    np.testing.assert_allclose(out["mean(v)"], g.mean().values)
    np.testing.assert_allclose(out["std(v)"], g.std(ddof=1).values)
    np.testing.assert_allclose(out["abs_max(v)"], g.apply(lambda s: s.abs().max()).values)


def test_std_stays_accurate_with_a_large_offset() -> None:
    values = 1e9 + np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    t = pa.table({"v": values})
    out = _two_phase(t, [], [Std("v", ddof=0)], pieces=3)
    assert out.column("std(v)")[0].as_py() == pytest.approx(np.std(values), rel=1e-6)


def test_null_handling() -> None:
    t = pa.table({"k": [1, 1, 2, 2], "v": [1.0, None, None, None]})
    out = _two_phase(t, ["k"], [Sum("v"), Mean("v"), Count("v", ignore_nulls=True), Count()], pieces=2)
    assert out.to_pylist() == [
        {"k": 1, "sum(v)": 1.0, "mean(v)": 1.0, "count(v)": 1, "count()": 2},
        {"k": 2, "sum(v)": None, "mean(v)": None, "count(v)": 0, "count()": 2},
    ]
    strict = _two_phase(t, ["k"], [Sum("v", ignore_nulls=False), Std("v", ignore_nulls=False)], pieces=2)
    assert strict.column("sum(v)").to_pylist() == [None, None]
    assert strict.column("std(v)").to_pylist() == [None, None]


def test_string_and_multiple_keys() -> None:
    t = pa.table({"a": ["x", "y", "x", "y", "x"], "b": [1, 1, 1, 2, 2], "v": [1, 2, 3, 4, 5]})
    out = _two_phase(t, ["a", "b"], [Sum("v")], pieces=2)
    assert out.to_pylist() == [
        {"a": "x", "b": 1, "sum(v)": 4},
        {"a": "x", "b": 2, "sum(v)": 5},
        {"a": "y", "b": 1, "sum(v)": 2},
        {"a": "y", "b": 2, "sum(v)": 4},
    ]


def test_custom_aggregate_fn_by_rows_and_by_blocks_with_builtins() -> None:
    t = pa.table({"k": [2, 1, 2, 1, 2], "v": [1, 2, 3, 4, 5]})
    by_row = AggregateFn(init=lambda k: [], accumulate_row=lambda a, r: [*a, r["v"]], merge=lambda a, b: a + b,
                         finalize=lambda a: sorted(a), name="values")  # fmt: skip
    by_block = AggregateFn(init=lambda k: 0, accumulate_block=lambda a, b: a + len(b), merge=lambda a, b: a + b,
                           name="n")  # fmt: skip
    out = _two_phase(t, ["k"], [Sum("v"), by_row, by_block], pieces=3)
    assert out.to_pylist() == [
        {"k": 1, "sum(v)": 6, "values": [2, 4], "n": 2},
        {"k": 2, "sum(v)": 9, "values": [1, 3, 5], "n": 3},
    ]


def test_aggregate_fn_validation() -> None:
    with pytest.raises(ValueError, match="exactly one of accumulate_row and accumulate_block"):
        AggregateFn(init=lambda k: 0, merge=lambda a, b: a, name="x")
    with pytest.raises(ValueError, match="Mean needs a column"):
        Mean()
    with pytest.raises(ValueError, match="ddof"):
        Std("v", ddof=-1)


def test_group_offsets_and_iter_groups() -> None:
    t = pa.table({"k": [1, 1, 2, 3, 3, 3]})
    assert list(group_offsets(t, ["k"])) == [0, 2, 3, 6]
    assert [g.num_rows for g in iter_groups(t, ["k"])] == [2, 1, 3]
    assert [g.num_rows for g in iter_groups(t, [])] == [6]
