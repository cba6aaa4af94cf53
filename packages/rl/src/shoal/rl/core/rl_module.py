"""RLModule: the torch network an algorithm trains and its env runners act with.

An RLModule maps a batch dict (``{"obs": tensor}``) to the inputs of an
action distribution (``forward_inference`` / ``forward_exploration``) and to
whatever the loss needs (``forward_train``). Env runners call
:meth:`RLModule.sample_actions`, which takes numpy observations and a numpy
random generator, so sampling is reproducible and independent of torch's
global RNG.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from shoal.rl.core.columns import Columns
from shoal.rl.core.distributions import TorchCategorical, TorchDistribution
from shoal.rl.env.spaces import flat_obs_dim

__all__ = ["DefaultModelConfig", "RLModule", "RLModuleSpec", "build_mlp", "resolve_model_config"]


@dataclass
class DefaultModelConfig:
    """Settings of the default networks (``config.rl_module(model_config=...)``).

    ``fcnet_hiddens`` / ``fcnet_activation``: the encoder MLP.
    ``head_fcnet_hiddens`` / ``head_fcnet_activation``: hidden layers of each head.
    ``vf_share_layers``: PPO's value head shares the policy's encoder.
    ``free_log_std``: continuous actions use a learned, state-independent log std.
    ``log_std_clip_param``: log std is clipped to ``[-x, x]``.
    """

    fcnet_hiddens: list[int] = field(default_factory=lambda: [256, 256])
    fcnet_activation: str = "tanh"
    head_fcnet_hiddens: list[int] = field(default_factory=list)
    head_fcnet_activation: str = "relu"
    vf_share_layers: bool = True
    free_log_std: bool = False
    log_std_clip_param: float = 20.0


_MODEL_KEYS = {f.name for f in dataclasses.fields(DefaultModelConfig)}

_ACTIVATIONS: dict[str | None, type[nn.Module] | None] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "linear": None,
    None: None,
}


def resolve_model_config(model_config: Any, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """``model_config`` (dict or DefaultModelConfig) over ``defaults``, checked; ValueError on unknown keys.

    Keys of ``defaults`` (a module's own settings, such as DQN's ``dueling``)
    are accepted besides DefaultModelConfig's.
    """
    out = dataclasses.asdict(DefaultModelConfig())
    out.update(defaults or {})
    if model_config is None:
        return out
    if isinstance(model_config, DefaultModelConfig):
        given = dataclasses.asdict(model_config)
    elif isinstance(model_config, dict):
        given = dict(model_config)
    else:
        raise TypeError(f"model_config must be a dict or a DefaultModelConfig, got {type(model_config).__name__}")
    allowed = _MODEL_KEYS | set(defaults or {})
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ValueError(f"model_config has unknown keys {unknown}; supported keys: {sorted(allowed)}")
    out.update(given)
    for key in ("fcnet_hiddens", "head_fcnet_hiddens"):
        hiddens = out[key]
        if not isinstance(hiddens, (list, tuple)) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hiddens
        ):
            raise ValueError(f"model_config[{key!r}] must be a list of positive ints, got {hiddens!r}")
        out[key] = list(hiddens)
    for key in ("fcnet_activation", "head_fcnet_activation"):
        if out[key] not in _ACTIVATIONS:
            raise ValueError(
                f"model_config[{key!r}] must be one of {sorted(k for k in _ACTIVATIONS if k)}, got {out[key]!r}"
            )
    return out


def build_mlp(
    in_dim: int,
    hiddens: Sequence[int],
    activation: str | None,
    out_dim: int | None = None,
    out_gain: float = 1.0,
) -> nn.Sequential:
    """Linear layers with ``activation`` between them; orthogonal init, output layer scaled by ``out_gain``."""
    layers: list[nn.Module] = []
    act = _ACTIVATIONS[activation]
    dim = in_dim
    for h in hiddens:
        lin = nn.Linear(dim, h)
        nn.init.orthogonal_(lin.weight, gain=float(np.sqrt(2.0)))
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if act is not None:
            layers.append(act())
        dim = h
    if out_dim is not None:
        lin = nn.Linear(dim, out_dim)
        nn.init.orthogonal_(lin.weight, gain=out_gain)
        nn.init.zeros_(lin.bias)
        layers.append(lin)
    return nn.Sequential(*layers)


class RLModule(nn.Module):
    """Base class of the networks; subclasses build layers in :meth:`setup` and implement ``_forward``.

    ``observation_space`` / ``action_space`` are gymnasium spaces;
    ``model_config`` is a dict of :class:`DefaultModelConfig` keys.
    """

    framework = "torch"
    # Model settings an algorithm's module prefers over DefaultModelConfig's.
    default_model_config: dict[str, Any] = {}

    def __init__(
        self,
        observation_space: Any = None,
        action_space: Any = None,
        model_config: dict[str, Any] | DefaultModelConfig | None = None,
        inference_only: bool = False,
    ) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.model_config = resolve_model_config(model_config, type(self).default_model_config)
        self.inference_only = inference_only
        self.obs_dim = flat_obs_dim(observation_space) if observation_space is not None else 0
        self.setup()

    def setup(self) -> None:
        """Build the layers; called from ``__init__``."""

    # -- forward passes ------------------------------------------------------

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward(batch, **kwargs)

    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward(batch, **kwargs)

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward(batch, **kwargs)

    def forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Outputs for acting greedily (evaluation, serving)."""
        return self._forward_inference(batch, **kwargs)

    def forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Outputs for acting while collecting training data."""
        return self._forward_exploration(batch, **kwargs)

    def forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Outputs the loss needs."""
        return self._forward_train(batch, **kwargs)

    def forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self.forward_train(batch, **kwargs)

    def compute_values(self, obs: Any) -> Any:
        """Value estimates for a batch of observations; modules with a value function implement it."""
        raise NotImplementedError(f"{type(self).__name__} has no value function")

    def get_inference_action_dist_cls(self) -> type[TorchDistribution]:
        return TorchCategorical

    def get_exploration_action_dist_cls(self) -> type[TorchDistribution]:
        return self.get_inference_action_dist_cls()

    def get_train_action_dist_cls(self) -> type[TorchDistribution]:
        return self.get_inference_action_dist_cls()

    # -- acting in env runners -------------------------------------------------

    def sample_actions(
        self, obs: np.ndarray, explore: bool, rng: np.random.Generator, **kwargs: Any
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Actions for a batch of preprocessed observations, plus extra columns to record.

        The default samples from (or, without ``explore``, takes the mode of)
        the distribution given by ``action_dist_inputs``, drawing noise from
        ``rng``.
        """
        with torch.no_grad():
            out = (self.forward_exploration if explore else self.forward_inference)(
                {Columns.OBS: torch.from_numpy(obs)}
            )
            logits = out[Columns.ACTION_DIST_INPUTS]
            dist = self.get_exploration_action_dist_cls().from_logits(logits)
            if not explore:
                return dist.to_deterministic().sample().numpy(), {}
            log_probs = torch.log_softmax(logits, -1).numpy()
        actions = sample_categorical(log_probs, rng)
        return actions, {Columns.ACTION_LOGP: log_probs[np.arange(len(actions)), actions]}

    # -- state ---------------------------------------------------------------

    def get_state(self, inference_only: bool = False) -> dict[str, np.ndarray]:
        """The weights as numpy arrays (copies, on CPU)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.state_dict().items()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Load weights from :meth:`get_state`'s output (numpy arrays or tensors), copying in place."""
        own = self.state_dict()
        missing = own.keys() - state.keys()
        unexpected = state.keys() - own.keys()
        if missing or unexpected:
            raise KeyError(
                f"state does not match the module: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
            )
        with torch.no_grad():
            for name, target in own.items():
                value = state[name]
                if not isinstance(value, torch.Tensor):
                    # Read-only arrays (zero-copy views of the object store) need a copy for torch.
                    arr = value if getattr(value, "flags", None) is None or value.flags.writeable else np.array(value)
                    value = torch.from_numpy(np.asarray(arr))
                if value.shape != target.shape:
                    raise ValueError(
                        f"weight {name!r} has shape {tuple(value.shape)}, the module {tuple(target.shape)}"
                    )
                target.copy_(value)

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def sample_categorical(log_probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of ``log_probs`` by inverting the CDF with uniforms from ``rng``."""
    cdf = np.cumsum(np.exp(log_probs), axis=-1)
    u = rng.random((log_probs.shape[0], 1)) * cdf[:, -1:]
    actions = (cdf < u).sum(axis=-1)
    return np.minimum(actions, log_probs.shape[-1] - 1).astype(np.int64)


@dataclass
class RLModuleSpec:
    """How to build a module: its class, the spaces and the model config.

    Pass ``config.rl_module(rl_module_spec=RLModuleSpec(module_class=MyModule))``
    to train a custom module; spaces left None are taken from the env.
    """

    module_class: type[RLModule] | None = None
    observation_space: Any = None
    action_space: Any = None
    model_config: dict[str, Any] | DefaultModelConfig | None = None
    inference_only: bool = False

    def build(self) -> RLModule:
        if self.module_class is None:
            raise ValueError("RLModuleSpec.module_class is not set")
        return self.module_class(
            observation_space=self.observation_space,
            action_space=self.action_space,
            model_config=self.model_config,
            inference_only=self.inference_only,
        )
