"""Path resolution (no runtime): local paths, file:// and bucket URIs, globs, hidden files."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from shoal.data._paths import expand_paths, resolve_filesystem


def test_local_paths_and_file_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fs, paths = resolve_filesystem(["data.csv", f"file://{tmp_path}/x.csv"], None)
    assert isinstance(fs, pafs.LocalFileSystem)
    assert paths == [os.path.join(str(tmp_path), "data.csv"), f"{tmp_path}/x.csv"]


def test_bucket_uris_with_a_given_filesystem(tmp_path: Path) -> None:
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    got_fs, paths = resolve_filesystem("s3://bucket/key/part.parquet", fs)
    assert got_fs is fs and paths == ["bucket/key/part.parquet"]


def test_bad_paths() -> None:
    with pytest.raises(ValueError, match="at least one"):
        resolve_filesystem([], None)
    with pytest.raises(TypeError, match="paths must be a path or a list"):
        resolve_filesystem(3, None)  # type: ignore[arg-type]


def test_expand_directories_globs_and_extensions(tmp_path: Path) -> None:
    for name in ["a.csv", "b.csv", "c.txt", "_SUCCESS", ".hidden.csv", "sub/d.csv", "_tmp/e.csv"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    fs = pafs.LocalFileSystem()
    listed = [os.path.relpath(p, tmp_path) for p, _ in expand_paths(fs, [str(tmp_path)])]
    assert listed == ["a.csv", "b.csv", "c.txt", "sub/d.csv"]
    only_csv = [os.path.relpath(p, tmp_path) for p, _ in expand_paths(fs, [str(tmp_path)], file_extensions=["csv"])]
    assert only_csv == ["a.csv", "b.csv", "sub/d.csv"]
    globbed = [os.path.relpath(p, tmp_path) for p, _ in expand_paths(fs, [f"{tmp_path}/*.csv"])]
    assert globbed == ["a.csv", "b.csv"]
    # A file named on its own is read whatever its extension.
    explicit = expand_paths(fs, [str(tmp_path / "c.txt")], file_extensions=["csv"])
    assert [os.path.basename(p) for p, _ in explicit] == ["c.txt"]
    assert expand_paths(fs, [str(tmp_path / "a.csv")])[0][1] == 1
    recursive = [os.path.relpath(p, tmp_path) for p, _ in expand_paths(fs, [f"{tmp_path}/**/*.csv"])]
    assert recursive == ["a.csv", "b.csv", "sub/d.csv"]
