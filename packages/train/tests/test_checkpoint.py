"""Checkpoint: directories on local disk and on other pyarrow filesystems."""

from __future__ import annotations

import os
import pickle

import pyarrow.fs
import pytest

from shoal import train


def make_dir(path, files):
    os.makedirs(path, exist_ok=True)
    for name, text in files.items():
        full = os.path.join(path, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    return str(path)


def read_tree(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            with open(full) as f:
                out[os.path.relpath(full, root)] = f.read()
    return out


def test_local_checkpoint_round_trip(tmp_path):
    src = make_dir(tmp_path / "src", {"model.pt": "weights", "sub/opt.pt": "state"})
    ckpt = train.Checkpoint.from_directory(src)
    assert ckpt.path == src
    assert isinstance(ckpt.filesystem, pyarrow.fs.LocalFileSystem)
    # as_directory uses a local checkpoint in place.
    with ckpt.as_directory() as d:
        assert d == src
    dest = ckpt.to_directory(str(tmp_path / "dest"))
    assert read_tree(dest) == {"model.pt": "weights", os.path.join("sub", "opt.pt"): "state"}
    temp = ckpt.to_directory()
    try:
        assert read_tree(temp) == read_tree(src) and temp != src
    finally:
        import shutil

        shutil.rmtree(temp)
    again = pickle.loads(pickle.dumps(ckpt))
    assert again == ckpt and again.path == src


def test_checkpoint_on_another_filesystem(tmp_path):
    """A SubTreeFileSystem is not the local filesystem: files are downloaded for as_directory."""
    make_dir(tmp_path / "bucket" / "run" / "ck", {"a.txt": "A", "d/b.txt": "B"})
    fs = pyarrow.fs.SubTreeFileSystem(str(tmp_path / "bucket"), pyarrow.fs.LocalFileSystem())
    ckpt = train.Checkpoint("run/ck", filesystem=fs)
    assert ckpt.filesystem is fs and ckpt.path == "run/ck"
    with ckpt.as_directory() as d:
        assert not d.startswith(str(tmp_path / "bucket"))
        assert read_tree(d) == {"a.txt": "A", os.path.join("d", "b.txt"): "B"}
    assert not os.path.exists(d), "the downloaded copy is removed after the block"
    dest = ckpt.to_directory(str(tmp_path / "out"))
    assert read_tree(dest) == {"a.txt": "A", os.path.join("d", "b.txt"): "B"}
    ckpt.set_metadata({"epoch": 3})
    ckpt.update_metadata({"loss": 0.5})
    assert ckpt.get_metadata() == {"epoch": 3, "loss": 0.5}
    assert os.path.exists(tmp_path / "bucket" / "run" / "ck" / ".metadata.json")
    assert pickle.loads(pickle.dumps(ckpt)).get_metadata() == {"epoch": 3, "loss": 0.5}


def test_checkpoint_from_uri(tmp_path):
    make_dir(tmp_path / "c", {"x": "1"})
    ckpt = train.Checkpoint(f"file://{tmp_path / 'c'}")
    assert ckpt.path == str(tmp_path / "c")
    with ckpt.as_directory() as d:
        assert read_tree(d) == {"x": "1"}


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        train.Checkpoint.from_directory(tmp_path / "missing")
    with pytest.raises(TypeError, match="filesystem"):
        train.Checkpoint(str(tmp_path), filesystem="local")
    with pytest.raises(TypeError, match="set_metadata"):
        train.Checkpoint.from_directory(tmp_path).set_metadata([1])
    assert train.Checkpoint.from_directory(tmp_path).get_metadata() == {}
