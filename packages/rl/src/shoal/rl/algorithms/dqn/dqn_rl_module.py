"""The default DQN network: an MLP encoder and a (dueling) Q head."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from shoal.rl.core.columns import Columns
from shoal.rl.core.rl_module import RLModule, build_mlp

__all__ = ["DQNTorchRLModule"]


class DQNTorchRLModule(RLModule):
    """Q-values for each discrete action; with ``dueling``, ``Q = V + A - mean(A)``.

    ``forward_inference`` returns the greedy ``actions`` (and ``qf_preds``);
    ``sample_actions`` is epsilon-greedy with ``epsilon`` drawn from the
    runner's numpy generator.
    """

    default_model_config = {
        "fcnet_hiddens": [256],
        "fcnet_activation": "relu",
        "head_fcnet_hiddens": [256],
        "dueling": True,
    }

    def setup(self) -> None:
        mc = self.model_config
        self.num_actions = int(self.action_space.n)
        hiddens = mc["fcnet_hiddens"]
        enc_out = hiddens[-1] if hiddens else self.obs_dim
        self.encoder = build_mlp(self.obs_dim, hiddens, mc["fcnet_activation"])
        head_h, head_act = mc["head_fcnet_hiddens"], mc["head_fcnet_activation"]
        self.dueling = bool(mc["dueling"])
        self.af = build_mlp(enc_out, head_h, head_act, self.num_actions)
        self.vf = build_mlp(enc_out, head_h, head_act, 1) if self.dueling else None

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.encoder(obs)
        adv = self.af(features)
        if self.vf is None:
            return adv
        return self.vf(features) + adv - adv.mean(dim=-1, keepdim=True)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {Columns.QF_PREDS: self.q_values(batch[Columns.OBS])}

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        q = self.q_values(batch[Columns.OBS])
        return {Columns.ACTIONS: q.argmax(-1), Columns.QF_PREDS: q}

    def sample_actions(
        self, obs: np.ndarray, explore: bool, rng: np.random.Generator, epsilon: float = 0.0, **kwargs: Any
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        with torch.no_grad():
            greedy = self.q_values(torch.from_numpy(obs)).argmax(-1).numpy()
        if not explore or epsilon <= 0.0:
            return greedy, {}
        n = len(greedy)
        random_mask = rng.random(n) < epsilon
        random_actions = rng.integers(0, self.num_actions, size=n)
        return np.where(random_mask, random_actions, greedy), {}
