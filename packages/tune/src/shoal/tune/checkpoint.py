"""A checkpoint is a directory: :class:`Checkpoint`.

Trainables write whatever files they like into a directory and report
``Checkpoint.from_directory(path)``; tune copies it into the trial's folder
(``checkpoint_000003``) so the original may be deleted after ``report``
returns. Small metadata rides along in ``.metadata.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

__all__ = ["Checkpoint"]

_METADATA_FILE = ".metadata.json"


class Checkpoint:
    """A directory of files that captures a trial's state (on the local filesystem)."""

    def __init__(self, path: str | os.PathLike[str], filesystem: Any = None) -> None:
        # pyarrow's LocalFileSystem is the local filesystem too (shoal.train passes it along).
        if filesystem is not None and type(filesystem).__name__ != "LocalFileSystem":
            raise ValueError("shoal.tune checkpoints live on the local filesystem; filesystem must be None")
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {path!r}")
        self.path = os.fspath(path)
        self.filesystem = None

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """A checkpoint of the files in the directory ``path``."""
        if not os.path.isdir(path):
            raise ValueError(f"checkpoint directory {os.fspath(path)!r} does not exist or is not a directory")
        return cls(os.path.abspath(path))

    def to_directory(self, path: str | os.PathLike[str] | None = None) -> str:
        """Copy the checkpoint's files into ``path`` (a new temporary directory if None); returns it."""
        dest = os.fspath(path) if path is not None else tempfile.mkdtemp(prefix="checkpoint_")
        os.makedirs(dest, exist_ok=True)
        shutil.copytree(self.path, dest, dirs_exist_ok=True)
        return dest

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """The checkpoint's files as a local directory, for reading (the directory itself; no copy)."""
        yield self.path

    def get_metadata(self) -> dict[str, Any]:
        """The metadata dict stored with the checkpoint (empty if none)."""
        try:
            with open(os.path.join(self.path, _METADATA_FILE)) as f:
                return dict(json.load(f))
        except FileNotFoundError:
            return {}

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Replace the metadata (must be JSON-serializable)."""
        text = json.dumps(metadata)
        with open(os.path.join(self.path, _METADATA_FILE), "w") as f:
            f.write(text)

    def update_metadata(self, metadata: dict[str, Any]) -> None:
        """Merge ``metadata`` into the stored metadata."""
        self.set_metadata({**self.get_metadata(), **metadata})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"Checkpoint(filesystem=local, path={self.path})"
