"""TorchTrainer on 2 gloo workers: DDP matches single-process training, data sharding, failures."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time

import psutil
import pytest

torch = pytest.importorskip("torch")

from shoal import train  # noqa: E402
from shoal.train.torch import TorchConfig, TorchTrainer  # noqa: E402

# Two torch.distributed ranks need two processes: the inline backend runs actors in one.
pytestmark = [pytest.mark.usefixtures("shoal_runtime"), pytest.mark.shoal_backends("local")]

STEPS, GLOBAL_BATCH, LR = 8, 16, 0.1


def make_data():
    gen = torch.Generator().manual_seed(123)
    x = torch.randn(64, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(64, 1, generator=gen)
    return x, y


def make_model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def ddp_sgd(config):
    from shoal.train.torch import get_device, prepare_model

    ctx = train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    # Different seeds on purpose: DDP must broadcast rank 0's initial weights.
    model = prepare_model(make_model(seed=rank))
    assert type(model).__name__ == "DistributedDataParallel"
    assert get_device() == torch.device("cpu")
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    x, y = make_data()
    per_rank = GLOBAL_BATCH // world
    for step in range(STEPS):
        lo = (step * GLOBAL_BATCH) % len(x) + rank * per_rank
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[lo : lo + per_rank]), y[lo : lo + per_rank])
        loss.backward()
        opt.step()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    train.report({"checksum": float(flat.sum()), "threads": torch.get_num_threads(), "env_rank": os.environ["RANK"]})
    return {k: v.clone() for k, v in model.module.state_dict().items()}


class AllMetrics(train.UserCallback):
    def __init__(self):
        self.metrics = []

    def after_report(self, run_context, metrics, checkpoint):
        self.metrics.append(metrics)


def test_two_worker_ddp_equals_single_process_on_the_global_batches(tmp_path):
    callback = AllMetrics()
    result = TorchTrainer(
        ddp_sgd,
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=train.RunConfig(name="ddp", storage_path=str(tmp_path), callbacks=[callback]),
    ).fit()
    # The same model trained in this process on whole global batches (mean loss over
    # 16 rows = the average of the two ranks' 8-row means, which DDP computes).
    model = make_model(seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    x, y = make_data()
    for step in range(STEPS):
        lo = (step * GLOBAL_BATCH) % len(x)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x[lo : lo + GLOBAL_BATCH]), y[lo : lo + GLOBAL_BATCH]).backward()
        opt.step()
    expected = model.state_dict()
    got = result.return_value
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6)
    # Training moved the weights, and both ranks hold the same ones.
    assert not torch.allclose(make_model(seed=0).state_dict()["0.weight"], got["0.weight"])
    (metrics,) = callback.metrics
    assert metrics[0]["checksum"] == pytest.approx(metrics[1]["checksum"], abs=1e-6)
    # One torch thread per worker (each holds one CPU), and torchrun's environment variables.
    assert [m["threads"] for m in metrics] == [1, 1]
    assert [m["env_rank"] for m in metrics] == ["0", "1"]


def sharded_loader():
    from torch.utils.data import DataLoader, TensorDataset

    from shoal.train.torch import prepare_data_loader

    data = TensorDataset(torch.arange(20))
    plain = prepare_data_loader(DataLoader(data, batch_size=5))
    seen = [int(v) for (batch,) in plain for v in batch]
    shuffled = prepare_data_loader(DataLoader(data, batch_size=5, shuffle=True))
    epochs = [[int(v) for (batch,) in shuffled for v in batch] for _ in range(2)]
    train.report({"seen": seen, "epochs": epochs, "batches": len(plain)})


def test_prepare_data_loader_shards_among_ranks(tmp_path):
    callback = AllMetrics()
    TorchTrainer(
        sharded_loader,
        torch_config=TorchConfig(backend="gloo", init_method="tcp", timeout_s=60),
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=train.RunConfig(name="loader", storage_path=str(tmp_path), callbacks=[callback]),
    ).fit()
    ((m0, m1),) = callback.metrics
    assert m0["batches"] == m1["batches"] == 2
    assert len(m0["seen"]) == len(m1["seen"]) == 10
    assert sorted(m0["seen"] + m1["seen"]) == list(range(20))
    for epoch in range(2):
        assert sorted(m0["epochs"][epoch] + m1["epochs"][epoch]) == list(range(20))
    # The sampler's epoch advances on each pass, so the order changes.
    assert m0["epochs"][0] != m0["epochs"][1]


def torch_dies_once(config):
    import torch.distributed as dist

    rank = train.get_context().get_world_rank()
    start = 0
    checkpoint = train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            start = torch.load(os.path.join(d, "state.pt"))["next"]
    for step in range(start, 4):
        t = torch.ones(1)
        dist.all_reduce(t)
        if rank == 1 and step == 2 and checkpoint is None:
            os.kill(os.getpid(), signal.SIGKILL)
        ckpt = None
        if rank == 0:
            d = tempfile.mkdtemp()
            torch.save({"next": step + 1}, os.path.join(d, "state.pt"))
            ckpt = train.Checkpoint.from_directory(d)
        train.report({"step": step, "sum": float(t.item()), "start": start}, checkpoint=ckpt)


def test_killed_torch_worker_restarts_the_process_group(tmp_path):
    result = TorchTrainer(
        torch_dies_once,
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=train.RunConfig(
            name="kill", storage_path=str(tmp_path), failure_config=train.FailureConfig(max_failures=2)
        ),
    ).fit()
    assert result.metrics["step"] == 3 and result.metrics["sum"] == 2.0
    assert 1 <= result.metrics["start"] <= 2


def rank_1_raises_while_rank_0_waits(config):
    import torch.distributed as dist

    rank = train.get_context().get_world_rank()
    with open(os.path.join(config["pid_dir"], str(os.getpid())), "w"):
        pass
    if rank == 1:
        raise RuntimeError("rank 1 lost its data")
    dist.all_reduce(torch.ones(1))  # waits for rank 1 until the gloo timeout


def test_exception_stops_the_rank_blocked_in_a_collective(tmp_path):
    os.mkdir(tmp_path / "pids")
    trainer = TorchTrainer(
        rank_1_raises_while_rank_0_waits,
        train_loop_config={"pid_dir": str(tmp_path / "pids")},
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=train.RunConfig(name="raise", storage_path=str(tmp_path)),
    )
    start = time.monotonic()
    with pytest.raises(train.TrainingFailedError) as info:
        trainer.fit()
    assert time.monotonic() - start < 30
    cause = info.value.worker_failures[1]
    assert isinstance(cause, RuntimeError) and "rank 1 lost its data" in cause.traceback_str
    pids = [int(p) for p in os.listdir(tmp_path / "pids")]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids
    ):
        time.sleep(0.05)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def test_torch_config_validation():
    with pytest.raises(ValueError, match="backend"):
        TorchConfig(backend="mpi")
    with pytest.raises(ValueError, match="init_method"):
        TorchConfig(init_method="file")
    with pytest.raises(ValueError, match="timeout_s"):
        TorchConfig(timeout_s=0)
    with pytest.raises(TypeError, match="torch_config"):
        TorchTrainer(lambda: None, torch_config=train.BackendConfig())


def rank_1_never_joins(config):
    import torch.distributed as dist

    if train.get_context().get_world_rank() == 1:
        time.sleep(120)  # the driver stops this rank once rank 0 has failed
    dist.all_reduce(torch.ones(1))


def test_timeout_s_bounds_a_collective(tmp_path):
    trainer = TorchTrainer(
        rank_1_never_joins,
        torch_config=TorchConfig(timeout_s=5),
        scaling_config=train.ScalingConfig(num_workers=2),
        run_config=train.RunConfig(name="timeout", storage_path=str(tmp_path)),
    )
    start = time.monotonic()
    with pytest.raises(train.TrainingFailedError) as info:
        trainer.fit()
    assert time.monotonic() - start < 60
    # Rank 0's all_reduce gave up after timeout_s, with its own traceback; rank 1 was stopped.
    assert list(info.value.worker_failures) == [0]
    cause = info.value.worker_failures[0]
    assert "Timed out waiting 5000ms" in str(cause)  # gloo's message names the timeout it was given
    assert "dist.all_reduce(torch.ones(1))" in cause.traceback_str


def test_torch_config_picks_the_process_group_backend():
    from shoal.train.backend import WorkerGroupInfo

    def workers(*nodes):
        return [{"node_id": n, "hostname": "localhost", "port": 1234 + i} for i, n in enumerate(nodes)]

    cpu = TorchConfig().on_group_start(WorkerGroupInfo(workers("a", "a"), use_gpu=False, num_cpus_per_worker=2))
    expected = {"master_addr": "127.0.0.1", "master_port": 1234, "backend": "gloo", "use_gpu": False, "num_threads": 2}
    assert cpu == expected
    gpu = TorchConfig(timeout_s=10).on_group_start(WorkerGroupInfo(workers("a"), use_gpu=True, num_cpus_per_worker=0))
    assert gpu["backend"] == "nccl" and gpu["num_threads"] is None
    forced = TorchConfig(backend="gloo").on_group_start(WorkerGroupInfo(workers("a"), True, 1))
    assert forced["backend"] == "gloo"
    # Workers on two nodes meet at rank 0's host, not at the loopback address.
    two_nodes = TorchConfig().on_group_start(WorkerGroupInfo(workers("a", "b"), False, 1))
    assert two_nodes["master_addr"] == socket.gethostbyname("localhost")
