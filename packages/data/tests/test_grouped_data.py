"""groupby: aggregations (sorted by key) and map_groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import shoal.data as sd

pytestmark = pytest.mark.usefixtures("shoal_runtime")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    return pd.DataFrame(
        {"k": rng.integers(0, 20, 2000), "g": rng.choice(["a", "b", "c"], 2000), "v": rng.normal(size=2000)}
    )


@pytest.mark.parametrize("num_partitions", [None, 3])
def test_builtin_aggregations_match_pandas(frame: pd.DataFrame, num_partitions: int | None) -> None:
    ds = sd.from_pandas(frame, override_num_blocks=6)
    grouped = ds.groupby("k", num_partitions=num_partitions)
    expect = frame.groupby("k")["v"]
    out = grouped.sum("v").to_pandas()
    assert list(out["k"]) == sorted(frame["k"].unique())  # sorted by key
    np.testing.assert_allclose(out["sum(v)"], expect.sum().values)
    np.testing.assert_array_equal(grouped.count().to_pandas()["count()"], expect.count().values)
    np.testing.assert_allclose(grouped.mean("v").to_pandas()["mean(v)"], expect.mean().values)
    np.testing.assert_allclose(grouped.std("v").to_pandas()["std(v)"], expect.std().values)
    np.testing.assert_allclose(grouped.min("v").to_pandas()["min(v)"], expect.min().values)
    np.testing.assert_allclose(grouped.max("v").to_pandas()["max(v)"], expect.max().values)


def test_multiple_and_string_keys_and_custom_aggregations(frame: pd.DataFrame) -> None:
    ds = sd.from_pandas(frame, override_num_blocks=4)
    out = ds.groupby(["g", "k"]).aggregate(sd.Count(), sd.Mean("v", alias_name="avg")).to_pandas()
    expect = frame.groupby(["g", "k"])["v"].agg(["count", "mean"]).reset_index()
    assert list(zip(out["g"], out["k"], strict=False)) == list(zip(expect["g"], expect["k"], strict=False))
    np.testing.assert_array_equal(out["count()"], expect["count"])
    np.testing.assert_allclose(out["avg"], expect["mean"])
    longest = sd.AggregateFn(
        init=lambda key: 0,
        accumulate_block=lambda acc, block: max(acc, block.num_rows),
        merge=max,
        name="biggest_piece",
    )
    rows = ds.groupby("g").aggregate(longest, sd.Sum("k")).take_all()
    assert [r["g"] for r in rows] == ["a", "b", "c"]
    assert [r["sum(k)"] for r in rows] == frame.groupby("g")["k"].sum().tolist()
    assert all(0 < r["biggest_piece"] <= 2000 for r in rows)


def test_dictionary_encoded_keys_group_by_value() -> None:
    import pyarrow as pa

    table = pa.table({"k": pa.array(["b", "a", "b", None]).dictionary_encode(), "v": [1, 2, 3, 4]})
    rows = sd.from_arrow([table.slice(0, 2), table.slice(2)]).groupby("k").sum("v").take_all()
    assert rows == [{"k": "a", "sum(v)": 2}, {"k": "b", "sum(v)": 4}, {"k": None, "sum(v)": 4}]


def test_groupby_none_is_one_group() -> None:
    assert sd.range(5).groupby(None).count().take_all() == [{"count()": 5}]


def test_groupby_errors() -> None:
    with pytest.raises(ValueError, match="groupby key 'nope' is not in the dataset"):
        sd.range(5).groupby("nope").count().take_all()
    with pytest.raises(ValueError, match="no column 'zz'"):
        sd.range(5).groupby("id").sum("zz").take_all()
    with pytest.raises(TypeError, match="expects AggregateFn instances"):
        sd.range(5).groupby("id").aggregate("sum")


def test_map_groups_sees_whole_groups(frame: pd.DataFrame) -> None:
    ds = sd.from_pandas(frame, override_num_blocks=5)

    def summarize(group):
        assert len(set(group["k"].tolist())) == 1
        return {"k": group["k"][:1], "n": np.array([len(group["k"])]), "total": np.array([group["v"].sum()])}

    out = ds.groupby("k").map_groups(summarize).to_pandas().sort_values("k")
    expect = frame.groupby("k")["v"].agg(["count", "sum"])
    np.testing.assert_array_equal(out["n"], expect["count"].values)
    np.testing.assert_allclose(out["total"], expect["sum"].values)

    def per_frame(df):
        return pd.DataFrame({"g": [df["g"].iloc[0]], "rows": [len(df)]})

    rows = ds.groupby("g").map_groups(per_frame, batch_format="pandas").take_all()
    assert sorted(r["g"] for r in rows) == ["a", "b", "c"] and sum(r["rows"] for r in rows) == 2000
    whole = sd.range(10, override_num_blocks=3).groupby(None).map_groups(lambda b: {"n": np.array([len(b["id"])])})
    assert whole.take_all() == [{"n": 10}]


def test_quantile_and_unique() -> None:
    from shoal.data.aggregate import AggregateFn, Count, Quantile, Unique

    assert sd.range(11, override_num_blocks=3).aggregate(Quantile("id")) == {"quantile(id)": 5.0}
    items = [{"k": i % 2, "x": i} for i in range(10)] + [{"k": 0, "x": None}]
    out = (
        sd.from_items(items, override_num_blocks=3)
        .groupby("k")
        .aggregate(Unique("x"), Quantile("x", q=0.25, alias_name="q1"), Count())
    )
    assert out.sort("k").take_all() == [
        {"k": 0, "unique(x)": [0, 2, 4, 6, 8], "q1": 2.0, "count()": 6},
        {"k": 1, "unique(x)": [1, 3, 5, 7, 9], "q1": 3.0, "count()": 5},
    ]
    assert sd.from_items(items).aggregate(Unique("x", ignore_nulls=False))["unique(x)"][-1] is None
    # Python aggregations alone, without any keyed or Arrow-computed column beside them.
    total = AggregateFn(init=lambda k: 0, accumulate_row=lambda a, r: a + r["id"], merge=lambda a, b: a + b, name="s")
    assert sd.range(11, override_num_blocks=3).aggregate(total) == {"s": 55}
    with pytest.raises(ValueError, match="q must be between 0 and 1"):
        Quantile("x", q=2)
    with pytest.raises(ValueError, match="column 'zz' is not in the dataset"):
        sd.range(3).aggregate(Quantile("zz"))
