"""Files on local disk or any ``pyarrow.fs`` filesystem, and where a run keeps them.

The local filesystem is represented by ``None``: local paths are handled with
``os``/``shutil`` directly, so that workers that only report metrics (or write
local checkpoints) never pay for importing pyarrow.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
from typing import Any

__all__ = ["StorageContext", "copy_dir", "delete_dir", "resolve_path"]

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

CHECKPOINT_PREFIX = "checkpoint_"
SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"
RESULTS_FILE = "result.json"


def _is_local_fs(fs: Any) -> bool:
    if fs is None:
        return True
    import pyarrow.fs

    return isinstance(fs, pyarrow.fs.LocalFileSystem)


def resolve_path(path: str | os.PathLike[str], filesystem: Any = None) -> tuple[Any, str]:
    """``(filesystem or None for local, path on it)`` for a local path, a URI, or a path on ``filesystem``."""
    path = os.fspath(path)
    if filesystem is not None:
        if _is_local_fs(filesystem):
            return None, os.path.abspath(os.path.expanduser(path))
        return filesystem, path
    if _URI.match(path):
        if path.startswith("file://"):
            return None, os.path.abspath(path[len("file://") :])
        import pyarrow.fs

        fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
        if _is_local_fs(fs):
            return None, os.path.abspath(fs_path)
        return fs, fs_path
    return None, os.path.abspath(os.path.expanduser(path))


def join(fs: Any, *parts: str) -> str:
    return os.path.join(*parts) if fs is None else posixpath.join(*parts)


def makedirs(fs: Any, path: str) -> None:
    if fs is None:
        os.makedirs(path, exist_ok=True)
    else:
        fs.create_dir(path, recursive=True)


def exists(fs: Any, path: str) -> bool:
    if fs is None:
        return os.path.exists(path)
    import pyarrow.fs

    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def is_dir(fs: Any, path: str) -> bool:
    if fs is None:
        return os.path.isdir(path)
    import pyarrow.fs

    return fs.get_file_info(path).type == pyarrow.fs.FileType.Directory


def list_dir(fs: Any, path: str) -> list[str]:
    """Names of the entries directly under ``path`` (empty if it does not exist)."""
    if fs is None:
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []
    import pyarrow.fs

    infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    return sorted(posixpath.basename(i.path.rstrip("/")) for i in infos)


def delete_dir(fs: Any, path: str) -> None:
    if fs is None:
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        pass


def copy_dir(src_fs: Any, src: str, dst_fs: Any, dst: str) -> None:
    """Copy the contents of directory ``src`` into ``dst`` (created if needed)."""
    if src_fs is None and dst_fs is None:
        if os.path.abspath(src) == os.path.abspath(dst):
            return
        shutil.copytree(src, dst, dirs_exist_ok=True)
        return
    import pyarrow.fs

    makedirs(dst_fs, dst)
    pyarrow.fs.copy_files(
        src,
        dst,
        source_filesystem=src_fs or pyarrow.fs.LocalFileSystem(),
        destination_filesystem=dst_fs or pyarrow.fs.LocalFileSystem(),
    )


def read_text(fs: Any, path: str) -> str:
    if fs is None:
        with open(path, encoding="utf-8") as f:
            return f.read()
    with fs.open_input_stream(path) as f:
        return f.read().decode("utf-8")


def write_text(fs: Any, path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers never see a partial file (locally)."""
    if fs is None:
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        return
    with fs.open_output_stream(path) as f:
        f.write(text.encode("utf-8"))


def append_text(fs: Any, path: str, text: str) -> None:
    if fs is None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
        return
    # Object stores cannot append: rewrite the whole file.
    old = read_text(fs, path) if exists(fs, path) else ""
    write_text(fs, path, old + text)


def to_json(value: Any) -> str:
    """JSON for reported metrics, which may hold numpy scalars and other odd values."""
    return json.dumps(value, default=_json_default, sort_keys=False)


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return repr(value)


class StorageContext:
    """Where one run lives: ``storage_path/name/`` on a filesystem; picklable into workers."""

    def __init__(self, storage_path: str, name: str, filesystem: Any = None) -> None:
        self.fs, self.storage_fs_path = resolve_path(storage_path, filesystem)
        self.name = name
        self.experiment_fs_path = join(self.fs, self.storage_fs_path, name)

    @property
    def filesystem(self) -> Any:
        """The pyarrow filesystem (a LocalFileSystem for local paths)."""
        if self.fs is not None:
            return self.fs
        import pyarrow.fs

        return pyarrow.fs.LocalFileSystem()

    def checkpoint_path(self, dir_name: str) -> str:
        return join(self.fs, self.experiment_fs_path, dir_name)

    @property
    def snapshot_path(self) -> str:
        return join(self.fs, self.experiment_fs_path, SNAPSHOT_FILE)

    @property
    def results_path(self) -> str:
        return join(self.fs, self.experiment_fs_path, RESULTS_FILE)

    def __repr__(self) -> str:
        return f"StorageContext({self.experiment_fs_path!r})"
