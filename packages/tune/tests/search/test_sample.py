"""Search-space domains: bounds, quantization, samplers and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shoal import tune
from shoal.tune.search.sample import Categorical, Float, Function, Integer


def draw(domain, n=2000, seed=0):
    return domain.sample(size=n, random_state=seed)


def test_uniform_and_loguniform_stay_in_bounds():
    values = draw(tune.uniform(-2, 3))
    assert min(values) >= -2 and max(values) < 3
    assert abs(np.mean(values) - 0.5) < 0.15
    logs = draw(tune.loguniform(1e-4, 1e-1))
    assert min(logs) >= 1e-4 and max(logs) < 1e-1
    # Log-uniform: about a third of the draws per decade.
    assert 0.25 < np.mean([v < 1e-3 for v in logs]) < 0.42


def test_randint_excludes_upper_and_qrandint_includes_it():
    assert set(draw(tune.randint(0, 3))) == {0, 1, 2}
    assert set(draw(tune.qrandint(0, 10, 5))) == {0, 5, 10}
    assert set(draw(tune.qrandint(0, 3, 1))) == {0, 1, 2}  # q == 1 behaves like randint
    assert all(isinstance(v, int) for v in draw(tune.randint(0, 3), 10))


def test_lograndint_and_qlograndint():
    values = draw(tune.lograndint(1, 100))
    assert min(values) >= 1 and max(values) <= 99
    assert np.mean([v < 10 for v in values]) > 0.4
    q = draw(tune.qlograndint(10, 100, 10))
    assert set(q) <= set(range(10, 101, 10)) and 100 in q


def test_quniform_and_qloguniform_round_to_multiples():
    values = draw(tune.quniform(0, 1, 0.25))
    assert set(values) == {0.0, 0.25, 0.5, 0.75, 1.0}
    logs = draw(tune.qloguniform(1, 100, 5))
    assert all(math.isclose(v / 5, round(v / 5)) for v in logs)
    assert min(logs) >= 0 and max(logs) <= 100


def test_randn_and_qrandn():
    values = draw(tune.randn(5, 2), n=4000)
    assert abs(np.mean(values) - 5) < 0.2 and abs(np.std(values) - 2) < 0.2
    q = draw(tune.qrandn(0, 1, 0.5))
    assert all(math.isclose(v * 2, round(v * 2)) for v in q)


def test_choice_and_seeded_draws_repeat():
    d = tune.choice(["a", "b", 3])
    assert set(draw(d)) == {"a", "b", 3}
    assert d.sample(size=5, random_state=7) == d.sample(size=5, random_state=7)
    assert d.sample() in ("a", "b", 3)


def test_grid_search_marker():
    assert tune.grid_search([1, 2]) == {"grid_search": [1, 2]}
    with pytest.raises(TypeError, match="grid_search expects a list"):
        tune.grid_search("ab")


def test_sample_from_without_spec():
    assert tune.sample_from(lambda: 4).sample() == 4


def test_domain_kinds_and_validity():
    assert isinstance(tune.uniform(0, 1), Float)
    assert isinstance(tune.randint(0, 3), Integer)
    assert isinstance(tune.choice([1]), Categorical)
    assert isinstance(tune.sample_from(lambda s: 1), Function)
    assert tune.randint(0, 3).is_valid(2) and not tune.randint(0, 3).is_valid(3)
    assert "Float" in repr(tune.uniform(0, 1))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: tune.uniform(2, 1), ValueError, "lower"),
        (lambda: tune.loguniform(0, 1), ValueError, "loguniform needs 0 < lower"),
        (lambda: tune.lograndint(0, 10), ValueError, "lower > 0"),
        (lambda: tune.choice([]), ValueError, "must not be empty"),
        (lambda: tune.choice("abc"), TypeError, "list or tuple"),
        (lambda: tune.quniform(0, 1, 0), ValueError, "q must be > 0"),
        (lambda: tune.qrandint(0, 10, 2.5), TypeError, "q must be an int"),
        (lambda: tune.randn(0, 0), ValueError, "sd must be > 0"),
        (lambda: tune.sample_from(3), TypeError, "callable"),
        (lambda: tune.uniform(0, 1).sample(random_state="x"), TypeError, "random_state"),
    ],
)
def test_bad_domains(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_qrandint_with_no_multiple_in_range():
    with pytest.raises(ValueError, match="no multiple of q=10"):
        tune.qrandint(1, 9, 10).sample()
