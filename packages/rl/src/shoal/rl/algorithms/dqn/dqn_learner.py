"""DQN's learner: TD loss against a target network, with double Q and n-step targets."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from shoal.rl.algorithms.dqn.dqn_rl_module import DQNTorchRLModule
from shoal.rl.core.columns import Columns
from shoal.rl.core.learner import Learner
from shoal.rl.utils.schedules import make_schedule

__all__ = ["DQNLearner"]


class DQNLearner(Learner):
    """Trains a DQNTorchRLModule; owns the target network."""

    module: DQNTorchRLModule
    target: DQNTorchRLModule

    def build(self) -> None:
        self.target = copy.deepcopy(self.module)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.num_target_updates = 0
        self._lr_schedule = make_schedule(self.config.lr, "lr")

    def update(self, batch: dict[str, np.ndarray], timesteps: int = 0, **kwargs: Any) -> dict[str, Any]:
        """One gradient step on a replay batch; returns metrics and ``td_error`` per row."""
        cfg = self.config
        self.set_lr(self._lr_schedule(timesteps))
        t = self.to_tensors(batch)
        obs, next_obs = t[Columns.OBS], t[Columns.NEXT_OBS]
        actions = t[Columns.ACTIONS].long()
        q = self.module.q_values(obs)
        q_selected = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            q_next_target = self.target.q_values(next_obs)
            if cfg.double_q:
                best = self.module.q_values(next_obs).argmax(-1, keepdim=True)
                q_next = q_next_target.gather(-1, best).squeeze(-1)
            else:
                q_next = q_next_target.max(-1).values
            not_done = 1.0 - t[Columns.TERMINATEDS].float()
            target = t[Columns.REWARDS] + t[Columns.DISCOUNTS] * not_done * q_next
        td_error = q_selected - target
        if cfg.td_error_loss_fn == "huber":
            per_row = F.smooth_l1_loss(q_selected, target, reduction="none")
        else:
            per_row = 0.5 * td_error.pow(2)
        loss = (t[Columns.WEIGHTS] * per_row).mean()
        norm = self.apply_gradients(loss)
        self.num_module_steps_trained_lifetime += len(actions)
        td = td_error.detach()
        return {
            "qf_loss": float(loss.detach()),
            "total_loss": float(loss.detach()),
            "qf_mean": float(q_selected.detach().mean()),
            "qf_max": float(q_selected.detach().max()),
            "qf_min": float(q_selected.detach().min()),
            "td_error_mean": float(td.mean()),
            "gradients_default_optimizer_global_norm": norm,
            "default_optimizer_learning_rate": self.current_lr(),
            "num_module_steps_trained": len(actions),
            "td_error": td.cpu().numpy(),
        }

    def update_target(self) -> int:
        """Move the target network toward the online one (``tau=1``: copy); returns the update count."""
        tau = float(self.config.tau)
        with torch.no_grad():
            for tp, p in zip(self.target.parameters(), self.module.parameters(), strict=True):
                if tau >= 1.0:
                    tp.copy_(p)
                else:
                    tp.mul_(1.0 - tau).add_(p, alpha=tau)
        self.num_target_updates += 1
        return self.num_target_updates

    def get_extra_state(self) -> dict[str, Any]:
        return {"target": self.target.get_state(), "num_target_updates": self.num_target_updates}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if "target" in state:
            self.target.set_state(state["target"])
        self.num_target_updates = state.get("num_target_updates", self.num_target_updates)
