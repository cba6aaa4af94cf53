"""XGBoostTrainer: two workers build one model through xgboost's collective, reported each round."""

from __future__ import annotations

import numpy as np
import pytest

xgboost = pytest.importorskip("xgboost")

from shoal import train  # noqa: E402
from shoal.train.xgboost import (  # noqa: E402
    RayTrainReportCallback,
    ShoalTrainReportCallback,
    XGBoostConfig,
    XGBoostTrainer,
)

pytestmark = [pytest.mark.usefixtures("shoal_runtime"), pytest.mark.shoal_backends("local")]

ROUNDS = 6


def make_frame():
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = 2 * x[:, 0] - x[:, 1] + 0.1 * rng.normal(size=200)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})


def xgb_loop(config):
    import pandas as pd

    shard = train.get_dataset_shard("train")
    df = pd.concat(list(shard.iter_batches(batch_format="pandas", batch_size=64)))
    dtrain = xgboost.DMatrix(df[["a", "b", "c"]], label=df["y"])
    booster = xgboost.train(
        {"objective": "reg:squarederror", "tree_method": "hist", "max_depth": 3, "eta": 0.5},
        dtrain,
        num_boost_round=ROUNDS,
        evals=[(dtrain, "train")],
        callbacks=[ShoalTrainReportCallback(frequency=2)],
    )
    rank = train.get_context().get_world_rank()
    return {"rows": len(df), "probe": booster.predict(probe_matrix()).tolist(), "rank": rank}


def probe_matrix():
    import pandas as pd

    return xgboost.DMatrix(pd.DataFrame({"a": [1.0, 0.5], "b": [-1.0, 0.5], "c": [0.0, 0.5]}))


class AllMetrics(train.UserCallback):
    def __init__(self):
        self.reports = []

    def after_report(self, run_context, metrics, checkpoint):
        self.reports.append((metrics, checkpoint))


def test_two_workers_train_one_model_and_checkpoint_it(tmp_path):
    data = pytest.importorskip("shoal.data")
    callback = AllMetrics()
    result = XGBoostTrainer(
        xgb_loop,
        # Half a CPU per worker leaves one for the dataset's tasks.
        scaling_config=train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        datasets={"train": data.from_pandas(make_frame())},
        run_config=train.RunConfig(
            name="xgb", storage_path=str(tmp_path), callbacks=[callback], checkpoint_config=train.CheckpointConfig(2)
        ),
    ).fit()
    # One report per round; checkpoints at rounds 2, 4 and 6 (the end coincides with round 6).
    assert len(callback.reports) == ROUNDS
    assert [ck is not None for _, ck in callback.reports] == [False, True, False, True, False, True]
    rmse = [metrics[0]["train-rmse"] for metrics, _ in callback.reports]
    assert rmse == sorted(rmse, reverse=True) and rmse[-1] < rmse[0] / 2
    # Each rank's training error is computed over the whole data through the collective.
    assert all(metrics[0]["train-rmse"] == pytest.approx(metrics[1]["train-rmse"]) for metrics, _ in callback.reports)
    assert len(result.best_checkpoints) == 2
    booster = ShoalTrainReportCallback.get_model(result.checkpoint)
    assert booster.num_boosted_rounds() == ROUNDS
    # Rank 0 trained on half the rows, yet its model is the collective's: the saved
    # model predicts what it predicted.
    assert result.return_value["rows"] == 100 and result.return_value["rank"] == 0
    np.testing.assert_allclose(booster.predict(probe_matrix()), result.return_value["probe"], rtol=1e-6)
    assert RayTrainReportCallback is ShoalTrainReportCallback


def test_xgboost_config_validation():
    with pytest.raises(ValueError, match="rabit"):
        XGBoostConfig(xgboost_communicator="nccl")
    with pytest.raises(TypeError, match="xgboost_config"):
        XGBoostTrainer(lambda: None, xgboost_config=train.BackendConfig())
    with pytest.raises(ValueError, match="frequency"):
        ShoalTrainReportCallback(frequency=-1)
