"""The class API, :class:`Trainable`, and the adapter that runs functions as trainables.

A class trainable implements ``setup(config)``, ``step() -> dict`` and,
to support pausing, PBT and failure recovery, ``save_checkpoint(dir)`` and
``load_checkpoint(checkpoint)``. ``train()`` runs one ``step`` and adds the
standard result fields (``training_iteration``, ``time_total_s``, ...).

A function trainable ``fn(config)`` runs in its own thread; each
``tune.report`` hands one result to ``step()`` and waits until the next
``step()``, so tune controls it one result at a time like a class.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import pickle
import queue
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shoal.tune.checkpoint import Checkpoint
from shoal.tune.trainable import session

__all__ = ["Trainable", "FunctionTrainable", "wrap_function", "is_function_trainable", "RESULT_DUPLICATE"]

#: Marks the closing result of a function trainable that returned without a new metric.
RESULT_DUPLICATE = "__duplicate__"
_DICT_CHECKPOINT = "_dict_checkpoint.pkl"
_TUNE_METADATA = ".tune_metadata.json"

_host: tuple[str, str] | None = None


def _host_info() -> tuple[str, str]:
    global _host
    if _host is None:
        name = socket.gethostname()
        try:
            ip = socket.gethostbyname(name)
        except OSError:
            ip = "127.0.0.1"
        _host = (name, ip)
    return _host


class Trainable:
    """Base class of class trainables: override ``setup``, ``step`` and the checkpoint hooks."""

    def __init__(self, config: dict[str, Any] | None = None, logger_creator: Any = None, storage: Any = None) -> None:
        self.config: dict[str, Any] = dict(config or {})
        ctx = session._current()
        self._ctx = ctx if ctx is not None else session.TrialContext()
        self._iteration = 0
        self._time_total = 0.0
        self._time_since_restore = 0.0
        self._iterations_since_restore = 0
        self._restored = False
        self._last_result: dict[str, Any] = {}
        self.setup(copy.deepcopy(self.config))

    # -- hooks to override -----------------------------------------------

    def setup(self, config: dict[str, Any]) -> None:
        """Build state from the config (called once, by the constructor)."""

    def step(self) -> dict[str, Any]:
        """Train one unit and return its metrics; ``{"done": True}`` ends the trial."""
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | None:
        """Write state into ``checkpoint_dir`` (return None) or return it as a dict."""
        raise NotImplementedError(f"{type(self).__name__} does not implement save_checkpoint()")

    def load_checkpoint(self, checkpoint: dict[str, Any] | str) -> None:
        """Restore state: the dict ``save_checkpoint`` returned, or the directory it wrote."""
        raise NotImplementedError(f"{type(self).__name__} does not implement load_checkpoint()")

    def cleanup(self) -> None:
        """Release resources when the trial stops."""

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        """Take a new config without being rebuilt; return True if supported."""
        return False

    @classmethod
    def default_resource_request(cls, config: dict[str, Any]) -> Any:
        """Resources one trial needs (a dict or PlacementGroupFactory); None means 1 CPU."""
        return None

    # -- driving ---------------------------------------------------------------

    @property
    def iteration(self) -> int:
        """How many times ``train()`` has run (continues across restores)."""
        return self._iteration

    training_iteration = iteration

    @property
    def trial_id(self) -> str:
        return self._ctx.trial_id or "default"

    @property
    def trial_name(self) -> str:
        return self._ctx.trial_name or "default"

    @property
    def logdir(self) -> str | None:
        return self._ctx.trial_dir

    def train(self) -> dict[str, Any]:
        """Run one step and return its result with tune's fields added."""
        start = time.time()
        result = self.step()
        if not isinstance(result, dict):
            raise TypeError(f"step() must return a dict of metrics, got {type(result).__name__}")
        if result.get(RESULT_DUPLICATE):
            return result
        return self._complete_result(result, time.time() - start)

    def _complete_result(
        self, metrics: dict[str, Any], elapsed: float, checkpoint_dir_name: str | None = None
    ) -> dict[str, Any]:
        self._iteration += 1
        self._iterations_since_restore += 1
        self._time_total += elapsed
        self._time_since_restore += elapsed
        hostname, ip = _host_info()
        now = time.time()
        result = dict(metrics)
        result.setdefault("timestamp", int(now))
        result["checkpoint_dir_name"] = checkpoint_dir_name
        if checkpoint_dir_name is not None:
            result["should_checkpoint"] = True
        result["done"] = bool(metrics.get("done", False))
        result["training_iteration"] = self._iteration
        result["trial_id"] = self.trial_id
        result["date"] = datetime.fromtimestamp(now).strftime("%Y-%m-%d_%H-%M-%S")
        result["time_this_iter_s"] = elapsed
        result["time_total_s"] = self._time_total
        result["pid"] = os.getpid()
        result["hostname"] = hostname
        result["node_ip"] = ip
        result["config"] = self.config
        result["time_since_restore"] = self._time_since_restore
        result["iterations_since_restore"] = self._iterations_since_restore
        self._last_result = result
        return result

    def _metadata(self) -> dict[str, Any]:
        return {"iteration": self._iteration, "time_total": self._time_total}

    def save(self, checkpoint_dir: str | None = None) -> Checkpoint:
        """Save state to a checkpoint (the next ``checkpoint_NNNNNN`` of the trial folder by default)."""
        if checkpoint_dir is None:
            if self._ctx.trial_dir is not None:
                checkpoint_dir = os.path.join(self._ctx.trial_dir, f"checkpoint_{self._ctx.checkpoint_index:06d}")
                self._ctx.checkpoint_index += 1
            else:
                checkpoint_dir = tempfile.mkdtemp(prefix="checkpoint_")
        os.makedirs(checkpoint_dir, exist_ok=True)
        state = self.save_checkpoint(checkpoint_dir)
        if state is not None:
            if not isinstance(state, dict):
                raise TypeError(f"save_checkpoint() must return None or a dict, got {type(state).__name__}")
            with open(os.path.join(checkpoint_dir, _DICT_CHECKPOINT), "wb") as f:
                pickle.dump(state, f)
        with open(os.path.join(checkpoint_dir, _TUNE_METADATA), "w") as f:
            json.dump(self._metadata(), f)
        checkpoint = Checkpoint(checkpoint_dir)
        self._ctx.latest_checkpoint = checkpoint
        return checkpoint

    def restore(self, checkpoint: Checkpoint | str, counters: dict[str, Any] | None = None) -> None:
        """Restore from a checkpoint made by :meth:`save` (or reported by a function)."""
        path = checkpoint.path if isinstance(checkpoint, Checkpoint) else os.fspath(checkpoint)
        if counters is None:
            try:
                with open(os.path.join(path, _TUNE_METADATA)) as f:
                    counters = json.load(f)
            except FileNotFoundError:
                counters = {}
        self._load(path)
        self._iteration = int(counters.get("iteration", 0))
        self._time_total = float(counters.get("time_total", 0.0))
        self._time_since_restore = 0.0
        self._iterations_since_restore = 0
        self._restored = True
        self._ctx.latest_checkpoint = Checkpoint(path)

    def _load(self, path: str) -> None:
        dict_file = os.path.join(path, _DICT_CHECKPOINT)
        if os.path.exists(dict_file):
            with open(dict_file, "rb") as f:
                self.load_checkpoint(pickle.load(f))
        else:
            self.load_checkpoint(path)

    def reset(self, new_config: dict[str, Any]) -> bool:
        """Switch to a new config in place (``reset_config``); counters restart."""
        if not self.reset_config(new_config):
            return False
        self.config = dict(new_config)
        self._iteration = 0
        self._time_total = 0.0
        self._time_since_restore = 0.0
        self._iterations_since_restore = 0
        return True

    def stop(self) -> None:
        """End the trainable (runs ``cleanup``)."""
        self.cleanup()


