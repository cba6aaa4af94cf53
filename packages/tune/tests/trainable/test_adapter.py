"""Classes with the trainable shape (not Trainable subclasses), config objects as param spaces, nested metrics."""

from __future__ import annotations

import json
import os

import pytest

from shoal import tune
from shoal.tune.trainable.adapter import HostedTrainable, has_trainable_shape
from shoal.tune.trainable.util import resolve_resources, resolve_trainable


class Climber:
    """Shaped like shoal.rl's Algorithm: built from a config dict, trained one ``train()`` at a time."""

    def __init__(self, config=None):
        self.config = dict(config or {})
        self.height = 0.0
        self.calls = 0

    def train(self):
        self.calls += 1
        self.height += self.config["rate"]
        # Nested, like RLlib's result["env_runners"]["episode_return_mean"].
        return {"stats": {"height": self.height}, "calls": self.calls}

    def save_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "climber.json"), "w") as f:
            json.dump({"height": self.height, "calls": self.calls}, f)

    def load_checkpoint(self, checkpoint):
        with open(os.path.join(checkpoint, "climber.json")) as f:
            state = json.load(f)
        self.height, self.calls = state["height"], state["calls"]

    def stop(self):
        pass

    @classmethod
    def default_resource_request(cls, config):
        return [{"CPU": 0.5}, {"CPU": 0.5}]  # a list of bundles, as shoal.rl returns


class ClimberConfig:
    """Stands in for an algorithm config object: the Tuner searches its ``to_dict()``."""

    def __init__(self, rate):
        self.rate = rate

    def to_dict(self):
        return {"rate": self.rate}


def test_the_shape_is_recognised_and_hosted():
    assert has_trainable_shape(Climber)
    assert not has_trainable_shape(HostedTrainable)
    assert not has_trainable_shape(len)
    hosted = resolve_trainable(Climber)
    assert issubclass(hosted, tune.Trainable) and hosted.__name__ == "Climber"
    assert resolve_resources(hosted, {}) == ({"CPU": 1.0}, [{"CPU": 0.5}, {"CPU": 0.5}], "PACK")
    # with_resources wraps the hosted class too.
    assert resolve_resources(tune.with_resources(Climber, {"cpu": 2}), {})[0] == {"CPU": 2.0}


@pytest.mark.usefixtures("shoal_runtime")
def test_a_hosted_class_runs_as_trials_on_a_config_object(tmp_path):
    grid = tune.Tuner(
        Climber,
        param_space=ClimberConfig(rate=tune.grid_search([1.0, 2.0])),
        tune_config=tune.TuneConfig(metric="stats/height", mode="max"),
        run_config=tune.RunConfig(
            name="climb",
            storage_path=str(tmp_path),
            stop={"training_iteration": 3},
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True),
            verbose=0,
        ),
    ).fit()
    assert grid.num_errors == 0, grid.errors
    assert [r.metrics["stats"]["height"] for r in grid] == [3.0, 6.0]
    assert [r.metrics["calls"] for r in grid] == [3, 3]
    # A nested metric is found by its flattened name, as in Ray.
    best = grid.get_best_result()
    assert best.config == {"rate": 2.0}
    with open(os.path.join(best.checkpoint.path, "climber.json")) as f:
        assert json.load(f) == {"height": 6.0, "calls": 3}


def test_param_space_objects_need_to_dict():
    with pytest.raises(TypeError, match="param_space must be a dict"):
        tune.Tuner(Climber, param_space=3)
