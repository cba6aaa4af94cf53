"""Grouped aggregation by numpy agrees with Arrow's own engine."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from shoal.data._hashagg import group_by

SKIP = pc.ScalarAggregateOptions(skip_nulls=True, min_count=1)
KEEP = pc.ScalarAggregateOptions(skip_nulls=False, min_count=0)
EMPTY_OK = pc.ScalarAggregateOptions(skip_nulls=True, min_count=0)


def _table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    nulls = rng.random(rows) < 0.2
    floats = rng.normal(size=rows)
    floats[rng.random(rows) < 0.1] = np.nan
    return pa.table(
        {
            "k": pa.array(rng.integers(0, 5, rows), mask=rng.random(rows) < 0.1),
            "s": pa.array(rng.choice(["a", "b", "c"], rows)),
            "neg": pa.array(rng.integers(-3, 3, rows).astype(np.int8)),
            "pos": pa.array(rng.integers(10, 20, rows).astype(np.uint32)),
            "sparse": pa.array(rng.choice([-(2**60), 0, 2**60], rows)),
            "nan_key": pa.array(np.where(rng.random(rows) < 0.3, np.nan, rng.integers(0, 3, rows).astype(float))),
            "f32": pa.array(floats.astype(np.float32), mask=nulls),
            "f64": pa.array(floats),
            "i8": pa.array(rng.integers(-100, 100, rows).astype(np.int8), mask=nulls),
            "u16": pa.array(rng.integers(0, 1000, rows).astype(np.uint16)),
            "i64": pa.array(rng.integers(-(2**62), 2**62, rows)),  # sums wrap, as Arrow's do
        }
    )


def _specs() -> list[tuple[Any, str, Any, str]]:
    specs: list[tuple[Any, str, Any, str]] = [([], "count_all", None, "rows")]
    for col in ("f32", "f64", "i8", "u16", "i64"):
        for i, opts in enumerate((SKIP, KEEP, EMPTY_OK)):
            specs += [
                (col, "sum", opts, f"{col}_sum{i}"),
                (col, "min", opts, f"{col}_min{i}"),
                (col, "max", opts, f"{col}_max{i}"),
                (col, "mean", opts, f"{col}_mean{i}"),
            ]
        specs += [
            (col, "variance", pc.VarianceOptions(ddof=0, skip_nulls=True, min_count=1), f"{col}_var"),
            (col, "sum", None, f"{col}_sum_default"),
        ]
        for mode in ("only_valid", "only_null", "all"):
            specs.append((col, "count", pc.CountOptions(mode=mode), f"{col}_count_{mode}"))
    return specs


def _arrow(table: pa.Table, keys: list[str], specs: list[tuple[Any, str, Any, str]]) -> pa.Table:
    aggs = [(c, f) if o is None else (c, f, o) for c, f, o, _ in specs]
    out = table.group_by(keys, use_threads=False).aggregate(aggs)
    return out.rename_columns([*keys, *[name for *_, name in specs]])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


@pytest.mark.parametrize(
    "keys", [["k"], ["s"], ["nan_key"], ["neg"], ["pos"], ["sparse"], ["k", "s"], ["s", "k", "nan_key"]]
)
@pytest.mark.parametrize("rows", [0, 1, 37, 2000])
@pytest.mark.parametrize("ordered", [True, False])
def test_matches_arrow(keys: list[str], rows: int, ordered: bool) -> None:
    table = _table(rows, seed=rows)
    if rows > 1:  # several chunks, as blocks concatenated from parts are
        table = pa.concat_tables([table.slice(0, rows // 3), table.slice(rows // 3)])
    specs = _specs()
    ours = group_by(table, keys, specs, ordered)
    assert ours is not None
    ref = _arrow(table, keys, specs)
    assert ours.schema == ref.schema
    # Arrow numbers groups of several keys in its own order when a key is NaN.
    ours, ref = (t.sort_by([(k, "ascending") for k in keys]) for t in (ours, ref))
    for name in ref.column_names:
        got, want = ours.column(name).to_pylist(), ref.column(name).to_pylist()
        assert len(got) == len(want)
        bad = [(g, w) for g, w in zip(got, want, strict=True) if not _same(g, w)]
        assert not bad, (name, bad[:5])


def test_groups_in_order_of_first_appearance() -> None:
    table = pa.table({"a": [3, 1, 3, 2, 1], "b": ["y", "x", "x", "y", "x"], "v": [1, 2, 3, 4, 5]})
    out = group_by(table, ["a"], [("v", "sum", None, "s")])
    assert out is not None and out.to_pydict() == {"a": [3, 1, 2], "s": [4, 7, 4]}
    out = group_by(table, ["a", "b"], [([], "count_all", None, "n")])
    assert out is not None
    assert out.to_pydict() == {"a": [3, 1, 3, 2], "b": ["y", "x", "x", "y"], "n": [1, 2, 1, 1]}
    # Unordered, small integer keys are their own slots: ascending.
    out = group_by(table, ["a"], [("v", "sum", None, "s")], ordered=False)
    assert out is not None and out.to_pydict() == {"a": [1, 2, 3], "s": [7, 4, 4]}


def test_unsupported_cases_are_left_to_arrow() -> None:
    table = pa.table({"k": [1, 1, 2], "s": ["b", "a", "c"], "v": [1.0, 2.0, 3.0]})
    assert group_by(table, ["k"], [("s", "min", None, "m")]) is None  # string minimum
    assert group_by(table, ["k"], [("v", "variance", pc.VarianceOptions(ddof=1), "var")]) is None
    assert group_by(table, ["k"], [("v", "product", None, "p")]) is None
    as_dict = table.set_column(1, "s", table.column("s").dictionary_encode())
    assert group_by(as_dict, ["s"], [("v", "sum", None, "t")]) is None
