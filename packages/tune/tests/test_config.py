"""Config validation."""

from __future__ import annotations

import datetime

import pytest

from shoal import tune


def test_defaults():
    rc = tune.RunConfig()
    assert rc.failure_config == tune.FailureConfig(max_failures=0, fail_fast=False)
    assert rc.checkpoint_config == tune.CheckpointConfig()
    assert tune.TuneConfig(time_budget_s=datetime.timedelta(seconds=90)).time_budget_s == 90


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: tune.TuneConfig(mode="best"), "mode"),
        (lambda: tune.TuneConfig(num_samples=0), "num_samples"),
        (lambda: tune.TuneConfig(max_concurrent_trials=0), "max_concurrent_trials"),
        (lambda: tune.TuneConfig(time_budget_s=-1), "time_budget_s"),
        (lambda: tune.CheckpointConfig(num_to_keep=0), "num_to_keep"),
        (lambda: tune.CheckpointConfig(checkpoint_score_order="up"), "checkpoint_score_order"),
        (lambda: tune.FailureConfig(max_failures=-2), "max_failures"),
        (lambda: tune.FailureConfig(fail_fast="yes"), "fail_fast"),
        (lambda: tune.RunConfig(verbose=7), "verbose"),
        (lambda: tune.RunConfig(name="a/b"), "name"),
        (lambda: tune.RunConfig(storage_filesystem=object()), "local filesystem"),
    ],
)
def test_bad_values(make, match):
    with pytest.raises(ValueError, match=match):
        make()
