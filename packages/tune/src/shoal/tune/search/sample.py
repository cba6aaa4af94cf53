"""Search-space primitives: ``uniform``, ``loguniform``, ``randint``, ``choice``, ``grid_search``...

A *domain* describes the values one hyperparameter may take and how to draw
one at random. ``tune.uniform(0, 1)`` returns a :class:`Float` domain whose
sampler is uniform; search algorithms that build their own models (Optuna,
HyperOpt, BOHB) read the domain's bounds and sampler kind to translate it.

Bounds follow Ray Tune: ``randint`` and ``lograndint`` exclude ``upper``;
quantized domains (``quniform``, ``qrandint`` with ``q != 1``...) include it,
because their values are the multiples of ``q`` inside ``[lower, upper]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Domain",
    "Float",
    "Integer",
    "Categorical",
    "Function",
    "Sampler",
    "Uniform",
    "LogUniform",
    "Normal",
    "Grid",
    "Quantized",
    "sample_from",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "choice",
    "randint",
    "qrandint",
    "lograndint",
    "qlograndint",
    "randn",
    "qrandn",
    "grid_search",
]

RandomState = np.random.Generator | np.random.RandomState | int | None

_default_rng = np.random.default_rng()


def _rng(random_state: Any) -> np.random.Generator:
    """A numpy Generator from a seed, a Generator, a legacy RandomState or None."""
    if random_state is None:
        return _default_rng
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    raise TypeError(f"random_state must be None, an int seed or a numpy Generator, got {random_state!r}")


def _one_or_list(values: list[Any], size: int) -> Any:
    return values[0] if size == 1 else values


class Sampler:
    """How a domain draws values; subclasses name the distribution."""

    def sample(self, domain: Domain, config: Any, size: int, rng: np.random.Generator) -> list[Any]:
        raise NotImplementedError

    def __str__(self) -> str:
        return type(self).__name__


class Uniform(Sampler):
    """Uniform over ``[lower, upper)``."""

    def sample(self, domain: Domain, config: Any, size: int, rng: np.random.Generator) -> list[Any]:
        if isinstance(domain, Integer):
            return [int(v) for v in rng.integers(domain.lower, domain.upper, size=size)]
        if isinstance(domain, Categorical):
            idx = rng.integers(0, len(domain.categories), size=size)
            return [domain.categories[int(i)] for i in idx]
        assert isinstance(domain, Float)
        return [float(v) for v in rng.uniform(domain.lower, domain.upper, size=size)]


class LogUniform(Sampler):
    """Uniform in log space over ``[lower, upper)``."""

    def __init__(self, base: float = 10) -> None:
        if base <= 0 or base == 1:
            raise ValueError(f"base must be > 0 and != 1, got {base!r}")
        self.base = base

    def sample(self, domain: Domain, config: Any, size: int, rng: np.random.Generator) -> list[Any]:
        assert isinstance(domain, (Float, Integer))
        lo = math.log(domain.lower, self.base)
        hi = math.log(domain.upper, self.base)
        values = self.base ** rng.uniform(lo, hi, size=size)
        if isinstance(domain, Integer):
            # floor keeps ``upper`` excluded; the clip guards float rounding at the edge.
            return [min(max(math.floor(v), domain.lower), domain.upper - 1) for v in values]
        return [float(v) for v in values]

    def __str__(self) -> str:
        return "LogUniform"


class Normal(Sampler):
    """Normal with ``mean`` and ``sd``, clipped to the domain's bounds when it has them."""

    def __init__(self, mean: float = 0.0, sd: float = 1.0) -> None:
        if sd <= 0:
            raise ValueError(f"sd must be > 0, got {sd!r}")
        self.mean = mean
        self.sd = sd

    def sample(self, domain: Domain, config: Any, size: int, rng: np.random.Generator) -> list[Any]:
        assert isinstance(domain, Float)
        values = rng.normal(self.mean, self.sd, size=size)
        return [float(np.clip(v, domain.lower, domain.upper)) for v in values]