class _TrialStopped(BaseException):
    """Unwinds a function trainable whose trial was stopped (BaseException so `except Exception` lets it pass)."""


class FunctionTrainable(Trainable):
    """Runs a function trainable in a thread, one ``report`` per ``step``."""

    _function: Callable[..., Any] | None = None

    def setup(self, config: dict[str, Any]) -> None:
        self._results: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._resume = threading.Semaphore(0)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._finished = False
        self._pending_checkpoint_name: str | None = None
        self._step_start = 0.0

    # Runs in the trial's thread.
    def _report(self, metrics: dict[str, Any], checkpoint: Checkpoint | None) -> None:
        if self._stopping:
            raise _TrialStopped()
        persisted = self._ctx.persist(checkpoint) if checkpoint is not None else None
        if persisted is not None:
            self._ctx.latest_checkpoint = persisted
        self._results.put(("result", dict(metrics), persisted))
        self._resume.acquire()
        if self._stopping:
            raise _TrialStopped()

    def _run(self) -> None:
        ctx = self._ctx
        ctx.reporter = self._report
        session._set_current(ctx)
        fn = type(self)._function
        assert fn is not None
        try:
            out = fn(self.config)
        except _TrialStopped:
            self._results.put(("stopped",))
        except BaseException as e:  # noqa: BLE001 - the user's error is the trial's result
            self._results.put(("error", e, traceback.format_exc()))
        else:
            self._results.put(("done", out))
        finally:
            session._set_current(None)

    def train(self) -> dict[str, Any]:
        if self._finished:
            raise RuntimeError("the function trainable has already finished")
        start = time.time()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"tune-trial-{self.trial_id}", daemon=True)
            self._thread.start()
        else:
            self._resume.release()
        item = self._results.get()
        elapsed = time.time() - start
        kind = item[0]
        if kind == "result":
            _, metrics, persisted = item
            name = os.path.basename(persisted.path) if persisted is not None else None
            result = self._complete_result(metrics, elapsed, name)
            result["done"] = False
            return result
        self._finished = True
        if kind == "error":
            _, exc, tb = item
            exc.__shoal_traceback__ = tb
            raise exc
        if kind == "done" and isinstance(item[1], dict):
            # A returned dict is the trial's last result.
            result = self._complete_result(item[1], elapsed)
            result["done"] = True
            return result
        return {"done": True, RESULT_DUPLICATE: True}

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | None:
        raise NotImplementedError("function trainables checkpoint by passing checkpoint= to tune.report()")

    def save(self, checkpoint_dir: str | None = None) -> Checkpoint:
        latest = self._ctx.latest_checkpoint
        if latest is None:
            raise NotImplementedError("this function trainable has not reported a checkpoint")
        return latest

    def restore(self, checkpoint: Checkpoint | str, counters: dict[str, Any] | None = None) -> None:
        path = checkpoint.path if isinstance(checkpoint, Checkpoint) else os.fspath(checkpoint)
        counters = counters or {}
        self._iteration = int(counters.get("iteration", 0))
        self._time_total = float(counters.get("time_total", 0.0))
        self._restored = True
        # The function reads it back with tune.get_checkpoint().
        self._ctx.latest_checkpoint = Checkpoint(path)

    def stop(self) -> None:
        """Unwind the function at its next report and wait briefly for its thread to end."""
        self._stopping = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._resume.release()
            thread.join(timeout=5.0)
        self.cleanup()

    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def is_function_trainable(trainable: Any) -> bool:
    return not inspect.isclass(trainable) and callable(trainable)


def wrap_function(fn: Callable[..., Any], name: str | None = None) -> type[FunctionTrainable]:
    """A FunctionTrainable subclass that runs ``fn(config)``."""
    if not callable(fn):
        raise TypeError(f"a function trainable must be callable, got {fn!r}")
    try:
        parameters = list(inspect.signature(fn, follow_wrapped=False).parameters.values())
        known = True
    except (TypeError, ValueError):
        parameters, known = [], False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    takes_varargs = any(p.kind == p.VAR_POSITIONAL for p in parameters)
    if known and (len(required) > 1 or (not positional and not takes_varargs)):
        raise ValueError(
            f"function trainable {getattr(fn, '__name__', fn)!r} must take one argument (config); "
            "pass other values with tune.with_parameters"
        )
    cls_name = str(name or getattr(fn, "__name__", None) or "func")
    return type(cls_name, (FunctionTrainable,), {"_function": staticmethod(fn), "__module__": __name__})
