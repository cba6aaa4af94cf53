"""File formats: parquet, CSV, JSON, text, numpy, binary; paths, globs, filesystems, bad input."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import shoal.data as sd
from shoal.data._paths import resolve_filesystem

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def _rows(ds: sd.Dataset, key: str = "id") -> list:
    return sorted(r[key] for r in ds.take_all())


def test_parquet_round_trip_with_columns_and_paths(tmp_path: Path) -> None:
    ds = sd.range(1000, override_num_blocks=4).map(lambda r: {"id": r["id"], "half": r["id"] / 2, "s": str(r["id"])})
    ds.write_parquet(str(tmp_path / "out"))
    files = sorted(os.listdir(tmp_path / "out"))
    assert len(files) == 4 and all(f.endswith(".parquet") for f in files)
    back = sd.read_parquet(str(tmp_path / "out"))
    assert back.count() == 1000 and back.columns() == ["id", "half", "s"]
    assert _rows(back) == list(range(1000))
    only = sd.read_parquet(str(tmp_path / "out"), columns=["half"])
    assert only.columns() == ["half"] and sd.read_parquet(str(tmp_path / "out")).sum("half") == 249750.0
    with_paths = sd.read_parquet(str(tmp_path / "out" / files[0]), include_paths=True).take(1)[0]
    assert with_paths["path"].endswith(files[0])
    globbed = sd.read_parquet(str(tmp_path / "out" / "*.parquet"))
    assert globbed.count() == 1000
    listed = sd.read_parquet([str(tmp_path / "out" / f) for f in files[:2]])
    assert listed.count() == 500


def test_big_parquet_files_split_by_row_groups(tmp_path: Path) -> None:
    pq.write_table(pa.table({"v": np.arange(10_000)}), tmp_path / "one.parquet", row_group_size=1000)
    ds = sd.read_parquet(str(tmp_path / "one.parquet"), override_num_blocks=5)
    mat = ds.materialize()
    assert mat.num_blocks() == 5 and mat.count() == 10_000
    assert [r["v"] for r in mat.take_all()] == list(range(10_000))
    assert ds.limit(1500).count() == 1500


def test_directories_skip_hidden_files_and_filter_extensions(tmp_path: Path) -> None:
    pq.write_table(pa.table({"v": [1]}), tmp_path / "a.parquet")
    (tmp_path / "sub").mkdir()
    pq.write_table(pa.table({"v": [2]}), tmp_path / "sub" / "b.parquet")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".hidden.parquet").write_text("not parquet")
    (tmp_path / "notes.txt").write_text("not parquet")
    assert _rows(sd.read_parquet(str(tmp_path)), "v") == [1, 2]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.csv").write_text("a\n1\n")
    (tmp_path / "c" / "notes.txt").write_text("a\n2\n")
    assert sd.read_csv(str(tmp_path / "c")).take_all() == [{"a": 1}]  # only .csv, as in Ray
    assert _rows(sd.read_csv(str(tmp_path / "c"), file_extensions=["csv", "txt"]), "a") == [1, 2]
    assert sd.read_csv(str(tmp_path / "c" / "notes.txt")).take_all() == [{"a": 2}]  # named: read


def test_input_files_lists_each_file_read_once(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.csv").write_text("x\n1\n")
    a, b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
    ds = sd.read_csv(str(tmp_path))
    assert ds.input_files() == [a, b]  # from the plan, before anything runs
    mapped = ds.map(lambda r: r)
    assert mapped.input_files() == [a, b]
    assert mapped.materialize().input_files() == [a, b]
    assert ds.union(sd.read_csv(a)).input_files() == [a, b]
    assert sd.range(3).input_files() == [] and sd.from_items([{"x": 1}]).input_files() == []


def test_hive_partition_directories_become_columns(tmp_path: Path) -> None:
    for year in (2020, 2021):
        (tmp_path / f"year={year}" / "m=1").mkdir(parents=True)
        pq.write_table(pa.table({"v": [year]}), tmp_path / f"year={year}" / "m=1" / "a.parquet")
    root = str(tmp_path)
    rows = sorted(sd.read_parquet(root).take_all(), key=lambda r: r["v"])
    assert rows == [{"v": 2020, "year": "2020", "m": "1"}, {"v": 2021, "year": "2021", "m": "1"}]
    assert sd.read_parquet(root).schema().names == ["v", "year", "m"]
    # A partition column can be asked for (and projected) although no file stores it.
    assert sorted(r["year"] for r in sd.read_parquet(root, columns=["year"]).take_all()) == ["2020", "2021"]
    assert sorted(r["year"] for r in sd.read_parquet(root).select_columns(["year"]).take_all()) == ["2020", "2021"]
    assert sorted(sd.read_parquet(root, partitioning=None).take_all(), key=lambda r: r["v"]) == [
        {"v": 2020},
        {"v": 2021},
    ]
    dirs = sd.Partitioning("dirs", base_dir=root, field_names=["a"])
    assert sorted(r["a"] for r in sd.read_parquet(root, partitioning=dirs).take_all()) == ["year=2020", "year=2021"]
    with pytest.raises(ValueError, match="needs base_dir and field_names"):
        sd.Partitioning("dirs")
    (tmp_path / "csv" / "k=x").mkdir(parents=True)
    (tmp_path / "csv" / "k=x" / "f.csv").write_text("v\n1\n")
    assert sd.read_csv(str(tmp_path / "csv")).take_all() == [{"v": 1, "k": "x"}]
    (tmp_path / "txt" / "k=x").mkdir(parents=True)
    (tmp_path / "txt" / "k=x" / "f.txt").write_text("hello\n")
    assert sd.read_text(str(tmp_path / "txt")).take_all() == [{"text": "hello"}]  # off by default, as in Ray


def test_write_parquet_partition_cols_round_trip(tmp_path: Path) -> None:
    items = [{"a": i, "b": f"k{i % 3}", "c": i % 2} for i in range(12)]
    out = tmp_path / "parts"
    sd.from_items(items, override_num_blocks=2).write_parquet(str(out), partition_cols=["b", "c"])
    assert sorted(p.name for p in out.iterdir()) == ["b=k0", "b=k1", "b=k2"]
    assert sorted(p.name for p in (out / "b=k1").iterdir()) == ["c=0", "c=1"]
    # The partition values live in the directory names, not in the files.
    files = sorted((out / "b=k1" / "c=0").iterdir())  # one per write task that had such rows
    assert [pq.read_table(f).to_pydict() for f in files] in ([{"a": [4]}, {"a": [10]}], [{"a": [10]}, {"a": [4]}])
    back = sorted(sd.read_parquet(str(out)).take_all(), key=lambda r: r["a"])
    assert back == [{"a": i, "b": f"k{i % 3}", "c": str(i % 2)} for i in range(12)]
    with pytest.raises(ValueError, match=r"partition_cols \['nope'\] are not columns"):
        sd.range(3).write_parquet(str(tmp_path / "bad"), partition_cols=["nope"])
    with pytest.raises(ValueError, match="cannot be every column"):
        sd.range(3).write_parquet(str(tmp_path / "all"), partition_cols=["id"])
    with pytest.raises(TypeError, match="partition_cols must be a non-empty list"):
        sd.range(3).write_parquet(str(tmp_path / "str"), partition_cols="id")


def test_write_parquet_max_rows_per_file(tmp_path: Path) -> None:
    out = tmp_path / "capped"
    sd.range(25, override_num_blocks=1).write_parquet(str(out), max_rows_per_file=10)
    files = sorted(out.iterdir())
    assert [pq.read_metadata(f).num_rows for f in files] == [10, 10, 5]
    assert sorted(r["id"] for r in sd.read_parquet(str(out)).take_all()) == list(range(25))
    parts = tmp_path / "parts"
    items = [{"k": i % 2, "v": i} for i in range(9)]
    sd.from_items(items, override_num_blocks=1).write_parquet(str(parts), partition_cols=["k"], max_rows_per_file=2)
    assert [pq.read_metadata(f).num_rows for f in sorted((parts / "k=0").iterdir())] == [2, 2, 1]
    with pytest.raises(ValueError, match="max_rows_per_file must be a positive integer"):
        sd.range(3).write_parquet(str(tmp_path / "bad"), max_rows_per_file=0)


def test_writer_args_functions_and_old_rows_per_file_name(tmp_path: Path) -> None:
    sd.range(10).write_parquet(str(tmp_path / "z"), arrow_parquet_args_fn=lambda: {"compression": "zstd"})
    (f,) = list((tmp_path / "z").iterdir())
    assert pq.ParquetFile(f).metadata.row_group(0).column(0).compression == "ZSTD"
    import pyarrow.csv as pacsv

    sd.range(2).write_csv(
        str(tmp_path / "c"), arrow_csv_args_fn=lambda: {"write_options": pacsv.WriteOptions(include_header=False)}
    )
    (f,) = list((tmp_path / "c").iterdir())
    assert f.read_text() == "0\n1\n"
    with pytest.warns(DeprecationWarning, match="use min_rows_per_file"):
        sd.range(100, override_num_blocks=10).write_parquet(str(tmp_path / "n"), num_rows_per_file=50)
    assert len(list((tmp_path / "n").iterdir())) == 2
    with pytest.raises(ValueError, match="not both"):
        sd.range(3).write_json(str(tmp_path / "j"), num_rows_per_file=1, min_rows_per_file=1)


def test_write_modes_when_the_path_exists(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    sd.range(4).write_parquet(out)
    sd.range(4).write_parquet(out)  # APPEND, the default, adds files beside the first
    assert len(os.listdir(out)) == 2 and sd.read_parquet(out).count() == 8
    sd.range(3).write_parquet(out, mode="overwrite")
    assert len(os.listdir(out)) == 1 and sd.read_parquet(out).count() == 3
    # IGNORE writes nothing and runs nothing (the UDF would raise).
    sd.range(4).map(lambda r: 1 // 0).write_parquet(out, mode=sd.SaveMode.IGNORE)
    assert sd.read_parquet(out).count() == 3
    for mode in ("error", sd.SaveMode.CREATE):
        with pytest.raises(ValueError, match="already exists"):
            sd.range(4).write_csv(out, mode=mode)
    sd.range(2).write_json(str(tmp_path / "new"), mode="error")  # a new path is fine
    assert sd.read_json(str(tmp_path / "new")).count() == 2
    with pytest.raises(ValueError, match="mode must be a SaveMode or one of"):
        sd.range(1).write_csv(out, mode="sometimes")
    with pytest.raises(ValueError, match="needs a table format"):
        sd.range(1).write_csv(out, mode="upsert")
    assert str(sd.SaveMode.APPEND) == "SaveMode.APPEND" and sd.SaveMode.APPEND == "append"


def test_filename_providers_name_the_files(tmp_path: Path) -> None:
    from shoal.data.datasource import FilenameProvider

    class ByTask(FilenameProvider):
        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"part-{task_index}.csv"

    class ByBlock(FilenameProvider):  # Ray's older hook
        def get_filename_for_block(self, block, write_uuid: str, task_index: int, block_index: int) -> str:
            return f"rows{block.num_rows}-{task_index}.json"

    class Bad(FilenameProvider):
        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return "a/b"

    sd.range(6, override_num_blocks=2).write_csv(str(tmp_path / "t"), filename_provider=ByTask())
    assert sorted(os.listdir(tmp_path / "t")) == ["part-0.csv", "part-1.csv"]
    sd.range(6, override_num_blocks=2).write_json(str(tmp_path / "b"), filename_provider=ByBlock())
    assert sorted(os.listdir(tmp_path / "b")) == ["rows3-0.json", "rows3-1.json"]
    with pytest.raises(ValueError, match="without '/'"):
        sd.range(2).write_parquet(str(tmp_path / "x"), filename_provider=Bad())
    with pytest.raises(TypeError, match="must be a FilenameProvider"):
        sd.range(2).write_parquet(str(tmp_path / "y"), filename_provider="name.parquet")


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        sd.read_csv("/definitely/not/here.csv")
    with pytest.raises(FileNotFoundError, match="no files match"):
        sd.read_csv(str(tmp_path / "definitely-not-here-*.csv"))
    assert sd.read_csv("/definitely/not/here.csv", ignore_missing_paths=True).count() == 0


def test_csv_round_trip_and_options(tmp_path: Path) -> None:
    sd.from_items([{"a": i, "b": f"x{i}"} for i in range(20)], override_num_blocks=2).write_csv(str(tmp_path))
    back = sd.read_csv(str(tmp_path))
    assert back.count() == 20 and _rows(back, "a") == list(range(20))
    (tmp_path / "semi.txt").write_text("p;q\n1;2\n")
    import pyarrow.csv as pacsv

    semi = sd.read_csv(str(tmp_path / "semi.txt"), parse_options=pacsv.ParseOptions(delimiter=";"))
    assert semi.take_all() == [{"p": 1, "q": 2}]
    with pytest.raises(ValueError, match="CSV cannot represent"):
        sd.range_tensor(3, shape=(2,)).write_csv(str(tmp_path / "t"))


def test_malformed_csv_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,4\n5,6,7\n8,9\n")
    with pytest.raises(ValueError, match=r"malformed CSV row in .*bad\.csv, line 4: expected 2 columns, got 3"):
        sd.read_csv(str(bad)).take_all()


def test_json_lines_round_trip_and_arrays(tmp_path: Path) -> None:
    sd.from_items([{"a": i, "t": [i, i]} for i in range(5)]).write_json(str(tmp_path / "out"))
    back = sd.read_json(str(tmp_path / "out"))
    assert sorted(back.take_all(), key=lambda r: r["a"])[2] == {"a": 2, "t": [2, 2]}
    (tmp_path / "arr.json").write_text(json.dumps([{"x": 1}, {"x": 2}]))
    assert _rows(sd.read_json(str(tmp_path / "arr.json")), "x") == [1, 2]
    tensors = tmp_path / "tensors"
    sd.range_tensor(2, shape=(2, 2)).write_json(str(tensors))
    rows = sd.read_json(str(tensors)).take_all()
    assert sorted(r["data"] for r in rows) == [[[0, 0], [0, 0]], [[1, 1], [1, 1]]]


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, \n{"a": 4}\n')
    with pytest.raises(ValueError, match=r"malformed JSON in .*bad\.jsonl, line 3"):
        sd.read_json(str(bad)).take_all()


def test_text_numpy_and_binary_files(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("hello\n\nworld\n")
    assert [r["text"] for r in sd.read_text(str(tmp_path / "t.txt")).take_all()] == ["hello", "world"]
    keep = sd.read_text(str(tmp_path / "t.txt"), drop_empty_lines=False)
    assert [r["text"] for r in keep.take_all()] == ["hello", "", "world"]
    sd.range_tensor(6, shape=(2, 3)).write_numpy(str(tmp_path / "np"), column="data")
    arrays = sd.read_numpy(str(tmp_path / "np"))
    values = sorted(int(r["data"][0, 0]) for r in arrays.take_all())
    assert values == list(range(6)) and arrays.take(1)[0]["data"].shape == (2, 3)
    np.save(tmp_path / "plain.npy", np.arange(4))
    assert _rows(sd.read_numpy(str(tmp_path / "plain.npy")), "data") == [0, 1, 2, 3]
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "x.bin").write_bytes(b"\x00\x01")
    (tmp_path / "bin" / "y.bin").write_bytes(b"abc")
    rows = sd.read_binary_files(str(tmp_path / "bin"), include_paths=True).take_all()
    assert sorted((Path(r["path"]).name, r["bytes"]) for r in rows) == [("x.bin", b"\x00\x01"), ("y.bin", b"abc")]


def test_uris_with_any_pyarrow_filesystem(tmp_path: Path) -> None:
    # A filesystem object plus s3://-style URIs: the scheme is dropped and the
    # path resolved by that filesystem (here a local tree standing in for a bucket).
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    sd.range(30, override_num_blocks=3).write_parquet("s3://bucket/data", filesystem=fs)
    assert len(os.listdir(tmp_path / "bucket" / "data")) == 3
    back = sd.read_parquet("s3://bucket/data", filesystem=fs)
    assert _rows(back) == list(range(30))
    assert sd.read_parquet("s3://bucket/data/*.parquet", filesystem=fs).count() == 30
    assert sd.read_parquet(f"file://{tmp_path}/bucket/data").count() == 30


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3 server (moto's), so that pyarrow's own S3 client is what reads and writes."""
    pytest.importorskip("flask", reason="the S3 server needs moto[server] (the test extra)")
    server_mod = pytest.importorskip("moto.server", reason="the S3 server needs moto[server] (the test extra)")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


