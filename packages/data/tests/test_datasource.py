"""Custom Datasource / Datasink implementations."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import shoal.data as sd

pytestmark = pytest.mark.usefixtures("shoal_runtime")


class SquaresDatasource(sd.Datasource):
    def __init__(self, n: int, distributed: bool = True) -> None:
        self._n = n
        self._distributed = distributed

    def estimate_inmemory_data_size(self) -> int:
        return self._n * 16

    @property
    def supports_distributed_reads(self) -> bool:
        return self._distributed

    def get_read_tasks(self, parallelism: int) -> list[sd.ReadTask]:
        step = max(1, self._n // parallelism)
        tasks = []
        for start in range(0, self._n, step):
            end = min(self._n, start + step)

            def read(start: int = start, end: int = end) -> Iterator[Any]:
                yield pd.DataFrame({"x": range(start, end), "pid": os.getpid()})

            tasks.append(sd.ReadTask(read, sd.BlockMetadata(num_rows=end - start, size_bytes=16 * (end - start))))
        return tasks


def test_custom_datasource() -> None:
    ds = sd.read_datasource(SquaresDatasource(10), override_num_blocks=3)
    assert [r["x"] for r in ds.take_all()] == list(range(10))
    assert ds.count() == 10  # from the read tasks' metadata
    assert ds.limit(4).count() == 4
    assert "ReadSquares" in ds.materialize().stats()


def test_non_distributed_reads_run_in_the_driver() -> None:
    rows = sd.read_datasource(SquaresDatasource(6, distributed=False)).take_all()
    assert {r["pid"] for r in rows} == {os.getpid()}


class RecordingDatasink(sd.Datasink):
    """Writes blocks to files under a directory and records the driver-side callbacks in it."""

    def __init__(self, root: str, fail_on: int | None = None) -> None:
        self.root = root
        self.fail_on = fail_on

    def on_write_start(self) -> None:
        Path(self.root, "started").write_text("yes")

    def write(self, blocks: Iterable[pa.Table], ctx: sd.TaskContext) -> Any:
        rows = 0
        for block in blocks:
            if self.fail_on is not None and self.fail_on in block.column("id").to_pylist():
                raise RuntimeError(f"cannot write {self.fail_on}")
            rows += block.num_rows
        Path(self.root, f"task{ctx.task_idx}").write_text(str(rows))
        return {"task": ctx.task_idx, "rows": rows}

    def on_write_complete(self, write_result: sd.WriteResult) -> None:
        total = sum(r["rows"] for r in write_result.write_returns)
        Path(self.root, "complete").write_text(f"{write_result.num_rows} {total}")

    def on_write_failed(self, error: Exception) -> None:
        Path(self.root, "failed").write_text(type(error).__name__)


def test_custom_datasink_lifecycle(tmp_path: Path) -> None:
    sd.range(40, override_num_blocks=4).write_datasink(RecordingDatasink(str(tmp_path)))
    assert (tmp_path / "started").read_text() == "yes"
    assert sorted(p.name for p in tmp_path.glob("task*")) == ["task0", "task1", "task2", "task3"]
    assert (tmp_path / "complete").read_text() == "40 40"


def test_datasink_failure_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="cannot write 25"):
        sd.range(40, override_num_blocks=4).write_datasink(RecordingDatasink(str(tmp_path), fail_on=25))
    assert "RuntimeError" in (tmp_path / "failed").read_text()
    assert not (tmp_path / "complete").exists()


class LinesDatasource(sd.FileBasedDatasource):
    _FILE_EXTENSIONS = ["lines"]

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[Any]:
        words = f.read().decode().split()
        yield {"word": words, "length": [len(w) for w in words]}


class UpperSink(sd.BlockBasedFileDatasink):
    def __init__(self, path: str) -> None:
        super().__init__(path, file_format="lines")

    def write_block_to_file(self, block: sd.BlockAccessor, file: pa.NativeFile) -> None:
        file.write(" ".join(w.upper() for w in block.to_arrow().column("word").to_pylist()).encode())


def test_file_based_source_and_sink(tmp_path: Path) -> None:
    (tmp_path / "a.lines").write_text("one two")
    (tmp_path / "b.lines").write_text("three")
    (tmp_path / "ignored.txt").write_text("four")
    ds = sd.read_datasource(LinesDatasource(str(tmp_path)))
    assert sorted(r["word"] for r in ds.take_all()) == ["one", "three", "two"]
    ds.write_datasink(UpperSink(str(tmp_path / "out")))
    written = sorted(p.read_text() for p in (tmp_path / "out").iterdir())
    assert sorted(" ".join(written).split()) == ["ONE", "THREE", "TWO"]


def test_block_accessor() -> None:
    acc = sd.BlockAccessor.for_block(pa.table({"a": [1, 2, 3]}))
    assert acc.num_rows() == 3 and acc.slice(1, 3).column("a").to_pylist() == [2, 3]
    assert list(acc.iter_rows()) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert acc.to_pandas()["a"].tolist() == [1, 2, 3]
    assert acc.to_numpy("a").tolist() == [1, 2, 3]
    meta = acc.get_metadata(input_files=["f"])
    assert meta.num_rows == 3 and meta.size_bytes == 24 and meta.input_files == ["f"]


def test_read_datasource_validation() -> None:
    with pytest.raises(TypeError, match="expects a Datasource"):
        sd.read_datasource(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expects a Datasink"):
        sd.range(3).write_datasink(object())  # type: ignore[arg-type]