class Grid(Sampler):
    """Marks a categorical domain as a grid to enumerate rather than sample."""

    def sample(self, domain: Domain, config: Any, size: int, rng: np.random.Generator) -> list[Any]:
        raise RuntimeError("a grid domain is enumerated by the variant generator, not sampled")


class Quantized(Sampler):
    """Another sampler's values rounded to multiples of ``q``, drawn uniformly over those multiples."""

    def __init__(self, sampler: Sampler, q: float) -> None:
        if q <= 0:
            raise ValueError(f"q must be > 0, got {q!r}")
        self.sampler = sampler
        self.q = q

    def _index(self, bound: float, inward: Callable[[float], float]) -> float:
        # The bound's position on the grid of multiples of q, rounded towards the inside.
        if not math.isfinite(bound):
            return bound
        scaled = bound / self.q
        if math.isclose(scaled, round(scaled), rel_tol=1e-9, abs_tol=1e-12):
            return float(round(scaled))
        return float(inward(scaled))

    def sample(self, domain: Domain, config: Any, size: int, rng: np.random.Generator) -> list[Any]:
        assert isinstance(domain, (Float, Integer))
        lo = self._index(domain.lower, math.ceil)
        hi = self._index(domain.upper, math.floor)
        if isinstance(domain, Integer):
            if hi < lo:
                raise ValueError(
                    f"no multiple of q={self.q} lies between {domain.lower} and {domain.upper}: "
                    "the domain has no values"
                )
            # Draw the grid index with the inner sampler; q == 1 keeps randint's exclusive upper.
            index_domain = Integer(int(lo), int(hi) + (0 if self.q == 1 else 1))
            idx = self.sampler.sample(index_domain, config, size, rng)
            return [domain.cast(i * self.q) for i in idx]
        inner = Float(lo * self.q if math.isfinite(lo) else lo, hi * self.q if math.isfinite(hi) else hi)
        values = self.sampler.sample(inner, config, size, rng)
        return [domain.cast(round(v / self.q) * self.q) for v in values]

    def __str__(self) -> str:
        return f"Quantized({self.sampler}, q={self.q})"


class Domain:
    """The values one hyperparameter may take and its sampler."""

    sampler: Sampler | None = None
    default_sampler_cls: type[Sampler] = Uniform

    def cast(self, value: Any) -> Any:
        return value

    def set_sampler(self, sampler: Sampler, allow_override: bool = False) -> None:
        if self.sampler is not None and not allow_override:
            raise ValueError(f"a sampler is already set on {self}: make a new domain rather than changing its sampler")
        self.sampler = sampler

    def get_sampler(self) -> Sampler:
        return self.sampler if self.sampler is not None else self.default_sampler_cls()

    def sample(self, config: Any = None, size: int = 1, random_state: RandomState = None) -> Any:
        """Draw ``size`` values (one value when ``size == 1``, else a list)."""
        rng = _rng(random_state)
        return _one_or_list(self.get_sampler().sample(self, config, size, rng), size)

    def _copy_with(self, sampler: Sampler) -> Domain:
        new = self._clone()
        new.set_sampler(sampler)
        return new

    def _clone(self) -> Domain:
        raise NotImplementedError

    def is_grid(self) -> bool:
        return isinstance(self.sampler, Grid)

    def is_function(self) -> bool:
        return False

    def is_valid(self, value: Any) -> bool:
        raise NotImplementedError

    @property
    def domain_str(self) -> str:
        return "(unknown)"

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.domain_str}[{self.get_sampler()}]"


