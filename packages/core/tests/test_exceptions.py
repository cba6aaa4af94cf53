"""The exception hierarchy: Ray's names, pickling, and the dual TaskError classes."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from shoal import exceptions as ex


def test_hierarchy_and_ray_aliases() -> None:
    assert ex.RayError is ex.ShoalError
    assert ex.RayTaskError is ex.TaskError
    assert ex.RayActorError is ex.ActorError
    assert issubclass(ex.ActorDiedError, ex.RayActorError)
    assert issubclass(ex.GetTimeoutError, TimeoutError)
    assert issubclass(ex.ObjectStoreFullError, MemoryError)
    for name in ex.__all__:
        cls = getattr(ex, name)
        assert issubclass(cls, ex.ShoalError), name
        assert cls.__doc__, name


@pytest.mark.parametrize(
    "error",
    [
        ex.ActorDiedError("dead", "abc"),
        ex.GetTimeoutError("late"),
        ex.TaskCancelledError("stop", "t1"),
        ex.ObjectLostError("gone", "o1"),
        ex.WorkerCrashedError("crash"),
        ex.ConfigError("bad"),
    ],
)
def test_errors_pickle(error: Exception) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)


def test_task_error_is_also_the_cause_class() -> None:
    err = ex.TaskError("f", "Traceback ...\nValueError: bad", ValueError("bad"), 123).as_instanceof_cause()
    assert isinstance(err, ex.TaskError) and isinstance(err, ValueError)
    assert "shoal::f() (pid=123)" in str(err)
    again = cloudpickle.loads(cloudpickle.dumps(err))
    assert isinstance(again, ValueError) and isinstance(again, ex.TaskError)
    assert again.traceback_str == err.traceback_str


def test_dual_class_falls_back_when_the_cause_cannot_be_subclassed() -> None:
    class Final(Exception):
        def __init_subclass__(cls, **kwargs):
            raise TypeError("no subclasses")

    err = ex.TaskError("f", "", Final("x")).as_instanceof_cause()
    assert type(err) is ex.TaskError


@pytest.mark.parametrize("cause", [MemoryError("m"), ex.ObjectStoreFullError("store full"), OSError(2, "gone")])
def test_dual_class_of_built_ins_with_their_own_new(cause: BaseException) -> None:
    """MemoryError refuses a direct __new__ on such a subclass: a task out of store must not crash the worker."""
    err = ex.TaskError("f", "Traceback ...", cause).as_instanceof_cause()
    assert isinstance(err, ex.TaskError) and isinstance(err, type(cause))
    again = cloudpickle.loads(cloudpickle.dumps(err))
    assert isinstance(again, type(cause)) and again.cause.args == cause.args
