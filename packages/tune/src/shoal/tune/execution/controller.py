"""The trial controller: decisions only, as a state machine (events in, commands out).

The controller owns the trials and consults the search algorithm and the
scheduler. It never touches actors, files or clocks: the runner feeds it
events (a result arrived, a trial failed, the time is now T) and carries out
the commands it returns (start this trial, continue that one, record a
result). Tests drive it with synthetic events and check its decisions.

Trial status transitions::

    PENDING --start--> RUNNING --result/CONTINUE--> RUNNING
    RUNNING --PAUSE--> PAUSED --start--> RUNNING
    RUNNING --STOP / done / stopper--> TERMINATED
    RUNNING --error--> PENDING (retry from checkpoint) | ERROR
    PENDING/PAUSED --stop_trial / time budget--> TERMINATED
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shoal.tune.checkpoint import Checkpoint
from shoal.tune.error import TuneError
from shoal.tune.experiment.trial import CheckpointRecord, Trial
from shoal.tune.schedulers.trial_scheduler import TrialScheduler
from shoal.tune.search.search_algorithm import SearchAlgorithm
from shoal.tune.search.variant_generator import flatten_dict, format_vars
from shoal.tune.stopper import Stopper

__all__ = [
    "CheckpointRegistered",
    "ContinueTrial",
    "ControllerSettings",
    "DeleteCheckpoint",
    "DoneEvent",
    "ErrorEvent",
    "PauseTrial",
    "PausedEvent",
    "RecordError",
    "RecordResult",
    "ResultEvent",
    "SaveTrial",
    "SavedEvent",
    "StartTrial",
    "StopTrial",
    "TimeEvent",
    "TrialController",
    "TrialFinished",
]


# -- events (runner -> controller) ----------------------------------------------


@dataclass
class ResultEvent:
    trial_id: str
    run: int
    result: dict[str, Any]


@dataclass
class DoneEvent:
    """The trial's function returned without a new result."""

    trial_id: str
    run: int


@dataclass
class ErrorEvent:
    trial_id: str
    run: int
    error: BaseException
    traceback: str = ""


@dataclass
class SavedEvent:
    """A checkpoint was written (by a save, a pause or a stop); ``path`` None if nothing was saved."""

    trial_id: str
    path: str | None
    counters: dict[str, Any] = field(default_factory=dict)


@dataclass
class PausedEvent:
    """A pause finished; its checkpoint (if any) comes as ``path``."""

    trial_id: str
    path: str | None
    counters: dict[str, Any] = field(default_factory=dict)


@dataclass
class TimeEvent:
    now: float


# -- commands (controller -> runner) --------------------------------------------


@dataclass
class StartTrial:
    trial: Trial
    run: int
    checkpoint: Checkpoint | None
    counters: dict[str, Any]
    first: bool


@dataclass
class ContinueTrial:
    trial: Trial
    run: int


@dataclass
class SaveTrial:
    trial: Trial


@dataclass
class PauseTrial:
    trial: Trial
    save: bool


@dataclass
class StopTrial:
    """End a trial's run. ``kill``: do not wait for an in-flight step; ``finished``: its trainable already ended."""

    trial: Trial
    save: bool = False
    kill: bool = False
    finished: bool = False


@dataclass
class RecordResult:
    trial: Trial
    result: dict[str, Any]


@dataclass
class RecordError:
    trial: Trial
    retrying: bool


@dataclass
class TrialFinished:
    """A trial reached TERMINATED (not ERROR)."""

    trial: Trial


@dataclass
class DeleteCheckpoint:
    path: str


@dataclass
class CheckpointRegistered:
    """A new checkpoint of a trial is known (reported, saved, paused or at the end)."""

    trial: Trial
    checkpoint: Checkpoint


Command = (
    StartTrial
    | ContinueTrial
    | SaveTrial
    | PauseTrial
    | StopTrial
    | RecordResult
    | RecordError
    | TrialFinished
    | DeleteCheckpoint
    | CheckpointRegistered
)


