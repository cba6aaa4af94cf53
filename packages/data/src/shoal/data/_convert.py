"""Conversions between blocks (pyarrow Tables) and what user code sees: batches and rows.

Multi-dimensional numpy arrays become Arrow ``fixed_shape_tensor`` columns and
come back as ndarrays of the same shape. Everything here is a plain function
over pyarrow / numpy values, with no runtime involved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from shoal.data._numpy_arrow import to_arrow, to_numpy

__all__ = [
    "BATCH_FORMATS",
    "check_batch_format",
    "column_to_numpy",
    "ndarray_to_block",
    "table_to_numpy",
    "table_to_pandas",
    "block_to_batch",
    "batch_to_block",
    "rows_of",
    "rows_to_block",
    "array_from_values",
    "compact",
    "concat_blocks",
    "empty_block",
    "is_tensor_type",
]

BATCH_FORMATS = ("default", "numpy", "pandas", "pyarrow")


def check_batch_format(batch_format: Any, what: str = "batch_format") -> str:
    """The canonical name of a batch format; ValueError for an unknown one."""
    if batch_format is None:
        return "pyarrow"
    if batch_format not in BATCH_FORMATS:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, BATCH_FORMATS))} or None, got {batch_format!r}")
    return "numpy" if batch_format == "default" else str(batch_format)


def empty_block() -> pa.Table:
    """A block with no rows and no columns."""
    return pa.table({})


def is_tensor_type(t: pa.DataType) -> bool:
    return isinstance(t, pa.FixedShapeTensorType)


# -- arrow -> numpy / pandas ---------------------------------------------------


def column_to_numpy(col: pa.ChunkedArray | pa.Array, *, writable: bool = False) -> np.ndarray:
    """One column as an ndarray: zero-copy where Arrow allows, tensors with their shape."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    if is_tensor_type(col.type):
        t = col.type
        if not chunks:
            arr = np.empty((0, *t.shape), dtype=t.value_type.to_pandas_dtype())
        else:
            parts = [c.to_numpy_ndarray() for c in chunks]
            arr = parts[0] if len(parts) == 1 else np.concatenate(parts)
    elif not chunks:
        arr = np.empty(0, dtype=_numpy_dtype(col.type))
    else:
        arr = to_numpy(col)
    if writable and not arr.flags.writeable:
        arr = arr.copy()
    return arr


def _numpy_dtype(t: pa.DataType) -> Any:
    try:
        return t.to_pandas_dtype()
    except NotImplementedError:
        return object


def table_to_numpy(table: pa.Table, *, writable: bool = False) -> dict[str, np.ndarray]:
    """A table as a dict of column name -> ndarray."""
    return {name: column_to_numpy(table.column(i), writable=writable) for i, name in enumerate(table.column_names)}


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as e:  # pragma: no cover - pandas is in the test environment
        raise ImportError("batch_format='pandas' needs pandas; install it with `pip install shoal-data[pandas]`") from e
    return pandas


def table_to_pandas(table: pa.Table) -> Any:
    """A table as a pandas DataFrame; tensor columns hold one ndarray per row."""
    pd = _pandas()
    tensor_cols = [name for name, t in zip(table.column_names, table.schema.types, strict=True) if is_tensor_type(t)]
    if not tensor_cols:
        return table.to_pandas()
    plain = table.drop_columns(tensor_cols)
    df = plain.to_pandas() if plain.num_columns else pd.DataFrame(index=range(table.num_rows))
    for name in tensor_cols:
        arr = column_to_numpy(table.column(name))
        series = pd.Series(list(arr), dtype=object, index=df.index)
        df[name] = series
    return df[table.column_names]


def block_to_batch(table: pa.Table, batch_format: str, *, writable: bool = False) -> Any:
    """A block in ``batch_format`` ("numpy", "pandas" or "pyarrow"; see check_batch_format)."""
    if batch_format == "numpy":
        return table_to_numpy(table, writable=writable)
    if batch_format == "pandas":
        return table_to_pandas(table)
    return table


# -- numpy / pandas / python -> arrow ---------------------------------------------


