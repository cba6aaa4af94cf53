"""ActorPool: spreading work over actors."""

from __future__ import annotations

import time

import pytest

import shoal
from shoal.util import ActorPool

pytestmark = pytest.mark.usefixtures("shoal_runtime")


@shoal.remote
class Doubler:
    def double(self, x):
        return 2 * x

    def slow_double(self, x):
        time.sleep(0.3 if x == 0 else 0.0)
        return 2 * x


def test_map_keeps_order() -> None:
    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    assert list(pool.map(lambda a, v: a.double.remote(v), range(10))) == [2 * i for i in range(10)]


def test_map_unordered_returns_everything() -> None:
    pool = ActorPool([Doubler.remote(), Doubler.remote()])
    out = list(pool.map_unordered(lambda a, v: a.slow_double.remote(v), range(6)))
    assert sorted(out) == [0, 2, 4, 6, 8, 10]


def test_submit_and_get_next() -> None:
    pool = ActorPool([Doubler.remote()])
    pool.submit(lambda a, v: a.double.remote(v), 1)
    pool.submit(lambda a, v: a.double.remote(v), 2)
    assert pool.has_next()
    assert pool.get_next() == 2
    assert pool.get_next() == 4
    assert not pool.has_next()
    with pytest.raises(StopIteration):
        pool.get_next()


def test_idle_actors_and_push() -> None:
    a, b = Doubler.remote(), Doubler.remote()
    pool = ActorPool([a])
    assert pool.has_free()
    popped = pool.pop_idle()
    assert popped is a
    assert pool.pop_idle() is None
    pool.push(b)
    with pytest.raises(ValueError):
        pool.push(b)
