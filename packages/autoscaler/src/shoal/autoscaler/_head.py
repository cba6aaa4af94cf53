"""The one module that talks to a cluster's head service (shoal-core's ``shoal._cluster`` client).

Everything else in the autoscaler sees the head through the plain types
here: :class:`HeadNode`, :class:`HeadDemand` and :class:`HeadConnection`
(the head's node list, pending demand and the autoscaler's corner of its
key-value store). Keeping the core-internal import in one place keeps the
package's dependence on it small and visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal._cluster.auth import read_token
from shoal._cluster.client import HeadClient
from shoal._cluster.tls import tls_folder

__all__ = [
    "KV_NAMESPACE",
    "KEY_RESOURCE_REQUESTS",
    "KEY_STATUS",
    "HeadConnection",
    "HeadDemand",
    "HeadNode",
    "connect",
]

#: The autoscaler's namespace in the head's key-value store.
KV_NAMESPACE = "autoscaler"
#: JSON list of the bundles of the last ``request_resources`` call.
KEY_RESOURCE_REQUESTS = "resource_requests"
#: JSON of the autoscaler's last published status.
KEY_STATUS = "status"


@dataclass(frozen=True)
class HeadNode:
    """One node as the head lists it."""

    node_id: str
    address: str
    pid: int
    hostname: str
    is_head: bool
    alive: bool
    total: dict[str, float]
    available: dict[str, float]

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0]


@dataclass(frozen=True)
class HeadDemand:
    """``count`` pending copies of ``shape`` of one kind (task, actor, placement_group), and why."""

    shape: dict[str, float]
    count: int
    kind: str
    reason: str


class HeadConnection:
    """A connection to a head service, authenticated with the cluster token.

    The token itself stays inside; :attr:`secret` exists only so that
    redaction can mask it should it ever show up in a message.
    """

    def __init__(self, address: str, token_path: str | Path, timeout_s: float = 10.0) -> None:
        self.address = address
        self.token_path = str(token_path)
        self.secret = read_token(Path(token_path))
        folder = tls_folder(Path(token_path))
        tls = folder if (folder / "cert.pem").exists() else None
        self._client = HeadClient(address, self.secret, timeout=timeout_s, tls=tls)

    def cluster(self) -> tuple[list[HeadNode], list[HeadDemand]]:
        """The nodes (alive and dead) and the pending demand, now."""
        reply = self._client.cluster_info()
        nodes = [
            HeadNode(
                node_id=n.node_id,
                address=n.address,
                pid=int(n.pid),
                hostname=n.hostname,
                is_head=bool(n.is_head),
                alive=bool(n.alive),
                total=dict(n.total),
                available=dict(n.available),
            )
            for n in reply.nodes
        ]
        demands = [HeadDemand(dict(d.shape), int(d.count), d.kind, d.reason) for d in reply.demands]
        return nodes, demands

    def get_json(self, key: str) -> Any:
        """The JSON value stored under ``key`` in the autoscaler's namespace, or None."""
        raw = self._client.kv_get(KV_NAMESPACE, key)
        return None if raw is None else json.loads(raw)

    def put_json(self, key: str, value: Any) -> None:
        self._client.kv_put(KV_NAMESPACE, key, json.dumps(value, sort_keys=True).encode(), overwrite=True)

    def delete(self, key: str) -> None:
        self._client.kv_delete(KV_NAMESPACE, key)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HeadConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(address: str | None, token_path: str | None = None) -> HeadConnection:
    """A connection found the way ``shoal status`` and ``shoal.init(address=...)`` find theirs.

    ``address`` None or "auto" means ``SHOAL_ADDRESS`` or the head last
    started here; without ``token_path`` the token is the default file for
    that address.
    """
    from shoal._cluster.auth import default_token_path
    from shoal.backend.cluster import resolve_address

    addr = resolve_address(address)
    if token_path:
        path = Path(token_path)
    else:
        path = default_token_path(addr)
        if not path.exists():
            path = default_token_path()
    return HeadConnection(addr, path)
