"""GPU accounting on a machine without GPUs: ids and CUDA_VISIBLE_DEVICES come from the runtime."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import shoal

pytestmark = pytest.mark.shoal_backends("local")


@pytest.fixture
def two_gpus() -> Iterator[None]:
    if shoal.is_initialized():
        shoal.shutdown()
    shoal.init(num_cpus=2, num_gpus=2)
    yield
    shoal.shutdown()


def test_tasks_get_gpu_ids_and_cuda_visible_devices(two_gpus) -> None:
    @shoal.remote(num_gpus=1)
    def gpu():
        return shoal.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    (ids_a, env_a), (ids_b, env_b) = shoal.get([gpu.remote(), gpu.remote()])
    assert len(ids_a) == 1 and env_a == str(ids_a[0])
    assert len(ids_b) == 1 and env_b == str(ids_b[0])
    assert shoal.cluster_resources()["GPU"] == 2.0


def test_two_gpu_task_and_actor(two_gpus) -> None:
    @shoal.remote(num_gpus=2)
    def both():
        return sorted(shoal.get_gpu_ids()), os.environ["CUDA_VISIBLE_DEVICES"]

    ids, env = shoal.get(both.remote())
    assert ids == [0, 1] and env == "0,1"

    @shoal.remote(num_gpus=1)
    class OnGpu:
        def ids(self):
            return shoal.get_gpu_ids(), os.environ["CUDA_VISIBLE_DEVICES"]

    a = OnGpu.remote()
    (aid,), aenv = shoal.get(a.ids.remote())
    assert aenv == str(aid)
    # One GPU is held by the actor; a 2-GPU task cannot run meanwhile.
    ready, _ = shoal.wait([both.remote()], timeout=0.5)
    assert ready == []
    shoal.kill(a)
