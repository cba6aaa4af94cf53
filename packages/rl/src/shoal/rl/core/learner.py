"""Learner: owns the trained module and its optimizer; LearnerGroup runs one here or as an actor."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import shoal
from shoal.rl.core.rl_module import RLModule, RLModuleSpec

__all__ = ["Learner", "LearnerGroup"]


def resolve_device(num_gpus_per_learner: float) -> str:
    """``cuda`` when GPUs were asked for (and torch sees one), else ``cpu``."""
    if not num_gpus_per_learner:
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError(f"num_gpus_per_learner={num_gpus_per_learner} but torch sees no CUDA device in this process")
    return "cuda"


class Learner:
    """Computes losses and applies gradients to one module.

    Subclasses implement :meth:`update`; the base gives them the optimizer
    step (with ``grad_clip``), weights and state for checkpoints.
    ``config`` is the algorithm's AlgorithmConfig.
    """

    def __init__(
        self, config: Any, module_spec: RLModuleSpec, num_gpus: float = 0, num_threads: int | None = None
    ) -> None:
        if num_threads:
            # Tiny networks train fastest on one thread, and a second torch thread stalls badly when
            # another process holds the other core.
            torch.set_num_threads(num_threads)
        self.config = config
        self.device = torch.device(resolve_device(num_gpus))
        if config.seed is not None:
            torch.manual_seed(config.seed)
        self.module: RLModule = module_spec.build().to(self.device)
        self.module.train()
        self.optimizer = self.make_optimizer()
        self.rng = np.random.default_rng(None if config.seed is None else [config.seed, 7919])
        self.num_updates = 0
        self.num_module_steps_trained_lifetime = 0
        self.build()

    def build(self) -> None:
        """Extra setup of subclasses (target networks, ...)."""

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the module's parameters; the fused kernel where torch has one (3x faster on CPU)."""
        params = list(self.module.parameters())
        lr = self.config.lr if isinstance(self.config.lr, (int, float)) else 0.0  # schedules set it per update
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.Adam(params, lr=lr)

    # -- hooks ---------------------------------------------------------------

    def update(self, batch: Any, **kwargs: Any) -> dict[str, Any]:
        """Train on ``batch`` (what the algorithm sends: a replay batch, sampled fragments) and return metrics."""
        raise NotImplementedError

    def to_tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        # torch.tensor copies, so read-only arrays from the object store are fine.
        return {k: torch.tensor(v, device=self.device) for k, v in batch.items()}

    def apply_gradients(self, loss: torch.Tensor) -> float:
        """Backward, clip (``grad_clip`` by global norm) and step; returns the gradient norm."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.module.parameters() if p.grad is not None]
        grads = [p.grad for p in params if p.grad is not None]
        clip = self.config.grad_clip
        if clip is not None and self.config.grad_clip_by != "value":
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
        else:
            norm = torch.norm(torch.stack([g.detach().norm() for g in grads]))
            if clip is not None:
                torch.nn.utils.clip_grad_value_(params, clip)
        self.optimizer.step()
        self.num_updates += 1
        return float(norm)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- weights and state -------------------------------------------------

    def get_weights(self) -> dict[str, np.ndarray]:
        return self.module.get_state()

    def set_weights(self, weights: dict[str, Any]) -> None:
        self.module.set_state(weights)

    def get_state(self) -> dict[str, Any]:
        """Module weights, optimizer state and counters (numpy / plain Python, CPU)."""
        return {
            "module": self.module.get_state(),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "rng": self.rng.bit_generator.state,
            "num_updates": self.num_updates,
            "num_module_steps_trained_lifetime": self.num_module_steps_trained_lifetime,
            "extra": self.get_extra_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.module.set_state(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.num_updates = state["num_updates"]
        self.num_module_steps_trained_lifetime = state["num_module_steps_trained_lifetime"]
        self.set_extra_state(state.get("extra") or {})

    def get_extra_state(self) -> dict[str, Any]:
        return {}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call one of this learner's methods by name (the same call works on a remote learner)."""
        return getattr(self, method)(*args, **kwargs)

    def ping(self) -> str:
        return "pong"


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


class LearnerGroup:
    """One learner in this process (``num_learners=0``) or in its own actor (``num_learners=1``).

    Every method takes the same arguments either way; a remote learner's
    results are fetched before returning, so training stays synchronous.
    """

    def __init__(
        self,
        learner_class: type[Learner],
        config: Any,
        module_spec: RLModuleSpec,
        num_learners: int = 0,
        num_gpus_per_learner: float = 0,
        num_cpus_per_learner: float = 1,
    ) -> None:
        self.num_learners = num_learners
        self._local: Learner | None = None
        self._actor: Any = None
        if num_learners == 0:
            # The driver's torch threads change only when the user asked for a CPU count.
            threads = None if config.num_cpus_per_learner == "auto" else max(1, int(num_cpus_per_learner))
            self._local = learner_class(config, module_spec, num_gpus_per_learner, threads)
        else:
            options: dict[str, Any] = {"num_cpus": num_cpus_per_learner}
            if num_gpus_per_learner:
                options["num_gpus"] = num_gpus_per_learner
            threads = max(1, int(num_cpus_per_learner))
            self._actor = (
                shoal.remote(learner_class)
                .options(**options)
                .remote(config, module_spec, num_gpus_per_learner, threads)
            )
            shoal.get(self._actor.ping.remote())

    @property
    def is_local(self) -> bool:
        return self._local is not None

    @property
    def local_learner(self) -> Learner | None:
        return self._local

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._local is not None:
            return getattr(self._local, method)(*args, **kwargs)
        return shoal.get(self._actor.call.remote(method, *args, **kwargs))

    def update(self, batch: Any, **kwargs: Any) -> dict[str, Any]:
        metrics: dict[str, Any] = self.call("update", batch, **kwargs)
        return metrics

    def get_weights(self) -> dict[str, np.ndarray]:
        weights: dict[str, np.ndarray] = self.call("get_weights")
        return weights

    def set_weights(self, weights: dict[str, Any]) -> None:
        self.call("set_weights", weights)

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.call("get_state")
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        self.call("set_state", state)

    def stop(self) -> None:
        if self._actor is not None:
            try:
                shoal.kill(self._actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self._actor = None
        self._local = None
