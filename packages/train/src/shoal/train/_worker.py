"""The training worker: an actor that runs the user's function in a thread and hands out its reports.

The driver long-polls every worker (``poll``): a call returns as soon as the
worker has a report or has finished, so reports reach the driver within one
round trip while training runs undisturbed in its own thread. As in Ray
Train, a worker holds at most one report that the driver has not taken yet;
``report`` waits while one is pending.
"""

from __future__ import annotations

import collections
import importlib
import inspect
import os
import pickle
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from shoal.train import _storage
from shoal.train.checkpoint import Checkpoint
from shoal.train.context import TrainContext, _set_session

__all__ = ["TrainWorker", "WorkerSession", "call_train_fn", "pack_error"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# Reports a worker may hold before ``report`` waits for the driver (Ray holds one).
_MAX_PENDING_REPORTS = 1

# Worker states, as ``poll`` returns them.
RUNNING = "running"
FINISHED = "finished"
ERRORED = "errored"


def call_train_fn(fn: Callable[..., Any], config: dict[str, Any] | None) -> Any:
    """Call ``fn(config)`` or ``fn()``, as its signature asks (Ray's rule)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(config or {})
    required = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if required:
        return fn(config if config is not None else {})
    return fn()


def _user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without shoal.train's own frames at the top."""
    tb = exc.__traceback__
    while tb is not None and os.path.dirname(os.path.abspath(tb.tb_frame.f_code.co_filename)) == _PACKAGE_DIR:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def pack_error(exc: BaseException) -> BaseException:
    """``exc`` with ``traceback_str`` set, replaced by a RuntimeError if it does not pickle."""
    tb = _user_traceback(exc)
    try:
        exc.traceback_str = tb  # type: ignore[attr-defined]
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling failure means: send a stand-in
        stand_in = RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
        stand_in.traceback_str = tb  # type: ignore[attr-defined]
        return stand_in


def _check_picklable(value: Any) -> None:
    try:
        pickle.dumps(value)
    except Exception as e:  # noqa: BLE001 - any failure means the driver cannot receive it
        raise TypeError(f"the training function returned a value that does not pickle: {e}") from None


def _check_metrics(metrics: Any) -> None:
    if not isinstance(metrics, dict):
        raise TypeError(f"report(metrics=...) must be a dict, got {type(metrics).__name__}")
    torch = sys.modules.get("torch")
    if torch is None:
        return
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            raise ValueError(
                f"report(): metric {key!r} is a torch.Tensor; report Python numbers "
                "(tensor.item()) and put tensors in the checkpoint instead"
            )


class WorkerSession:
    """One worker's side of a run: its context, checkpoint, dataset shards and report queue."""

    def __init__(
        self,
        context: TrainContext,
        checkpoint: Checkpoint | None,
        dataset_shards: dict[str, Any],
        first_report_index: int,
    ) -> None:
        self.context = context
        self.checkpoint = checkpoint
        self._shards = dataset_shards
        self._next_index = first_report_index
        self._cv = threading.Condition()
        self._pending: collections.deque[tuple[int, dict[str, Any], Checkpoint | None, str | None]] = (
            collections.deque()
        )
        self.state = RUNNING
        self.outcome: Any = None  # return value or error

    # -- called by the training function -------------------------------------------

    def report(self, metrics: dict[str, Any], checkpoint: Checkpoint | None, dir_name: str | None) -> None:
        _check_metrics(metrics)
        if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
            raise TypeError(f"report(checkpoint=...) must be a shoal.train.Checkpoint, got {checkpoint!r}")
        if dir_name is not None and (not isinstance(dir_name, str) or not dir_name or "/" in dir_name):
            raise ValueError(f"report(checkpoint_dir_name=...) must be a plain directory name, got {dir_name!r}")
        index = self._next_index
        self._next_index += 1
        persisted = None
        if checkpoint is not None:
            dir_name = dir_name or f"{_storage.CHECKPOINT_PREFIX}{index:06d}"
            storage = self.context.storage
            dest = storage.checkpoint_path(dir_name)
            _storage.copy_dir(checkpoint._fs, checkpoint.path, storage.fs, dest)
            persisted = Checkpoint(dest, storage.fs)
            self.checkpoint = persisted
        else:
            dir_name = None
        with self._cv:
            while len(self._pending) >= _MAX_PENDING_REPORTS:
                self._cv.wait()
            self._pending.append((index, dict(metrics), persisted, dir_name))
            self._cv.notify_all()

    def dataset_shard(self, name: str | None) -> Any:
        if name is None:
            if len(self._shards) == 1:
                return next(iter(self._shards.values()))
            raise ValueError(
                "get_dataset_shard() needs a dataset name when the trainer was given "
                f"{len(self._shards)} datasets: {sorted(self._shards)}"
            )
        try:
            return self._shards[name]
        except KeyError:
            raise KeyError(
                f"no dataset named {name!r} was passed to the trainer; it has {sorted(self._shards) or 'none'}"
            ) from None

    # -- called by the worker -------------------------------------------------------

    def finish(self, state: str, outcome: Any) -> None:
        with self._cv:
            self.state = state
            self.outcome = outcome
            self._cv.notify_all()

    def take(self, timeout: float) -> tuple[list[Any], str, Any]:
        """Reports not yet taken, waiting up to ``timeout`` for one (or for the end)."""
        with self._cv:
            if not self._pending and self.state == RUNNING:
                self._cv.wait(timeout)
            reports = list(self._pending)
            self._pending.clear()
            self._cv.notify_all()
            # The function ends only after its last report returned, so a finished
            # worker's reports are all in this batch.
            return reports, self.state, self.outcome


def _prefetch(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the training function will raise the real error
            return


class TrainWorker:
    """The actor class of a training worker (made remote by the worker group)."""

    def __init__(self, prefetch: tuple[str, ...] = ()) -> None:
        # Heavy imports (torch) start as soon as the process exists, in every worker at
        # once. They run here, not in a background thread: importing torch from two
        # threads at once can initialise its C extensions twice and fail.
        _prefetch(prefetch)
        self._session: WorkerSession | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    def info(self) -> dict[str, Any]:
        """Where this worker runs, and a free port its node offers (for rendezvous)."""
        import shoal

        ctx = shoal.get_runtime_context()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return {
            "node_id": ctx.get_node_id(),
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "port": port,
            "gpu_ids": ctx.get_accelerator_ids().get("GPU", []),
        }

    def start(
        self,
        fn: Callable[..., Any],
        config: dict[str, Any] | None,
        context: TrainContext,
        checkpoint: Checkpoint | None,
        dataset_shards: dict[str, Any],
        first_report_index: int,
        backend_config: Any,
        backend_setup: dict[str, Any],
    ) -> None:
        """Start the training function in a thread and return at once."""
        if self._thread is not None:
            raise RuntimeError("this training worker has already started")
        self._session = WorkerSession(context, checkpoint, dataset_shards, first_report_index)
        self._thread = threading.Thread(
            target=self._main,
            args=(fn, config, backend_config, backend_setup),
            name=f"shoal-train-rank{context.world_rank}",
            daemon=True,
        )
        self._thread.start()
        self._started.set()

    def _main(self, fn: Callable[..., Any], config: Any, backend_config: Any, backend_setup: dict[str, Any]) -> None:
        session = self._session
        assert session is not None
        _set_session(session)
        try:
            backend_config.on_worker_start(session.context, backend_setup)
            with backend_config.train_func_context():
                value = call_train_fn(fn, config)
            _check_picklable(value)
        except BaseException as e:  # noqa: BLE001 - reported to the driver
            # Report first: tearing down a collective whose peers are stuck may hang,
            # and the driver kills this process anyway.
            session.finish(ERRORED, pack_error(e))
            self._shutdown_backend(backend_config, session)
            return
        self._shutdown_backend(backend_config, session)
        session.finish(FINISHED, value)

    @staticmethod
    def _shutdown_backend(backend_config: Any, session: WorkerSession) -> None:
        try:
            backend_config.on_worker_shutdown(session.context)
        except Exception:  # noqa: BLE001 - the run's outcome is already decided
            traceback.print_exc()

    def poll(self, timeout: float) -> tuple[list[Any], str, Any]:
        """``(reports, state, outcome)``: waits up to ``timeout`` s for a report or the end."""
        # The driver sends start() and the first poll() together; they may run in either order.
        if self._session is None and not self._started.wait(timeout):
            return [], RUNNING, None
        assert self._session is not None
        return self._session.take(timeout)