class Float(Domain):
    """Real values in ``[lower, upper]``; ``None`` bounds are unbounded (for ``randn``)."""

    def __init__(self, lower: float | None, upper: float | None) -> None:
        self.lower = -math.inf if lower is None else float(lower)
        self.upper = math.inf if upper is None else float(upper)
        if self.lower > self.upper:
            raise ValueError(f"lower ({lower}) must be <= upper ({upper})")

    def _clone(self) -> Float:
        return Float(self.lower, self.upper)

    def cast(self, value: Any) -> float:
        return float(value)

    def uniform(self) -> Float:
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            raise ValueError("uniform sampling needs finite lower and upper bounds")
        return self._copy_with(Uniform())  # type: ignore[return-value]

    def loguniform(self, base: float = 10) -> Float:
        if not (self.lower > 0 and math.isfinite(self.upper)):
            raise ValueError(f"loguniform needs 0 < lower <= upper < inf, got lower={self.lower}, upper={self.upper}")
        return self._copy_with(LogUniform(base))  # type: ignore[return-value]

    def normal(self, mean: float = 0.0, sd: float = 1.0) -> Float:
        return self._copy_with(Normal(mean, sd))  # type: ignore[return-value]

    def quantized(self, q: float) -> Float:
        new = self._clone()
        new.set_sampler(Quantized(self.get_sampler(), q))
        return new

    def is_valid(self, value: Any) -> bool:
        return self.lower <= value <= self.upper

    @property
    def domain_str(self) -> str:
        return f"({self.lower}, {self.upper})"


class Integer(Domain):
    """Integers in ``[lower, upper)``."""

    def __init__(self, lower: int, upper: int) -> None:
        if isinstance(lower, bool) or isinstance(upper, bool):
            raise TypeError("integer bounds must be ints, not bools")
        self.lower = int(lower)
        self.upper = int(upper)
        if self.lower > self.upper:
            raise ValueError(f"lower ({lower}) must be <= upper ({upper})")

    def _clone(self) -> Integer:
        return Integer(self.lower, self.upper)

    def cast(self, value: Any) -> int:
        return round(value) if isinstance(value, float) else int(value)

    def uniform(self) -> Integer:
        return self._copy_with(Uniform())  # type: ignore[return-value]

    def loguniform(self, base: float = 10) -> Integer:
        if self.lower <= 0:
            raise ValueError(f"lograndint needs lower > 0, got {self.lower}")
        return self._copy_with(LogUniform(base))  # type: ignore[return-value]

    def quantized(self, q: int) -> Integer:
        if isinstance(q, bool) or not isinstance(q, int):
            raise TypeError(f"q must be an int for an integer domain, got {q!r}")
        new = self._clone()
        new.set_sampler(Quantized(self.get_sampler(), q))
        return new

    def is_valid(self, value: Any) -> bool:
        return self.lower <= value < self.upper

    @property
    def domain_str(self) -> str:
        return f"({self.lower}, {self.upper})"


class Categorical(Domain):
    """One of a list of values."""

    def __init__(self, categories: Sequence[Any]) -> None:
        if isinstance(categories, (str, bytes)) or not isinstance(categories, Sequence):
            raise TypeError(f"categories must be a list or tuple, got {categories!r}")
        if len(categories) == 0:
            raise ValueError("categories must not be empty")
        self.categories = list(categories)

    def _clone(self) -> Categorical:
        return Categorical(self.categories)

    def uniform(self) -> Categorical:
        return self._copy_with(Uniform())  # type: ignore[return-value]

    def grid(self) -> Categorical:
        return self._copy_with(Grid())  # type: ignore[return-value]

    def is_valid(self, value: Any) -> bool:
        return value in self.categories

    def __len__(self) -> int:
        return len(self.categories)

    def __getitem__(self, i: int) -> Any:
        return self.categories[i]

    @property
    def domain_str(self) -> str:
        return f"{self.categories}"


class _FunctionSampler(Sampler):
    def sample(self, domain: Domain, config: Any, size: int, rng: np.random.Generator) -> list[Any]:
        assert isinstance(domain, Function)
        return [domain.call(config) for _ in range(size)]


