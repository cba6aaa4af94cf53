"""shoal's main job: a small tasks-and-actors program on the embedded local backend.

It grows, issue by issue, into the end-to-end data -> train -> tune -> serve example.
"""

from __future__ import annotations

import time

import numpy as np

import shoal


@shoal.remote
def partial_sum(block: np.ndarray) -> float:
    return float(block.sum())


@shoal.remote
class Accumulator:
    def __init__(self) -> None:
        self.total = 0.0

    def add(self, value: float) -> float:
        self.total += value
        return self.total


def main() -> None:
    t0 = time.perf_counter()
    info = shoal.init()
    print(f"shoal started ({info['backend']} backend) in {time.perf_counter() - t0:.3f}s")

    data = np.arange(10_000_000, dtype=np.float64)
    data_ref = shoal.put(data)  # one copy in shared memory, read zero-copy by every task
    blocks = [partial_sum.remote(b) for b in np.array_split(shoal.get(data_ref), 8)]

    acc = Accumulator.remote()
    totals = [acc.add.remote(ref) for ref in blocks]
    result = shoal.get(totals[-1])
    assert result == float(data.sum()), (result, data.sum())
    print(f"sum of 0..{len(data) - 1} = {result:.0f} from {len(blocks)} tasks and one actor")
    print(f"cluster resources: {shoal.cluster_resources()}")
    shoal.shutdown()
    print(f"done in {time.perf_counter() - t0:.3f}s")


if __name__ == "__main__":
    main()
