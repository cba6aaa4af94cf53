"""Streaming generators: values arrive as they are yielded."""

from __future__ import annotations

import time

import pytest

import shoal
from shoal import ObjectRefGenerator

pytestmark = pytest.mark.usefixtures("shoal_runtime")


@shoal.remote
def count(n, delay=0.0):
    for i in range(n):
        time.sleep(delay)
        yield i


def test_generator_task_yields_refs() -> None:
    gen = count.remote(5)
    assert isinstance(gen, ObjectRefGenerator)
    assert [shoal.get(ref) for ref in gen] == [0, 1, 2, 3, 4]


@pytest.mark.shoal_backends("local", "cluster")
def test_values_arrive_before_the_task_ends() -> None:
    gen = count.remote(3, 0.5)
    start = time.time()
    first = shoal.get(next(gen))
    assert first == 0
    assert time.time() - start < 1.2
    assert [shoal.get(r) for r in gen] == [1, 2]


def test_generator_error_arrives_as_a_ref() -> None:
    @shoal.remote
    def fails():
        yield 1
        raise ValueError("stream broke")

    gen = fails.remote()
    assert shoal.get(next(gen)) == 1
    with pytest.raises(ValueError, match="stream broke"):
        shoal.get(next(gen))
    with pytest.raises(StopIteration):
        next(gen)


def test_explicit_streaming_option() -> None:
    @shoal.remote(num_returns="streaming")
    def items():
        yield from "abc"

    assert [shoal.get(r) for r in items.remote()] == ["a", "b", "c"]


def test_actor_generator_method() -> None:
    @shoal.remote
    class Source:
        def stream(self, n):
            for i in range(n):
                yield i * i

    s = Source.remote()
    assert [shoal.get(r) for r in s.stream.remote(4)] == [0, 1, 4, 9]


def test_async_iteration() -> None:
    import asyncio

    async def main():
        return [await ref async for ref in count.remote(3)]

    assert asyncio.run(main()) == [0, 1, 2]


def test_completed_ref() -> None:
    gen = count.remote(2)
    assert shoal.get(gen.completed()) is None
    assert [shoal.get(r) for r in gen] == [0, 1]
