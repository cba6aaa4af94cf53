"""shoal.util.queue.Queue shared between the driver, tasks and actors."""

from __future__ import annotations

import pytest

import shoal
from shoal.util.queue import Empty, Full, Queue

pytestmark = pytest.mark.usefixtures("shoal_runtime")


def test_fifo_between_driver_and_tasks() -> None:
    q = Queue()

    @shoal.remote
    def producer(queue, n):
        for i in range(n):
            queue.put(i)
        return n

    assert shoal.get(producer.remote(q, 5)) == 5
    assert [q.get(timeout=5) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert q.empty() and q.qsize() == 0 and len(q) == 0
    q.shutdown()


def test_bounded_queue_full_and_empty() -> None:
    q = Queue(maxsize=2)
    q.put(1)
    q.put_nowait(2)
    assert q.full()
    with pytest.raises(Full):
        q.put_nowait(3)
    with pytest.raises(Full):
        q.put(3, timeout=0.1)
    assert q.get_nowait() == 1
    assert q.get() == 2
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(timeout=0.1)
    q.shutdown()


def test_batches() -> None:
    q = Queue(maxsize=3)
    q.put_nowait_batch([1, 2, 3])
    with pytest.raises(Full):
        q.put_nowait_batch([4])
    assert q.get_nowait_batch(2) == [1, 2]
    with pytest.raises(Empty):
        q.get_nowait_batch(5)
    q.shutdown()
