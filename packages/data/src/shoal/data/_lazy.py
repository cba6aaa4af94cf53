"""Modules imported on first use.

pyarrow's file-system, parquet, CSV and JSON modules (and the ssl they pull in)
add ~7 MB to every process that imports them; a worker that only maps batches
never needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LazyModule"]


class LazyModule:
    """Stands for module ``name``, which is imported when an attribute is first read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
