"""What a running trial sees: :func:`report`, :func:`get_checkpoint`, :func:`get_context`.

The trial worker sets a :class:`TrialContext` for the thread that runs the
user's code (the function trainable's own thread, or the worker's thread for
class trainables), so several trials can share a process (the ``inline``
backend, reused actors) without seeing each other's state.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shoal.tune.checkpoint import Checkpoint

__all__ = ["TrialContext", "TuneContext", "get_checkpoint", "get_context", "report"]

_local = threading.local()


@dataclass
class TrialContext:
    """Facts about one trial, and how its function trainable hands results over."""

    trial_id: str | None = None
    trial_name: str | None = None
    trial_dir: str | None = None
    experiment_name: str | None = None
    experiment_dir: str | None = None
    resources: dict[str, float] = field(default_factory=dict)
    # All bundles, head first, for trials with several; None for one-bundle trials.
    bundles: list[dict[str, float]] | None = None
    strategy: str = "PACK"
    checkpoint_index: int = 0
    # Set by FunctionTrainable for its thread: (metrics, persisted checkpoint) -> None.
    reporter: Callable[[dict[str, Any], Checkpoint | None], None] | None = None
    latest_checkpoint: Checkpoint | None = None

    def persist(self, checkpoint: Checkpoint) -> Checkpoint:
        """Copy a reported checkpoint into the trial folder as ``checkpoint_NNNNNN``.

        A checkpoint that already is a ``checkpoint_NNNNNN`` folder of this trial
        (shoal.train's workers write them there directly) is taken as it is.
        """
        if self.trial_dir is None:
            return checkpoint
        src = os.path.abspath(checkpoint.path)
        number = _checkpoint_number(os.path.basename(src))
        if number is not None and os.path.dirname(src) == os.path.abspath(self.trial_dir):
            self.checkpoint_index = max(self.checkpoint_index, number + 1)
            return Checkpoint(src)
        dest = os.path.join(self.trial_dir, f"checkpoint_{self.checkpoint_index:06d}")
        self.checkpoint_index += 1
        if src != os.path.abspath(dest):
            if os.path.exists(dest):
                shutil.rmtree(dest)
            shutil.copytree(src, dest)
        return Checkpoint(dest)


def _checkpoint_number(name: str) -> int | None:
    prefix = "checkpoint_"
    if name.startswith(prefix) and name[len(prefix) :].isdigit():
        return int(name[len(prefix) :])
    return None


def _set_current(ctx: TrialContext | None) -> None:
    _local.ctx = ctx


def _current() -> TrialContext | None:
    return getattr(_local, "ctx", None)


def report(metrics: dict[str, Any], *, checkpoint: Checkpoint | None = None) -> None:
    """Report one result (and optionally a checkpoint) from a function trainable.

    Blocks until tune asks for the next result, so the scheduler can decide
    between results whether the trial goes on. A stopped trial does not
    return from ``report``: its function is unwound (``finally`` blocks run).
    """
    ctx = _current()
    if ctx is None or ctx.reporter is None:
        raise RuntimeError(
            "shoal.tune.report() was called outside a tune trial; call it from a function "
            "run by tune.Tuner (class trainables return results from step() instead)"
        )
    if not isinstance(metrics, dict):
        raise TypeError(f"report() takes a dict of metrics, got {type(metrics).__name__}")
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"checkpoint must be a shoal.tune.Checkpoint, got {checkpoint!r}")
    ctx.reporter(metrics, checkpoint)


def get_checkpoint() -> Checkpoint | None:
    """The latest checkpoint of this trial: the one it was restored from or last reported; None at first."""
    ctx = _current()
    return None if ctx is None else ctx.latest_checkpoint


class TuneContext:
    """Read-only facts about the running trial (``tune.get_context()``)."""

    def __init__(self, ctx: TrialContext | None) -> None:
        self._ctx = ctx

    def get_trial_id(self) -> str | None:
        return None if self._ctx is None else self._ctx.trial_id

    def get_trial_name(self) -> str | None:
        return None if self._ctx is None else self._ctx.trial_name

    def get_trial_dir(self) -> str | None:
        return None if self._ctx is None else self._ctx.trial_dir

    def get_trial_resources(self) -> Any:
        """The trial's resources as a :class:`~shoal.tune.PlacementGroupFactory` (None outside a trial)."""
        from shoal.tune.execution.placement_groups import PlacementGroupFactory

        if self._ctx is None:
            return None
        if self._ctx.bundles:
            return PlacementGroupFactory([dict(b) for b in self._ctx.bundles], strategy=self._ctx.strategy)
        return PlacementGroupFactory([dict(self._ctx.resources)], strategy=self._ctx.strategy)

    def get_experiment_name(self) -> str | None:
        return None if self._ctx is None else self._ctx.experiment_name

    def get_world_size(self) -> int:
        return 1

    def get_world_rank(self) -> int:
        return 0

    def get_local_rank(self) -> int:
        return 0

    def get_local_world_size(self) -> int:
        return 1

    def get_node_rank(self) -> int:
        return 0


def get_context() -> TuneContext:
    """The :class:`TuneContext` of the calling trial (its getters return None outside a trial)."""
    return TuneContext(_current())
