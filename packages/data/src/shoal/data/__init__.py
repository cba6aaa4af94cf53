"""shoal.data: Streaming Arrow datasets with Ray Data's API.

Not built yet. This package will hold:

Datasets of Arrow blocks in shoal's object store: lazy, streaming execution with bounded memory,
readers and writers for parquet, CSV and JSON, map/map_batches over tasks or actor pools,
shuffle, sort and groupby, and iterators that feed shoal.train.
"""

from shoal.data._version import __version__

__all__ = ["__version__"]
