"""Classes with the trainable shape that do not subclass :class:`~shoal.tune.Trainable`.

Libraries that must not depend on shoal.tune (shoal.rl's ``Algorithm``)
give their classes the shape of a class trainable instead: built as
``cls(config=dict)``, ``train()`` returning one result dict per call, and
optionally ``save_checkpoint(dir)`` / ``load_checkpoint(path)``,
``cleanup()`` or ``stop()``, ``reset_config(config)`` and a
``default_resource_request(config)`` classmethod. :func:`host_class` wraps
such a class in a Trainable subclass that forwards to it.
"""

from __future__ import annotations

import inspect
from typing import Any

from shoal.tune.trainable.trainable import Trainable

__all__ = ["HostedTrainable", "has_trainable_shape", "host_class"]


def has_trainable_shape(cls: Any) -> bool:
    """True for a class that is not a Trainable but can run as one (it has ``train()``)."""
    return inspect.isclass(cls) and not issubclass(cls, Trainable) and callable(getattr(cls, "train", None))


class HostedTrainable(Trainable):
    """Runs an instance of ``_hosted`` (a class with the trainable shape) as a trial."""

    _hosted: Any = None

    def setup(self, config: dict[str, Any]) -> None:
        self._obj = type(self)._hosted(config=config)

    def step(self) -> dict[str, Any]:
        # The hosted object's own train() keeps its own counters (iteration, timers) right;
        # tune's standard fields are added on top of its result.
        result = self._obj.train()
        if not isinstance(result, dict):
            raise TypeError(f"{type(self._obj).__name__}.train() must return a dict, got {type(result).__name__}")
        return dict(result)

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | None:
        save = getattr(self._obj, "save_checkpoint", None)
        if save is None:
            raise NotImplementedError(f"{type(self._obj).__name__} has no save_checkpoint()")
        out = save(checkpoint_dir)
        return out if isinstance(out, dict) else None

    def load_checkpoint(self, checkpoint: dict[str, Any] | str) -> None:
        load = getattr(self._obj, "load_checkpoint", None)
        if load is None:
            raise NotImplementedError(f"{type(self._obj).__name__} has no load_checkpoint()")
        load(checkpoint)

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        reset = getattr(self._obj, "reset_config", None)
        return bool(reset(new_config)) if reset is not None else False

    def cleanup(self) -> None:
        obj = getattr(self, "_obj", None)
        if obj is None:
            return
        end = getattr(obj, "cleanup", None) or getattr(obj, "stop", None)
        if end is not None:
            end()

    @classmethod
    def default_resource_request(cls, config: dict[str, Any]) -> Any:
        request = getattr(cls._hosted, "default_resource_request", None)
        return request(config) if request is not None else None


def host_class(cls: type) -> type[HostedTrainable]:
    """A Trainable subclass named like ``cls`` that runs instances of it."""
    return type(cls.__name__, (HostedTrainable,), {"_hosted": cls, "__module__": cls.__module__})