def array_from_values(values: Any, name: str = "") -> pa.Array | pa.ChunkedArray:
    """An Arrow array from an ndarray, a list or a pandas Series; tensors keep their shape."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if isinstance(values, np.ndarray):
        return _array_from_ndarray(values, name)
    if hasattr(values, "to_numpy") and hasattr(values, "dtype") and not isinstance(values, (list, tuple)):
        # a pandas Series or Index
        if values.dtype == object:
            return array_from_values(list(values), name)
        return pa.array(values)
    if isinstance(values, (list, tuple)):
        if values and all(isinstance(v, np.ndarray) for v in values):
            shapes = {v.shape for v in values}
            if len(shapes) == 1 and values[0].ndim >= 1:
                return _array_from_ndarray(np.stack(values), name)
            if all(v.ndim == 1 for v in values):
                return pa.array(values)
            raise TypeError(
                f"column {name!r} holds ndarrays of different shapes {sorted(shapes)[:3]}; "
                "only same-shaped tensors or 1-D arrays can be stored"
            )
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
            raise TypeError(f"column {name!r} cannot be stored as an Arrow column: {e}") from e
    raise TypeError(f"column {name!r} must be an ndarray, a list or a pandas Series, got {type(values).__name__}")


def _array_from_ndarray(arr: np.ndarray, name: str) -> pa.Array:
    if arr.ndim == 0:
        raise TypeError(f"column {name!r} is a 0-d array; batch columns must have one value per row")
    if arr.ndim == 1:
        if arr.dtype == object:
            return array_from_values(list(arr), name)
        return to_arrow(arr)
    if arr.dtype == object:
        raise TypeError(f"column {name!r}: multi-dimensional object arrays cannot be stored")
    return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(arr))


def batch_to_block(batch: Any, what: str = "the batch") -> pa.Table:
    """A block from a dict of columns, a pandas DataFrame or a pyarrow Table."""
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, Mapping):
        columns: dict[str, Any] = {}
        length = None
        for name, values in batch.items():
            if not isinstance(name, str):
                raise TypeError(f"{what} has a column named {name!r}; column names must be strings")
            arr = array_from_values(values, name)
            if length is None:
                length = len(arr)
            elif len(arr) != length:
                raise ValueError(
                    f"{what} has columns of different lengths: {next(iter(batch))!r} has {length} rows "
                    f"but {name!r} has {len(arr)}"
                )
            columns[name] = arr
        return pa.table(columns)
    if _is_pandas_frame(batch):
        return _frame_to_block(batch)
    raise ValueError(
        f"{what} must be a dict of columns (numpy arrays), a pandas.DataFrame or a pyarrow.Table, "
        f"got {type(batch).__name__}"
    )


def _is_pandas_frame(value: Any) -> bool:
    mod = type(value).__module__
    return mod.startswith("pandas") and type(value).__name__ == "DataFrame"


def _frame_to_block(df: Any) -> pa.Table:
    object_cols = [c for c in df.columns if df[c].dtype == object]
    tensors = {}
    for c in object_cols:
        values = list(df[c])
        if values and all(isinstance(v, np.ndarray) for v in values):
            tensors[c] = array_from_values(values, str(c))
    if not tensors:
        return pa.Table.from_pandas(df, preserve_index=False)
    plain = pa.Table.from_pandas(df.drop(columns=list(tensors)), preserve_index=False)
    cols = {str(c): tensors[c] if c in tensors else plain.column(str(c)) for c in df.columns}
    return pa.table(cols)


# -- rows -----------------------------------------------------------------------


def rows_of(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of a table as dicts of Python values (tensor cells as ndarrays)."""
    names = table.column_names
    if not names:
        return [{} for _ in range(table.num_rows)]
    cols = []
    for i in range(table.num_columns):
        col = table.column(i)
        if is_tensor_type(col.type):
            cols.append(list(column_to_numpy(col)))
        else:
            cols.append(col.to_pylist())
    return [dict(zip(names, values, strict=True)) for values in zip(*cols, strict=True)]


def rows_to_block(rows: Iterable[Any], what: str = "row") -> pa.Table:
    """A block from dict rows; keys missing from a row are nulls."""
    rows = list(rows)
    if not rows:
        return empty_block()
    keys: dict[str, None] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            # ValueError, as Ray Data raises for a map UDF that returns something else.
            raise ValueError(f"each {what} must be a dict, got {type(row).__name__}: {row!r}")
        keys.update(dict.fromkeys(row))
    columns = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        columns[key] = array_from_values(values, key)
    return pa.table(columns)


# -- blocks ------------------------------------------------------------------------


def ndarray_to_block(array: np.ndarray) -> pa.Table:
    """One row per element of the first axis (a 0-d array is one row), in a column ``data``."""
    return pa.table({"data": array_from_values(array if array.ndim else array.reshape(1), "data")})


def compact(table: pa.Table) -> pa.Table:
    """A table that owns only the buffers it uses.

    Pickling a slice of a table pickles the whole parent buffers, so slices
    are copied before they go to the object store.
    """
    if table.num_rows == 0:
        return table.schema.empty_table()
    if table.get_total_buffer_size() <= table.nbytes * 1.2 + 4096:
        return table
    return table.take(to_arrow(np.arange(table.num_rows)))


def concat_blocks(tables: list[pa.Table]) -> pa.Table:
    """Concatenate blocks; blocks without columns are skipped, null-typed columns widen."""
    nonempty = [t for t in tables if t.num_columns > 0]
    if not nonempty:
        return empty_block()
    if len(nonempty) == 1:
        return nonempty[0]
    first = nonempty[0].schema
    if all(t.schema.equals(first) for t in nonempty[1:]):
        return pa.concat_tables(nonempty)
    try:
        return pa.concat_tables(nonempty, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(f"cannot concatenate blocks with different schemas: {e}") from e
