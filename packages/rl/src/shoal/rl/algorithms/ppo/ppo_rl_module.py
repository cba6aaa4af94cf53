"""The default PPO network: a policy head and a value head over one shared (or two) MLP encoders."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from shoal.rl.core.columns import Columns
from shoal.rl.core.distributions import TorchCategorical, TorchDiagGaussian, TorchDistribution
from shoal.rl.core.rl_module import RLModule, build_mlp, sample_categorical

__all__ = ["PPOTorchRLModule"]

_HALF_LOG_2PI = 0.5 * float(np.log(2.0 * np.pi))


class PPOTorchRLModule(RLModule):
    """Actor-critic MLP for Discrete (categorical) and Box (diagonal Gaussian) actions.

    ``action_dist_inputs`` are logits, or ``[mean, log_std]`` for Box actions.
    """

    def setup(self) -> None:
        from gymnasium import spaces

        mc = self.model_config
        self.is_continuous = isinstance(self.action_space, spaces.Box)
        self.action_dim = int(np.prod(self.action_space.shape)) if self.is_continuous else int(self.action_space.n)
        hiddens, act = mc["fcnet_hiddens"], mc["fcnet_activation"]
        enc_out = hiddens[-1] if hiddens else self.obs_dim
        self.encoder = build_mlp(self.obs_dim, hiddens, act)
        self.vf_encoder = None if mc["vf_share_layers"] else build_mlp(self.obs_dim, hiddens, act)
        self.free_log_std = bool(mc["free_log_std"]) and self.is_continuous
        pi_out = self.action_dim * (2 if self.is_continuous and not self.free_log_std else 1)
        head_h, head_act = mc["head_fcnet_hiddens"], mc["head_fcnet_activation"]
        # Small initial policy outputs: near-uniform actions (near-zero means) to start from.
        self.pi = build_mlp(enc_out, head_h, head_act, pi_out, out_gain=0.01)
        if self.free_log_std:
            self.log_std = nn.Parameter(torch.zeros(self.action_dim))
        self.vf = build_mlp(enc_out, head_h, head_act, 1, out_gain=1.0)
        self.log_std_clip = float(mc["log_std_clip_param"])

    def _dist_inputs(self, features: torch.Tensor) -> torch.Tensor:
        out = self.pi(features)
        if not self.is_continuous:
            return out
        if self.free_log_std:
            mean, log_std = out, self.log_std.expand_as(out)
        else:
            mean, log_std = out.chunk(2, dim=-1)
        log_std = log_std.clamp(-self.log_std_clip, self.log_std_clip)
        return torch.cat([mean, log_std], dim=-1)

    def _values(self, obs: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        feats = features if self.vf_encoder is None else self.vf_encoder(obs)
        return self.vf(feats).squeeze(-1)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self._dist_inputs(self.encoder(batch[Columns.OBS]))}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        obs = batch[Columns.OBS]
        features = self.encoder(obs)
        return {
            Columns.ACTION_DIST_INPUTS: self._dist_inputs(features),
            Columns.VF_PREDS: self._values(obs, features),
        }

    def compute_values(self, obs: np.ndarray | torch.Tensor) -> Any:
        """Value estimates for a batch of observations (numpy in, numpy out; tensor in, tensor out)."""
        if isinstance(obs, torch.Tensor):
            return self._values(obs, self.encoder(obs))
        with torch.no_grad():
            t = torch.from_numpy(obs)
            return self._values(t, self.encoder(t)).numpy()

    def get_inference_action_dist_cls(self) -> type[TorchDistribution]:
        return TorchDiagGaussian if self.is_continuous else TorchCategorical

    def sample_actions(
        self, obs: np.ndarray, explore: bool, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        with torch.no_grad():
            t = torch.from_numpy(obs)
            features = self.encoder(t)
            inputs = self._dist_inputs(features)
            if not explore:
                if self.is_continuous:
                    return inputs[:, : self.action_dim].numpy(), {}
                return inputs.argmax(-1).numpy(), {}
            vf = self._values(t, features).numpy()
            if self.is_continuous:
                dist_inputs = inputs.numpy()
                mean, log_std = dist_inputs[:, : self.action_dim], dist_inputs[:, self.action_dim :]
                noise = rng.standard_normal(mean.shape).astype(np.float32)
                actions = mean + np.exp(log_std) * noise
                logp = (-0.5 * noise**2 - log_std - _HALF_LOG_2PI).sum(-1)
            else:
                log_probs = torch.log_softmax(inputs, -1).numpy()
                dist_inputs = inputs.numpy()
                actions = sample_categorical(log_probs, rng)
                logp = log_probs[np.arange(len(actions)), actions]
        return actions, {
            Columns.ACTION_LOGP: logp.astype(np.float32),
            Columns.VF_PREDS: vf,
            Columns.ACTION_DIST_INPUTS: dist_inputs,
        }
