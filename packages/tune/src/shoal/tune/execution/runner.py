"""The runner: the I/O shell around the trial controller.

It keeps a pool of :class:`~shoal.tune.execution.worker.TrialWorker` actors
(one per concurrent trial, reused from trial to trial), turns controller
commands into actor calls, waits on all outstanding calls at once with
``shoal.wait`` and feeds what comes back to the controller as events. It
also writes trial files, calls user callbacks, draws the live table and
saves the experiment state for ``Tuner.restore``.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import shoal
from shoal.exceptions import TaskError
from shoal.tune.callback import Callback
from shoal.tune.error import TuneError
from shoal.tune.execution import controller as c
from shoal.tune.execution._logger import TrialLogger
from shoal.tune.execution._progress import TrialTable
from shoal.tune.execution._state import save_state
from shoal.tune.execution.worker import TrialWorker
from shoal.tune.experiment.trial import Trial

__all__ = ["TrialRunner"]

# Seconds between experiment-state snapshots while trials change (and always at the end).
STATE_PERIOD_S = 1.0


@dataclass
class _Worker:
    handle: Any
    shape: tuple[Any, ...]
    resources: dict[str, float]
    trial_id: str | None = None
    pending: int = 0  # calls in flight
    retire: bool = False
    dead: bool = False
    pg: Any = None


@dataclass
class _Call:
    worker: _Worker
    trial_id: str
    run: int
    kind: str  # "step", "save", "pause", "stop"
    extra: dict[str, Any] = field(default_factory=dict)


def _shape(trial: Trial) -> tuple[Any, ...]:
    bundles = tuple(tuple(sorted(b.items())) for b in trial.bundles) if trial.bundles else ()
    return (tuple(sorted(trial.resources.items())), bundles)


class TrialRunner:
    """Runs a controller's decisions on shoal actors until the experiment ends."""

    def __init__(
        self,
        controller: c.TrialController,
        trainable: Any,
        experiment_name: str,
        experiment_path: str,
        state_file: str,
        state_extra: dict[str, Any],
        callbacks: list[Callback],
        verbose: int,
        reuse_actors: bool,
        stopper: Any,
    ) -> None:
        self.controller = controller
        self._trainable = trainable
        self._experiment_name = experiment_name
        self._experiment_path = experiment_path
        self._state_file = state_file
        self._state_extra = state_extra
        self._callbacks = callbacks
        self._reuse = reuse_actors
        self._stopper = stopper
        self._logger = TrialLogger()
        self._table = TrialTable(verbose, controller.settings.metric)
        self._workers: list[_Worker] = []
        self._by_trial: dict[str, _Worker] = {}
        self._calls: dict[Any, _Call] = {}
        self._worker_cls = shoal.remote(TrialWorker)
        self._trainable_ref: Any = None
        self._dirty = True
        self._last_save = 0.0
        self._started: set[str] = set()

    # -- workers ---------------------------------------------------------------------

    def _reserved(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for w in self._workers:
            for k, v in w.resources.items():
                used[k] = used.get(k, 0.0) + v
        return used

    def _acquire_worker(self, trial: Trial) -> _Worker:
        shape = _shape(trial)
        for w in self._workers:
            if w.trial_id is None and not w.dead and w.shape == shape:
                w.trial_id = trial.trial_id
                return w
        # A new worker: first make room by retiring idle workers of other shapes.
        capacity = self.controller.settings.capacity
        for w in list(self._workers):
            used = self._reserved()
            if all(used.get(k, 0.0) + v <= capacity.get(k, 0.0) + 1e-9 for k, v in trial.resources.items()):
                break
            if w.trial_id is None and w.shape != shape:
                self._kill(w)
        used = self._reserved()
        if not all(used.get(k, 0.0) + v <= capacity.get(k, 0.0) + 1e-9 for k, v in trial.resources.items()):
            # The controller only starts trials that fit, so busy workers never hold this much.
            raise TuneError(f"internal error: no room for a worker for {trial} (workers hold {used})")
        worker = self._create_worker(trial, shape)
        worker.trial_id = trial.trial_id
        self._workers.append(worker)
        return worker

    def _create_worker(self, trial: Trial, shape: tuple[Any, ...]) -> _Worker:
        if self._trainable_ref is None:
            # Shipped once through the object store, not once per worker.
            self._trainable_ref = shoal.put(self._trainable)
        res = dict(trial.resources)
        options: dict[str, Any] = {"num_cpus": res.pop("CPU", 0.0), "max_restarts": 0}
        if res.get("GPU"):
            options["num_gpus"] = res.pop("GPU")
        else:
            res.pop("GPU", None)
        if res.get("memory"):
            options["memory"] = res.pop("memory")
        else:
            res.pop("memory", None)
        if res:
            options["resources"] = res
        pg = None
        if trial.bundles:
            from shoal.util.placement_group import placement_group
            from shoal.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            head = dict(trial.bundles[0])
            # An empty head bundle (Ray's convention for "the trainable itself needs nothing")
            # cannot be reserved: the group holds the other bundles and the worker floats in it.
            bundles = trial.bundles if head else trial.bundles[1:]
            pg = placement_group(bundles, strategy=trial.strategy)
            options = {"num_cpus": head.pop("CPU", 0.0), "max_restarts": 0}
            if head.get("GPU"):
                options["num_gpus"] = head.pop("GPU")
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=pg,
                placement_group_bundle_index=0 if trial.bundles[0] else -1,
                placement_group_capture_child_tasks=True,
            )
        handle = self._worker_cls.options(**options).remote(
            self._trainable_ref, self._experiment_name, self._experiment_path
        )
        return _Worker(handle=handle, shape=shape, resources=dict(trial.resources), pg=pg)

    def _kill(self, worker: _Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        if worker.trial_id is not None and self._by_trial.get(worker.trial_id) is worker:
            self._by_trial.pop(worker.trial_id, None)
        worker.dead = True
        try:
            shoal.kill(worker.handle)
        except Exception:  # noqa: BLE001 - already gone
            pass
        if worker.pg is not None:
            from shoal.util.placement_group import remove_placement_group

            try:
                remove_placement_group(worker.pg)
            except Exception:  # noqa: BLE001
                pass

    def _release_worker(self, trial_id: str) -> _Worker | None:
        worker = self._by_trial.pop(trial_id, None)
        if worker is not None:
            worker.trial_id = None
            if not self._reuse:
                worker.retire = True
                if worker.pending == 0:
                    self._kill(worker)
        return worker

    def _call(self, worker: _Worker, method: str, args: tuple[Any, ...], call: _Call) -> None:
        ref = getattr(worker.handle, method).remote(*args)
        worker.pending += 1
        self._calls[ref] = call

    # -- commands ----------------------------------------------------------------------

    def _execute(self, commands: list[Any]) -> None:
        for cmd in commands:
            if isinstance(cmd, c.StartTrial):
                self._start(cmd)
            elif isinstance(cmd, c.ContinueTrial):
                worker = self._by_trial[cmd.trial.trial_id]
                self._call(worker, "train", (), _Call(worker, cmd.trial.trial_id, cmd.run, "step"))
            elif isinstance(cmd, c.SaveTrial):
                worker = self._by_trial[cmd.trial.trial_id]
                self._call(worker, "save", (), _Call(worker, cmd.trial.trial_id, 0, "save"))
            elif isinstance(cmd, c.PauseTrial):
                pausing = self._by_trial.get(cmd.trial.trial_id)
                if pausing is not None:
                    self._call(pausing, "pause", (cmd.save,), _Call(pausing, cmd.trial.trial_id, 0, "pause"))
                    self._release_worker(cmd.trial.trial_id)
            elif isinstance(cmd, c.StopTrial):
                self._stop(cmd)
            elif isinstance(cmd, c.RecordResult):
                self._logger.on_result(cmd.trial, cmd.result)
                self._table.result_line(cmd.trial, cmd.result)
                for cb in self._callbacks:
                    cb.on_trial_result(self.controller.iteration, self.controller.trials, cmd.trial, cmd.result)
                self._dirty = True
            elif isinstance(cmd, c.RecordError):
                self._logger.on_error(cmd.trial)
                for cb in self._callbacks:
                    hook = cb.on_trial_recover if cmd.retrying else cb.on_trial_error
                    hook(self.controller.iteration, self.controller.trials, cmd.trial)
                self._dirty = True
            elif isinstance(cmd, c.TrialFinished):
                self._logger.on_finish(cmd.trial)
                for cb in self._callbacks:
                    cb.on_trial_complete(self.controller.iteration, self.controller.trials, cmd.trial)
                self._dirty = True
            elif isinstance(cmd, c.DeleteCheckpoint):
                shutil.rmtree(cmd.path, ignore_errors=True)
            elif isinstance(cmd, c.CheckpointRegistered):
                for cb in self._callbacks:
                    cb.on_checkpoint(self.controller.iteration, self.controller.trials, cmd.trial, cmd.checkpoint)
                self._dirty = True
            else:
                raise TypeError(f"unknown command {cmd!r}")

    def _start(self, cmd: c.StartTrial) -> None:
        trial = cmd.trial
        if trial.trial_id not in self._started and not os.path.exists(os.path.join(trial.path or "", "params.json")):
            self._logger.on_start(trial)
        first = trial.trial_id not in self._started and cmd.checkpoint is None
        self._started.add(trial.trial_id)
        worker = self._acquire_worker(trial)
        self._by_trial[trial.trial_id] = worker
        spec = {
            "trial_id": trial.trial_id,
            "trial_name": str(trial),
            "trial_dir": trial.path,
            "config": trial.config,
            "resources": dict(trial.resources),
            "bundles": [dict(b) for b in trial.bundles] if trial.bundles else None,
            "strategy": trial.strategy,
            "checkpoint": cmd.checkpoint.path if cmd.checkpoint is not None else None,
            "counters": cmd.counters,
            "checkpoint_index": trial.checkpoint_index,
        }
        trial.start_time = trial.start_time or time.time()
        self._call(worker, "start", (spec,), _Call(worker, trial.trial_id, cmd.run, "step"))
        for cb in self._callbacks:
            hook = cb.on_trial_start if first else cb.on_trial_restore
            hook(self.controller.iteration, self.controller.trials, trial)
        self._dirty = True

    def _stop(self, cmd: c.StopTrial) -> None:
        trial_id = cmd.trial.trial_id
        worker = self._by_trial.get(trial_id)
        if worker is None:
            return
        if cmd.kill:
            self._kill(worker)
            return
        if cmd.finished and not cmd.save:
            self._release_worker(trial_id)
            return
        self._call(worker, "stop", (cmd.save,), _Call(worker, trial_id, 0, "stop"))
        self._release_worker(trial_id)

    # -- results -------------------------------------------------------------------------

    def _to_event(self, ref: Any, call: _Call) -> Any:
        worker = call.worker
        worker.pending -= 1
        try:
            value = shoal.get(ref)
        except Exception as e:  # noqa: BLE001 - the worker died or the call failed
            self._kill(worker)
            if call.kind == "step":
                return c.ErrorEvent(call.trial_id, call.run, e, f"{type(e).__name__}: {e}")
            if call.kind == "pause":
                return c.PausedEvent(call.trial_id, None)
            return None
        if worker.retire and worker.pending == 0 and worker.trial_id is None:
            self._kill(worker)
        kind = value[0]
        if call.kind == "step":
            if kind == "result":
                return c.ResultEvent(call.trial_id, call.run, value[1])
            if kind == "done":
                return c.DoneEvent(call.trial_id, call.run)
            if kind == "error":
                _, exc, tb = value
                if tb:
                    _add_note(exc, tb)
                return c.ErrorEvent(call.trial_id, call.run, _task_error(exc, tb), tb)
        if call.kind in ("pause", "stop") and not value[-1]:
            self._kill(worker)  # the trainable's thread did not end; do not reuse this process
        # A failing save leaves the trial with its previous checkpoint.
        path, counters = (None, {}) if kind == "error" else (value[1], value[2])
        if call.kind == "pause":
            return c.PausedEvent(call.trial_id, path, counters)
        return c.SavedEvent(call.trial_id, path, counters) if path is not None else None

    def _poll(self, timeout: float | None) -> list[Any]:
        if not self._calls:
            return []
        refs = list(self._calls)
        ready, _ = shoal.wait(refs, num_returns=1, timeout=timeout)
        if not ready:
            return []
        if len(refs) > 1:
            # Take everything that is ready now, not just the first.
            ready, _ = shoal.wait(refs, num_returns=len(refs), timeout=0)
        events = []
        for ref in ready:
            call = self._calls.pop(ref)
            event = self._to_event(ref, call)
            if event is not None:
                events.append(event)
        return events

    # -- the loop ------------------------------------------------------------------------

    def _snapshot(self, now: float, force: bool = False) -> None:
        if not force and (not self._dirty or now - self._last_save < STATE_PERIOD_S):
            return
        ctl = self.controller
        state = {
            "trials": ctl.trials,
            "search_alg": ctl.search_alg,
            "scheduler": ctl.scheduler,
            "stopper": self._stopper,
            "counter": ctl._counter,
            "runs": ctl._runs,
            **self._state_extra,
        }
        runner_data = {
            "experiment_name": self._experiment_name,
            "timestamp": now,
            "finished": ctl.is_finished(),
            "stop_reason": ctl.stop_reason,
        }
        save_state(self._state_file, state, ctl.trials, runner_data)
        self._last_save = now
        self._dirty = False

    def run(self) -> None:
        """Run until every trial has ended; the controller's trials hold the outcome."""
        ctl = self.controller
        start = ctl.settings.start_time
        for cb in self._callbacks:
            cb.setup(stop=self._stopper, num_samples=self._state_extra.get("num_samples"), total_num_samples=None)
        try:
            self._execute(ctl.fill())
            while True:
                if ctl.is_finished():
                    # Let final stops and saves land (checkpoint_at_end), but never hang on them.
                    events = self._poll(30.0) if self._calls else []
                    if not events:
                        break
                    for event in events:
                        self._execute(ctl.handle(event))
                    continue
                if not self._calls:
                    raise TuneError("internal error: no trial is running and the experiment is not over")
                now = time.time()
                for cb in self._callbacks:
                    cb.on_step_begin(ctl.iteration, ctl.trials)
                for event in self._poll(self._timeout(now)):
                    self._execute(ctl.handle(event))
                now = time.time()
                self._execute(ctl.handle(c.TimeEvent(now)))
                for cb in self._callbacks:
                    cb.on_step_end(ctl.iteration, ctl.trials)
                self._table.maybe_draw(ctl.trials, now - start, now)
                self._snapshot(now)
        except BaseException:
            # Interrupted or failed: keep what is known, so Tuner.restore can pick it up.
            self._shutdown_workers()
            try:
                self._snapshot(time.time(), force=True)
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            raise
        self._shutdown_workers()
        now = time.time()
        self._snapshot(now, force=True)
        self._table.maybe_draw(ctl.trials, now - start, now, force=True)
        for cb in self._callbacks:
            cb.on_experiment_end(ctl.trials)

    def _timeout(self, now: float) -> float | None:
        limits = []
        budget = self.controller.settings.time_budget_s
        if budget is not None:
            limits.append(max(0.0, self.controller.settings.start_time + budget - now))
        if self._table.enabled:
            limits.append(1.0)
        if self._dirty:
            limits.append(max(0.0, self._last_save + STATE_PERIOD_S - now))
        return min(limits) if limits else None

    def _shutdown_workers(self) -> None:
        for w in list(self._workers):
            self._kill(w)
        self._calls.clear()


def _task_error(exc: BaseException, tb: str) -> BaseException:
    """The trainable's exception as a task error that is also an instance of its class, as in Ray."""
    if isinstance(exc, TaskError) or not isinstance(exc, Exception):
        return exc
    return TaskError("Trainable.train", tb, exc).as_instanceof_cause()


def _add_note(exc: BaseException, tb: str) -> None:
    note = f"Trial traceback:\n{tb}"
    if note not in getattr(exc, "__notes__", []):
        exc.add_note(note)


def check_capacity(capacity: dict[str, float]) -> None:
    if capacity.get("CPU", 0.0) <= 0 and capacity.get("GPU", 0.0) <= 0:
        raise TuneError(f"the cluster has no CPUs or GPUs to run trials on ({capacity})")
