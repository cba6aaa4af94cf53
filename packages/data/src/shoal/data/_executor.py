"""The streaming executor: runs physical operators with bounded memory.

Pull-based: each ``next()`` moves finished blocks downstream, launches the
tasks the budget allows (most downstream operators first, so data drains
before more is read), and waits with ``shoal.wait`` for the next task to
finish. Blocks held by operators (queued, feeding a running task, or
produced and not yet consumed) plus the expected output of running tasks
must stay under ``object_store_memory``; when nothing runs, one task may
start regardless, so a pipeline always progresses. Tasks keep running in
workers while the consumer handles a block, which is the prefetch.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator

import pyarrow as pa

import shoal
from shoal.data._operators import (
    ActorPoolMapOperator,
    InputDataOperator,
    LimitOperator,
    MapOperator,
    PhysicalOperator,
    RefMeta,
    _bytes,
)
from shoal.data._progress import ProgressBars
from shoal.data._stats import DatasetStats
from shoal.data._transforms import UDF_MARK
from shoal.data.context import DataContext
from shoal.data.exceptions import UserCodeException
from shoal.exceptions import TaskError

__all__ = ["StreamingExecutor", "cluster_cpus", "memory_budget"]

log = logging.getLogger("shoal.data")

_WAIT_TIMEOUT = 0.2


def cluster_cpus(ctx: DataContext) -> float:
    limit = ctx.execution_options.resource_limits.cpu
    cpus = float(shoal.cluster_resources().get("CPU", 1.0))
    return max(1.0, min(cpus, limit) if limit is not None else cpus)


def memory_budget(ctx: DataContext) -> int:
    """Bytes of blocks an execution may hold: the configured limit, or a quarter of the store."""
    limit = ctx.execution_options.resource_limits.object_store_memory
    if limit is not None:
        return int(limit)
    store = float(shoal.cluster_resources().get("object_store_memory", 2.0**31))
    return max(16 << 20, int(store // 4))


class StreamingExecutor(Iterator[RefMeta]):
    """Iterates the final operator's blocks; ``shutdown()`` (also on error) stops everything."""

    def __init__(self, ops: list[PhysicalOperator], ctx: DataContext, parent_stats: DatasetStats | None = None):
        self._ops = ops  # topological order, the last is the output
        self._final = ops[-1]
        self._ctx = ctx
        # The work runs in workers: Arrow memory this process freed before (building the input,
        # say) would otherwise stay with its allocator for the whole run, unused.
        pa.default_memory_pool().release_unused()
        self._out: deque[RefMeta] = deque()
        self._budget = memory_budget(ctx)
        self._errored_blocks = 0
        self._closed = False
        self._started = time.perf_counter()
        self.stats = DatasetStats([op.stats for op in ops if op.name != "Input"], budget_bytes=self._budget)
        self.stats.parent = parent_stats
        self._progress = ProgressBars([op.name for op in ops], ctx.enable_progress_bars)
        cpus = cluster_cpus(ctx)
        for op in ops:
            op.configure(ctx, cpus)
        for op in ops:
            for i, child in enumerate(op.inputs):
                child.downstream = (op, i)

    @property
    def budget(self) -> int:
        return self._budget

    # -- iteration -------------------------------------------------------------------
    def __next__(self) -> RefMeta:
        if self._closed:
            raise StopIteration
        try:
            item = self._next()
        except BaseException as e:
            self.shutdown()
            translated = _translate(e)
            if translated is e:
                raise
            raise translated from e
        if item is None:
            self.shutdown()
            raise StopIteration
        return item

    def _next(self) -> RefMeta | None:
        while True:
            self._route()
            self._update_progress()
            if self._out:
                item = self._out.popleft()
                self.stats.output_rows += int(item[1].num_rows or 0)
                return item
            if self._final.completed() and not self._final.has_output():
                return None
            launched = self._dispatch()
            owners = {ref: op for op in self._ops for ref in op.active_refs()}
            if not owners:
                if launched or self._dispatch(force=True):
                    continue
                self._route()
                if self._out or (self._final.completed() and not self._final.has_output()):
                    continue
                raise RuntimeError(
                    "shoal.data: the executor cannot make progress (no task runs and none can start): "
                    + "; ".join(f"{op.name} completed={op.completed()}" for op in self._ops)
                )
            refs = list(owners)
            # After launching, only collect what is already done; otherwise block a while.
            ready, rest = shoal.wait(refs, num_returns=1, timeout=0 if launched else _WAIT_TIMEOUT)
            if ready and rest:
                more, _ = shoal.wait(rest, num_returns=len(rest), timeout=0)
                ready += more
            for ref in ready:
                op = owners[ref]
                try:
                    op.on_ready(ref)
                except TaskError as e:
                    if not (isinstance(op, MapOperator) and self._skip_errored_block(op, e)):
                        raise

    def _skip_errored_block(self, op: PhysicalOperator, error: TaskError) -> bool:
        """Whether ``DataContext.max_errored_blocks`` lets the run go on without this block."""
        limit = self._ctx.max_errored_blocks
        if limit == 0 or (limit > 0 and self._errored_blocks >= limit):
            return False
        self._errored_blocks += 1
        cause = error.cause if error.cause is not None else error
        log.warning(
            "shoal.data: %s failed on a block and it is left out (%d so far, max_errored_blocks=%d): %s: %s",
            op.name,
            self._errored_blocks,
            limit,
            type(cause).__name__,
            cause,
        )
        return True

    def _route(self) -> None:
        for op in self._ops:
            while op.has_output():
                if isinstance(op, InputDataOperator) and op.downstream is not None:
                    # Existing blocks are handed on as the consumer can take them
                    # (within the budget, but always one), so that queued input
                    # does not crowd out the tasks that work on it.
                    down, index = op.downstream
                    if not down.wants_input(index, self.held_bytes() + _bytes(op.outputs[0][1]) <= self._budget):
                        break
                item = op.pop_output()
                if op is self._final:
                    self._out.append(item)
                else:
                    assert op.downstream is not None
                    down, index = op.downstream
                    down.add_input(item, index)
            if isinstance(op, LimitOperator) and op.satisfied and not op.inputs_done[0]:
                self._cancel_upstream(op)
                op.input_done(0)
            if not op.completion_signalled and op.completed() and not op.has_output():
                op.completion_signalled = True
                op.stats.mark_finished()
                op.on_completed()
                if op.downstream is not None:
                    down, index = op.downstream
                    down.input_done(index)

    def _cancel_upstream(self, op: PhysicalOperator) -> None:
        for child in op.inputs:
            self._cancel_upstream(child)
            if not child.completion_signalled:
                child.cancel()
                child.completion_signalled = True
                child.stats.mark_finished()

    def held_bytes(self) -> int:
        return sum(op.held_bytes() + op.pending_output_bytes() for op in self._ops) + sum(
            _bytes(m) for _, m in self._out
        )

    def _accepts(self, op: PhysicalOperator) -> bool:
        if op.downstream is None:
            return True
        down, index = op.downstream
        return down.accepts_input(index)

    def _reserve_cpus(self) -> None:
        """Tell actor pools how many CPUs the other unfinished operators need (one task each)."""
        pools = [op for op in self._ops if isinstance(op, ActorPoolMapOperator)]
        if not pools:
            return
        needs = {}
        for op in self._ops:
            if op.completion_signalled or op.cancelled or isinstance(op, (InputDataOperator, LimitOperator)):
                continue
            if isinstance(op, MapOperator) and op.local_reads:
                continue
            cpus = getattr(op, "_cpus", 1.0)
            needs[id(op)] = cpus if cpus > 0 else 0.0
        for pool in pools:
            pool.cpus_reserved_by_others = sum(v for k, v in needs.items() if k != id(pool))

    def _dispatch(self, force: bool = False) -> bool:
        self._reserve_cpus()
        launched = False
        held = self.held_bytes()
        self.stats.peak_held_bytes = max(self.stats.peak_held_bytes, held)
        for op in reversed(self._ops):
            while op.has_work() and op.num_active() < op.max_active() and self._accepts(op):
                est = op.est_task_output()
                if not force and held + est > self._budget:
                    break
                before = set(op.active_refs())
                op.dispatch()
                launched = True
                held = self.held_bytes()
                self.stats.peak_held_bytes = max(self.stats.peak_held_bytes, held)
                if force:
                    return True
                new = [r for r in op.active_refs() if r not in before]
                if new and shoal.wait(new, num_returns=1, timeout=0)[0]:
                    # Finished at once (a synchronous backend, or a tiny task): handle
                    # its result before launching more, so that errors stop the run early.
                    return True
        return launched

    def _update_progress(self, force: bool = False) -> None:
        if self._progress.enabled:
            states = []
            for op in self._ops:
                done, total = op.progress()
                states.append((done, total, op.stats.rows))
            self._progress.update(states, force=force)

    def shutdown(self) -> None:
        """Stop every operator: cancel running tasks, kill actor pools, drop queued blocks."""
        if self._closed:
            return
        self._closed = True
        self._update_progress(force=True)
        for op in self._ops:
            try:
                op.shutdown()
            except Exception:  # noqa: BLE001 - best effort while stopping
                pass
            op.stats.mark_finished()
        self._out.clear()
        self.stats.wall_time = time.perf_counter() - self._started

    def __del__(self) -> None:
        try:
            self.shutdown()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _udf_mark(error: BaseException) -> str | None:
    for candidate in (error, getattr(error, "cause", None)):
        mark = getattr(candidate, UDF_MARK, None)
        if mark:
            return str(mark)
    return None


def _translate(error: BaseException) -> BaseException:
    """A user-code failure as UserCodeException naming the operator; other errors unchanged."""
    if isinstance(error, UserCodeException):
        return error
    op = _udf_mark(error)
    if op is None:
        return error
    cause = getattr(error, "cause", None) or error
    detail = getattr(error, "traceback_str", "") or f"{type(cause).__name__}: {cause}"
    return UserCodeException(
        f"the UDF of {op} raised {type(cause).__name__}: {cause}\n\nRemote traceback:\n{detail.rstrip()}",
        op_name=op,
        cause=cause,
    )
