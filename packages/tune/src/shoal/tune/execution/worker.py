"""The trial worker: a shoal actor that runs trials, one at a time, and is reused across them.

The runner creates one worker per resource slot and sends it ``start``
(build the trainable, restore it, run its first step), then ``train`` for
each further result, and ``save`` / ``pause`` / ``stop`` as the controller
decides. Each call returns a small tuple, so the driver can wait on many
workers at once with ``shoal.wait``:

- ``("result", result_dict)``
- ``("done",)`` — the function returned without a new result
- ``("error", exception, traceback_text)``
- ``("saved", path_or_None, counters)``
"""

from __future__ import annotations

import pickle
import traceback
from typing import Any

from shoal.tune.checkpoint import Checkpoint
from shoal.tune.trainable import session
from shoal.tune.trainable.trainable import (
    RESULT_DUPLICATE,
    FunctionTrainable,
    Trainable,
    is_function_trainable,
    wrap_function,
)

__all__ = ["TrialWorker"]


def _portable_error(exc: BaseException, tb: str) -> tuple[str, BaseException, str]:
    """The error as it can cross to the driver: the exception itself if it pickles, else a stand-in."""
    try:
        import cloudpickle

        pickle.loads(cloudpickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any pickling problem means: send a description instead
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    return ("error", exc, tb)


class TrialWorker:
    """Hosts one trainable at a time for the trial runner."""

    def __init__(self, trainable: Any, experiment_name: str, experiment_dir: str) -> None:
        self._cls: type[Trainable] = wrap_function(trainable) if is_function_trainable(trainable) else trainable
        self._experiment_name = experiment_name
        self._experiment_dir = experiment_dir
        self._active: Trainable | None = None
        self._ctx: session.TrialContext | None = None

    def ping(self) -> bool:
        return True

    def _teardown(self) -> bool:
        """Stop the current trainable; False if its thread would not end (the worker is then unusable)."""
        active, self._active = self._active, None
        if active is None:
            return True
        session._set_current(self._ctx)
        try:
            active.stop()
        except Exception:  # noqa: BLE001 - cleanup errors must not block the next trial
            pass
        finally:
            session._set_current(None)
        return not (isinstance(active, FunctionTrainable) and active.thread_alive())

    def start(self, spec: dict[str, Any]) -> tuple[Any, ...]:
        """Build the trainable for a trial (restoring it if a checkpoint is given) and run one step."""
        self._teardown()
        self._ctx = session.TrialContext(
            trial_id=spec["trial_id"],
            trial_name=spec["trial_name"],
            trial_dir=spec["trial_dir"],
            experiment_name=self._experiment_name,
            experiment_dir=self._experiment_dir,
            resources=spec["resources"],
            bundles=spec.get("bundles"),
            strategy=spec.get("strategy", "PACK"),
            checkpoint_index=spec["checkpoint_index"],
        )
        session._set_current(self._ctx)
        try:
            trainable = self._cls(config=spec["config"])
            if spec["checkpoint"] is not None:
                trainable.restore(Checkpoint(spec["checkpoint"]), spec["counters"])
        except BaseException as e:  # noqa: BLE001 - a failing setup is the trial's error
            return _portable_error(e, traceback.format_exc())
        finally:
            session._set_current(None)
        self._active = trainable
        return self.train()

    def train(self) -> tuple[Any, ...]:
        """Run one step of the current trainable."""
        active = self._active
        if active is None:
            return ("error", RuntimeError("no trial is running on this worker"), "")
        session._set_current(self._ctx)
        try:
            result = active.train()
        except BaseException as e:  # noqa: BLE001
            tb = getattr(e, "__shoal_traceback__", None) or traceback.format_exc()
            self._teardown()
            return _portable_error(e, tb)
        finally:
            session._set_current(None)
        if result.get(RESULT_DUPLICATE):
            self._teardown()
            return ("done",)
        return ("result", result)

    def save(self) -> tuple[Any, ...]:
        """Save the current trainable; ``path`` is None when it cannot checkpoint."""
        active = self._active
        if active is None:
            return ("saved", None, {})
        session._set_current(self._ctx)
        try:
            if isinstance(active, FunctionTrainable):
                # Function trainables checkpoint through report(); nothing new to save.
                return ("saved", None, {})
            checkpoint = active.save()
        except NotImplementedError:
            return ("saved", None, {})
        except BaseException as e:  # noqa: BLE001
            return _portable_error(e, traceback.format_exc())
        finally:
            session._set_current(None)
        return ("saved", checkpoint.path, active._metadata())

    def pause(self, save: bool) -> tuple[Any, ...]:
        """Save (if asked) and stop the current trainable, freeing the worker."""
        out: tuple[Any, ...] = self.save() if save else ("saved", None, {})
        healthy = self._teardown()
        return (*out, healthy)

    def stop(self, save: bool) -> tuple[Any, ...]:
        """Stop the current trainable (saving first for ``checkpoint_at_end``)."""
        return self.pause(save)
