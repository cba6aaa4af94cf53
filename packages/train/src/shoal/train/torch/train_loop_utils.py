"""Helpers for the training function: ``prepare_model``, ``prepare_data_loader``, ``get_device``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler

from shoal.train.context import get_context
from shoal.train.torch.config import _state

__all__ = [
    "enable_reproducibility",
    "get_device",
    "get_devices",
    "prepare_data_loader",
    "prepare_model",
]


def get_device() -> torch.device:
    """The device this worker trains on: its GPU with ``use_gpu=True``, else the CPU."""
    device = _state["device"]
    if device is None:
        get_context()  # raises the usual error outside a training function
        return torch.device("cpu")
    return device


def get_devices() -> list[torch.device]:
    """All devices this worker holds (one entry on CPU)."""
    if _state["use_gpu"] and torch.cuda.is_available():
        return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return [get_device()]


def prepare_model(
    model: torch.nn.Module,
    move_to_device: bool | torch.device = True,
    parallel_strategy: str | None = "ddp",
    parallel_strategy_kwargs: dict[str, Any] | None = None,
) -> torch.nn.Module:
    """Move ``model`` to this worker's device and wrap it for data-parallel training.

    With more than one worker the model is wrapped in ``DistributedDataParallel``
    (``parallel_strategy="ddp"``) or ``FullyShardedDataParallel`` (``"fsdp"``);
    ``None`` leaves it unwrapped.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"prepare_model expects a torch.nn.Module, got {type(model).__name__}")
    if parallel_strategy not in ("ddp", "fsdp", None):
        raise ValueError(
            f"prepare_model(parallel_strategy=...) must be 'ddp', 'fsdp' or None, got {parallel_strategy!r}"
        )
    device = move_to_device if isinstance(move_to_device, torch.device) else get_device()
    if move_to_device is not False:
        model = model.to(device)
    if parallel_strategy is None or get_context().get_world_size() < 2:
        return model
    kwargs = dict(parallel_strategy_kwargs or {})
    if parallel_strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        if device.type == "cuda":
            kwargs.setdefault("device_ids", [device])
            kwargs.setdefault("output_device", device)
        return DistributedDataParallel(model, **kwargs)
    from torch.distributed.fsdp import FullyShardedDataParallel

    if device.type == "cuda":
        kwargs.setdefault("device_id", device)
    return FullyShardedDataParallel(model, **kwargs)


def _move(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        moved = [_move(b, device) for b in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    if isinstance(batch, dict):
        return {k: _move(v, device) for k, v in batch.items()}
    return batch


class _DeviceDataLoader:
    """Iterates a DataLoader, moving each batch to the device and advancing the sampler's epoch."""

    def __init__(self, loader: DataLoader, device: torch.device | None) -> None:
        self._loader = loader
        self._device = device
        self._epoch = 0

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self) -> Iterator[Any]:
        sampler = self._loader.sampler
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(self._epoch)
        self._epoch += 1
        for batch in self._loader:
            yield batch if self._device is None else _move(batch, self._device)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def prepare_data_loader(
    data_loader: DataLoader,
    add_dist_sampler: bool = True,
    move_to_device: bool = True,
) -> Any:
    """Shard ``data_loader`` among the workers and move its batches to this worker's device.

    With more than one worker, the loader is rebuilt with a ``DistributedSampler``
    (shuffling if the original loader shuffled); its epoch advances every time
    the returned loader is iterated, so each epoch sees a new order.
    """
    if not isinstance(data_loader, DataLoader):
        raise TypeError(f"prepare_data_loader expects a torch DataLoader, got {type(data_loader).__name__}")
    ctx = get_context()
    world = ctx.get_world_size()
    loader = data_loader
    needs_sampler = (
        add_dist_sampler
        and world > 1
        and not isinstance(data_loader.sampler, DistributedSampler)
        and not isinstance(data_loader.dataset, torch.utils.data.IterableDataset)
    )
    if needs_sampler:
        if data_loader.batch_size is None:
            raise ValueError(
                "prepare_data_loader cannot add a DistributedSampler to a DataLoader built with batch_sampler; "
                "shard it yourself and pass add_dist_sampler=False"
            )
        shuffle = not isinstance(data_loader.sampler, SequentialSampler)
        sampler: DistributedSampler[Any] = DistributedSampler(
            data_loader.dataset, num_replicas=world, rank=ctx.get_world_rank(), shuffle=shuffle
        )
        loader = DataLoader(
            data_loader.dataset,
            batch_size=data_loader.batch_size,
            sampler=sampler,
            num_workers=data_loader.num_workers,
            collate_fn=data_loader.collate_fn,
            pin_memory=data_loader.pin_memory,
            drop_last=data_loader.drop_last,
            timeout=data_loader.timeout,
            worker_init_fn=data_loader.worker_init_fn,
            generator=data_loader.generator,
            prefetch_factor=data_loader.prefetch_factor,
            persistent_workers=data_loader.persistent_workers,
        )
    device = get_device() if move_to_device else None
    if device is None and not needs_sampler:
        return loader
    return _DeviceDataLoader(loader, device)


def enable_reproducibility(seed: int = 0) -> None:
    """Seed torch, numpy and random, and make torch pick deterministic algorithms."""
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy comes with torch in practice
        pass
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
