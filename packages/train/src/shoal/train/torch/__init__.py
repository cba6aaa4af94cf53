"""shoal.train.torch: distributed PyTorch training (needs the ``torch`` extra).

``TorchTrainer`` runs a training function on N workers with ``torch.distributed``
set up (gloo on CPU, nccl on GPU); ``prepare_model`` and ``prepare_data_loader``
make a single-process training loop data-parallel.

Importing this module does not import torch: the driver of a run never needs
it, and the workers import it while they start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shoal.train.torch.config import TorchConfig
from shoal.train.torch.torch_trainer import TorchTrainer

if TYPE_CHECKING:
    from shoal.train.torch.train_loop_utils import (
        enable_reproducibility,
        get_device,
        get_devices,
        prepare_data_loader,
        prepare_model,
    )

__all__ = [
    "TorchConfig",
    "TorchTrainer",
    "enable_reproducibility",
    "get_device",
    "get_devices",
    "prepare_data_loader",
    "prepare_model",
]

_UTILS = {"enable_reproducibility", "get_device", "get_devices", "prepare_data_loader", "prepare_model"}


def __getattr__(name: str) -> Any:
    if name in _UTILS:
        from shoal.train.torch import train_loop_utils

        value = getattr(train_loop_utils, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'shoal.train.torch' has no attribute {name!r}")