class _Spec:
    """What a ``sample_from`` function receives: ``spec.config`` is the config resolved so far."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = _AttrDict(config)


class _AttrDict(dict[str, Any]):
    """A dict whose keys read as attributes too (``spec.config.lr``), nested."""

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        return _AttrDict(value) if isinstance(value, dict) and not isinstance(value, _AttrDict) else value


class Function(Domain):
    """A value computed by ``func(spec)`` (or ``func()``) from the rest of the config."""

    default_sampler_cls = _FunctionSampler

    def __init__(self, func: Callable[..., Any]) -> None:
        if not callable(func):
            raise TypeError(f"sample_from expects a callable, got {func!r}")
        self.func = func
        try:
            import inspect

            self._takes_spec = len(inspect.signature(func).parameters) > 0
        except (TypeError, ValueError):
            self._takes_spec = True

    def _clone(self) -> Function:
        return Function(self.func)

    def call(self, config: Any) -> Any:
        if not self._takes_spec:
            return self.func()
        return self.func(_Spec(config if isinstance(config, dict) else {}))

    def is_function(self) -> bool:
        return True

    def is_valid(self, value: Any) -> bool:
        return True

    @property
    def domain_str(self) -> str:
        return f"{self.func}"


def sample_from(func: Callable[..., Any]) -> Function:
    """A value computed from the resolved config: ``sample_from(lambda spec: spec.config.a * 2)``."""
    return Function(func)


def uniform(lower: float, upper: float) -> Float:
    """A float drawn uniformly from ``[lower, upper)``."""
    return Float(lower, upper).uniform()


def quniform(lower: float, upper: float, q: float) -> Float:
    """A multiple of ``q`` in ``[lower, upper]`` (both bounds inclusive), drawn uniformly."""
    return Float(lower, upper).uniform().quantized(q)


def loguniform(lower: float, upper: float, base: float = 10) -> Float:
    """A float drawn uniformly in log space from ``[lower, upper)``."""
    return Float(lower, upper).loguniform(base)


def qloguniform(lower: float, upper: float, q: float, base: float = 10) -> Float:
    """A multiple of ``q`` in ``[lower, upper]``, drawn log-uniformly."""
    return Float(lower, upper).loguniform(base).quantized(q)


def choice(categories: Sequence[Any]) -> Categorical:
    """One of ``categories``, drawn uniformly."""
    return Categorical(categories).uniform()


def randint(lower: int, upper: int) -> Integer:
    """An integer in ``[lower, upper)`` (upper excluded), drawn uniformly."""
    return Integer(lower, upper).uniform()


def lograndint(lower: int, upper: int, base: float = 10) -> Integer:
    """An integer in ``[lower, upper)``, drawn log-uniformly."""
    return Integer(lower, upper).loguniform(base)


def qrandint(lower: int, upper: int, q: int = 1) -> Integer:
    """A multiple of ``q`` in ``[lower, upper]`` (upper included unless ``q == 1``), drawn uniformly."""
    return Integer(lower, upper).uniform().quantized(q)


def qlograndint(lower: int, upper: int, q: int, base: float = 10) -> Integer:
    """A multiple of ``q`` in ``[lower, upper]`` (upper included unless ``q == 1``), drawn log-uniformly."""
    return Integer(lower, upper).loguniform(base).quantized(q)


def randn(mean: float = 0.0, sd: float = 1.0) -> Float:
    """A float drawn from a normal distribution."""
    return Float(None, None).normal(mean, sd)


def qrandn(mean: float, sd: float, q: float) -> Float:
    """A float drawn from a normal distribution, rounded to a multiple of ``q``."""
    return Float(None, None).normal(mean, sd).quantized(q)


def grid_search(values: Sequence[Any]) -> dict[str, list[Any]]:
    """Try every value: each sample of the search space is repeated for every grid point."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"grid_search expects a list of values, got {values!r}")
    return {"grid_search": list(values)}
