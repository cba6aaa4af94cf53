"""``TorchConfig``: sets up ``torch.distributed`` on the worker group (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import datetime
import os
import socket
from typing import TYPE_CHECKING, Any

from shoal.train.backend import BackendConfig, WorkerGroupInfo

if TYPE_CHECKING:
    from shoal.train.context import TrainContext

__all__ = ["TorchConfig"]

# The device of the training function running in this process (set by on_worker_start).
_state: dict[str, Any] = {"device": None, "use_gpu": False}


class TorchConfig(BackendConfig):
    """How ``torch.distributed`` is initialised on the workers.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; by default nccl with GPUs and gloo without.
        init_method: ``"tcp"`` (a ``tcp://host:port`` URL) or ``"env"`` (``MASTER_ADDR``/``MASTER_PORT``).
        timeout_s: timeout of collective operations, in seconds.
    """

    def __init__(self, backend: str | None = None, init_method: str = "env", timeout_s: int = 1800) -> None:
        if backend is not None and backend not in ("gloo", "nccl"):
            raise ValueError(f"TorchConfig(backend=...) must be 'gloo', 'nccl' or None, got {backend!r}")
        if init_method not in ("env", "tcp"):
            raise ValueError(f"TorchConfig(init_method=...) must be 'env' or 'tcp', got {init_method!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise ValueError(f"TorchConfig(timeout_s=...) must be a positive number, got {timeout_s!r}")
        self.backend = backend
        self.init_method = init_method
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"TorchConfig(backend={self.backend!r}, init_method={self.init_method!r}, timeout_s={self.timeout_s})"

    # -- driver -------------------------------------------------------------------------

    def prefetch_modules(self, num_workers: int) -> tuple[str, ...]:
        modules = ("torch", "torch.distributed", "torch.nn.parallel")
        # DistributedDataParallel imports torch._dynamo (seconds of CPU) on first use;
        # importing it while the group rendezvous overlaps the two.
        return (*modules, "torch._dynamo") if num_workers > 1 else modules

    def on_group_start(self, group: WorkerGroupInfo) -> dict[str, Any]:
        rank0 = group.workers[0]
        addr = "127.0.0.1" if group.single_node else socket.gethostbyname(rank0["hostname"])
        backend = self.backend or ("nccl" if group.use_gpu else "gloo")
        threads = max(1, int(group.num_cpus_per_worker)) if group.num_cpus_per_worker else None
        return {
            "master_addr": addr,
            "master_port": rank0["port"],
            "backend": backend,
            "use_gpu": group.use_gpu,
            "num_threads": threads,
        }

    # -- worker -------------------------------------------------------------------------

    def on_worker_start(self, context: TrainContext, setup: dict[str, Any]) -> None:
        import torch
        import torch.distributed as dist

        rank, world = context.get_world_rank(), context.get_world_size()
        env = {
            "MASTER_ADDR": setup["master_addr"],
            "MASTER_PORT": str(setup["master_port"]),
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(context.get_local_rank()),
            "LOCAL_WORLD_SIZE": str(context.get_local_world_size()),
            "NODE_RANK": str(context.get_node_rank()),
        }
        os.environ.update(env)
        # Each worker holds num_cpus cores; more threads than that only fight over them.
        if setup["num_threads"] is not None:
            torch.set_num_threads(setup["num_threads"])
        device = torch.device("cpu")
        if setup["use_gpu"]:
            if not torch.cuda.is_available():
                raise RuntimeError("use_gpu=True but torch sees no CUDA device in this worker")
            # CUDA_VISIBLE_DEVICES holds this worker's GPUs, so its first one is index 0.
            device = torch.device("cuda", 0)
            torch.cuda.set_device(device)
        _state["device"] = device
        _state["use_gpu"] = setup["use_gpu"]
        init_method = "env://" if self.init_method == "env" else f"tcp://{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
        dist.init_process_group(
            backend=setup["backend"],
            init_method=init_method,
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=self.timeout_s),
        )

    def on_worker_shutdown(self, context: TrainContext) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        _state["device"] = None
