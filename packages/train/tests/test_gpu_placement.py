"""use_gpu=True on a runtime that advertises GPUs: workers get them; torch without CUDA fails clearly.

The machines that run this suite have no GPU: the runtime is told it has two,
which is enough to check placement and CUDA_VISIBLE_DEVICES. The real nccl run
is benchmarks/train_gpu.py.
"""

from __future__ import annotations

import os

import pytest

import shoal
from shoal import train

pytestmark = pytest.mark.shoal_backends("local")


@pytest.fixture(scope="module")
def gpu_runtime():
    if shoal.is_initialized():
        shoal.shutdown()
    shoal.init(num_cpus=2, num_gpus=2)
    try:
        yield
    finally:
        shoal.shutdown()


def visible_devices():
    train.report({"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "rank": train.get_context().get_world_rank()})


class AllMetrics(train.UserCallback):
    def __init__(self):
        self.metrics = []

    def after_report(self, run_context, metrics, checkpoint):
        self.metrics.append(metrics)


def test_each_worker_gets_its_own_gpu(gpu_runtime, tmp_path):
    callback = AllMetrics()
    train.DataParallelTrainer(
        visible_devices,
        scaling_config=train.ScalingConfig(num_workers=2, use_gpu=True),
        run_config=train.RunConfig(name="gpu", storage_path=str(tmp_path), callbacks=[callback]),
    ).fit()
    ((m0, m1),) = callback.metrics
    assert sorted([m0["visible"], m1["visible"]]) == ["0", "1"]


def test_torch_without_cuda_fails_with_a_clear_error(gpu_runtime, tmp_path):
    pytest.importorskip("torch")
    from shoal.train.torch import TorchTrainer

    trainer = TorchTrainer(
        lambda: None,
        scaling_config=train.ScalingConfig(num_workers=1, use_gpu=True),
        run_config=train.RunConfig(name="nocuda", storage_path=str(tmp_path)),
    )
    with pytest.raises(train.TrainingFailedError, match="torch sees no CUDA device"):
        trainer.fit()
