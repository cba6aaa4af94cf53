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


def test_resource_dicts_are_read_as_ray_reads_them():
    # cpu/CPU, gpu/GPU and memory are standard; custom_resources, when given, names the custom ones.
    assert resolve_resources(tune.with_resources(fn, {"CPU": 1.5, "gpu": 0}), {})[0] == {"CPU": 1.5}
    assert resolve_resources(tune.with_resources(fn, {"cpu": 0, "memory": 1000}), {})[0] == {"memory": 1000.0}
    spec = {"cpu": 1, "custom_resources": {"a": 2}, "ignored": 5}
    assert resolve_resources(tune.with_resources(fn, spec), {})[0] == {"CPU": 1.0, "a": 2.0}
    # A function of the config may return a list of bundles (shoal.rl's default_resource_request).
    bundles = tune.with_resources(fn, lambda config: [{"CPU": 1}, {"CPU": 0.5}])
    assert resolve_resources(bundles, {}) == ({"CPU": 1.5}, [{"CPU": 1.0}, {"CPU": 0.5}], "PACK")


@pytest.mark.parametrize("resources", [{"cpu": 0}, {"CPU": 0, "gpu": 0}, {"cpu": 0, "custom_resources": {"x": 0}}, {}])
def test_a_trial_that_asks_for_nothing_is_refused(resources):
    # Ray refuses these too (an empty head bundle and no worker bundles): such trials
    # would all start at once and none would hold the CPU it runs on.
    with pytest.raises(ValueError, match="ask for nothing"):
        tune.with_resources(fn, resources)
    with pytest.raises(ValueError, match="ask for nothing"):
        resolve_resources(tune.with_resources(fn, lambda config: resources), {})
    with pytest.raises(ValueError, match="no worker bundles"):
        tune.PlacementGroupFactory([{"CPU": 0}])


def test_empty_head_bundles_match_ray():
    pgf = tune.PlacementGroupFactory([{}, {"CPU": 1}, {"CPU": 1}])
    assert pgf.head_bundle_is_empty
    assert pgf.bundles == [{"CPU": 1.0}, {"CPU": 1.0}]  # Ray leaves the empty head out
    assert pgf.required_resources == {"CPU": 2.0}
    assert resolve_resources(tune.with_resources(fn, pgf), {}) == (
        {"CPU": 2.0},
        [{}, {"CPU": 1.0}, {"CPU": 1.0}],
        "PACK",
    )


def test_bad_resources():
    with pytest.raises(ValueError, match="must be a number"):
        tune.with_resources(fn, {"cpu": -1})
    with pytest.raises(TypeError, match="resources must be"):
        tune.with_resources(fn, 3)
    with pytest.raises(ValueError, match="bundles"):
        tune.PlacementGroupFactory([])
    with pytest.raises(ValueError, match="strategy"):
        tune.PlacementGroupFactory([{"CPU": 1}], strategy="TIGHT")
