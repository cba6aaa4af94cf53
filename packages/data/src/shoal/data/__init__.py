"""shoal.data: streaming Arrow datasets with Ray Data's API.

Datasets are lazy plans over blocks (pyarrow Tables in shoal's object
store). Consuming one runs it with a streaming executor that fuses map
stages into single tasks, pushes limits and column selections into reads,
and keeps the bytes in flight under a budget.

    import shoal.data

    ds = shoal.data.range(1000).map_batches(lambda b: {"id": b["id"] * 2})
    ds.sum("id")   # 999000
"""

from shoal.data._logical import ActorPoolStrategy, TaskPoolStrategy
from shoal.data._schema import Schema
from shoal.data._version import __version__
from shoal.data.aggregate import AbsMax, AggregateFn, Count, Max, Mean, Min, Std, Sum
from shoal.data.block import Block, BlockAccessor, BlockExecStats, BlockMetadata
from shoal.data.context import DataContext, ExecutionOptions, ExecutionResources
from shoal.data.dataset import Dataset, MaterializedDataset
from shoal.data.datasource import (
    BlockBasedFileDatasink,
    Datasink,
    Datasource,
    FileBasedDatasource,
    FilenameProvider,
    Partitioning,
    ReadTask,
    SaveMode,
    TaskContext,
    WriteResult,
)
from shoal.data.exceptions import UserCodeException
from shoal.data.grouped_data import GroupedData
from shoal.data.iterator import DataIterator
from shoal.data.read_api import (
    from_arrow,
    from_arrow_refs,
    from_items,
    from_numpy,
    from_numpy_refs,
    from_pandas,
    from_pandas_refs,
    range,
    range_tensor,
    read_binary_files,
    read_csv,
    read_datasource,
    read_json,
    read_numpy,
    read_parquet,
    read_text,
)

__all__ = [
    "__version__",
    "Dataset",
    "MaterializedDataset",
    "GroupedData",
    "DataIterator",
    "DataContext",
    "ExecutionOptions",
    "ExecutionResources",
    "Schema",
    "ActorPoolStrategy",
    "TaskPoolStrategy",
    "AggregateFn",
    "Count",
    "Sum",
    "Min",
    "Max",
    "Mean",
    "Std",
    "AbsMax",
    "Block",
    "BlockAccessor",
    "BlockExecStats",
    "BlockMetadata",
    "Datasource",
    "Datasink",
    "Partitioning",
    "SaveMode",
    "FilenameProvider",
    "ReadTask",
    "TaskContext",
    "WriteResult",
    "FileBasedDatasource",
    "BlockBasedFileDatasink",
    "UserCodeException",
    "range",
    "range_tensor",
    "from_items",
    "from_numpy",
    "from_pandas",
    "from_arrow",
    "from_arrow_refs",
    "from_numpy_refs",
    "from_pandas_refs",
    "read_datasource",
    "read_parquet",
    "read_csv",
    "read_json",
    "read_text",
    "read_numpy",
    "read_binary_files",
]
