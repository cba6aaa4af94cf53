"""Remote functions: calling, options, arguments, returns, errors and retries."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import shoal
from shoal.exceptions import RayTaskError, TaskError, WorkerCrashedError

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def _bump(path):
    """Count an attempt in a file; returns the attempts made before this one."""
    n = int(Path(path).read_text()) if os.path.exists(path) else 0
    Path(path).write_text(str(n + 1))
    return n


@shoal.remote
def double(x):
    return x * 2


@shoal.remote
def add(a, b=10):
    return a + b


def test_remote_call_returns_value() -> None:
    assert shoal.get(double.remote(21)) == 42
    assert shoal.get(add.remote(1, b=2)) == 3
    assert shoal.get(add.remote(1)) == 11


def test_many_calls_keep_order() -> None:
    refs = [double.remote(i) for i in range(200)]
    assert shoal.get(refs) == [2 * i for i in range(200)]


def test_calling_directly_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"cannot be called directly.*double\.remote\(\)"):
        double(1)


def test_remote_without_parentheses_and_with_options() -> None:
    @shoal.remote(num_cpus=0.5, max_retries=0)
    def f():
        return "ok"

    assert shoal.get(f.remote()) == "ok"
    assert shoal.get(f.options(num_cpus=1, name="renamed").remote()) == "ok"


def test_unknown_option_names_the_option() -> None:
    with pytest.raises(ValueError, match=r"unknown option 'num_cpu'.*did you mean 'num_cpus'"):
        shoal.remote(num_cpu=1)(lambda: 1)
    with pytest.raises(ValueError, match="unknown option 'max_restarts'"):
        double.options(max_restarts=1)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"num_cpus": -1}, "num_cpus"),
        ({"num_returns": -2}, "num_returns"),
        ({"max_retries": "x"}, "max_retries"),
        ({"retry_exceptions": [int]}, "retry_exceptions"),
        ({"resources": {"CPU": 1}}, "num_cpus"),
        ({"scheduling_strategy": "NOPE"}, "scheduling_strategy"),
        ({"runtime_env": {"conda": "x"}}, "conda"),
    ],
)
def test_invalid_option_values(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        double.options(**options)


def test_num_returns() -> None:
    @shoal.remote(num_returns=3)
    def three():
        return 1, 2, 3

    refs = three.remote()
    assert isinstance(refs, list) and len(refs) == 3
    assert shoal.get(refs) == [1, 2, 3]

    @shoal.remote(num_returns=0)
    def nothing():
        return None

    assert nothing.remote() is None


def test_num_returns_mismatch_is_an_error() -> None:
    @shoal.remote(num_returns=2)
    def one():
        return [1, 2, 3]

    a, b = one.remote()
    for ref in (a, b):
        with pytest.raises(ValueError, match="num_returns=2"):
            shoal.get(ref)


def test_refs_as_top_level_args_are_resolved_nested_stay_refs() -> None:
    @shoal.remote
    def inspect(x, nested):
        return type(x).__name__, type(nested[0]).__name__, shoal.get(nested[0])

    ref = shoal.put(5)
    assert shoal.get(inspect.remote(ref, [ref])) == ("int", "ObjectRef", 5)


def test_kwarg_refs_are_resolved() -> None:
    assert shoal.get(add.remote(1, b=shoal.put(41))) == 42


def test_chained_tasks() -> None:
    ref = double.remote(1)
    for _ in range(10):
        ref = double.remote(ref)
    assert shoal.get(ref) == 2**11


def test_nested_tasks_from_inside_a_task() -> None:
    @shoal.remote
    def fan_out(n):
        return sum(shoal.get([double.remote(i) for i in range(n)]))

    assert shoal.get(fan_out.remote(10)) == 90


def test_exception_is_task_error_and_original_class() -> None:
    @shoal.remote
    def boom(x):
        raise KeyError(f"missing {x}")

    with pytest.raises(KeyError) as info:
        shoal.get(boom.remote("k"))
    err = info.value
    assert isinstance(err, TaskError) and isinstance(err, RayTaskError)
    assert isinstance(err.cause, KeyError)
    assert "missing k" in str(err)
    assert "in boom" in err.traceback_str
    assert "shoal/_runtime" not in err.traceback_str


def test_custom_exception_attributes_survive() -> None:
    class MyError(Exception):
        def __init__(self, code):
            super().__init__(f"code {code}")
            self.code = code

    @shoal.remote(max_retries=0)
    def fail():
        raise MyError(7)

    with pytest.raises(MyError) as info:
        shoal.get(fail.remote())
    assert info.value.code == 7


def test_error_propagates_through_dependent_tasks() -> None:
    @shoal.remote
    def boom():
        raise ValueError("upstream")

    ref = double.remote(boom.remote())
    with pytest.raises(ValueError, match="upstream"):
        shoal.get(ref)


def test_unserializable_argument_is_a_type_error_naming_it() -> None:
    lock = threading.Lock()
    with pytest.raises(TypeError, match=r"argument 1 \(lock\)"):
        add.remote(1, lock)
    with pytest.raises(TypeError, match=r"argument 'b'"):
        add.remote(1, b=lock)
    # The runtime keeps working.
    assert shoal.get(double.remote(2)) == 4


def test_retry_exceptions_true_retries_application_errors(tmp_path) -> None:
    marker = tmp_path / "attempts"

    @shoal.remote(max_retries=2, retry_exceptions=True)
    def flaky(path):
        n = _bump(path)
        if n < 2:
            raise RuntimeError(f"attempt {n}")
        return n

    assert shoal.get(flaky.remote(str(marker))) == 2
    assert marker.read_text() == "3"


def test_retry_exceptions_list_only_retries_listed_types(tmp_path) -> None:
    marker = tmp_path / "attempts"

    @shoal.remote(max_retries=3, retry_exceptions=[KeyError])
    def flaky(path):
        _bump(path)
        raise ValueError("not retried")

    with pytest.raises(ValueError):
        shoal.get(flaky.remote(str(marker)))
    assert marker.read_text() == "1"


def test_application_errors_are_not_retried_by_default(tmp_path) -> None:
    marker = tmp_path / "attempts"

    @shoal.remote(max_retries=3)
    def fails(path):
        _bump(path)
        raise ValueError("once")

    with pytest.raises(ValueError):
        shoal.get(fails.remote(str(marker)))
    assert marker.read_text() == "1"


@pytest.mark.shoal_backends("local", "cluster")
def test_worker_crash_is_retried_then_reported(tmp_path) -> None:
    marker = tmp_path / "attempts"

    @shoal.remote(max_retries=1)
    def crash(path):
        _bump(path)
        os._exit(1)

    with pytest.raises(WorkerCrashedError):
        shoal.get(crash.remote(str(marker)), timeout=60)
    assert marker.read_text() == "2"

    @shoal.remote(max_retries=2)
    def crash_once(path):
        n = _bump(path)
        if n == 0:
            os._exit(1)
        return "recovered"

    marker.unlink()
    assert shoal.get(crash_once.remote(str(marker)), timeout=60) == "recovered"


@pytest.mark.shoal_backends("local", "cluster")
def test_max_calls_restarts_the_worker() -> None:
    @shoal.remote(max_calls=1)
    def pid():
        return os.getpid()

    pids = [shoal.get(pid.remote()) for _ in range(3)]
    assert len(set(pids)) == 3


@pytest.mark.shoal_backends("local", "cluster")
def test_runtime_env_env_vars() -> None:
    @shoal.remote(runtime_env={"env_vars": {"SHOAL_TEST_VALUE": "hello"}})
    def read():
        return os.environ.get("SHOAL_TEST_VALUE")

    assert shoal.get(read.remote()) == "hello"
    assert shoal.get(shoal.remote(lambda: os.environ.get("SHOAL_TEST_VALUE")).remote()) is None


@pytest.mark.shoal_backends("local", "cluster")
def test_resources_are_enforced() -> None:
    @shoal.remote(num_cpus=1)
    def span():
        start = time.time()
        time.sleep(0.5)
        return start, time.time()

    spans = shoal.get([span.remote() for _ in range(4)])
    # Never more than two (num_cpus=2) at the same moment.
    for start, _ in spans:
        running = sum(1 for s, e in spans if s <= start + 0.05 < e)
        assert running <= 2
    total = max(e for _, e in spans) - min(s for s, _ in spans)
    assert total >= 0.95


@pytest.mark.shoal_backends("local", "cluster")
def test_blocked_task_lends_its_cpu_so_nested_work_runs() -> None:
    @shoal.remote(num_cpus=1)
    def leaf(i):
        return i

    @shoal.remote(num_cpus=1)
    def parent(n):
        return sum(shoal.get([leaf.remote(i) for i in range(n)]))

    # Both CPUs are held by parents that wait on leaves: only lending avoids a deadlock.
    assert shoal.get([parent.remote(3), parent.remote(4)], timeout=60) == [3, 6]


@pytest.mark.shoal_backends("local", "cluster")
def test_tasks_run_in_other_processes() -> None:
    @shoal.remote
    def pid():
        return os.getpid()

    assert shoal.get(pid.remote()) != os.getpid()


def test_large_numpy_argument_and_result() -> None:
    @shoal.remote
    def scale(a):
        return a * 2

    a = np.arange(1_000_000, dtype=np.float64)
    out = shoal.get(scale.remote(a))
    np.testing.assert_array_equal(out, a * 2)


def test_lambda_and_closure_functions() -> None:
    factor = 3
    f = shoal.remote(lambda x: x * factor)
    assert shoal.get(f.remote(2)) == 6


def test_remote_on_something_not_callable() -> None:
    with pytest.raises(TypeError):
        shoal.remote(42)
