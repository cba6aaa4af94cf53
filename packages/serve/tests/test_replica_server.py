"""A replica's request loop on plain asyncio (no runtime): bookkeeping, cancellation, limits."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import cloudpickle

from shoal.serve import _wire as W
from shoal.serve._logging import ReplicaLog
from shoal.serve._replica import _Server, _UserCode
from shoal.serve.config import DeploymentConfig
from shoal.serve.exceptions import RequestCancelledError


class Model:
    async def slow(self, x: int) -> int:
        await asyncio.sleep(0.05)
        return x


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def send(self, msg: tuple[Any, ...]) -> None:
        self.sent.append(msg)


def make_server(tmp_path, max_ongoing: int) -> _Server:
    user = _UserCode(cloudpickle.dumps(Model), cloudpickle.dumps(((), {})), False, "Model")
    log = ReplicaLog(str(tmp_path / "replica.log"), access_log=True)
    return _Server(user, DeploymentConfig(max_ongoing_requests=max_ongoing), log, asyncio.get_running_loop())


def call(rid: int, x: int) -> tuple[Any, ...]:
    return (W.CALL, rid, "slow", False, cloudpickle.dumps(((x,), {})))


def test_requests_cancelled_before_they_start_are_answered_and_forgotten(tmp_path) -> None:
    async def main() -> None:
        server = make_server(tmp_path, max_ongoing=2)
        conn = FakeConn()
        for rid in range(1, 6):
            server._on_message(conn, call(rid, rid))
            server._on_message(conn, (W.CANCEL, rid))  # same read: its task has not run yet
        await asyncio.sleep(0.01)
        assert server.ongoing == 0 and not server.tasks
        assert sorted(m[1] for m in conn.sent) == [1, 2, 3, 4, 5]
        assert all(m[0] == W.ERR and isinstance(pickle.loads(m[2]), RequestCancelledError) for m in conn.sent)
        # The limit is intact: two more requests run and finish.
        conn.sent.clear()
        server._on_message(conn, call(10, 7))
        server._on_message(conn, call(11, 8))
        await asyncio.sleep(0.2)
        assert sorted((m[1], pickle.loads(m[2])) for m in conn.sent) == [(10, 7), (11, 8)]
        assert server.ongoing == 0
        server.log.close()
        lines = (tmp_path / "replica.log").read_text().splitlines()
        assert sum("CALL slow CANCELLED" in line for line in lines) <= 5
        assert sum("CALL slow OK" in line for line in lines) == 2

    asyncio.run(main())


def test_over_the_limit_requests_wait_for_a_slot_and_cancel_mid_run(tmp_path) -> None:
    async def main() -> None:
        server = make_server(tmp_path, max_ongoing=1)
        conn = FakeConn()
        server._on_message(conn, call(1, 1))
        server._on_message(conn, call(2, 2))  # a second router's request: waits for the slot
        await asyncio.sleep(0.02)
        server._on_message(conn, (W.CANCEL, 1))
        await asyncio.sleep(0.2)
        kinds = {m[1]: m[0] for m in conn.sent}
        assert kinds == {1: W.ERR, 2: W.OK}
        assert server.ongoing == 0
        server.log.close()

    asyncio.run(main())


def test_draining_replica_rejects_new_requests(tmp_path) -> None:
    async def main() -> None:
        server = make_server(tmp_path, max_ongoing=5)
        conn = FakeConn()
        server._on_message(conn, call(1, 1))
        drain = asyncio.ensure_future(server.drain(0.0, 5.0))
        await asyncio.sleep(0)
        server._on_message(conn, call(2, 2))
        await drain
        assert {m[1]: m[0] for m in conn.sent} == {1: W.OK, 2: W.REJECT}
        server.log.close()

    asyncio.run(main())
