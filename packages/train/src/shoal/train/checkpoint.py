"""Checkpoints: a directory of files on local disk or on any ``pyarrow.fs`` filesystem."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

from shoal.train import _storage

__all__ = ["Checkpoint"]

_METADATA_FILE = ".metadata.json"


class Checkpoint:
    """A reference to a directory that holds a training state.

    ``path`` is a local path, a URI (``s3://bucket/run/checkpoint_000003``) or a path
    on ``filesystem`` (any ``pyarrow.fs.FileSystem``). A Checkpoint pickles, so it can
    be reported from workers and returned in results; the files stay where they are.
    """

    def __init__(self, path: str | os.PathLike[str], filesystem: Any = None) -> None:
        if filesystem is not None:
            import pyarrow.fs

            if not isinstance(filesystem, pyarrow.fs.FileSystem):
                raise TypeError(f"Checkpoint(filesystem=...) must be a pyarrow.fs.FileSystem, got {filesystem!r}")
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"Checkpoint(path=...) must be a path or URI string, got {path!r}")
        self._fs, self.path = _storage.resolve_path(path, filesystem)

    @property
    def filesystem(self) -> Any:
        """The ``pyarrow.fs.FileSystem`` the checkpoint lives on."""
        if self._fs is not None:
            return self._fs
        import pyarrow.fs

        return pyarrow.fs.LocalFileSystem()

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """A checkpoint of the local directory ``path`` (nothing is copied)."""
        local = os.path.abspath(os.fspath(path))
        if not os.path.isdir(local):
            raise ValueError(f"Checkpoint.from_directory: {local!r} is not a directory")
        return cls(local)

    def to_directory(self, path: str | os.PathLike[str] | None = None) -> str:
        """Copy the checkpoint's files into the local directory ``path`` (a new temporary one if None)."""
        if path is None:
            dest = os.path.join(tempfile.gettempdir(), f"shoal_checkpoint_{uuid.uuid4().hex[:12]}")
        else:
            dest = os.path.abspath(os.fspath(path))
        os.makedirs(dest, exist_ok=True)
        _storage.copy_dir(self._fs, self.path, None, dest)
        return dest

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        """A local directory holding the checkpoint's files, for the ``with`` block.

        A local checkpoint is used in place (do not modify it); one on another
        filesystem is downloaded to a temporary directory, removed afterwards.
        """
        if self._fs is None:
            yield self.path
            return
        dest = self.to_directory()
        try:
            yield dest
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    # -- metadata -----------------------------------------------------------------

    def get_metadata(self) -> dict[str, Any]:
        """The dict stored with :meth:`set_metadata` (empty if none)."""
        path = _storage.join(self._fs, self.path, _METADATA_FILE)
        if not _storage.exists(self._fs, path):
            return {}
        return json.loads(_storage.read_text(self._fs, path))

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Store a JSON-serializable dict with the checkpoint, replacing what was there."""
        if not isinstance(metadata, dict):
            raise TypeError(f"Checkpoint.set_metadata expects a dict, got {metadata!r}")
        text = json.dumps(metadata)
        _storage.write_text(self._fs, _storage.join(self._fs, self.path, _METADATA_FILE), text)

    def update_metadata(self, metadata: dict[str, Any]) -> None:
        """Merge ``metadata`` into the stored dict."""
        merged = self.get_metadata()
        merged.update(metadata)
        self.set_metadata(merged)

    # -- plumbing -----------------------------------------------------------------

    def __repr__(self) -> str:
        fs = "local" if self._fs is None else type(self._fs).__name__
        return f"Checkpoint(filesystem={fs}, path={self.path})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Checkpoint) or other.path != self.path:
            return False
        if self._fs is None or other._fs is None:
            return self._fs is other._fs
        return bool(self._fs.equals(other._fs))

    def __hash__(self) -> int:
        return hash(self.path)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "fs": self._fs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._fs = state["fs"]
