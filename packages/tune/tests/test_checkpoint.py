"""Checkpoint: a directory with optional metadata."""

from __future__ import annotations

import os
import shutil

import pytest

from shoal.tune import Checkpoint


def test_from_directory_to_directory_and_metadata(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights.bin").write_bytes(b"\x01\x02")
    ckpt = Checkpoint.from_directory(src)
    assert ckpt.path == str(src)
    assert repr(ckpt) == f"Checkpoint(filesystem=local, path={src})"
    ckpt.set_metadata({"epoch": 3})
    ckpt.update_metadata({"loss": 0.5})
    assert ckpt.get_metadata() == {"epoch": 3, "loss": 0.5}
    out = ckpt.to_directory(str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "weights.bin").read_bytes() == b"\x01\x02"
    temp = ckpt.to_directory()
    try:
        assert os.path.exists(os.path.join(temp, "weights.bin"))
    finally:
        shutil.rmtree(temp)
    with ckpt.as_directory() as d:
        assert d == str(src)
    assert out == str(tmp_path / "copy")
    assert Checkpoint(str(src)) == ckpt and len({ckpt, Checkpoint(str(src))}) == 1


def test_bad_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        Checkpoint.from_directory(tmp_path / "missing")
    with pytest.raises(ValueError, match="local filesystem"):
        Checkpoint(str(tmp_path), filesystem=object())
    with pytest.raises(TypeError, match="path"):
        Checkpoint(3)
    assert Checkpoint(str(tmp_path)).get_metadata() == {}
