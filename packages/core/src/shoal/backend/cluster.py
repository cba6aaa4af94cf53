"""The ``cluster`` backend: a driver connected to a node agent of a multi-node cluster.

``shoal.init(address="HOST:PORT")`` asks the head at that address for the
cluster's nodes, connects to the node agent running on this machine through
its local socket, and from then on speaks the same protocol as a worker.
``address="auto"`` uses ``SHOAL_ADDRESS`` or the head last started on this
machine with ``shoal start --head``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from shoal._cluster.auth import default_token_path, read_token, shoal_home
from shoal._cluster.client import HeadClient
from shoal._runtime.driver_client import DriverClient
from shoal._runtime.worker_backend import WorkerBackend
from shoal.backend.base import RuntimeInfo
from shoal.config import Config
from shoal.exceptions import ConfigError, ShoalSystemError

__all__ = ["ClusterBackend", "resolve_address", "token_for", "token_file", "head_client"]

LAST_HEAD_FILE = "last-head"


def resolve_address(address: str | None) -> str:
    """A concrete HOST:PORT for ``address`` (which may be None or "auto")."""
    if address in (None, "", "auto"):
        env = os.environ.get("SHOAL_ADDRESS")
        if env and env != "auto":
            return env
        last = shoal_home() / LAST_HEAD_FILE
        if last.exists():
            return last.read_text().strip()
        raise ConfigError(
            "no cluster address: pass shoal.init(address='HOST:PORT'), set SHOAL_ADDRESS, "
            "or start a head on this machine with `shoal start --head`"
        )
    if ":" not in address:
        raise ConfigError(f"a cluster address looks like HOST:PORT, got {address!r}")
    return address


def token_file(address: str, token_path: str | None) -> Path:
    if token_path:
        return Path(token_path)
    path = default_token_path(address)
    return path if path.exists() else default_token_path()


def token_for(address: str, token_path: str | None) -> str:
    return read_token(token_file(address, token_path))


def head_client(address: str, token_path: str | None) -> HeadClient:
    """A client of the head at ``address`` with the cluster's token (and TLS, when the cluster uses it)."""
    from shoal._cluster.tls import tls_folder

    path = token_file(address, token_path)
    folder = tls_folder(path)
    return HeadClient(address, read_token(path), tls=folder if (folder / "cert.pem").exists() else None)


def _pick_node(nodes: list[Any]) -> Any:
    """The node agent to attach to: one on this machine, the head first."""
    host = socket.gethostname()
    local = [n for n in nodes if n.alive and n.hostname == host and os.path.exists(n.unix_socket)]
    if not local:
        raise ShoalSystemError(
            "no live node of this cluster runs on this machine; start one with "
            "`shoal start --address HEAD` (drivers attach to a local node agent)"
        )
    local.sort(key=lambda n: (not n.is_head, n.node_id))
    return local[0]


class ClusterBackend(WorkerBackend):
    """A driver of a multi-node cluster."""

    name = "cluster"

    def __init__(self, config: Config) -> None:
        self.address = resolve_address(config.address)
        token = token_for(self.address, config.token_path)
        self._head = head_client(self.address, config.token_path)
        try:
            info = self._head.cluster_info()
        except BaseException:
            self._head.close()
            raise
        node = _pick_node(list(info.nodes))
        job_config = {
            "namespace": config.namespace,
            "runtime_env": dict(config.values.get("runtime_env") or {}),
        }
        self._client = DriverClient(node.unix_socket, token, job_config)
        self._node_address = node.address
        super().__init__(self._client)  # type: ignore[arg-type]

    def runtime_info(self) -> RuntimeInfo:
        info = self._client.info
        return RuntimeInfo(
            job_id=info.get("job_id", ""),
            node_id=info.get("node_id", ""),
            worker_id=info.get("worker_id", f"driver-{os.getpid()}"),
            namespace=info.get("namespace", ""),
            runtime_env=dict(info.get("runtime_env") or {}),
        )

    # The head's view is the authoritative one for the whole cluster.

    def nodes(self) -> list[dict[str, Any]]:
        out = []
        for n in self._head.cluster_info().nodes:
            host, _, port = n.address.rpartition(":")
            out.append(
                {
                    "NodeID": n.node_id,
                    "Alive": n.alive,
                    "NodeManagerAddress": host,
                    "NodeManagerPort": int(port),
                    "NodeManagerHostname": n.hostname,
                    "NodeName": host,
                    "Resources": dict(n.total),
                    "alive": n.alive,
                    "IsHead": n.is_head,
                }
            )
        return out

    def cluster_resources(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for n in self._head.cluster_info().nodes:
            if n.alive:
                for k, v in n.total.items():
                    total[k] = total.get(k, 0.0) + v
        return total

    def available_resources(self) -> dict[str, float]:
        # Other nodes as of their last heartbeat; the attached node as of now.
        mine = self.runtime_info().node_id
        free: dict[str, float] = dict(self._w.request("local_available", None))
        for n in self._head.cluster_info().nodes:
            if n.alive and n.node_id != mine:
                for k, v in n.available.items():
                    free[k] = free.get(k, 0.0) + v
        return {k: v for k, v in free.items() if v > 1e-9}

    def kv_get(self, namespace: str, key: str) -> bytes | None:
        return self._head.kv_get(namespace, key)

    def kv_put(self, namespace: str, key: str, value: bytes, overwrite: bool) -> bool:
        return self._head.kv_put(namespace, key, value, overwrite)

    def kv_delete(self, namespace: str, key: str) -> bool:
        return self._head.kv_delete(namespace, key)

    def kv_keys(self, namespace: str, prefix: str) -> list[str]:
        return self._head.kv_keys(namespace, prefix)

    def shutdown(self) -> None:
        self._client.close()
        self._head.close()
