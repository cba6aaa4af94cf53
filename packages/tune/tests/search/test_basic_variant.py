"""BasicVariantGenerator and the space resolver: grids, samples, sample_from, points_to_evaluate."""

from __future__ import annotations

import pytest

from shoal import tune
from shoal.tune.search import BasicVariantGenerator
from shoal.tune.search.variant_generator import count_variants, flatten_dict, format_vars, resolve, unflatten_dict


def all_configs(space, num_samples=1, **kwargs):
    gen = BasicVariantGenerator(random_state=0, **kwargs)
    gen._configure(space, num_samples)
    out = []
    while not gen.is_finished():
        s = gen.next_config(f"t{len(out)}")
        assert s is not None
        out.append(s)
    assert gen.next_config("extra") is None
    return out


def test_grid_times_samples():
    space = {"a": tune.grid_search([1, 2, 3]), "b": {"c": tune.grid_search(["x", "y"])}, "lr": tune.uniform(0, 1)}
    assert count_variants(space) == 6
    out = all_configs(space, num_samples=2)
    assert len(out) == 12
    combos = [(s.config["a"], s.config["b"]["c"]) for s in out[:6]]
    assert combos == [(1, "x"), (1, "y"), (2, "x"), (2, "y"), (3, "x"), (3, "y")]
    assert len({s.config["lr"] for s in out}) == 12  # each variant draws its own value


def test_constant_grid_search_shares_the_random_draw():
    space = {"a": tune.grid_search([1, 2, 3]), "lr": tune.uniform(0, 1)}
    out = all_configs(space, num_samples=2, constant_grid_search=True)
    assert len({s.config["lr"] for s in out[:3]}) == 1
    assert out[0].config["lr"] != out[3].config["lr"]


def test_seeded_generators_repeat():
    space = {"lr": tune.loguniform(1e-4, 1e-1), "n": tune.randint(1, 100)}
    a = [s.config for s in all_configs(space, num_samples=5)]
    b = [s.config for s in all_configs(space, num_samples=5)]
    assert a == b


def test_sample_from_sees_resolved_values_in_any_order():
    space = {
        "double": tune.sample_from(lambda spec: spec.config.half * 2),
        "quad": tune.sample_from(lambda spec: spec.config.double * 2),
        "half": tune.grid_search([1, 5]),
        "nested": {"x": tune.sample_from(lambda spec: spec.config["half"] + 1)},
    }
    out = all_configs(space)
    assert [s.config for s in out] == [
        {"double": 2, "quad": 4, "half": 1, "nested": {"x": 2}},
        {"double": 10, "quad": 20, "half": 5, "nested": {"x": 6}},
    ]


def test_sample_from_cycle_is_an_error():
    space = {"a": tune.sample_from(lambda s: s.config.b + 1), "b": tune.sample_from(lambda s: s.config.a + 1)}
    with pytest.raises(ValueError, match="cycle"):
        resolve(space)


def test_points_to_evaluate_come_first_and_fill_the_rest():
    space = {"a": tune.uniform(0, 1), "b": tune.choice(["x", "y"]), "g": tune.grid_search([1, 2])}
    out = all_configs(space, num_samples=3, points_to_evaluate=[{"a": 0.5, "g": 2}, {"a": 0.25, "b": "x"}])
    first = out[0].config
    assert first["a"] == 0.5 and first["g"] == 2 and first["b"] in ("x", "y")
    second = out[1:3]
    assert [s.config["a"] for s in second] == [0.25, 0.25]
    assert [s.config["g"] for s in second] == [1, 2]
    assert len(out) == 1 + 2 + 2


def test_max_concurrent_holds_back_configs():
    gen = BasicVariantGenerator(max_concurrent=1, random_state=0)
    gen._configure({"a": tune.uniform(0, 1)}, 3)
    assert gen.next_config("t0") is not None
    assert gen.next_config("t1") is None
    gen.on_trial_complete("t0")
    assert gen.next_config("t1") is not None


def test_unlimited_samples():
    gen = BasicVariantGenerator(random_state=0)
    gen._configure({"a": tune.uniform(0, 1)}, -1)
    for i in range(50):
        assert gen.next_config(f"t{i}") is not None
    assert not gen.is_finished()


def test_tags_and_flattening():
    assert format_vars({("a",): 0.00123456, ("n", "b"): "x y"}) == "a=0.0012,b=x_y"
    assert flatten_dict({"a": {"b": 1, "c": {}}, "d": 2}) == {"a/b": 1, "a/c": {}, "d": 2}
    assert unflatten_dict({"a/b": 1, "d": 2}) == {"a": {"b": 1}, "d": 2}


def test_bad_arguments():
    with pytest.raises(TypeError, match="points_to_evaluate"):
        BasicVariantGenerator(points_to_evaluate={"a": 1})
    with pytest.raises(ValueError, match="max_concurrent"):
        BasicVariantGenerator(max_concurrent=-1)
    gen = BasicVariantGenerator()
    with pytest.raises(RuntimeError, match="before the Tuner configured it"):
        gen.next_config("t0")
