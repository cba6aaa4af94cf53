"""with_resources, PlacementGroupFactory and resource resolution."""

from __future__ import annotations

import pytest

from shoal import tune
from shoal.tune.trainable.util import resolve_resources


def fn(config):
    tune.report({"x": 1})


class Cls(tune.Trainable):
    def step(self):
        return {"done": True}


def test_dicts_and_functions_of_the_config():
    assert resolve_resources(fn, {}) == ({"CPU": 1.0}, None, "PACK")
    assert resolve_resources(tune.with_resources(fn, {"cpu": 2, "gpu": 0, "custom": 1}), {}) == (
        {"CPU": 2.0, "custom": 1.0},
        None,
        "PACK",
    )
    dynamic = tune.with_resources(fn, lambda config: {"cpu": config["n"]})
    assert resolve_resources(dynamic, {"n": 3})[0] == {"CPU": 3.0}
    assert resolve_resources(tune.with_resources(Cls, {"CPU": 0.5}), {})[0] == {"CPU": 0.5}


def test_placement_group_factories():
    pgf = tune.PlacementGroupFactory([{"CPU": 1}, {"CPU": 2, "GPU": 1}], strategy="SPREAD")
    assert pgf.required_resources == {"CPU": 3.0, "GPU": 1.0}
    assert resolve_resources(tune.with_resources(fn, pgf), {}) == (
        {"CPU": 3.0, "GPU": 1.0},
        [{"CPU": 1.0}, {"CPU": 2.0, "GPU": 1.0}],
        "SPREAD",
    )
    single = tune.PlacementGroupFactory([{"CPU": 2}])
    assert resolve_resources(tune.with_resources(fn, single), {}) == ({"CPU": 2.0}, None, "PACK")
    assert tune.PlacementGroupFactory([{}, {"CPU": 1}]).head_bundle_is_empty
    assert pgf == tune.PlacementGroupFactory([{"CPU": 1}, {"CPU": 2, "GPU": 1}], strategy="SPREAD")
    assert pgf != tune.PlacementGroupFactory([{"CPU": 1}, {"CPU": 2, "GPU": 1}])


def test_default_resource_request_of_classes():
    class Big(tune.Trainable):
        @classmethod
        def default_resource_request(cls, config):
            return {"cpu": 2}

    assert resolve_resources(Big, {})[0] == {"CPU": 2.0}


def test_bad_resources():
    with pytest.raises(ValueError, match="must be a number"):
        tune.with_resources(fn, {"cpu": -1})
    with pytest.raises(TypeError, match="resources must be"):
        tune.with_resources(fn, 3)
    with pytest.raises(ValueError, match="bundles"):
        tune.PlacementGroupFactory([])
    with pytest.raises(ValueError, match="strategy"):
        tune.PlacementGroupFactory([{"CPU": 1}], strategy="TIGHT")
