"""Turning an exception raised by user code into an error that crosses processes."""

from __future__ import annotations

import os
import traceback
from types import TracebackType

import cloudpickle

from shoal.exceptions import ShoalError, TaskError

__all__ = ["task_error", "user_traceback"]

_SHOAL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _is_shoal_frame(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_SHOAL_DIR + os.sep) and "/tests/" not in filename


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` with shoal's own frames left out."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and _is_shoal_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    lines = ["Traceback (most recent call last):\n"] if tb is not None else []
    frames = [f for f in traceback.extract_tb(tb) if not _is_shoal_frame(f.filename)]
    lines.extend(traceback.format_list(frames))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


def _picklable_cause(exc: BaseException) -> BaseException:
    try:
        cloudpickle.loads(cloudpickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any failure means "send something simpler"
        pass
    try:
        simple = type(exc)(*exc.args)
        cloudpickle.loads(cloudpickle.dumps(simple))
        return simple
    except Exception:  # noqa: BLE001
        return ShoalError(f"{type(exc).__name__}: {exc}")


def task_error(exc: BaseException, function_name: str) -> TaskError:
    """A TaskError carrying ``exc`` (or a picklable stand-in) and the user's traceback."""
    if isinstance(exc, TaskError):
        # An error from an upstream task passes through unchanged.
        return exc
    err = TaskError(function_name, user_traceback(exc), _picklable_cause(exc), os.getpid())
    return err.as_instanceof_cause()