def test_s3_uris_against_an_s3_server(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = pafs.S3FileSystem(
        endpoint_override=s3_endpoint,
        scheme="http",
        access_key="test",
        secret_key="test",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    fs.create_dir("bucket")
    ds = sd.range(300, override_num_blocks=3).map(lambda r: {"id": r["id"], "s": f"r{r['id']}"})
    ds.write_parquet("s3://bucket/pq", filesystem=fs)
    listed = fs.get_file_info(pafs.FileSelector("bucket/pq"))
    assert len(listed) == 3 and all(info.path.endswith(".parquet") for info in listed)
    assert _rows(sd.read_parquet("s3://bucket/pq", filesystem=fs)) == list(range(300))
    assert sd.read_parquet("s3://bucket/pq/*.parquet", filesystem=fs, columns=["s"]).columns() == ["s"]
    ds.write_json("s3://bucket/json", filesystem=fs)
    assert sorted(r["s"] for r in sd.read_json("s3://bucket/json", filesystem=fs).take_all())[:2] == ["r0", "r1"]
    sd.range(5).write_csv("s3://bucket/csv", filesystem=fs)
    # Without filesystem=, an s3:// URI picks pyarrow's S3 filesystem, configured from the
    # environment. (Only reads here: the workers started before this test set the variables,
    # and S3 uploads from a process without credentials are not what this test is about.)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3_endpoint}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert sd.read_parquet("s3://bucket/pq").sum("id") == sum(range(300))
    assert isinstance(resolve_filesystem("s3://bucket/csv", None)[0], pafs.S3FileSystem)
    assert _rows(sd.read_csv("s3://bucket/csv")) == list(range(5))
