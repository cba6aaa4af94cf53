"""How the trainer's datasets are divided among the workers: :class:`DataConfig`.

Works with any dataset object shaped like Ray Data's (``shoal.data`` datasets
are): ``streaming_split(n, equal=True)`` or ``split(n)`` to shard it, and
``iterator()`` to hand the whole of an unsplit dataset to every worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DataConfig", "shard_datasets"]


class DataConfig:
    """Which datasets are split among workers (the others go whole to every worker).

    Args:
        datasets_to_split: ``"all"`` or a list of dataset names.
    """

    def __init__(self, datasets_to_split: str | list[str] = "all") -> None:
        if datasets_to_split != "all" and not (
            isinstance(datasets_to_split, list) and all(isinstance(n, str) for n in datasets_to_split)
        ):
            raise TypeError(
                f"DataConfig(datasets_to_split=...) must be 'all' or a list of names, got {datasets_to_split!r}"
            )
        self.datasets_to_split = datasets_to_split

    def _splits(self, name: str) -> bool:
        return self.datasets_to_split == "all" or name in self.datasets_to_split

    def __repr__(self) -> str:
        return f"DataConfig(datasets_to_split={self.datasets_to_split!r})"


def check_datasets(datasets: Any) -> dict[str, Any]:
    if datasets is None:
        return {}
    if not isinstance(datasets, dict) or not all(isinstance(k, str) for k in datasets):
        raise TypeError(f"datasets= must be a dict of name -> dataset, got {datasets!r}")
    for name, ds in datasets.items():
        if callable(ds) and not hasattr(ds, "iter_batches"):
            continue  # a function that makes the dataset (Ray's GenDataset)
        if not any(hasattr(ds, a) for a in ("streaming_split", "split", "iter_batches")):
            raise TypeError(
                f"datasets[{name!r}] must be a dataset (with streaming_split/split/iter_batches) "
                f"or a function returning one, got {type(ds).__name__}"
            )
    return dict(datasets)


def shard_datasets(datasets: dict[str, Any], n: int, config: DataConfig) -> list[dict[str, Any]]:
    """One dict of name -> shard per worker rank."""
    shards: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, ds in datasets.items():
        if callable(ds) and not hasattr(ds, "iter_batches"):
            ds = ds()
        if config._splits(name):
            parts = _split(ds, n, name)
        else:
            whole = ds.iterator() if hasattr(ds, "iterator") else ds
            parts = [whole] * n
        for rank in range(n):
            shards[rank][name] = parts[rank]
    return shards


def _split(ds: Any, n: int, name: str) -> list[Any]:
    splitter: Callable[..., Any] | None = getattr(ds, "streaming_split", None)
    if splitter is not None:
        parts = list(splitter(n, equal=True))
    elif hasattr(ds, "split"):
        parts = list(ds.split(n))
    else:
        raise TypeError(f"datasets[{name!r}] cannot be split among workers: it has neither streaming_split nor split")
    if len(parts) != n:
        raise ValueError(f"splitting datasets[{name!r}] into {n} gave {len(parts)} parts")
    return parts
