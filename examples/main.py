"""shoal's main job: core -> data -> train -> tune -> serve, end to end on the embedded local backend.

0. shoal core: remote tasks fan out over worker processes, a shared array goes through the
   object store once, and an actor keeps a running total.
1. shoal.data builds a synthetic regression dataset (y = 3*x0 - 2*x1 + 0.5 + noise) as
   streaming Arrow blocks.
2. shoal.tune searches the learning rate of a small linear model, each trial a
   shoal.train TorchTrainer run on 2 workers (torch.distributed, gloo) reading its shard
   of the dataset, ASHA stopping weak trials early.
3. shoal.serve deploys the best model behind HTTP on 127.0.0.1, and the script queries it.

Runs in well under a minute on a 2-core machine.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
import urllib.request

import numpy as np

import shoal
from shoal import data, serve, train, tune
from shoal.train.torch import TorchTrainer

TRUE_W = np.array([3.0, -2.0])
TRUE_B = 0.5


def make_dataset(rows: int) -> data.Dataset:
    def features(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(int(batch["id"][0]))
        x = rng.normal(size=(len(batch["id"]), 2)).astype(np.float32)
        y = (x @ TRUE_W + TRUE_B + rng.normal(scale=0.05, size=len(x))).astype(np.float32)
        return {"x0": x[:, 0], "x1": x[:, 1], "y": y}

    return data.range(rows, override_num_blocks=8).map_batches(features)


def train_loop(config: dict) -> None:
    import torch

    torch.manual_seed(0)
    model = train.torch.prepare_model(torch.nn.Linear(2, 1))
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    shard = train.get_dataset_shard("train")
    for epoch in range(config["epochs"]):
        total, count = 0.0, 0
        for batch in shard.iter_torch_batches(batch_size=256):
            x = torch.stack([batch["x0"], batch["x1"]], dim=1)
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), batch["y"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(x)
            count += len(x)
        state = {k.removeprefix("module."): v.tolist() for k, v in model.state_dict().items()}
        train.report({"loss": total / max(count, 1), "epoch": epoch, "state": json.dumps(state)})


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.5})
class Predictor:
    def __init__(self, state: dict) -> None:
        self.w = np.array(state["weight"][0])
        self.b = float(state["bias"][0])

    async def __call__(self, request) -> dict:
        x = np.array([float(request.query_params["x0"]), float(request.query_params["x1"])])
        return {"y": float(x @ self.w + self.b)}


@shoal.remote
def column_sum(matrix: np.ndarray, col: int) -> float:
    return float(matrix[:, col].sum())


@shoal.remote
class Tally:
    def __init__(self) -> None:
        self.total = 0.0

    def add(self, value: float) -> float:
        self.total += value
        return self.total


def core_example() -> None:
    matrix = np.arange(40_000, dtype=np.float64).reshape(10_000, 4)
    ref = shoal.put(matrix)  # stored once in shared memory, read without copying by every task
    sums = shoal.get([column_sum.remote(ref, c) for c in range(4)])
    tally = Tally.remote()
    for value in sums:
        tally.add.remote(value)
    total = shoal.get(tally.add.remote(0.0))  # actor calls run in submission order
    assert sums == [float(matrix[:, c].sum()) for c in range(4)] and total == float(matrix.sum()), (sums, total)
    shoal.kill(tally)
    print(f"core: 4 tasks summed the columns {[int(s) for s in sums]}; the actor's total is {int(total)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    t0 = time.perf_counter()
    info = shoal.init(num_cpus=2)
    print(f"shoal started ({info['backend']} backend) in {time.perf_counter() - t0:.2f}s")
    core_example()

    ds = make_dataset(20_000).materialize()
    print(f"data: {ds.count()} rows, columns {ds.columns()}")

    trainer = TorchTrainer(
        train_loop,
        scaling_config=train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        datasets={"train": ds},
    )
    storage = tempfile.mkdtemp(prefix="shoal-main-")
    tuner = tune.Tuner(
        trainer,
        param_space={"train_loop_config": {"lr": tune.grid_search([0.001, 0.05, 0.2]), "epochs": 4}},
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            scheduler=tune.schedulers.ASHAScheduler(time_attr="epoch", max_t=4, grace_period=1),
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(name="main", storage_path=storage, verbose=0),
    )
    results = tuner.fit()
    best = results.get_best_result()
    best_lr = best.config["train_loop_config"]["lr"]
    print(f"tune: {len(results)} trials; best lr={best_lr} loss={best.metrics['loss']:.4f}")

    state = json.loads(best.metrics["state"])
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Predictor.bind(state), route_prefix="/predict")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/predict?x0=1.0&x1=2.0", timeout=30) as resp:
        answer = json.loads(resp.read())
    expected = 1.0 * TRUE_W[0] + 2.0 * TRUE_W[1] + TRUE_B
    print(f"serve: prediction for (1, 2) = {answer['y']:.3f} (true value {expected:.3f})")
    assert abs(answer["y"] - expected) < 0.2, answer
    serve.shutdown()
    shoal.shutdown()
    print(f"done in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
