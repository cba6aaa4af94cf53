# mypy: disable-error-code="misc"
# (mixin methods annotate self as the NodeRuntime they are mixed into)
"""Short tasks queued on busy workers, so that a worker never waits a round trip for its next task.

When every CPU is taken, a task may be sent to a worker that is running a
task of the same kind (same resources, runtime environment and scheduling)
instead of waiting in the node's queue; it runs there next, under the
resources its predecessor held (as Ray runs tasks on a leased worker). Only
functions whose recent runs were short are queued this way, at most
``PIPELINE_DEPTH`` per worker, so a long task holds back little. A worker
that blocks in ``get``/``wait`` gives its queued tasks back (RECALL /
RECALLED): one of them may be what it waits for; so does a worker whose task
runs long when another worker of the kind goes idle (work stealing).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from shoal._runtime import protocol as P
from shoal._runtime.procs import WorkerProc, send_and_wake
from shoal._runtime.tasks import RUNNING, Task
from shoal._runtime.wire import STREAM, TASK
from shoal.exceptions import TaskCancelledError

if TYPE_CHECKING:
    from shoal._runtime.node import NodeRuntime

__all__ = ["Pipelining", "PIPELINE_DEPTH", "PIPELINE_MAX_S"]

#: Tasks queued on one worker behind the one it runs.
PIPELINE_DEPTH = 2
#: A function's tasks are queued on busy workers only while its runs average less than this.
PIPELINE_MAX_S = 0.005
_EWMA = 0.2  # weight of the latest run in a function's average
_STUCK_S = 10 * PIPELINE_MAX_S  # a task running this long holds its queued tasks back: steal them
_MAX_FUNCTIONS = 4096  # run-time averages kept (programs that make functions on the fly)


class Pipelining:
    """Mixed into NodeRuntime: queueing tasks on busy workers, and taking them back."""

    def pipelinable(self: NodeRuntime, task: Task) -> bool:
        wire = task.wire
        if wire.kind != TASK or wire.scheduling is not None or wire.max_calls or wire.num_returns == STREAM:
            return False
        avg = self.fn_time.get(wire.fn_id)  # type: ignore[arg-type]
        return avg is not None and avg < PIPELINE_MAX_S

    def pipeline_target(self: NodeRuntime, task: Task) -> WorkerProc | None:
        """A busy worker that can take ``task`` next, or None."""
        workers = self.pipe_workers.get(task.queue_key)
        if not workers or not self.pipelinable(task):
            return None
        best = None
        now = time.monotonic()
        for w in workers:
            if w.blocked or w.retire or w.state != "busy" or len(w.queued) >= PIPELINE_DEPTH:
                continue
            # Nothing waits behind a task that is not short itself (on average, and this time).
            if w.task is None or not self.pipelinable(w.task) or now - w.task.started > _STUCK_S:
                continue
            if best is None or len(w.queued) < len(best.queued):
                best = w
        return best

    def pipeline(self: NodeRuntime, task: Task, w: WorkerProc) -> None:
        """Send ``task`` to ``w`` to run after what it runs now."""
        task.state = RUNNING
        task.worker = w
        task.grant = None
        w.queued.append(task)
        self.send_exec(task, w, w.grant)  # type: ignore[arg-type]

    def began(self: NodeRuntime, task: Task, w: WorkerProc) -> None:
        """``task`` is now the one ``w`` runs: list ``w`` as able to take tasks of its kind queued."""
        task.started = time.monotonic()
        wire = task.wire
        key = task.queue_key if wire.kind == TASK and wire.scheduling is None else None
        if w.pipe_key != key:
            self.leave_pipeline(w)
            if key is not None:
                w.pipe_key = key
                self.pipe_workers.setdefault(key, []).append(w)

    def leave_pipeline(self: NodeRuntime, w: WorkerProc) -> None:
        key = w.pipe_key
        if key is None:
            return
        w.pipe_key = None
        workers = self.pipe_workers.get(key)
        if workers is not None:
            try:
                workers.remove(w)
            except ValueError:
                pass
            if not workers:
                del self.pipe_workers[key]

    def record_run_time(self: NodeRuntime, task: Task) -> None:
        fn_id = task.wire.fn_id
        if fn_id is None or not task.started:
            return
        took = time.monotonic() - task.started
        avg = self.fn_time.get(fn_id)
        if avg is None and len(self.fn_time) >= _MAX_FUNCTIONS:
            del self.fn_time[next(iter(self.fn_time))]  # the oldest entry
        self.fn_time[fn_id] = took if avg is None else avg + _EWMA * (took - avg)

    def next_queued(self: NodeRuntime, w: WorkerProc) -> bool:
        """``w`` finished its task: make the first queued one current (keeping the grant); False if none."""
        if not w.queued:
            return False
        task = w.queued.popleft()
        grant = w.grant
        if grant is not None and grant.lent_cpu:
            self.resources.reclaim_cpu(grant)
        w.blocked = 0
        w.task = task
        task.grant = grant
        w.last_task_name = task.name
        self.began(task, w)
        return True

    def steal_for_idle(self: NodeRuntime, idle: WorkerProc) -> None:
        """``idle`` has nothing to run: take back tasks queued behind a task that turned out long.

        Queued tasks were expected to wait a few milliseconds; one whose predecessor has run
        much longer than that would otherwise wait for it while a CPU is free.
        """
        workers = self.pipe_workers.get(idle.pipe_key)
        if not workers:
            return
        now = time.monotonic()
        for w in workers:
            if w is idle or not w.queued or w.task is None or now - w.task.started <= _STUCK_S:
                continue
            if now - w.woken_at > _STUCK_S:  # one signal at a time: it may be slow to answer
                w.woken_at = now
                self.recall_queued(w, wake=True)

    def recall_queued(self: NodeRuntime, w: WorkerProc, wake: bool = False) -> None:
        """Ask ``w`` for its queued tasks back (those it has not started).

        A worker blocked in ``get`` reads the request at once; one running user code
        reads it only when signalled, as for a cancel (``wake``).
        """
        if not w.queued:
            return
        msg = (P.RECALL, [t.task_id for t in w.queued])
        if wake:
            send_and_wake(w, msg)
        else:
            w.conn.send(msg)

    def _on_recalled(self: NodeRuntime, w: WorkerProc, msg: tuple[Any, ...]) -> None:
        if w.kind != "worker":
            return
        ids = set(msg[1])
        for task in [t for t in w.queued if t.task_id in ids]:
            w.queued.remove(task)
            self.requeue_unstarted(task, w)
        self.dispatch()

    def requeue_unstarted(self: NodeRuntime, task: Task, w: WorkerProc) -> None:
        """A task that was queued on ``w`` and never started goes back to the node's queue."""
        if self.tasks.get(task.task_id) is not task or task.worker is not w:
            return  # already failed or finished some other way
        if task.cancelled:
            self.fail_task(task, TaskCancelledError(f"task {task.name} was cancelled", task_id=task.task_id.hex()))
            return
        self._requeue(task)
