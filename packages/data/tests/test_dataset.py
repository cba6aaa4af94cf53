"""Dataset transformations and consumers, on the backend chosen with --shoal-backend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import shoal
import shoal.data as sd

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def test_map_filter_flat_map_values() -> None:
    ds = sd.range(10, override_num_blocks=3)
    assert ds.map(lambda r: {"id": r["id"], "sq": r["id"] ** 2}).take(3) == [
        {"id": 0, "sq": 0},
        {"id": 1, "sq": 1},
        {"id": 2, "sq": 4},
    ]
    assert [r["id"] for r in ds.filter(lambda r: r["id"] % 3 == 0).take_all()] == [0, 3, 6, 9]
    assert ds.flat_map(lambda r: [r] * (r["id"] % 3)).count() == 9
    assert ds.flat_map(lambda r: [{"v": r["id"]}, {"v": -r["id"]}]).take(4) == [
        {"v": 0},
        {"v": 0},
        {"v": 1},
        {"v": -1},
    ]


@pytest.mark.parametrize("fmt", ["default", "numpy", "pandas", "pyarrow"])
def test_map_batches_formats(fmt: str) -> None:
    def double(batch):
        if fmt == "pandas":
            assert isinstance(batch, pd.DataFrame)
            return batch.assign(id=batch["id"] * 2)
        if fmt == "pyarrow":
            assert isinstance(batch, pa.Table)
            return pa.table({"id": pa.compute.multiply(batch.column("id"), 2)})
        assert isinstance(batch, dict)
        return {"id": batch["id"] * 2}

    out = sd.range(100, override_num_blocks=4).map_batches(double, batch_format=fmt).take_all()
    assert [r["id"] for r in out] == list(range(0, 200, 2))


def test_map_batches_batch_size_args_and_generators() -> None:
    def sizes(batch, offset, scale=1):
        n = len(batch["id"])
        return {"id": batch["id"] * scale + offset, "n": np.full(n, n)}

    # Blocks of 5 rows are bundled so that batches of 10 can be cut: 10, 10 and a last 5.
    out = sd.range(25, override_num_blocks=5).map_batches(sizes, batch_size=10, fn_args=(1,), fn_kwargs={"scale": 3})
    rows = out.take_all()
    assert [r["id"] for r in rows] == [i * 3 + 1 for i in range(25)]
    assert [r["n"] for r in rows] == [10] * 20 + [5] * 5

    def split(batch):
        yield {"id": batch["id"][:1]}
        yield {"id": batch["id"][1:]}

    assert sd.range(10).map_batches(split).count() == 10


def test_map_batches_bad_return_value_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"must be a dict of numpy arrays, a pandas\.DataFrame or a pyarrow\.Table"):
        sd.range(3).map_batches(lambda b: [1, 2, 3]).take_all()


def test_zero_copy_batches_are_read_only_and_copies_are_not() -> None:
    def inplace(batch):
        batch["id"] += 1
        return batch

    assert [r["id"] for r in sd.range(3).map_batches(inplace, zero_copy_batch=False).take_all()] == [1, 2, 3]
    with pytest.raises(sd.UserCodeException, match="read-only"):
        sd.range(3).map_batches(inplace).take_all()


def test_column_operations() -> None:
    ds = sd.from_items([{"a": i, "b": str(i), "c": float(i)} for i in range(4)])
    assert ds.select_columns(["c", "a"]).take(1) == [{"c": 0.0, "a": 0}]
    assert ds.drop_columns(["b"]).columns() == ["a", "c"]
    assert ds.rename_columns({"a": "x"}).columns() == ["x", "b", "c"]
    assert ds.rename_columns(["p", "q", "r"]).take(1) == [{"p": 0, "q": "0", "r": 0.0}]
    added = ds.add_column("d", lambda df: df["a"] * 10)
    assert [r["d"] for r in added.take_all()] == [0, 10, 20, 30]
    assert [r["a"] for r in ds.add_column("a", lambda df: df["a"] + 1).take_all()] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"select_columns: columns \['zz'\] are not in the dataset"):
        ds.select_columns("zz").take_all()
    with pytest.raises(ValueError, match="duplicate"):
        ds.select_columns(["a", "a"])


def test_limit_take_and_friends(capsys: pytest.CaptureFixture[str]) -> None:
    ds = sd.range(100, override_num_blocks=5)
    assert ds.limit(7).count() == 7
    assert [r["id"] for r in ds.limit(13).take_all()] == list(range(13))
    assert ds.take(2) == [{"id": 0}, {"id": 1}]
    batch = ds.take_batch(5)
    np.testing.assert_array_equal(batch["id"], np.arange(5))
    assert list(ds.take_batch(3, batch_format="pandas")["id"]) == [0, 1, 2]
    with pytest.raises(ValueError, match="more than the given limit of 50 records"):
        ds.take_all(limit=50)
    with pytest.raises(ValueError, match="The dataset is empty"):
        ds.filter(lambda r: False).take_batch()
    ds.show(2)
    assert capsys.readouterr().out == "{'id': 0}\n{'id': 1}\n"


def test_schema_count_and_repr() -> None:
    ds = sd.range(10)
    assert ds.count() == 10
    assert ds.schema().names == ["id"] and ds.schema().types == [pa.int64()]
    assert "id      int64" in repr(ds.schema())
    mapped = ds.map(lambda r: {"s": str(r["id"])})
    assert mapped.columns() == ["s"]
    assert repr(mapped).splitlines() == ["Map(<lambda>)", "+- Dataset(num_rows=10, schema={id: int64})"]
    assert sd.range(0).count() == 0
    assert sd.range(5).filter(lambda r: r["id"] > 1).count() == 3


def test_union_in_order_and_schema_mismatch() -> None:
    a = sd.range(3)
    b = sd.from_items([{"id": 10}, {"id": 11}])
    assert [r["id"] for r in a.union(b, a).take_all()] == [0, 1, 2, 10, 11, 0, 1, 2]
    assert a.union(b).count() == 5
    with pytest.raises(ValueError, match=r"dataset 0 has \{id: int64\} but dataset 1 has \{x: string\}"):
        a.union(sd.from_items([{"x": "s"}])).take_all()
    # The same columns in another order are the same schema, as in Ray: rows combine by name.
    ab = sd.from_items([{"a": 1, "b": "x"}])
    ba = sd.from_items([{"b": "y", "a": 2}])
    assert ab.union(ba).take_all() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert ab.union(ba).to_pandas().to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
    with pytest.raises(ValueError, match="schemas differ"):
        ab.union(sd.from_items([{"b": 3, "a": 2}])).take_all()


def test_zip_suffixes_and_row_mismatch() -> None:
    left = sd.range(10, override_num_blocks=3)
    right = sd.range(10, override_num_blocks=4).map(lambda r: {"id": r["id"] * 2, "s": str(r["id"])})
    rows = left.zip(right).take_all()
    assert rows[3] == {"id": 3, "id_1": 6, "s": "3"}
    assert len(rows) == 10
    with pytest.raises(ValueError, match=r"different numbers of rows \(10 and 4\)"):
        left.zip(sd.range(4)).take_all()


def test_repartition_keeps_order() -> None:
    ds = sd.range(100, override_num_blocks=7).repartition(3).materialize()
    assert ds.num_blocks() == 3
    assert [r["id"] for r in ds.take_all()] == list(range(100))
    by_rows = sd.range(100, override_num_blocks=2).repartition(target_num_rows_per_block=30).materialize()
    assert by_rows.num_blocks() == 4
    with pytest.raises(ValueError, match="exactly one of"):
        sd.range(3).repartition()


def test_random_shuffle_and_block_order_are_seeded_permutations() -> None:
    ds = sd.range(200, override_num_blocks=4)
    a = [r["id"] for r in ds.random_shuffle(seed=5).take_all()]
    b = [r["id"] for r in ds.random_shuffle(seed=5).take_all()]
    assert a == b and sorted(a) == list(range(200)) and a != list(range(200))
    c = [r["id"] for r in ds.random_shuffle().take_all()]
    assert sorted(c) == list(range(200))
    blocks = [r["id"] for r in ds.randomize_block_order(seed=1).take_all()]
    assert sorted(blocks) == list(range(200))
    runs = [blocks[i : i + 50] for i in range(0, 200, 50)]
    assert all(run == list(range(run[0], run[0] + 50)) for run in runs)
    assert [r["id"] for r in ds.repartition(3, shuffle=True).take_all()] != list(range(200))


def test_random_shuffle_is_uniform() -> None:
    # Every row is equally likely at every position: over many seeds, the mean value found
    # at each position is the mean row (a shuffle that kept rows near their block, or
    # blocks in order, moves these means by far more than the tolerance, ~5 sigma).
    ds = sd.range(40, override_num_blocks=4).materialize()
    seeds = 80
    sums = np.zeros(40)
    for seed in range(seeds):
        out = [r["id"] for r in ds.random_shuffle(seed=seed).take_all()]
        assert sorted(out) == list(range(40))
        sums += out
    means = sums / seeds
    assert np.all(np.abs(means - 19.5) < 6.5), means
    assert abs(means[:10].mean() - 19.5) < 3.5 and abs(means[-10:].mean() - 19.5) < 3.5


def test_sort() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 50, 500)
    ds = sd.from_items([{"k": int(v), "s": f"s{v:03d}", "i": i} for i, v in enumerate(values)], override_num_blocks=5)
    out = ds.sort("k").take_all()
    assert [r["k"] for r in out] == sorted(values.tolist())
    desc = ds.sort("s", descending=True).take_all()
    assert [r["s"] for r in desc] == sorted((f"s{v:03d}" for v in values), reverse=True)
    multi = ds.sort(["k", "i"], descending=[True, False]).take_all()
    assert [(r["k"], r["i"]) for r in multi] == sorted(
        ((int(v), i) for i, v in enumerate(values)), key=lambda t: (-t[0], t[1])
    )
    with pytest.raises(ValueError, match="sort key column 'nope' is not in the dataset"):
        ds.sort("nope").take_all()
    with pytest.raises(ValueError, match="sort key column 'nope' is not in the dataset"):
        sd.range(10**6, override_num_blocks=4).sort("nope").take_all()  # sampled, several partitions


def test_aggregates_and_unique() -> None:
    ds = sd.range(10, override_num_blocks=3)
    assert ds.sum("id") == 45 and ds.min("id") == 0 and ds.max("id") == 9
    assert ds.mean("id") == 4.5
    assert ds.std("id") == pytest.approx(np.std(np.arange(10), ddof=1))
    assert ds.std("id", ddof=0) == pytest.approx(np.std(np.arange(10)))
    two = sd.from_items([{"a": 1, "b": 2.5}, {"a": 3, "b": 0.5}])
    assert two.sum() == {"sum(a)": 4, "sum(b)": 3.0}
    assert two.max(["a", "b"]) == {"max(a)": 3, "max(b)": 2.5}
    assert ds.aggregate(sd.Count(), sd.Sum("id")) == {"count()": 10, "sum(id)": 45}
    empty = ds.filter(lambda r: False)
    assert empty.sum("id") is None and empty.count() == 0
    assert empty.aggregate(sd.Count(), sd.Sum("id")) == {"count()": 0, "sum(id)": None}
    assert sd.from_items([{"a": x} for x in [3, 1, None, 3, 2]]).unique("a") == [3, 1, None, 2]
    assert sd.from_items([{"a": x} for x in [3, None, 3]]).unique("a", ignore_nulls=True) == [3]


def test_splits() -> None:
    ds = sd.range(10, override_num_blocks=3)
    assert [d.count() for d in ds.split(3)] == [4, 4, 2]
    assert [d.count() for d in ds.split(3, equal=True)] == [3, 3, 3]
    parts = ds.split_at_indices([2, 5])
    assert [[r["id"] for r in p.take_all()] for p in parts] == [[0, 1], [2, 3, 4], [5, 6, 7, 8, 9]]
    assert [d.count() for d in ds.split_proportionately([0.2, 0.5])] == [2, 5, 3]
    train, test = ds.train_test_split(0.25)
    assert [r["id"] for r in train.take_all()] == list(range(7))
    assert [r["id"] for r in test.take_all()] == [7, 8, 9]
    tr, te = ds.train_test_split(3, shuffle=True, seed=1)
    ids = sorted(r["id"] for r in tr.take_all() + te.take_all())
    assert ids == list(range(10)) and te.count() == 3
    with pytest.raises(ValueError, match="indices must be sorted"):
        ds.split_at_indices([5, 2])


def test_train_test_split_stratified_keeps_class_proportions() -> None:
    # 14 rows of class a, 6 of class b; each class gives its last int(count * fraction) rows.
    items = [{"i": i, "c": "a" if i % 10 < 7 else "b"} for i in range(20)]
    ds = sd.from_items(items, override_num_blocks=3)
    train, test = ds.train_test_split(test_size=0.3, stratify="c")
    assert [r["i"] for r in train.take_all()] == [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 7, 8, 9, 17, 18]
    assert [r["i"] for r in test.take_all()] == [13, 14, 15, 16, 19]
    _, test = ds.train_test_split(test_size=3, stratify="c")  # 3 of 20: 2 of a's 14, 0 of b's 6
    assert [r["i"] for r in test.take_all()] == [15, 16]
    with pytest.raises(ValueError, match="cannot be combined"):
        ds.train_test_split(0.3, stratify="c", shuffle=True)
    with pytest.raises(ValueError, match="stratify column 'z' is not one of"):
        ds.train_test_split(0.3, stratify="z")


def test_materialize_and_conversions() -> None:
    ds = sd.range(20, override_num_blocks=2).map_batches(lambda b: {"id": b["id"], "x": b["id"] * 0.5})
    mat = ds.materialize()
    assert isinstance(mat, sd.MaterializedDataset) and mat.num_blocks() == 2
    assert mat.size_bytes() == 20 * 16
    assert ds.size_bytes() == 20 * 16  # a lazy dataset runs to tell
    assert "MapBatches(<lambda>)" in mat.stats()
    df = ds.to_pandas()
    assert list(df.columns) == ["id", "x"] and df["x"].sum() == 95.0
    with pytest.raises(ValueError, match="limit of 5"):
        ds.to_pandas(limit=5)
    tables = shoal.get(ds.to_arrow_refs())
    assert sum(t.num_rows for t in tables) == 20
    arrays = shoal.get(ds.to_numpy_refs(column="x"))
    np.testing.assert_array_equal(np.concatenate(arrays), np.arange(20) * 0.5)
    dicts = shoal.get(ds.to_numpy_refs())
    assert set(dicts[0]) == {"id", "x"}
    frames = shoal.get(ds.to_pandas_refs())
    assert all(isinstance(f, pd.DataFrame) for f in frames)
    assert pd.concat(frames)["x"].tolist() == [i * 0.5 for i in range(20)]


def test_from_refs() -> None:
    frames = sd.from_pandas_refs([shoal.put(pd.DataFrame({"x": [1, 2]})), shoal.put(pd.DataFrame({"x": [3]}))])
    assert frames.take_all() == [{"x": 1}, {"x": 2}, {"x": 3}] and frames.num_blocks() == 2
    assert sd.from_numpy_refs(shoal.put(np.arange(3))).take_all() == [{"data": 0}, {"data": 1}, {"data": 2}]
    assert sd.from_arrow_refs([shoal.put(pa.table({"y": [1]}))]).take_all() == [{"y": 1}]
    # Ray's keyword names
    assert sd.from_arrow_refs(tables=shoal.put(pa.table({"y": [2]}))).take_all() == [{"y": 2}]
    assert sd.from_numpy_refs(ndarrays=[shoal.put(np.arange(1))]).count() == 1
    assert sd.from_pandas_refs(dfs=shoal.put(pd.DataFrame({"x": [5]}))).take_all() == [{"x": 5}]
    with pytest.raises(TypeError, match="expects ObjectRefs"):
        sd.from_pandas_refs([pd.DataFrame({"x": [1]})])
    with pytest.raises(ValueError, match="must be a dict of columns"):
        sd.from_pandas_refs([shoal.put(5)])


def test_from_creators() -> None:
    assert sd.from_items([1, 2]).take_all() == [{"item": 1}, {"item": 2}]
    assert sd.from_numpy(np.arange(6).reshape(3, 2)).take(1)[0]["data"].tolist() == [0, 1]
    assert sd.from_numpy([np.arange(2), np.arange(3)]).count() == 5
    assert sd.from_pandas(pd.DataFrame({"x": [1, 2]})).take_all() == [{"x": 1}, {"x": 2}]
    assert sd.from_pandas([pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [2]})]).materialize().num_blocks() == 2
    assert sd.from_arrow(pa.table({"y": [1, 2, 3]}), override_num_blocks=3).materialize().num_blocks() == 3
    tensors = sd.range_tensor(4, shape=(2, 3))
    first = tensors.take(2)[1]["data"]
    assert first.shape == (2, 3) and (first == 1).all()
    assert sd.range(10, override_num_blocks=4).materialize().num_blocks() == 4
    with pytest.raises(ValueError, match="range\\(\\) needs an integer n >= 0"):
        sd.range(-1)


def test_iter_rows_and_batches() -> None:
    ds = sd.range(10, override_num_blocks=3)
    assert [r["id"] for r in ds.iter_rows()] == list(range(10))
    batches = list(ds.iter_batches(batch_size=4))
    assert [b["id"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [len(b) for b in ds.iter_batches(batch_size=4, batch_format="pandas", drop_last=True)] == [4, 4]


def test_filter_by_expression() -> None:
    ds = sd.from_items([{"id": i, "label": "abc"[i % 3], "x.y": float(i)} for i in range(10)])
    assert [r["id"] for r in ds.filter(expr="id <= 4").take_all()] == [0, 1, 2, 3, 4]
    picked = ds.filter(expr="id > 2 and label in ['a', 'c'] or id == 0").take_all()
    assert [r["id"] for r in picked] == [0, 3, 5, 6, 8, 9]
    assert [r["id"] for r in ds.filter(expr="x.y * 2 >= 16").take_all()] == [8, 9]
    assert [r["id"] for r in ds.filter(expr="not 1 < id < 9").take_all()] == [0, 1, 9]
    nulls = sd.from_items([{"v": 1}, {"v": None}, {"v": 3}])
    assert nulls.filter(expr="v is None").count() == 1 and nulls.filter(expr="v is not None").count() == 2
    for bad, message in [
        ("id % 2 == 0", "arithmetic operator is not supported"),
        ("id >", "not a valid expression"),
        ("__import__('os')", "a call other than"),
    ]:
        with pytest.raises(ValueError, match=message):
            ds.filter(expr=bad)  # at the call, before anything runs
    with pytest.raises(ValueError, match="exactly one of fn and expr"):
        ds.filter()
    with pytest.raises(ValueError, match="exactly one of fn and expr"):
        ds.filter(lambda r: True, expr="id > 1")
    with pytest.raises(ValueError, match="cannot be applied"):
        ds.filter(expr="missing > 1").take_all()


def test_random_sample() -> None:
    ds = sd.range(2000, override_num_blocks=4)
    a = [r["id"] for r in ds.random_sample(0.25, seed=7).take_all()]
    assert a == [r["id"] for r in ds.random_sample(0.25, seed=7).take_all()]
    assert 380 < len(a) < 620 and a == sorted(set(a))
    # Every block contributes, with its own draw.
    assert all(any(lo <= i < lo + 500 for i in a) for lo in range(0, 2000, 500))
    assert [i % 500 for i in a if i < 500] != [i % 500 for i in a if 500 <= i < 1000]
    assert ds.random_sample(0).count() == 0 and ds.random_sample(1).count() == 2000
    for bad in (-0.1, 1.5, "half"):
        with pytest.raises(ValueError, match="fraction must be between 0 and 1"):
            ds.random_sample(bad)  # type: ignore[arg-type]
