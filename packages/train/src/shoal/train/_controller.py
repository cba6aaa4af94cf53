"""The driver's side of ``fit()``: attempts, polling, checkpoint bookkeeping and restarts.

An attempt starts a worker group, hands every worker its rank, checkpoint
and dataset shard, then long-polls the workers. A step counts once every
rank has reported it. The first failure of any worker (its process died, or
its function raised) ends the attempt: after a short grace period, in which
the failures of other ranks are collected too, the whole group is killed and,
within ``FailureConfig.max_failures``, a new one resumes from the latest
checkpoint.

Run as a tune trial (``tune_link``), the run lives in the trial's folder and
each step goes to ``tune.report``; tune keeps the checkpoint books, writes the
results and retries failed trials (its own ``FailureConfig``), so the run
itself writes no snapshot or results file and does not restart its group.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any

import shoal
from shoal.exceptions import ActorError
from shoal.train import _storage
from shoal.train._checkpoint_manager import CheckpointManager
from shoal.train._worker import ERRORED, FINISHED
from shoal.train._worker_group import WorkerGroup, check_resources
from shoal.train.backend import BackendConfig, WorkerGroupInfo
from shoal.train.checkpoint import Checkpoint
from shoal.train.config import CheckpointConfig, RunConfig, ScalingConfig
from shoal.train.context import TrainContext, TrainRunContext
from shoal.train.data_config import DataConfig, shard_datasets
from shoal.train.exceptions import WorkerDiedError, WorkerGroupError
from shoal.train.result import Result, result_from

if TYPE_CHECKING:
    from shoal.train._tune import TuneLink

logger = logging.getLogger("shoal.train")

__all__ = ["TrainController"]

# How long one long poll waits in a worker before returning empty-handed.
_POLL_S = 5.0
# After the first failure, how long to wait for other ranks' failures before killing the group.
_FAILURE_GRACE_S = 0.5


class _Progress:
    """One console line per step, when stdout is a terminal (quiet otherwise)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.enabled = sys.stdout.isatty()

    def report(self, index: int, metrics: dict[str, Any], checkpoint: Checkpoint | None) -> None:
        if not self.enabled:
            return
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in list(metrics.items())[:8])
        extra = f" [checkpoint {checkpoint.path}]" if checkpoint is not None else ""
        print(f"({self.name}) report {index}: {shown}{extra}", flush=True)

    def say(self, text: str) -> None:
        if self.enabled:
            print(f"({self.name}) {text}", flush=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class TrainController:
    """Runs one ``fit()``."""

    def __init__(
        self,
        train_fn: Any,
        train_loop_config: dict[str, Any] | None,
        backend_config: BackendConfig,
        scaling_config: ScalingConfig,
        run_config: RunConfig,
        datasets: dict[str, Any],
        data_config: DataConfig,
        resume_from_checkpoint: Checkpoint | None,
        tune_link: TuneLink | None = None,
    ) -> None:
        self.train_fn = train_fn
        self.tune_link = tune_link
        self.train_loop_config = train_loop_config
        self.backend_config = backend_config
        self.scaling = scaling_config
        self.run_config = run_config
        self.datasets = datasets
        self.data_config = data_config
        self.resume_from = resume_from_checkpoint
        if tune_link is not None and tune_link.checkpoint is not None:
            self.resume_from = tune_link.checkpoint  # the trial's own latest checkpoint wins
        self.run_context = TrainRunContext(run_config, scaling_config, train_loop_config, backend_config)
        assert run_config.name is not None
        self.progress = _Progress(run_config.name)
        if tune_link is not None:
            self.progress.enabled = False  # tune shows the trials
        self.latest_metrics: dict[str, Any] | None = None
        self._results: list[str] = []

    # -- the run ----------------------------------------------------------------------

    def run(self) -> Result:
        check_resources(self.scaling, bool(self.datasets))
        # Start the workers before anything else: their processes boot (and import
        # torch) while the driver sets up storage.
        group = self._new_group()
        try:
            rc = self.run_config
            link = self.tune_link
            if link is not None:
                self.storage = link.storage
                # Tune prunes the trial's checkpoints (its CheckpointConfig); keep every one here.
                self.manager = CheckpointManager(self.storage, CheckpointConfig(), persist=False)
                self.manager.report_count = link.first_index
            else:
                assert rc.name is not None and isinstance(rc.storage_path, str)
                self.storage = _storage.StorageContext(rc.storage_path, rc.name, rc.storage_filesystem)
                _storage.makedirs(self.storage.fs, self.storage.experiment_fs_path)
                assert rc.checkpoint_config is not None
                self.manager = CheckpointManager(self.storage, rc.checkpoint_config)
                if self.manager.load():
                    self.progress.say(f"resuming the run in {self.storage.experiment_fs_path}")
            self.fn_ref = shoal.put(self.train_fn)
        except BaseException:
            group.shutdown()
            raise
        assert rc.failure_config is not None
        # A trial's failure is tune's to retry (from the trial's latest checkpoint).
        max_failures = 0 if self.tune_link is not None else rc.failure_config.max_failures
        failures = 0
        while True:
            worker_failures, return_value = self._attempt(group)
            if not worker_failures:
                break
            for cb in rc.callbacks or []:
                cb.after_exception(self.run_context, dict(worker_failures))
            failures += 1
            if max_failures != -1 and failures > max_failures:
                error = _group_error(worker_failures, failures, max_failures)
                raise error
            logger.warning(
                "training worker group failed (%s); restarting it from %s (failure %d of %s allowed)",
                "; ".join(f"rank {r}: {_brief(e)}" for r, e in sorted(worker_failures.items())),
                self.manager.latest.checkpoint.path if self.manager.latest else "the start",
                failures,
                "unlimited" if max_failures == -1 else max_failures,
            )
            self.progress.say(f"worker group failed; restart {failures}")
            group = self._new_group()
        return result_from(self.manager, self.storage, self.latest_metrics, return_value=return_value)

    def _new_group(self) -> WorkerGroup:
        prefetch = self.backend_config.prefetch_modules(self.scaling.num_workers)
        return WorkerGroup(self.scaling, prefetch, self.run_config.worker_runtime_env)

    # -- one attempt --------------------------------------------------------------------

    def _attempt(self, group: WorkerGroup) -> tuple[dict[int, BaseException], Any]:
        group_started = False
        try:
            try:
                infos = group.wait_ready()
            except Exception as e:  # noqa: BLE001 - a worker that cannot start is a worker failure
                return {0: _as_worker_error(e, None, None)}, None
            if self.tune_link is None:
                self._remove_stray_checkpoints()
            setup = self.backend_config.on_group_start(
                WorkerGroupInfo(infos, self.scaling.use_gpu, self.scaling.num_cpus_per_worker)
            )
            group_started = True
            n = len(infos)
            shards = shard_datasets(self.datasets, n, self.data_config)
            latest = self.manager.latest
            checkpoint = latest.checkpoint if latest is not None else self.resume_from
            self.next_index = self.manager.report_count
            self.partial: dict[int, dict[int, tuple[Any, ...]]] = {}
            self.world_size = n
            pending: dict[Any, tuple[str, int]] = {}
            assert self.run_config.name is not None
            link = self.tune_link
            for rank, (worker, info) in enumerate(zip(group.workers, infos, strict=True)):
                context = TrainContext(
                    world_rank=rank,
                    world_size=n,
                    local_rank=info["local_rank"],
                    local_world_size=info["local_world_size"],
                    node_rank=info["node_rank"],
                    experiment_name=link.experiment_name if link is not None else self.run_config.name,
                    storage=self.storage,
                    metadata={},
                    trial_name=link.trial_name if link is not None else None,
                )
                ref = worker.start.remote(
                    self.fn_ref,
                    self.train_loop_config,
                    context,
                    checkpoint,
                    shards[rank],
                    self.next_index,
                    self.backend_config,
                    setup,
                )
                pending[ref] = ("start", rank)
                pending[worker.poll.remote(_POLL_S)] = ("poll", rank)
            return self._poll(group, infos, pending)
        finally:
            self._flush_results()
            self.manager.save()
            if group_started:
                try:
                    self.backend_config.on_group_shutdown()
                except Exception as e:  # noqa: BLE001
                    logger.warning("backend shutdown failed: %s", e)
            group.shutdown()
            if self.tune_link is not None:
                self.tune_link.remove_unreported()

    def _poll(
        self, group: WorkerGroup, infos: list[dict[str, Any]], pending: dict[Any, tuple[str, int]]
    ) -> tuple[dict[int, BaseException], Any]:
        returns: dict[int, Any] = {}
        failures: dict[int, BaseException] = {}
        failed_at: float | None = None
        while pending:
            timeout = None if failed_at is None else max(0.0, failed_at + _FAILURE_GRACE_S - time.monotonic())
            ready, _ = shoal.wait(list(pending), num_returns=1, timeout=timeout)
            if not ready:
                break  # the grace period is over
            ref = ready[0]
            kind, rank = pending.pop(ref)
            info = infos[rank]
            try:
                value = shoal.get(ref)
            except Exception as e:  # noqa: BLE001 - the worker's failure
                failures.setdefault(rank, _as_worker_error(e, rank, info))
            else:
                if kind == "poll":
                    reports, state, outcome = value
                    if reports:
                        self._take_reports(rank, reports)
                    if state == FINISHED:
                        returns[rank] = outcome
                    elif state == ERRORED:
                        failures[rank] = _label(outcome, rank, info)
                    elif failed_at is None:
                        pending[group.workers[rank].poll.remote(_POLL_S)] = ("poll", rank)
            if failures and failed_at is None:
                failed_at = time.monotonic()
        if failures:
            return failures, None
        if self.partial:
            counts = {r: sum(1 for slot in self.partial.values() if r in slot) for r in range(self.world_size)}
            logger.warning(
                "ranks called report() different numbers of times; steps not reported by every rank "
                "were dropped (extra reports per rank: %s)",
                counts,
            )
        return {}, returns.get(0)

    # -- reports ----------------------------------------------------------------------

    def _take_reports(self, rank: int, reports: list[tuple[Any, ...]]) -> None:
        for index, metrics, checkpoint, dir_name in reports:
            self.partial.setdefault(index, {})[rank] = (metrics, checkpoint, dir_name)
        while len(self.partial.get(self.next_index, ())) == self.world_size:
            slot = self.partial.pop(self.next_index)
            self._finish_step(self.next_index, [slot[r] for r in range(self.world_size)])
            self.next_index += 1

    def _finish_step(self, index: int, by_rank: list[tuple[Any, ...]]) -> None:
        metrics = [m for m, _, _ in by_rank]
        given = [(c, d) for _, c, d in by_rank if c is not None]
        checkpoint = None
        if given:
            dir_names = {d for _, d in given}
            if len(dir_names) > 1:
                logger.warning("ranks reported checkpoints under different names %s; keeping rank 0's", dir_names)
            dir_name = given[0][1]
            checkpoint = Checkpoint(self.storage.checkpoint_path(dir_name), self.storage.fs)
        self.manager.report_count = index + 1
        if checkpoint is not None:
            self.manager.register(checkpoint, metrics[0], dir_name)
        self.latest_metrics = metrics[0]
        if self.tune_link is None:  # a trial's results are tune's to write
            self._results.append(_storage.to_json(metrics[0]) + "\n")
            if checkpoint is not None:
                self._flush_results()
        self.progress.report(index, metrics[0], checkpoint)
        for cb in self.run_config.callbacks or []:
            cb.after_report(self.run_context, metrics, checkpoint)
        if self.tune_link is not None:
            # Blocks until tune asks for the next step; a trial that tune stops unwinds from here.
            self.tune_link.report(metrics[0], checkpoint)

    def _flush_results(self) -> None:
        if not self._results or not hasattr(self, "storage"):
            return
        text = "".join(self._results)
        self._results.clear()
        _storage.append_text(self.storage.fs, self.storage.results_path, text)

    def _remove_stray_checkpoints(self) -> None:
        """Delete checkpoint directories that a failed attempt wrote but never registered."""
        fs, root = self.storage.fs, self.storage.experiment_fs_path
        keep = self.manager.dir_names()
        for name in _storage.list_dir(fs, root):
            if name.startswith(_storage.CHECKPOINT_PREFIX) and name not in keep:
                path = _storage.join(fs, root, name)
                if _storage.is_dir(fs, path):
                    logger.info("removing %s, written by a failed attempt and never registered", path)
                    _storage.delete_dir(fs, path)


def _brief(error: BaseException) -> str:
    """The error's class and the last line of its message (remote errors carry whole tracebacks)."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    text = lines[-1].strip() if lines else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(error).__name__}: {text}"


def _label(error: BaseException, rank: int, info: dict[str, Any]) -> BaseException:
    """Tag an error raised by a training function with where it happened."""
    try:
        error.world_rank = rank  # type: ignore[attr-defined]
        error.pid = info.get("pid")  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return error


def _as_worker_error(error: BaseException, rank: int | None, info: dict[str, Any] | None) -> BaseException:
    pid = info.get("pid") if info else None
    if isinstance(error, ActorError):
        where = f"rank {rank}" if rank is not None else "a worker"
        if pid is not None:
            where += f" (pid {pid})"
        died = WorkerDiedError(f"training worker {where} died: {error}", rank, pid)
        died.__cause__ = error
        return died
    if rank is not None and info is not None:
        return _label(error, rank, info)
    return error


def _group_error(failures: dict[int, BaseException], attempts: int, max_failures: int) -> WorkerGroupError:
    lines = []
    for rank, error in sorted(failures.items(), key=lambda kv: (not isinstance(kv[1], WorkerDiedError), kv[0])):
        pid = getattr(error, "pid", None)
        head = f"[rank {rank}" + (f", pid {pid}" if pid is not None else "") + "]"
        tb = getattr(error, "traceback_str", None)
        body = tb.rstrip() if tb else f"{type(error).__name__}: {error}"
        lines.append(f"{head} {body}")
    limit = "no restarts allowed" if max_failures == 0 else f"max_failures={max_failures} restarts used"
    summary = f"{len(failures)} worker(s) failed in attempt {attempts} ({limit}):\n" + "\n".join(lines)
    return WorkerGroupError(summary, failures)
