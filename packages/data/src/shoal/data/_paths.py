"""Resolving user paths (files, directories, globs, lists; local or any pyarrow filesystem)."""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shoal.data._lazy import LazyModule

if TYPE_CHECKING:
    import pyarrow.fs as pafs
else:
    pafs = LazyModule("pyarrow.fs")

__all__ = ["resolve_filesystem", "expand_paths", "join_path", "make_dirs"]

_GLOB_CHARS = set("*?[")
# Object stores whose URIs are scheme://bucket/key, with the key path as pyarrow spells it.
_BUCKET_SCHEMES = {"s3", "gs", "gcs"}


def _split_scheme(path: str) -> tuple[str | None, str]:
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return scheme, rest
    return None, path


def resolve_filesystem(
    paths: str | Sequence[str], filesystem: pafs.FileSystem | None
) -> tuple[pafs.FileSystem, list[str]]:
    """One filesystem for all ``paths`` and the paths as that filesystem spells them.

    Without ``filesystem`` a URI picks its own (``s3://``, ``gs://``,
    ``file://``...) and a plain path is local. With one, a URI's scheme is
    dropped (``s3://bucket/key`` -> ``bucket/key``).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [os.fspath(paths)]
    elif isinstance(paths, Sequence) and not isinstance(paths, (bytes, bytearray)):
        paths = [os.fspath(p) for p in paths]
    else:
        raise TypeError(f"paths must be a path or a list of paths, got {type(paths).__name__}")
    if not paths:
        raise ValueError("paths must name at least one file or directory")
    for p in paths:
        if not isinstance(p, str) or not p:
            raise TypeError(f"each path must be a non-empty string, got {p!r}")
    out: list[str] = []
    fs = filesystem
    for p in paths:
        scheme, rest = _split_scheme(p)
        if scheme is None:
            if fs is None:
                fs = pafs.LocalFileSystem()
            local = isinstance(fs, pafs.LocalFileSystem)
            out.append(os.path.abspath(os.path.expanduser(rest)) if local else rest)
        elif scheme == "file":
            fs = fs or pafs.LocalFileSystem()
            out.append("/" + rest.lstrip("/"))
        elif filesystem is not None or scheme in _BUCKET_SCHEMES:
            # bucket/key paths: the filesystem object knows the rest.
            if fs is None:
                fs, _ = pafs.FileSystem.from_uri(_glob_free_prefix(p) if _has_glob(p) else p)
            out.append(rest)
        else:
            # Other URIs (hdfs://host:port/path...): pyarrow splits them.
            uri_fs, path = pafs.FileSystem.from_uri(_glob_free_prefix(p) if _has_glob(p) else p)
            fs = fs or uri_fs
            if _has_glob(p):
                path = path.rstrip("/") + "/" + p[len(_glob_free_prefix(p)) :].lstrip("/")
            out.append(path)
    assert fs is not None
    return fs, out


def _has_glob(path: str) -> bool:
    return any(c in path for c in _GLOB_CHARS)


def _glob_free_prefix(path: str) -> str:
    parts = path.split("/")
    keep = []
    for part in parts:
        if _has_glob(part):
            break
        keep.append(part)
    return "/".join(keep)


def _glob_match(path: str, pattern: str) -> bool:
    """Shell-style matching per path segment (``*`` stops at ``/``; ``**`` spans segments)."""

    def match(parts: list[str], pats: list[str]) -> bool:
        if not pats:
            return not parts
        if pats[0] == "**":
            return any(match(parts[i:], pats[1:]) for i in range(len(parts) + 1))
        return bool(parts) and fnmatch.fnmatchcase(parts[0], pats[0]) and match(parts[1:], pats[1:])

    return match(path.strip("/").split("/"), pattern.strip("/").split("/"))


def _hidden(path: str) -> bool:
    name = posixpath.basename(path.rstrip("/"))
    return name.startswith((".", "_"))


def _list_dir(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    base = path.rstrip("/")
    files = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(base) :].lstrip("/")
        if any(_hidden(part) for part in rel.split("/")):
            continue
        files.append(info)
    return sorted(files, key=lambda i: i.path)


def expand_paths(
    fs: pafs.FileSystem,
    paths: Sequence[str],
    *,
    file_extensions: Sequence[str] | None = None,
    ignore_missing_paths: bool = False,
) -> list[tuple[str, int | None]]:
    """Every file under ``paths`` with its size: directories recursively, globs matched.

    Hidden entries (names starting with ``.`` or ``_``) inside directories
    are skipped. FileNotFoundError for a path that matches nothing, unless
    ``ignore_missing_paths``.
    """
    files: list[tuple[str, int | None]] = []
    for path in paths:
        found: list[pafs.FileInfo]
        if _has_glob(path):
            base = _glob_free_prefix(path) or "/"
            base_info = fs.get_file_info(base)
            candidates = _list_dir(fs, base) if base_info.type == pafs.FileType.Directory else []
            found = [i for i in candidates if _glob_match(i.path, path)]
        else:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.File:
                found = [info]
            elif info.type == pafs.FileType.Directory:
                found = _list_dir(fs, path)
            else:
                found = []
                if not ignore_missing_paths:
                    raise FileNotFoundError(f"no such file or directory: {path!r}")
        if not found and _has_glob(path) and not ignore_missing_paths:
            raise FileNotFoundError(f"no files match {path!r}")
        explicit = len(found) == 1 and found[0].path.rstrip("/") == path.rstrip("/")
        if file_extensions is not None and not explicit:
            # Extensions filter what a directory or glob brings in; a file named
            # on its own is read whatever its name.
            exts = tuple("." + e.lower().lstrip(".") for e in file_extensions)
            found = [i for i in found if i.path.lower().endswith(exts)]
        files.extend((i.path, i.size) for i in found)
    return files


def join_path(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def make_dirs(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.create_dir(path, recursive=True)
    except OSError:
        # Object stores may refuse directory markers; writing files still works.
        pass
