"""@serve.batch on plain asyncio (no runtime needed)."""

from __future__ import annotations

import asyncio
import pickle

import cloudpickle
import pytest

from shoal import serve


def test_calls_are_batched_and_results_go_back_to_each_caller() -> None:
    sizes: list[int] = []

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    async def double(xs: list[int]) -> list[int]:
        sizes.append(len(xs))
        return [2 * x for x in xs]

    async def main() -> list[int]:
        return await asyncio.gather(*(double(i) for i in range(10)))

    assert asyncio.run(main()) == [2 * i for i in range(10)]
    assert sizes == [4, 4, 2]


def test_methods_batch_per_instance_and_with_several_arguments() -> None:
    class Model:
        def __init__(self, offset: int) -> None:
            self.offset = offset

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
        async def add(self, a: list[int], b: list[int]) -> list[int]:
            return [x + y + self.offset for x, y in zip(a, b, strict=True)]

    m1, m2 = Model(0), Model(100)

    async def main() -> tuple[list[int], list[int]]:
        r1 = asyncio.gather(*(m1.add(i, i) for i in range(3)))
        r2 = asyncio.gather(*(m2.add(i, 1) for i in range(3)))
        return await r1, await r2

    assert asyncio.run(main()) == ([0, 2, 4], [101, 102, 103])


def test_errors_reach_every_caller_of_the_batch() -> None:
    @serve.batch(max_batch_size=3, batch_wait_timeout_s=0.05)
    async def broken(xs: list[int]) -> list[int]:
        raise ValueError("bad batch")

    @serve.batch(max_batch_size=3, batch_wait_timeout_s=0.05)
    async def wrong_length(xs: list[int]) -> list[int]:
        return [1]

    async def main() -> list:
        a = await asyncio.gather(*(broken(i) for i in range(3)), return_exceptions=True)
        b = await asyncio.gather(*(wrong_length(i) for i in range(2)), return_exceptions=True)
        return [*a, *b]

    results = asyncio.run(main())
    assert all(isinstance(r, ValueError) and "bad batch" in str(r) for r in results[:3])
    assert all(isinstance(r, TypeError) and "list of 2 results" in str(r) for r in results[3:])


def test_timeout_runs_a_partial_batch_and_settings_change() -> None:
    sizes: list[int] = []

    @serve.batch(max_batch_size=100, batch_wait_timeout_s=0.05)
    async def ident(xs: list[int]) -> list[int]:
        sizes.append(len(xs))
        return xs

    async def main() -> None:
        assert await asyncio.gather(*(ident(i) for i in range(5))) == list(range(5))
        ident.set_max_batch_size(2)
        ident.set_batch_wait_timeout_s(0.0)
        assert await asyncio.gather(*(ident(i) for i in range(4))) == list(range(4))

    asyncio.run(main())
    assert sizes[0] == 5 and max(sizes[1:]) <= 2


def test_batched_methods_pickle_with_their_class() -> None:
    class Holder:
        @serve.batch
        async def f(self, xs: list[int]) -> list[int]:
            return xs

    clone = pickle.loads(cloudpickle.dumps(Holder))

    async def main() -> list[int]:
        h = clone()
        return await asyncio.gather(h.f(1), h.f(2))

    assert asyncio.run(main()) == [1, 2]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        serve.batch(max_batch_size=0)
    with pytest.raises(ValueError, match="batch_wait_timeout_s"):
        serve.batch(batch_wait_timeout_s=-1)
    with pytest.raises(TypeError, match="async function"):
        serve.batch(lambda xs: xs)
