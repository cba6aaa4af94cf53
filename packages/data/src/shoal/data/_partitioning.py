"""Partition values encoded in file paths (``year=2024/month=01/part-0.parquet``)."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

__all__ = ["Partitioning", "add_partition_columns", "partition_values"]


@dataclass(frozen=True)
class Partitioning:
    """How directories name partition values.

    ``style="hive"``: each ``key=value`` directory gives column ``key``.
    ``style="dirs"``: the directories below ``base_dir`` are the values of
    ``field_names``, in order. Values are strings. Only the directories below
    ``base_dir`` count when it is given (for ``"dirs"`` it must be).
    """

    style: str = "hive"
    base_dir: str | None = None
    field_names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.style not in ("hive", "dirs"):
            raise ValueError(f"Partitioning style must be 'hive' or 'dirs', got {self.style!r}")
        if self.style == "dirs" and (not self.field_names or self.base_dir is None):
            raise ValueError("Partitioning('dirs') needs base_dir and field_names")


def partition_values(partitioning: Partitioning, path: str) -> dict[str, str]:
    """The partition columns of the file at ``path``."""
    directory = posixpath.dirname(path.replace("\\", "/"))
    if partitioning.base_dir is not None:
        base = partitioning.base_dir.replace("\\", "/").rstrip("/")
        if directory != base and not directory.startswith(base + "/"):
            return {}
        directory = directory[len(base) :]
    parts = [p for p in directory.split("/") if p]
    if partitioning.style == "hive":
        values = {}
        for part in parts:
            key, sep, value = part.partition("=")
            if sep and key:
                values[key] = value
        return values
    names = list(partitioning.field_names or [])
    return dict(zip(names, parts[: len(names)], strict=False))


def add_partition_columns(table: pa.Table, values: dict[str, str]) -> pa.Table:
    """``table`` with a string column per partition value it does not already hold."""
    for key, value in values.items():
        if key not in table.column_names:
            table = table.append_column(key, pa.array([value] * table.num_rows, pa.string()))
    return table
