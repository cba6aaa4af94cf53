"""Consuming a dataset: :class:`DataIterator` (``iter_batches``, ``iter_rows``, ``iter_torch_batches``).

Blocks stream from the executor; batches are cut across block boundaries
with numpy views (see ``_batching``). ``prefetch_batches`` keeps that many
blocks requested ahead of the one being consumed, so their tasks run while
the caller works.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

import shoal
from shoal.data import _batching, _convert

if TYPE_CHECKING:
    from shoal.data._operators import RefMeta
    from shoal.data.dataset import MaterializedDataset

__all__ = ["DataIterator"]


class DataIterator:
    """An iterable view of a dataset (or of one split of it); every iteration runs it anew."""

    def _iter_refs(self) -> Iterator[RefMeta]:
        raise NotImplementedError(f"{type(self).__name__} must implement _iter_refs()")  # per dataset or split

    def _stats(self) -> str:
        return ""

    def _iter_blocks(self, prefetch_blocks: int) -> Generator[pa.Table, None, None]:
        window: deque[RefMeta] = deque()
        refs = self._iter_refs()
        try:
            for item in refs:
                window.append(item)
                if len(window) > prefetch_blocks:
                    yield shoal.get(window.popleft()[0])
            while window:
                yield shoal.get(window.popleft()[0])
        finally:
            close = getattr(refs, "close", None)
            if close is not None:
                close()

    def iter_batches(
        self,
        *,
        prefetch_batches: int = 1,
        batch_size: int | None = 256,
        batch_format: str | None = "default",
        drop_last: bool = False,
        local_shuffle_buffer_size: int | None = None,
        local_shuffle_seed: int | None = None,
        _collate_fn: Callable[[Any], Any] | None = None,
    ) -> Iterator[Any]:
        """Batches of ``batch_size`` rows (the last may be short unless ``drop_last``).

        ``batch_format``: "default"/"numpy" (dict of ndarrays), "pandas",
        "pyarrow", or None (pyarrow). ``prefetch_batches`` blocks are requested
        ahead of the one being cut into batches (0: none). With
        ``local_shuffle_buffer_size`` rows are shuffled through a buffer of at
        least that many rows.
        """
        fmt = _convert.check_batch_format(batch_format)
        if isinstance(prefetch_batches, bool) or not isinstance(prefetch_batches, int) or prefetch_batches < 0:
            raise ValueError(f"prefetch_batches must be an integer >= 0, got {prefetch_batches!r}")
        _batching._check_batch_size(batch_size)
        if local_shuffle_buffer_size is not None and batch_size is None:
            raise ValueError("local_shuffle_buffer_size needs a batch_size")
        return self._batches(
            prefetch_batches, batch_size, fmt, drop_last, local_shuffle_buffer_size, local_shuffle_seed, _collate_fn
        )

    def _batches(
        self,
        prefetch: int,
        batch_size: int | None,
        fmt: str,
        drop_last: bool,
        shuffle_buffer: int | None,
        shuffle_seed: int | None,
        collate: Callable[[Any], Any] | None,
    ) -> Iterator[Any]:
        blocks: Generator[pa.Table, None, None] = self._iter_blocks(prefetch)
        if shuffle_buffer is not None:
            assert batch_size is not None
            blocks = _shuffled(blocks, _batching.ShuffleBuffer(shuffle_buffer, batch_size, shuffle_seed))
        try:
            batches = _batching.iter_batches(blocks, batch_size, fmt, drop_last=drop_last)
            if collate is None:
                yield from batches
            else:
                for batch in batches:
                    yield collate(batch)
        finally:
            blocks.close()

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """Rows as dicts."""
        blocks = self._iter_blocks(1)
        try:
            for block in blocks:
                yield from _convert.rows_of(block)
        finally:
            blocks.close()

    def iter_torch_batches(
        self,
        *,
        prefetch_batches: int = 1,
        batch_size: int | None = 256,
        dtypes: Any = None,
        device: Any = "auto",
        collate_fn: Callable[[dict[str, Any]], Any] | None = None,
        drop_last: bool = False,
        local_shuffle_buffer_size: int | None = None,
        local_shuffle_seed: int | None = None,
        pin_memory: bool = False,
    ) -> Iterator[Any]:
        """Batches as dicts of torch tensors (needs torch installed; it is not a dependency).

        ``dtypes`` is one torch dtype or a dict column -> dtype; ``device``
        "auto" is the CPU (or the first GPU this worker was given).
        ``collate_fn`` receives the numpy batch and returns what to yield.
        """
        try:
            import torch
        except ImportError as e:
            raise ImportError("iter_torch_batches needs PyTorch: install it with `pip install torch`") from e
        dev = _torch_device(torch, device)

        def to_torch(batch: dict[str, Any]) -> Any:
            if collate_fn is not None:
                return collate_fn(batch)
            out = {}
            for name, arr in batch.items():
                dtype = dtypes.get(name) if isinstance(dtypes, dict) else dtypes
                if arr.dtype == object or arr.dtype.kind in "USV":
                    out[name] = arr  # strings and objects have no tensor type
                    continue
                t = torch.as_tensor(arr if arr.flags.writeable else arr.copy(), dtype=dtype)
                if pin_memory and dev.type == "cuda":
                    t = t.pin_memory()
                out[name] = t.to(dev) if dev.type != "cpu" else t
            return out

        return self.iter_batches(
            prefetch_batches=prefetch_batches,
            batch_size=batch_size,
            batch_format="numpy",
            drop_last=drop_last,
            local_shuffle_buffer_size=local_shuffle_buffer_size,
            local_shuffle_seed=local_shuffle_seed,
            _collate_fn=to_torch,
        )

    def materialize(self) -> MaterializedDataset:
        """Run and keep the blocks in the object store."""
        from shoal.data._logical import InputData
        from shoal.data.dataset import MaterializedDataset

        return MaterializedDataset(InputData(list(self._iter_refs())))

    def stats(self) -> str:
        return self._stats()


def _shuffled(
    blocks: Generator[pa.Table, None, None], buffer: _batching.ShuffleBuffer
) -> Generator[pa.Table, None, None]:
    try:
        for block in blocks:
            yield from buffer.add(block)
        yield from buffer.finish()
    finally:
        blocks.close()


def _torch_device(torch: Any, device: Any) -> Any:
    if device == "auto":
        if torch.cuda.is_available() and shoal.is_initialized() and shoal.get_gpu_ids():
            return torch.device("cuda", 0)
        return torch.device("cpu")
    return torch.device(device)


class _DatasetIterator(DataIterator):
    """The iterator of a whole dataset (``Dataset.iterator()``)."""

    def __init__(self, dataset: Any) -> None:
        self._dataset = dataset

    def _iter_refs(self) -> Iterator[RefMeta]:
        return self._dataset._iter_refs()

    def _stats(self) -> str:
        return str(self._dataset.stats())

    def schema(self) -> Any:
        return self._dataset.schema()

    def __repr__(self) -> str:
        return f"DataIterator({self._dataset!r})"
