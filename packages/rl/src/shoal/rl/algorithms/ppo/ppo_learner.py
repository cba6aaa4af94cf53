"""PPO's learner: GAE on the sampled fragments, then epochs of clipped-surrogate minibatch updates."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from shoal.rl.core.columns import Columns
from shoal.rl.core.learner import Learner
from shoal.rl.utils.postprocessing import compute_gae, flatten_time_major
from shoal.rl.utils.schedules import make_schedule

__all__ = ["PPOLearner"]

_TRAIN_COLUMNS = (Columns.OBS, Columns.ACTIONS, Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS, Columns.VF_PREDS)


class PPOLearner(Learner):
    """Trains a PPOTorchRLModule; keeps the adaptive KL coefficient."""

    def build(self) -> None:
        cfg = self.config
        self.kl_coeff = float(cfg.kl_coeff)
        self._lr_schedule = make_schedule(cfg.lr, "lr")
        self._entropy_schedule = make_schedule(cfg.entropy_coeff, "entropy_coeff")

    def get_extra_state(self) -> dict[str, Any]:
        return {"kl_coeff": self.kl_coeff}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.kl_coeff = float(state.get("kl_coeff", self.kl_coeff))

    def postprocess(self, fragments: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Flat training batch with advantages (standardized) and value targets."""
        cfg = self.config
        lam = cfg.lambda_ if cfg.use_gae else 1.0
        parts = []
        for frag in fragments:
            vf = frag[Columns.VF_PREDS] if cfg.use_critic else np.zeros_like(frag[Columns.REWARDS])
            nxt = frag[Columns.NEXT_VF_PREDS] if cfg.use_critic else np.zeros_like(frag[Columns.REWARDS])
            adv, targets = compute_gae(
                frag[Columns.REWARDS], vf, nxt, frag[Columns.TERMINATEDS], frag[Columns.TRUNCATEDS], cfg.gamma, lam
            )
            flat = flatten_time_major({k: frag[k] for k in _TRAIN_COLUMNS})
            flat[Columns.ADVANTAGES] = adv.reshape(-1)
            flat[Columns.VALUE_TARGETS] = targets.reshape(-1)
            parts.append(flat)
        batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        adv = batch[Columns.ADVANTAGES]
        batch[Columns.ADVANTAGES] = ((adv - adv.mean()) / max(float(adv.std()), 1e-4)).astype(np.float32)
        return batch

    def update(self, batch: list[dict[str, np.ndarray]], timesteps: int = 0, **kwargs: Any) -> dict[str, Any]:
        """Epochs of minibatch updates on the runners' fragments (``[T, num_envs]`` arrays each)."""
        fragments = batch
        cfg = self.config
        tensors = self.to_tensors(self.postprocess(fragments))
        self.set_lr(self._lr_schedule(timesteps))
        entropy_coeff = self._entropy_schedule(timesteps)
        size = len(tensors[Columns.OBS])
        mb = min(cfg.minibatch_size or size, size)
        num_mb = math.ceil(size / mb)
        dist_cls = self.module.get_train_action_dist_cls()
        sums: dict[str, float] = {}
        count = 0
        for _ in range(cfg.num_epochs):
            order = self.rng.permutation(size) if cfg.shuffle_batch_per_epoch else np.arange(size)
            # Wrap around so every minibatch is full-sized.
            order = np.resize(order, num_mb * mb)
            for i in range(num_mb):
                idx = torch.from_numpy(order[i * mb : (i + 1) * mb]).to(self.device)
                stats = self._minibatch({k: v[idx] for k, v in tensors.items()}, dist_cls, entropy_coeff)
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
        metrics = {k: v / count for k, v in sums.items()}
        if cfg.use_kl_loss:
            kl = metrics["mean_kl_loss"]
            if kl > 2.0 * cfg.kl_target:
                self.kl_coeff *= 1.5
            elif kl < 0.5 * cfg.kl_target:
                self.kl_coeff *= 0.5
        self.num_module_steps_trained_lifetime += count * mb
        metrics.update(
            curr_kl_coeff=self.kl_coeff,
            curr_entropy_coeff=entropy_coeff,
            default_optimizer_learning_rate=self.current_lr(),
            num_module_steps_trained=count * mb,
            module_train_batch_size_mean=float(mb),
        )
        return metrics

    def _minibatch(self, mb: dict[str, torch.Tensor], dist_cls: Any, entropy_coeff: float) -> dict[str, float]:
        cfg = self.config
        out = self.module.forward_train({Columns.OBS: mb[Columns.OBS]})
        dist = dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS])
        logp = dist.logp(mb[Columns.ACTIONS])
        ratio = torch.exp(logp - mb[Columns.ACTION_LOGP])
        adv = mb[Columns.ADVANTAGES]
        surrogate = torch.min(adv * ratio, adv * ratio.clamp(1.0 - cfg.clip_param, 1.0 + cfg.clip_param))
        policy_loss = -surrogate.mean()
        entropy = dist.entropy().mean()
        total = policy_loss - entropy_coeff * entropy
        stats: dict[str, float] = {}
        if cfg.use_kl_loss:
            old = dist_cls.from_logits(mb[Columns.ACTION_DIST_INPUTS])
            kl = old.kl(dist).mean()
            total = total + self.kl_coeff * kl
            stats["mean_kl_loss"] = float(kl.detach())
        if cfg.use_critic:
            targets = mb[Columns.VALUE_TARGETS]
            vf = out[Columns.VF_PREDS]
            vf_loss = (vf - targets).pow(2)
            vf_loss_clipped = vf_loss.clamp(0.0, cfg.vf_clip_param)
            total = total + cfg.vf_loss_coeff * vf_loss_clipped.mean()
            var = targets.var()
            stats.update(
                vf_loss=float(vf_loss_clipped.detach().mean()),
                vf_loss_unclipped=float(vf_loss.detach().mean()),
                vf_explained_var=float(1.0 - (targets - vf.detach()).var() / var) if var > 0 else math.nan,
            )
        norm = self.apply_gradients(total)
        stats.update(
            total_loss=float(total.detach()),
            policy_loss=float(policy_loss.detach()),
            entropy=float(entropy.detach()),
            gradients_default_optimizer_global_norm=norm,
        )
        return stats
