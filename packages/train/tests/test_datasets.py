"""get_dataset_shard: datasets passed to the trainer are split among the workers."""

from __future__ import annotations

import pytest

from shoal import train

pytestmark = pytest.mark.usefixtures("shoal_runtime")


class TinyDataset:
    """The slice of Ray Data's interface that shoal.train relies on: split(n) and iter_batches."""

    def __init__(self, rows):
        self.rows = list(rows)

    def split(self, n):
        return [TinyDataset(self.rows[i::n]) for i in range(n)]

    def iterator(self):
        return self

    def iter_batches(self, batch_size=2):
        for i in range(0, len(self.rows), batch_size):
            yield {"x": self.rows[i : i + batch_size]}


class StreamingTinyDataset(TinyDataset):
    def __init__(self, rows):
        super().__init__(rows)
        self.split_calls = []

    def streaming_split(self, n, *, equal=False):
        self.split_calls.append((n, equal))
        return TinyDataset(self.rows[: len(self.rows) // n * n]).split(n)


def read_shards():
    rows = {}
    for name in ("train", "valid", "whole"):
        shard = train.get_dataset_shard(name)
        rows[name] = [x for batch in shard.iter_batches(batch_size=2) for x in batch["x"]]
    train.report(rows)


class AllMetrics(train.UserCallback):
    def __init__(self):
        self.metrics = []

    def after_report(self, run_context, metrics, checkpoint):
        self.metrics.append(metrics)


def test_datasets_are_split_among_workers(tmp_path):
    streaming = StreamingTinyDataset(range(11))
    callback = AllMetrics()
    train.DataParallelTrainer(
        read_shards,
        scaling_config=train.ScalingConfig(num_workers=2),
        datasets={"train": streaming, "valid": lambda: TinyDataset("abcd"), "whole": TinyDataset([7, 8, 9])},
        dataset_config=train.DataConfig(datasets_to_split=["train", "valid"]),
        run_config=train.RunConfig(name="d", storage_path=str(tmp_path), callbacks=[callback]),
    ).fit()
    ((m0, m1),) = callback.metrics
    # streaming_split(equal=True) is preferred: equal shards, the odd row dropped.
    assert streaming.split_calls == [(2, True)]
    assert m0["train"] == [0, 2, 4, 6, 8] and m1["train"] == [1, 3, 5, 7, 9]
    # A dataset-making function is called; split() is used when there is no streaming_split.
    assert m0["valid"] == ["a", "c"] and m1["valid"] == ["b", "d"]
    # Datasets not listed in datasets_to_split go whole to every worker.
    assert m0["whole"] == m1["whole"] == [7, 8, 9]


def one_dataset():
    shard = train.get_dataset_shard()
    train.report({"n": sum(len(b["x"]) for b in shard.iter_batches())})


def test_the_only_dataset_needs_no_name(tmp_path):
    result = train.DataParallelTrainer(
        one_dataset,
        datasets={"train": TinyDataset(range(5))},
        run_config=train.RunConfig(name="d", storage_path=str(tmp_path)),
    ).fit()
    assert result.metrics == {"n": 5}


def epochs_over_shoal_data():
    shard = train.get_dataset_shard("train")
    epochs = [[int(v) for b in shard.iter_batches(batch_size=4) for v in b["id"]] for _ in range(2)]
    train.report({"epochs": epochs})


@pytest.mark.shoal_backends("local")
def test_shoal_data_streaming_split_feeds_the_workers(tmp_path):
    data = pytest.importorskip("shoal.data")
    callback = AllMetrics()
    # Half a CPU per worker leaves one CPU for the dataset's own tasks.
    train.DataParallelTrainer(
        epochs_over_shoal_data,
        scaling_config=train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        datasets={"train": data.range(20)},
        run_config=train.RunConfig(name="d", storage_path=str(tmp_path), callbacks=[callback]),
    ).fit()
    ((m0, m1),) = callback.metrics
    for epoch in range(2):
        assert len(m0["epochs"][epoch]) == len(m1["epochs"][epoch]) == 10
        assert sorted(m0["epochs"][epoch] + m1["epochs"][epoch]) == list(range(20))
