"""Action distributions in torch, built from a module's ``action_dist_inputs``.

Small hand-written classes rather than ``torch.distributions``: the learner
calls them on every minibatch and argument validation there costs more than
the math.
"""

from __future__ import annotations

import math

import torch

__all__ = ["TorchCategorical", "TorchDeterministic", "TorchDiagGaussian", "TorchDistribution"]

_LOG_2PI = math.log(2.0 * math.pi)


class TorchDistribution:
    """Interface shared by the action distributions."""

    @classmethod
    def from_logits(cls, logits: torch.Tensor) -> TorchDistribution:
        raise NotImplementedError

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError

    def kl(self, other: TorchDistribution) -> torch.Tensor:
        raise NotImplementedError

    def to_deterministic(self) -> TorchDeterministic:
        raise NotImplementedError


class TorchCategorical(TorchDistribution):
    """A categorical distribution over ``logits.shape[-1]`` actions."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits
        self.log_probs = torch.log_softmax(logits, dim=-1)

    @classmethod
    def from_logits(cls, logits: torch.Tensor) -> TorchCategorical:
        return cls(logits)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        probs = self.log_probs.exp().reshape(-1, self.logits.shape[-1])
        draws = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        return draws.reshape(self.logits.shape[:-1])

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.log_probs.exp() * self.log_probs).sum(-1)

    def kl(self, other: TorchDistribution) -> torch.Tensor:
        assert isinstance(other, TorchCategorical)
        return (self.log_probs.exp() * (self.log_probs - other.log_probs)).sum(-1)

    def to_deterministic(self) -> TorchDeterministic:
        return TorchDeterministic(self.logits.argmax(-1))


class TorchDiagGaussian(TorchDistribution):
    """A Gaussian with diagonal covariance; ``from_logits`` splits the inputs into mean and log std."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        self.loc = loc
        self.scale = scale
        self.log_scale = scale.log()

    @classmethod
    def from_logits(cls, logits: torch.Tensor) -> TorchDiagGaussian:
        loc, log_std = logits.chunk(2, dim=-1)
        return cls(loc, log_std.exp())

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.loc.shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * noise

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - self.loc) / self.scale
        return (-0.5 * z.pow(2) - self.log_scale - 0.5 * _LOG_2PI).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.log_scale + 0.5 * (1.0 + _LOG_2PI)).sum(-1)

    def kl(self, other: TorchDistribution) -> torch.Tensor:
        assert isinstance(other, TorchDiagGaussian)
        var_ratio = (self.scale / other.scale).pow(2)
        mean_term = ((self.loc - other.loc) / other.scale).pow(2)
        return 0.5 * (var_ratio + mean_term - 1.0 - var_ratio.log()).sum(-1)

    def to_deterministic(self) -> TorchDeterministic:
        return TorchDeterministic(self.loc)


class TorchDeterministic(TorchDistribution):
    """Always the same action: the greedy choice of another distribution."""

    def __init__(self, value: torch.Tensor) -> None:
        self.value = value

    @classmethod
    def from_logits(cls, logits: torch.Tensor) -> TorchDeterministic:
        return cls(logits)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.value

    def to_deterministic(self) -> TorchDeterministic:
        return self
