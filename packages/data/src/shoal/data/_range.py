"""The datasource behind ``range`` and ``range_tensor``."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from shoal.data import _convert
from shoal.data._numpy_arrow import to_arrow
from shoal.data.block import BlockMetadata
from shoal.data.datasource import Datasource, ReadTask

__all__ = ["RangeDatasource"]


class RangeDatasource(Datasource):
    """Integers ``0..n-1`` in a column ``id``, or as tensors of ``shape`` in a column ``data``."""

    def __init__(self, n: int, *, tensor_shape: tuple[int, ...] | None = None) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"range() needs an integer n >= 0, got {n!r}")
        if tensor_shape is not None:
            tensor_shape = tuple(int(d) for d in tensor_shape)
            if not tensor_shape or any(d < 1 for d in tensor_shape):
                raise ValueError(f"range_tensor() needs a shape of positive sizes, got {tensor_shape!r}")
        self._n = int(n)
        self._shape = tensor_shape

    def get_name(self) -> str:
        return "Range" if self._shape is None else "RangeTensor"

    def _row_bytes(self) -> int:
        return 8 * (1 if self._shape is None else math.prod(self._shape))

    def estimate_inmemory_data_size(self) -> int:
        return self._n * self._row_bytes()

    def _schema(self) -> pa.Schema:
        if self._shape is None:
            return pa.schema([("id", pa.int64())])
        return pa.schema([("data", pa.fixed_shape_tensor(pa.int64(), list(self._shape)))])

    def _make(self, start: int, end: int) -> pa.Table:
        ids = np.arange(start, end, dtype=np.int64)
        if self._shape is None:
            return pa.table({"id": to_arrow(ids)})
        size = math.prod(self._shape)
        data = np.repeat(ids, size).reshape(len(ids), *self._shape)
        return pa.table({"data": _convert.array_from_values(data, "data")})

    def get_read_tasks(self, parallelism: int) -> list[ReadTask]:
        if self._n == 0:
            return []
        parallelism = max(1, min(parallelism, self._n))
        bounds = np.linspace(0, self._n, parallelism + 1).astype(np.int64)
        tasks: list[ReadTask] = []
        schema = self._schema()
        for start, end in itertools.pairwise(bounds):
            if end <= start:
                continue
            meta = BlockMetadata(int(end - start), int(end - start) * self._row_bytes(), schema=schema)
            tasks.append(_LimitAwareReadTask(_RangeRead(self, int(start), int(end)), meta))
        return tasks


class _LimitAwareReadTask(ReadTask):
    """A range read task that makes only the rows it is allowed to, instead of cutting them off."""

    def __init__(self, read: _RangeRead, metadata: BlockMetadata) -> None:
        super().__init__(read, metadata)
        self._read = read

    def with_row_limit(self, limit: int) -> ReadTask:
        source, start = self._read.source, self._read.start
        end = min(self._read.end, start + limit)
        meta = BlockMetadata(end - start, (end - start) * source._row_bytes(), schema=self.schema)
        return _LimitAwareReadTask(_RangeRead(source, start, end), meta)


class _RangeRead:
    """The read of rows ``start..end``: a plain object, so sending it to a worker is cheap
    (a nested function would be pickled with its code for every task)."""

    def __init__(self, source: RangeDatasource, start: int, end: int) -> None:
        self.source = source
        self.start = start
        self.end = end

    def __call__(self) -> Iterator[pa.Table]:
        yield self.source._make(self.start, self.end)
