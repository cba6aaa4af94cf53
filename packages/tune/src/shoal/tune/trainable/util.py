"""Wrapping trainables (:func:`with_parameters`, :func:`with_resources`) and resolving what a trial runs and holds."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import shoal
from shoal.tune.execution.placement_groups import PlacementGroupFactory, resource_dict_to_pg_factory
from shoal.tune.trainable.adapter import has_trainable_shape, host_class
from shoal.tune.trainable.trainable import Trainable, wrap_function

__all__ = [
    "PlacementGroupFactory",
    "resolve_resources",
    "resolve_trainable",
    "trainable_name",
    "with_parameters",
    "with_resources",
]


def with_resources(trainable: Any, resources: dict[str, Any] | PlacementGroupFactory | Callable[..., Any]) -> Any:
    """The trainable, asking for ``resources`` per trial.

    ``resources`` is a dict such as ``{"cpu": 2, "gpu": 1}`` (read as Ray reads
    it: ``cpu``/``CPU``, ``gpu``/``GPU``, ``memory``, ``custom_resources`` or
    other keys as custom resources), a :class:`PlacementGroupFactory`, or a
    function of the trial's config returning either. The trial's actor holds
    these resources (the first bundle) while the trial runs. A dict that asks
    for nothing, such as ``{"cpu": 0}``, is a ValueError, as in Ray.
    """
    if not (isinstance(resources, (dict, PlacementGroupFactory)) or callable(resources)):
        raise TypeError(f"resources must be a dict, a PlacementGroupFactory or a function, got {resources!r}")
    if isinstance(resources, dict):
        resource_dict_to_pg_factory(resources)  # validate now rather than at the first trial
    trainable = _by_name_or_shape(trainable)
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
    trainable = _by_name_or_shape(trainable)
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


def _by_name_or_shape(trainable: Any) -> Any:
    """Names resolved through the registry; classes of the trainable shape wrapped as Trainables."""
    if isinstance(trainable, str):
        from shoal.tune.registry import get_trainable_cls

        trainable = get_trainable_cls(trainable)
    if has_trainable_shape(trainable):
        trainable = host_class(trainable)
    return trainable


def resolve_trainable(trainable: Any) -> Any:
    """The function or Trainable class to run.

    A string is looked up with :func:`shoal.tune.registry.get_trainable_cls`;
    objects with ``as_trainable()`` (shoal.train's trainers) convert
    themselves; classes with the trainable shape (``cls(config=...)`` and
    ``train()``, as shoal.rl's algorithms) are hosted in a Trainable.
    """
    if isinstance(trainable, str):
        from shoal.tune.registry import get_trainable_cls

        trainable = get_trainable_cls(trainable)
    as_trainable = getattr(trainable, "as_trainable", None)
    if as_trainable is not None and not inspect.isclass(trainable):
        trainable = as_trainable()
    trainable = _by_name_or_shape(trainable)
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


def to_pg_factory(spec: Any) -> PlacementGroupFactory:
    """A trial's resource request as a PlacementGroupFactory: from a dict, a list of bundles or a factory."""
    if isinstance(spec, PlacementGroupFactory):
        return spec
    if isinstance(spec, dict):
        return resource_dict_to_pg_factory(spec)
    if isinstance(spec, list):
        return PlacementGroupFactory(spec)
    raise TypeError(
        f"the trainable's resources must be a dict, a list of bundles or a PlacementGroupFactory, got {spec!r}"
    )


def resolve_resources(
    trainable: Any, config: dict[str, Any]
) -> tuple[dict[str, float], list[dict[str, float]] | None, str]:
    """The resources of one trial and, when it has several bundles, its bundles (head first) and strategy."""
    spec = getattr(trainable, "_shoal_resources", None)
    if spec is None and inspect.isclass(trainable):
        request = getattr(trainable, "default_resource_request", None)
        spec = request(config) if request is not None else None
    if spec is not None and callable(spec) and not isinstance(spec, PlacementGroupFactory):
        spec = spec(config)
    if spec is None:
        return {"CPU": 1.0}, None, "PACK"
    pgf = to_pg_factory(spec)
    bundles = pgf.bundles_with_head
    if len(bundles) == 1:
        return pgf.head_bundle, None, pgf.strategy
    return pgf.required_resources, bundles, pgf.strategy
