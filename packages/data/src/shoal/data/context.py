"""Settings of dataset execution: :class:`DataContext` and its :class:`ExecutionOptions`.

``DataContext.get_current()`` is the process's context; executions read it
when they start, so changing it affects datasets consumed afterwards.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field

__all__ = ["DataContext", "ExecutionOptions", "ExecutionResources"]


@dataclass
class ExecutionResources:
    """Limits on what an execution may use; None means "derive from the cluster"."""

    cpu: float | None = None
    gpu: float | None = None
    object_store_memory: int | None = None

    def __post_init__(self) -> None:
        for name in ("cpu", "gpu", "object_store_memory"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"ExecutionResources.{name} must be a number >= 0 or None, got {value!r}")


@dataclass
class ExecutionOptions:
    """How the streaming executor runs a dataset.

    ``resource_limits.object_store_memory`` bounds the bytes of blocks the
    executor keeps in flight (backpressure); by default a quarter of the
    cluster's object store. ``preserve_order`` is accepted for Ray
    compatibility: shoal always emits blocks in dataset order, which keeps
    results deterministic at no measurable cost.
    """

    resource_limits: ExecutionResources = field(default_factory=ExecutionResources)
    preserve_order: bool = False
    verbose_progress: bool = False


@dataclass
class DataContext:
    """Process-wide settings of shoal.data (``DataContext.get_current()``)."""

    #: Blocks are split (by choosing more read tasks) so none exceeds this.
    target_max_block_size: int = 128 * 1024 * 1024
    #: Reads do not make blocks smaller than this, unless asked to.
    target_min_block_size: int = 1024 * 1024
    #: Reads make at least this many blocks (when the data is big enough);
    #: None means twice the cluster's CPUs.
    read_op_min_num_blocks: int | None = None
    #: Progress bars on a terminal (never when stderr is not a terminal).
    enable_progress_bars: bool = True
    execution_options: ExecutionOptions = field(default_factory=ExecutionOptions)
    #: Calls an actor of an actor pool may have queued at once.
    max_tasks_in_flight_per_actor: int = 2
    #: Tasks in flight per operator, as a multiple of the CPUs it may use.
    max_tasks_in_flight_per_cpu: int = 2
    #: Default ``batch_size`` of ``iter_batches``.
    default_batch_size: int = 256
    #: Blocks whose read or map task may raise before the run fails: their rows are left
    #: out (with a warning). 0 (the default): the first error stops the run; negative: no limit.
    max_errored_blocks: int = 0

    @staticmethod
    def get_current() -> DataContext:
        """The context of this process, created with the defaults on first use."""
        with _lock:
            global _context
            if _context is None:
                _context = DataContext()
            return _context

    @staticmethod
    def _set_current(context: DataContext) -> None:
        """Replace this process's context (used to carry a driver's settings into workers)."""
        global _context
        with _lock:
            _context = context

    def copy(self) -> DataContext:
        """An independent copy of these settings."""
        return copy.deepcopy(self)


_lock = threading.Lock()
_context: DataContext | None = None