@dataclass
class ControllerSettings:
    """Everything the controller needs besides the search algorithm and scheduler."""

    trainable_name: str
    experiment_path: str
    id_prefix: str
    capacity: dict[str, float]
    resources_for: Callable[[dict[str, Any]], tuple[dict[str, float], list[dict[str, float]] | None, str]]
    start_time: float
    metric: str | None = None
    mode: str | None = None
    max_concurrent: int | None = None
    max_pending: int = 16
    stopper: Stopper | None = None
    max_failures: int = 0
    fail_fast: bool | str = False
    time_budget_s: float | None = None
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool = False
    class_trainable: bool = False
    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"
    trial_name_creator: Callable[[Trial], str] | None = None
    trial_dirname_creator: Callable[[Trial], str] | None = None
    experiment_date: str = ""


def _fits(need: dict[str, float], used: dict[str, float], capacity: dict[str, float]) -> bool:
    return all(used.get(k, 0.0) + v <= capacity.get(k, 0.0) + 1e-9 for k, v in need.items() if v > 0)


class TrialController:
    """Decides which trials start, continue, pause and stop. See the module docstring."""

    def __init__(self, search_alg: SearchAlgorithm, scheduler: TrialScheduler, settings: ControllerSettings) -> None:
        self.search_alg = search_alg
        self.scheduler = scheduler
        self.settings = settings
        self._trials: list[Trial] = []
        self._live: dict[str, Trial] = {}  # unfinished trials, in creation order
        self._runs: dict[str, int] = {}  # trial_id -> current run number
        self._pausing: set[str] = set()
        self._used: dict[str, float] = {}
        self._running = 0
        self._counter = 0
        self._stopping = False
        self._stalled = False
        self._side_commands: list[Command] = []
        self.fail_error: BaseException | None = None
        self.stop_reason: str | None = None
        self.iteration = 0

    # -- the view schedulers use ---------------------------------------------------

    @property
    def experiment_path(self) -> str:
        return self.settings.experiment_path

    @property
    def no_more_trials(self) -> bool:
        return self._stopping or self._stalled or self.search_alg.is_finished()

    def get_trials(self) -> list[Trial]:
        return list(self._trials)

    def get_live_trials(self) -> list[Trial]:
        return list(self._live.values())

    def has_resources_for_trial(self, trial: Trial) -> bool:
        if trial.trial_id in self._pausing:
            return False  # its checkpoint is still being written
        if self.settings.max_concurrent is not None and self._running >= self.settings.max_concurrent:
            return False
        return _fits(trial.resources, self._used, self.settings.capacity)

    def stop_trial(self, trial: Trial) -> None:
        """Stop a trial that is not the one reporting (for schedulers)."""
        if trial.is_finished():
            return
        if trial.status == Trial.RUNNING:
            self._release(trial)
            self._side_commands.append(StopTrial(trial, kill=False))
        self._terminate(trial, notify_scheduler=False)

    # -- bookkeeping -------------------------------------------------------------

    @property
    def trials(self) -> list[Trial]:
        return self._trials

    def is_finished(self) -> bool:
        if self._live:
            return False
        return self._stopping or self.search_alg.is_finished()

    def _acquire(self, trial: Trial) -> None:
        for k, v in trial.resources.items():
            self._used[k] = self._used.get(k, 0.0) + v
        self._running += 1

    def _release(self, trial: Trial) -> None:
        for k, v in trial.resources.items():
            self._used[k] = self._used.get(k, 0.0) - v
        self._running -= 1

    def _current(self, trial_id: str, run: int) -> Trial | None:
        trial = self._live.get(trial_id)
        if trial is None or trial.status != Trial.RUNNING or self._runs.get(trial_id) != run:
            return None  # a late event of a run that was stopped, killed or restarted
        return trial

    def _terminate(self, trial: Trial, notify_scheduler: bool = True) -> None:
        trial.status = Trial.TERMINATED
        self._live.pop(trial.trial_id, None)
        if trial.last_result:
            trial.last_result["done"] = True
        flat = flatten_dict(trial.last_result)
        if notify_scheduler:
            self.scheduler.on_trial_complete(self, trial, flat)
        self.search_alg.on_trial_complete(trial.trial_id, result=flat or None)
        self._side_commands.append(TrialFinished(trial))

    # -- creating trials -------------------------------------------------------------

    def _create_trial(self) -> Trial | None:
        trial_id = f"{self.settings.id_prefix}_{self._counter:05d}"
        suggestion = self.search_alg.next_config(trial_id)
        if suggestion is None:
            return None
        index = self._counter
        self._counter += 1
        tag_vars = format_vars(suggestion.chosen)
        tag = f"{index}_{tag_vars}" if tag_vars else str(index)
        resources, bundles, strategy = self.settings.resources_for(suggestion.config)
        if not _fits(resources, {}, self.settings.capacity):
            raise TuneError(
                f"a trial needs resources {resources}, more than the cluster has ({self.settings.capacity}); "
                "lower the trial's resources (tune.with_resources) or add resources to the cluster"
            )
        trial = Trial(
            self.settings.trainable_name,
            suggestion.config,
            trial_id,
            experiment_tag=tag,
            evaluated_params={"/".join(map(str, p)): v for p, v in suggestion.chosen.items()},
            resources=resources,
            bundles=bundles,
            strategy=strategy,
        )
        if self.settings.trial_name_creator is not None:
            trial.custom_trial_name = str(self.settings.trial_name_creator(trial))
        if self.settings.trial_dirname_creator is not None:
            trial.dir_name = str(self.settings.trial_dirname_creator(trial))
        else:
            trial.dir_name = _dir_name(trial, self.settings.experiment_date)
        trial.path = os.path.join(self.settings.experiment_path, trial.dir_name)
        self._trials.append(trial)
        self._live[trial_id] = trial
        self.scheduler.on_trial_add(self, trial)
        return trial

    def _num_pending(self) -> int:
        return sum(1 for t in self._live.values() if t.status == Trial.PENDING)

    # -- the step: fill free slots ---------------------------------------------------

    def _start(self, trial: Trial) -> StartTrial:
        first = trial.status == Trial.PENDING and trial.num_results == 0 and trial.num_failures == 0
        if trial.status == Trial.PAUSED:
            self.search_alg.on_unpause(trial.trial_id)
        if trial.exploit_from is not None:
            checkpoint, counters = trial.exploit_from
        else:
            checkpoint, counters = trial.restore_point()
        trial.status = Trial.RUNNING
        run = self._runs.get(trial.trial_id, 0) + 1
        self._runs[trial.trial_id] = run
        self._acquire(trial)
        return StartTrial(trial, run, checkpoint, counters, first)

    def fill(self) -> list[Command]:
        """Start trials while there are free resources and trials to run."""
        commands: list[Command] = []
        if self._stopping:
            return self._drain_side(commands)
        while True:
            while self._num_pending() < self.settings.max_pending and not self.search_alg.is_finished():
                if self._create_trial() is None:
                    break
            trial = self.scheduler.choose_trial_to_run(self)
            if trial is None or trial.is_finished() or trial.status == Trial.RUNNING:
                break
            if not self.has_resources_for_trial(trial):
                break
            commands.append(self._start(trial))
        if not commands and self._running == 0 and self._live and not self._pausing and not self._stalled:
            # Nothing runs and nothing could start: let schedulers treat the search as over
            # (HyperBand then settles brackets that will never fill) and try once more.
            self._stalled = True
            more = self.fill()
            if not more and self._running == 0 and self._live and not self._pausing:
                names = ", ".join(f"{t} ({t.status})" for t in list(self._live.values())[:5])
                raise TuneError(
                    "the experiment cannot make progress: no trial is running and the scheduler "
                    f"chose none of the waiting trials ({names}); check the scheduler and the "
                    "search algorithm's concurrency limits"
                )
            commands.extend(more)
        if commands:
            self._stalled = False
        return self._drain_side(commands)

    def _drain_side(self, commands: list[Command]) -> list[Command]:
        # Commands raised on the side (trials finishing, schedulers stopping other trials)
        # follow the ones that caused them, so a trial's last result is recorded first.
        if self._side_commands:
            commands = commands + self._side_commands
            self._side_commands = []
        return commands

    # -- events -----------------------------------------------------------------------

    def handle(self, event: Any) -> list[Command]:
        """Apply one event; returns the commands to carry out, in order."""
        self.iteration += 1
        if isinstance(event, ResultEvent):
            commands = self._on_result(event)
        elif isinstance(event, DoneEvent):
            commands = self._on_done(event)
        elif isinstance(event, ErrorEvent):
            commands = self._on_error(event)
        elif isinstance(event, (SavedEvent, PausedEvent)):
            commands = self._on_saved(event)
        elif isinstance(event, TimeEvent):
            commands = self._on_time(event)
        else:
            raise TypeError(f"unknown event {event!r}")
        return self._drain_side(commands) + self.fill()

    def _on_result(self, event: ResultEvent) -> list[Command]:
        trial = self._current(event.trial_id, event.run)
        if trial is None:
            return []
        result = event.result
        trial.update_last_result(result)
        # Stoppers, schedulers and searchers see the result flattened, as in Ray, so a metric
        # may name a nested value ("env_runners/episode_return_mean").
        flat = flatten_dict(result)
        commands: list[Command] = []
        name = result.get("checkpoint_dir_name")
        if name:
            commands += self._register_checkpoint(trial, os.path.join(trial.path or "", name), dict(result))
        stopper = self.settings.stopper
        if result.get("done") or (stopper is not None and stopper(trial.trial_id, flat)):
            decision = TrialScheduler.STOP
        else:
            decision = self.scheduler.on_trial_result(self, trial, flat)
        self.search_alg.on_trial_result(trial.trial_id, flat)
        if decision == TrialScheduler.STOP:
            result["done"] = True
        commands.append(RecordResult(trial, result))
        if trial.status != Trial.RUNNING:
            return commands  # the scheduler already acted on it (NOOP after stop_trial)
        if decision == TrialScheduler.STOP:
            self._release(trial)
            save = self.settings.checkpoint_at_end and self.settings.class_trainable
            commands.append(StopTrial(trial, save=save))
            self._terminate(trial)
        elif decision == TrialScheduler.PAUSE:
            self._release(trial)
            trial.status = Trial.PAUSED
            self.search_alg.on_pause(trial.trial_id)
            save = trial.exploit_from is None
            if save:
                self._pausing.add(trial.trial_id)
            commands.append(PauseTrial(trial, save=save))
        elif decision in (TrialScheduler.CONTINUE, TrialScheduler.NOOP):
            freq = self.settings.checkpoint_frequency
            periodic = (
                self.settings.class_trainable and freq and trial.last_result.get("training_iteration", 0) % freq == 0
            )
            if trial.save_requested or periodic:
                trial.save_requested = False
                commands.append(SaveTrial(trial))
            commands.append(ContinueTrial(trial, event.run))
        else:
            raise TuneError(f"{type(self.scheduler).__name__}.on_trial_result returned {decision!r}")
        if stopper is not None and stopper.stop_all():
            commands += self.stop_all("a stopper ended the experiment")
        return commands

    def _on_done(self, event: DoneEvent) -> list[Command]:
        trial = self._current(event.trial_id, event.run)
        if trial is None:
            return []
        self._release(trial)
        self._terminate(trial)
        return [StopTrial(trial, finished=True)]

    def _on_error(self, event: ErrorEvent) -> list[Command]:
        trial = self._current(event.trial_id, event.run)
        if trial is None:
            return []
        self._release(trial)
        trial.num_failures += 1
        trial.error = event.error
        trial.error_msg = event.traceback or repr(event.error)
        max_failures = self.settings.max_failures
        # The worker already dropped the failed trainable; StopTrial frees it for other trials.
        released = StopTrial(trial, finished=True)
        if (max_failures < 0 or trial.num_failures <= max_failures) and not self._stopping:
            trial.status = Trial.PENDING  # restarts from its latest checkpoint
            return [released, RecordError(trial, retrying=True)]
        trial.status = Trial.ERROR
        self._live.pop(trial.trial_id, None)
        self.scheduler.on_trial_error(self, trial)
        self.search_alg.on_trial_complete(trial.trial_id, result=flatten_dict(trial.last_result) or None, error=True)
        commands: list[Command] = [released, RecordError(trial, retrying=False)]
        if self.settings.fail_fast:
            if self.settings.fail_fast == "raise":
                self.fail_error = event.error
            commands += self.stop_all(f"trial {trial} failed and fail_fast is set")
        return commands

    def _on_saved(self, event: SavedEvent | PausedEvent) -> list[Command]:
        self._pausing.discard(event.trial_id)
        trial = next((t for t in self._trials if t.trial_id == event.trial_id), None)
        if trial is None or event.path is None:
            return []
        metrics = dict(trial.last_result)
        if event.counters:
            metrics["training_iteration"] = event.counters.get("iteration", metrics.get("training_iteration", 0))
            metrics["time_total_s"] = event.counters.get("time_total", metrics.get("time_total_s", 0.0))
        return self._register_checkpoint(trial, event.path, metrics)

    def _on_time(self, event: TimeEvent) -> list[Command]:
        budget = self.settings.time_budget_s
        if budget is not None and not self._stopping and event.now - self.settings.start_time >= budget:
            return self.stop_all(f"the time budget of {budget} s ran out")
        return []

    def stop_all(self, reason: str) -> list[Command]:
        """End the experiment: running trials are stopped, waiting ones dropped or terminated."""
        if self._stopping:
            return []
        self._stopping = True
        self.stop_reason = reason
        self.search_alg.set_finished()
        commands: list[Command] = []
        for trial in list(self._live.values()):
            if trial.status == Trial.RUNNING:
                self._release(trial)
                commands.append(StopTrial(trial, kill=True))
                self._terminate(trial)
            elif trial.status == Trial.PAUSED or trial.num_results:
                self._terminate(trial)
            else:
                # Never started: it was never evaluated, so it leaves the experiment.
                self._live.pop(trial.trial_id, None)
                self._trials.remove(trial)
                self.scheduler.on_trial_remove(self, trial)
        return commands

    # -- checkpoints ---------------------------------------------------------------------

    def _register_checkpoint(self, trial: Trial, path: str, metrics: dict[str, Any]) -> list[Command]:
        name = os.path.basename(path)
        index = (
            int(name.rsplit("_", 1)[1])
            if name.startswith("checkpoint_") and name[11:].isdigit()
            else trial.checkpoint_index
        )
        trial.checkpoint_index = max(trial.checkpoint_index, index + 1)
        if any(r.checkpoint.path == path for r in trial.checkpoints):
            return []
        checkpoint = Checkpoint(path)
        trial.checkpoints.append(CheckpointRecord(checkpoint, metrics, index))
        trial.exploit_from = None  # its own checkpoints are newer than a donor's now
        commands: list[Command] = [CheckpointRegistered(trial, checkpoint)]
        commands.extend(DeleteCheckpoint(p) for p in self._prune(trial))
        return commands

    def _prune(self, trial: Trial) -> list[str]:
        keep = self.settings.num_to_keep
        if keep is None or len(trial.checkpoints) <= keep:
            return []
        latest = trial.checkpoints[-1]
        attr = self.settings.checkpoint_score_attribute
        if attr is None:
            doomed = trial.checkpoints[:-keep]
        else:
            sign = 1.0 if self.settings.checkpoint_score_order == "max" else -1.0

            def score(r: CheckpointRecord) -> float:
                value = r.metrics.get(attr, flatten_dict(r.metrics).get(attr))
                return sign * float(value) if isinstance(value, (int, float)) else -math.inf

            ranked = sorted(trial.checkpoints, key=score, reverse=True)
            kept = set(map(id, ranked[:keep])) | {id(latest)}
            doomed = [r for r in trial.checkpoints if id(r) not in kept]
        trial.checkpoints = [r for r in trial.checkpoints if r not in doomed]
        return [r.checkpoint.path for r in doomed]

    # -- restore ----------------------------------------------------------------------------

    def prepare_resume(self, resume_unfinished: bool, resume_errored: bool, restart_errored: bool) -> None:
        """After loading saved state: decide what happens to the trials that had not finished."""
        self._pausing.clear()
        self._used.clear()
        self._running = 0
        self._stopping = False
        self._stalled = False
        for trial in self._trials:
            if trial.status == Trial.ERROR and (resume_errored or restart_errored):
                if restart_errored:
                    trial.checkpoints = []
                    trial.exploit_from = None
                trial.status = Trial.PENDING
                trial.num_failures = 0
                trial.error = None
                trial.error_msg = None
                self._live[trial.trial_id] = trial
            elif trial.status in (Trial.RUNNING, Trial.PENDING, Trial.PAUSED):
                if resume_unfinished:
                    trial.status = Trial.PAUSED if trial.status == Trial.PAUSED else Trial.PENDING
                else:
                    trial.status = Trial.TERMINATED
                    self._live.pop(trial.trial_id, None)
        if not resume_unfinished:
            self.search_alg.set_finished()
        self._live = {t.trial_id: t for t in self._trials if t.trial_id in self._live}


def _dir_name(trial: Trial, date: str) -> str:
    text = f"{trial.default_name()}_{trial.experiment_tag}"
    text = text[:130]
    for bad in '/\\:*?"<>| ':
        text = text.replace(bad, "_")
    return f"{text}_{date}" if date else text
