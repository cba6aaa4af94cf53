"""``Dataset.schema()``: column names and types."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

__all__ = ["Schema"]


class Schema:
    """The columns of a dataset; ``names`` and ``types`` (pyarrow types), ``base_schema`` the pyarrow one."""

    def __init__(self, base_schema: pa.Schema) -> None:
        self.base_schema = base_schema

    @property
    def names(self) -> list[str]:
        return list(self.base_schema.names)

    @property
    def types(self) -> list[pa.DataType]:
        return list(self.base_schema.types)

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Schema):
            return self.base_schema.equals(other.base_schema)
        if isinstance(other, pa.Schema):
            return self.base_schema.equals(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self.names))

    def __len__(self) -> int:
        return len(self.base_schema)

    def __repr__(self) -> str:
        names = ["Column", *self.names]
        types = ["Type", *[str(t) for t in self.types]]
        width = max(len(n) for n in names)
        lines = [f"{names[0]:<{width}}  {types[0]}", f"{'-' * 6:<{width}}  ----"]
        lines += [f"{n:<{width}}  {t}" for n, t in zip(names[1:], types[1:], strict=True)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return repr(self)
