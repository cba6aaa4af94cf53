"""Callable classes on actor pools (``concurrency``, constructor arguments, autoscaling)."""

from __future__ import annotations

import itertools
import os
import time
import uuid

import numpy as np
import pytest

import shoal
import shoal.data as sd

pytestmark = pytest.mark.usefixtures("shoal_runtime")


class Tagger:
    """Tags rows with an id made once per instance, and counts its constructions in a file."""

    def __init__(self, offset: int, marker_dir: str | None = None) -> None:
        self.offset = offset
        self.tag = uuid.uuid4().hex
        if marker_dir is not None:
            with open(os.path.join(marker_dir, self.tag), "w"):
                pass

    def __call__(self, batch):
        n = len(batch["id"])
        return {"id": batch["id"] + self.offset, "tag": np.array([self.tag] * n)}


def test_fixed_pool_constructs_each_actor_once(tmp_path) -> None:
    ds = sd.range(200, override_num_blocks=10).map_batches(
        Tagger,
        concurrency=2,
        batch_size=10,
        fn_constructor_args=(1000,),
        fn_constructor_kwargs={"marker_dir": str(tmp_path)},
    )
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == list(range(1000, 1200))
    tags = {r["tag"] for r in rows}
    built = set(os.listdir(tmp_path))
    # One instance per actor, built when the actor starts; at most the pool's size.
    assert 1 <= len(built) <= 2 and tags <= built


def test_autoscaling_pool_and_defaults() -> None:
    rows = (
        sd.range(60, override_num_blocks=6).map_batches(Tagger, concurrency=(1, 2), fn_constructor_args=(0,)).take_all()
    )
    assert sorted(r["id"] for r in rows) == list(range(60)) and 1 <= len({r["tag"] for r in rows}) <= 2
    rows = sd.range(10).map_batches(Tagger, fn_constructor_args=(5,)).take_all()
    assert [r["id"] for r in rows] == list(range(5, 15))
    pool = sd.ActorPoolStrategy(size=1)
    assert sd.range(5).map_batches(Tagger, compute=pool, fn_constructor_args=(0,)).count() == 5


class Doubler:
    def __call__(self, row):
        return {"id": row["id"] * 2}


class Broken:
    def __init__(self) -> None:
        raise RuntimeError("no model file")

    def __call__(self, batch):
        return batch


def test_classes_work_with_map_filter_and_flat_map() -> None:
    assert [r["id"] for r in sd.range(4).map(Doubler, concurrency=1).take_all()] == [0, 2, 4, 6]


def _wait_for_cpus(expected: float, timeout: float = 15.0) -> float:
    deadline = time.monotonic() + timeout
    cpus = shoal.available_resources().get("CPU", 0.0)
    while cpus < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        cpus = shoal.available_resources().get("CPU", 0.0)
    return cpus


def test_constructor_errors_surface_and_release_the_pool() -> None:
    # As in Ray: the actor died in its creation task, and the error carries the constructor's.
    with pytest.raises(shoal.exceptions.ActorDiedError, match="no model file"):
        sd.range(4).map_batches(Broken, concurrency=2).take_all()
    assert _wait_for_cpus(2.0) == 2.0


class FailsOnFirstBlock:
    def __call__(self, batch):
        if batch["id"][0] == 0:
            raise KeyError("missing feature")
        time.sleep(20)
        return batch


def test_udf_errors_in_actor_pools_stop_the_pipeline() -> None:
    start = time.monotonic()
    with pytest.raises(sd.UserCodeException) as info:
        sd.range(40, override_num_blocks=8).map_batches(FailsOnFirstBlock, concurrency=2).take_all()
    assert time.monotonic() - start < 15  # the sleeping calls did not run to the end
    err = info.value
    assert err.op_name == "MapBatches(FailsOnFirstBlock)"
    assert "the UDF of MapBatches(FailsOnFirstBlock) raised KeyError: 'missing feature'" in str(err)
    assert 'raise KeyError("missing feature")' in str(err)  # the remote traceback
    assert isinstance(err.cause, KeyError)
    # The pool's actors were killed: their CPUs come back.
    assert _wait_for_cpus(2.0) == 2.0


def _record_span(batch, marker_dir: str):
    start = time.time()
    time.sleep(0.2)
    with open(os.path.join(marker_dir, uuid.uuid4().hex), "w") as f:
        f.write(f"{start} {time.time()}")
    return batch


def test_task_concurrency_caps_the_tasks_running_at_once(tmp_path) -> None:
    # For a function, concurrency=n is at most n tasks at a time (2 CPUs would allow 2).
    ds = sd.range(40, override_num_blocks=4).map_batches(
        _record_span, concurrency=1, fn_kwargs={"marker_dir": str(tmp_path)}
    )
    assert sorted(r["id"] for r in ds.take_all()) == list(range(40))
    spans = sorted(tuple(map(float, p.read_text().split())) for p in tmp_path.iterdir())
    assert len(spans) == 4
    assert all(prev_end <= start for (_, prev_end), (start, _) in itertools.pairwise(spans))


def test_compute_validation() -> None:
    with pytest.raises(ValueError, match="need a callable class"):
        sd.range(3).map_batches(lambda b: b, compute=sd.ActorPoolStrategy(size=1))
    with pytest.raises(ValueError, match="applies to callable classes"):
        sd.range(3).map_batches(lambda b: b, concurrency=(1, 2))
    with pytest.raises(ValueError, match="either compute or concurrency"):
        sd.range(3).map_batches(Tagger, concurrency=1, compute=sd.ActorPoolStrategy(size=1))
    with pytest.raises(ValueError, match="unknown option 'num_cpu'"):
        sd.range(3).map_batches(lambda b: b, num_cpu=1)
    with pytest.raises(ValueError, match="fn_constructor_args"):
        sd.range(3).map_batches(lambda b: b, fn_constructor_args=(1,))
    with pytest.raises(ValueError, match=r"max_size \(2\) is below min_size \(3\)"):
        sd.ActorPoolStrategy(min_size=3, max_size=2)


@pytest.mark.timeout(60)
def test_pools_leave_cpus_for_the_other_operators() -> None:
    # On 2 CPUs a pool of 2 actors would hold every CPU while unfused task
    # operators before and after it still need one: the pool stays smaller
    # until they are done, instead of waiting forever.
    ds = (
        sd.range(100, override_num_blocks=10)
        .map_batches(Tagger, concurrency=2, batch_size=20, fn_constructor_args=(0,))
        .map(lambda r: {"id": r["id"] * 2}, num_cpus=0.5)
    )
    assert sorted(r["id"] for r in ds.take_all()) == list(range(0, 200, 2))
    assert [r["id"] for r in ds.limit(3).take_all()] == [0, 2, 4]
