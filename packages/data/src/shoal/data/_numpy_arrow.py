"""numpy <-> Arrow for plain numeric columns, without importing pandas.

``pa.array(ndarray)`` and ``Array.to_numpy()`` make pyarrow import pandas
(to check whether the value is a pandas object), which costs each worker
process about 40 MB it never uses when batches are numpy or Arrow. Columns
of integers, floats and booleans without nulls are converted here through
their buffers (zero-copy for numbers); everything else goes to pyarrow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["to_arrow", "to_numpy", "binary_array"]

# The numpy dtypes whose bytes Arrow reads as they are (native byte order).
_KINDS = frozenset("iuf")


def to_arrow(values: Any, type: pa.DataType | None = None, mask: np.ndarray | None = None) -> pa.Array:
    """``pa.array(values, type, mask=mask)``; an ndarray of numbers or booleans goes through its buffer."""
    if isinstance(values, np.ndarray) and values.ndim == 1 and (mask is None or len(mask) == len(values)):
        kind = values.dtype.kind
        if not values.dtype.isnative and kind in _KINDS:
            values = values.astype(values.dtype.newbyteorder("="))
        validity = None
        if mask is not None and mask.any():
            validity = pa.py_buffer(np.packbits(~np.asarray(mask, dtype=bool), bitorder="little"))
        if kind in _KINDS and (type is None or type == pa.from_numpy_dtype(values.dtype)):
            data = np.ascontiguousarray(values)
            return pa.Array.from_buffers(pa.from_numpy_dtype(data.dtype), len(data), [validity, pa.py_buffer(data)])
        if kind == "b" and (type is None or type == pa.bool_()):
            bits = np.packbits(values, bitorder="little")
            return pa.Array.from_buffers(pa.bool_(), len(values), [validity, pa.py_buffer(bits)])
    return pa.array(values, type, mask=mask)


def binary_array(values: list[bytes]) -> pa.Array:
    """``pa.array(values, pa.binary())`` for a list of bytes, built from offsets and data."""
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum([len(v) for v in values], out=offsets[1:])
    data = pa.py_buffer(b"".join(values))
    return pa.Array.from_buffers(pa.binary(), len(values), [None, pa.py_buffer(offsets), data])


def _chunk_to_numpy(chunk: pa.Array) -> np.ndarray | None:
    t = chunk.type
    if chunk.null_count:
        return None
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        dtype = np.dtype(t.to_pandas_dtype())
        buf = chunk.buffers()[1]
        if buf is None:
            return np.empty(0, dtype=dtype)
        view = np.frombuffer(buf, dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)
        # Arrow's memory is shared with other blocks and the object store: read-only, as pyarrow gives it.
        view.flags.writeable = False
        return view
    if pa.types.is_boolean(t):
        buf = chunk.buffers()[1]
        if buf is None:
            return np.empty(0, dtype=bool)
        bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little", count=chunk.offset + len(chunk))
        return bits[chunk.offset :].astype(bool)
    return None


def to_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``values.to_numpy(zero_copy_only=False)``; read-only where it is a view of Arrow memory."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    parts = [_chunk_to_numpy(c) for c in chunks]
    if parts and all(p is not None for p in parts):
        if len(parts) == 1:
            return parts[0]  # type: ignore[return-value]
        return np.concatenate(parts)  # type: ignore[arg-type]
    return values.to_numpy(zero_copy_only=False)
