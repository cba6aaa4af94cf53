"""Trainables by name: register_trainable and the ``shoal.tune.trainables`` entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from shoal import tune
from shoal.tune import registry


def doubling(config):
    tune.report({"out": 2 * config["x"]})


@pytest.fixture
def no_entry_points(monkeypatch):
    entries: list[EntryPoint] = []
    monkeypatch.setattr(registry, "entry_points", lambda group: [e for e in entries if e.group == group])
    monkeypatch.setattr(registry, "_registered", {})
    return entries


def test_registered_names_resolve(no_entry_points):
    tune.register_trainable("doubling", doubling)
    assert registry.get_trainable_cls("doubling") is doubling
    assert registry.registered_names() == ["doubling"]
    with pytest.raises(ValueError, match=r"unknown trainable 'doublng'\. Did you mean 'doubling'"):
        registry.get_trainable_cls("doublng")
    with pytest.raises(TypeError, match="name must be a non-empty string"):
        tune.register_trainable("", doubling)
    with pytest.raises(TypeError, match="trainable must be"):
        tune.register_trainable("three", 3)


def test_entry_points_resolve_lazily(no_entry_points):
    no_entry_points.append(EntryPoint("Dumps", "json:dumps", registry.ENTRY_POINT_GROUP))
    no_entry_points.append(EntryPoint("Broken", "no_such_module_xyz:thing", registry.ENTRY_POINT_GROUP))
    no_entry_points.append(EntryPoint("Elsewhere", "json:loads", "another.group"))
    import json

    assert registry.get_trainable_cls("Dumps") is json.dumps
    assert registry.is_registered("Dumps") and not registry.is_registered("Elsewhere")
    with pytest.raises(ValueError, match="failed to import"):
        registry.get_trainable_cls("Broken")
    # A name registered in the process wins over an entry point.
    tune.register_trainable("Dumps", doubling)
    assert registry.get_trainable_cls("Dumps") is doubling


@pytest.mark.usefixtures("shoal_runtime")
def test_a_tuner_runs_a_registered_name(no_entry_points, tmp_path):
    tune.register_trainable("doubling", doubling)
    grid = tune.Tuner(
        "doubling",
        param_space={"x": tune.grid_search([1, 4])},
        run_config=tune.RunConfig(name="by-name", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert [r.metrics["out"] for r in grid] == [2, 8]
    assert grid[0].path.split("/")[-1].startswith("doubling_")
