"""Wrapping trainables: :func:`with_parameters`, :func:`with_resources`, :class:`PlacementGroupFactory`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import shoal
from shoal.tune.trainable.trainable import Trainable, wrap_function

__all__ = [
    "PlacementGroupFactory",
    "resolve_resources",
    "resolve_trainable",
    "trainable_name",
    "with_parameters",
    "with_resources",
]


class PlacementGroupFactory:
    """Resources of one trial as bundles: the trainable runs in the first, its workers use the rest.

    ``PlacementGroupFactory([{"CPU": 1}, {"CPU": 2}] * 1, strategy="PACK")``.
    """

    def __init__(self, bundles: list[dict[str, float]], strategy: str = "PACK") -> None:
        if not isinstance(bundles, list) or not bundles or not all(isinstance(b, dict) for b in bundles):
            raise ValueError(f"bundles must be a non-empty list of dicts, got {bundles!r}")
        if strategy not in ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"):
            raise ValueError(f"strategy must be PACK, SPREAD, STRICT_PACK or STRICT_SPREAD, got {strategy!r}")
        self.bundles = [_normalize(b) for b in bundles]
        self.strategy = strategy

    @property
    def head_bundle_is_empty(self) -> bool:
        return not any(self.bundles[0].values())

    @property
    def required_resources(self) -> dict[str, float]:
        """The sum of all bundles."""
        total: dict[str, float] = {}
        for bundle in self.bundles:
            for k, v in bundle.items():
                total[k] = total.get(k, 0.0) + v
        return total

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupFactory) and (self.bundles, self.strategy) == (
            other.bundles,
            other.strategy,
        )

    def __hash__(self) -> int:
        return hash((tuple(tuple(sorted(b.items())) for b in self.bundles), self.strategy))

    def __repr__(self) -> str:
        return f"PlacementGroupFactory({self.bundles}, strategy={self.strategy!r})"


_ALIASES = {"cpu": "CPU", "gpu": "GPU", "CPU": "CPU", "GPU": "GPU", "memory": "memory"}


def _normalize(resources: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in resources.items():
        if key == "custom_resources":
            out.update({k: float(v) for k, v in (value or {}).items()})
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"resource {key!r} must be a number >= 0, got {value!r}")
        out[_ALIASES.get(key, key)] = float(value)
    return {k: v for k, v in out.items() if v > 0}


def with_resources(trainable: Any, resources: dict[str, Any] | PlacementGroupFactory | Callable[..., Any]) -> Any:
    """The trainable, asking for ``resources`` per trial (a dict such as ``{"cpu": 2}``, a
    PlacementGroupFactory, or a function of the config returning either)."""
    if not (isinstance(resources, (dict, PlacementGroupFactory)) or callable(resources)):
        raise TypeError(f"resources must be a dict, a PlacementGroupFactory or a function, got {resources!r}")
    if isinstance(resources, dict):
        _normalize(resources)  # validate now rather than at the first trial
    if inspect.isclass(trainable):
        if not issubclass(trainable, Trainable):
            raise TypeError(f"a trainable class must subclass shoal.tune.Trainable, got {trainable!r}")
        return type(
            trainable.__name__, (trainable,), {"_shoal_resources": resources, "__module__": trainable.__module__}
        )
    if not callable(trainable):
        raise TypeError(f"trainable must be a function or a Trainable class, got {trainable!r}")

    @functools.wraps(trainable)
    def wrapped(config: dict[str, Any]) -> Any:
        return trainable(config)

    wrapped._shoal_resources = resources  # type: ignore[attr-defined]
    return wrapped


class _WithParameters:
    """A function trainable with extra arguments kept in the object store and fetched once per worker."""

    def __init__(self, fn: Callable[..., Any], refs: dict[str, Any]) -> None:
        self._fn = fn
        self._refs = refs
        self._values: dict[str, Any] | None = None
        functools.update_wrapper(self, fn)
        resources = getattr(fn, "_shoal_resources", None)
        if resources is not None:
            self._shoal_resources = resources

    def __call__(self, config: dict[str, Any]) -> Any:
        if self._values is None:
            self._values = {k: shoal.get(r) for k, r in self._refs.items()}
        return self._fn(config, **self._values)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_values"] = None  # values travel as refs, never inline
        return state


def with_parameters(trainable: Any, **kwargs: Any) -> Any:
    """The trainable, receiving ``kwargs`` too: ``fn(config, **kwargs)`` or ``setup(config, **kwargs)``.

    The values are put in the object store once, so large datasets are not
    copied into every trial's arguments.
    """
    refs = {k: shoal.put(v) for k, v in kwargs.items()}
    if inspect.isclass(trainable):
        if not issubclass(trainable, Trainable):
            raise TypeError(f"a trainable class must subclass shoal.tune.Trainable, got {trainable!r}")
        base_setup = trainable.setup

        def setup(self: Trainable, config: dict[str, Any]) -> None:
            values = {k: shoal.get(r) for k, r in refs.items()}
            base_setup(self, config, **values)

        return type(trainable.__name__, (trainable,), {"setup": setup, "__module__": trainable.__module__})
    if not callable(trainable):
        raise TypeError(f"trainable must be a function or a Trainable class, got {trainable!r}")
    return _WithParameters(trainable, refs)


def resolve_trainable(trainable: Any) -> Any:
    """The function or Trainable class to run; objects with ``as_trainable()`` (trainers) convert themselves."""
    as_trainable = getattr(trainable, "as_trainable", None)
    if as_trainable is not None and not inspect.isclass(trainable):
        trainable = as_trainable()
    if inspect.isclass(trainable):
        if not issubclass(trainable, Trainable):
            raise TypeError(f"a trainable class must subclass shoal.tune.Trainable, got {trainable!r}")
        return trainable
    if callable(trainable):
        wrap_function(trainable)  # checks the signature now rather than in the first trial
        return trainable
    raise TypeError(f"trainable must be a function, a Trainable class or a trainer, got {trainable!r}")


def trainable_name(trainable: Any) -> str:
    name = getattr(trainable, "__name__", None) or type(trainable).__name__
    return str(name)


def resolve_resources(
    trainable: Any, config: dict[str, Any]
) -> tuple[dict[str, float], list[dict[str, float]] | None, str]:
    """The resources of one trial and, for a multi-bundle PlacementGroupFactory, its bundles and strategy."""
    spec = getattr(trainable, "_shoal_resources", None)
    if spec is None and inspect.isclass(trainable) and issubclass(trainable, Trainable):
        spec = trainable.default_resource_request(config)
    if spec is not None and callable(spec) and not isinstance(spec, PlacementGroupFactory):
        spec = spec(config)
    if spec is None:
        return {"CPU": 1.0}, None, "PACK"
    if isinstance(spec, PlacementGroupFactory):
        if len(spec.bundles) == 1:
            return dict(spec.bundles[0]), None, spec.strategy
        return spec.required_resources, [dict(b) for b in spec.bundles], spec.strategy
    if isinstance(spec, dict):
        return _normalize(spec), None, "PACK"
    raise TypeError(f"the trainable's resources must be a dict or a PlacementGroupFactory, got {spec!r}")
