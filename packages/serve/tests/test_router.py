"""Choosing a replica: the power of two choices on ongoing requests, and the max_ongoing_requests cap."""

from __future__ import annotations

import collections
import itertools
import random

from shoal.serve._router import ReplicaConnection, Router


class FakeClient:
    """What a Router reads from its LoopClient; choosing a replica needs no event loop."""

    def __init__(self) -> None:
        self.loop = None
        self.rids = itertools.count(1)


def make_router(loads: list[int], max_ongoing: int) -> Router:
    router = Router(FakeClient(), ("controller", "app", "dep"))  # type: ignore[arg-type]
    router.max_ongoing = max_ongoing
    for i, load in enumerate(loads):
        conn = ReplicaConnection(f"r{i}", f"/nonexistent/r{i}", router)
        conn.ongoing = load
        router.replicas.append(conn)
    return router


def pick_counts(router: Router, n: int) -> collections.Counter[str | None]:
    counts: collections.Counter[str | None] = collections.Counter()
    for _ in range(n):
        conn = router._pick()
        counts[None if conn is None else conn.replica_id] += 1
    return counts


def test_the_less_loaded_of_two_random_replicas_wins() -> None:
    random.seed(7)
    counts = pick_counts(make_router([0, 3, 4], max_ongoing=10), 3000)
    # r2 loses every pair it is drawn in; r0 wins both pairs it is in (2 of the 3 pairs).
    assert counts["r2"] == 0
    assert 0.6 < counts["r0"] / 3000 < 0.73
    assert 0.27 < counts["r1"] / 3000 < 0.4
    # Equal loads spread evenly instead of piling onto one replica.
    counts = pick_counts(make_router([2, 2, 2, 2], max_ongoing=10), 4000)
    assert set(counts) == {"r0", "r1", "r2", "r3"}
    assert all(800 < c < 1200 for c in counts.values()), counts


def test_replicas_at_max_ongoing_requests_are_skipped_and_none_means_queue() -> None:
    random.seed(11)
    # Two of three replicas are full: whatever pair is drawn, the one with room gets the request.
    router = make_router([5, 5, 4], max_ongoing=5)
    assert pick_counts(router, 500) == {"r2": 500}
    router.replicas[2].ongoing = 5
    # Every replica is at the cap: no choice, the request waits in the router's queue.
    assert pick_counts(router, 50) == {None: 50}
    one = make_router([4], max_ongoing=5)
    assert one._pick() is one.replicas[0]
    one.replicas[0].ongoing = 5
    assert one._pick() is None
    assert make_router([], max_ongoing=5)._pick() is None
