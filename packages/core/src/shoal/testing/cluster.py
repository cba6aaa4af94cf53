"""A real multi-node cluster on 127.0.0.1 for tests: a head and node agents as separate processes.

cluster = Cluster()
head = cluster.add_node(num_cpus=2)          # the first node is the head
gpu = cluster.add_node(num_cpus=1, resources={"accel": 1})
cluster.connect()                             # shoal.init(address=..., token_path=...)
...
cluster.kill_node(gpu)                        # SIGKILL: a crash
cluster.shutdown()
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Cluster", "ClusterNode", "live_node_pids"]

_LIVE: set[int] = set()


def live_node_pids() -> set[int]:
    """PIDs of node agents that a live Cluster in this process owns (the leak check spares them)."""
    return set(_LIVE)


@dataclass
class ClusterNode:
    """One node agent process of a test cluster."""

    node_id: str
    address: str
    pid: int
    is_head: bool
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class Cluster:
    """Starts, grows, shrinks and kills a cluster of node agents on this machine."""

    def __init__(
        self,
        initialize_head: bool = False,
        head_node_args: dict[str, Any] | None = None,
        connect: bool = False,
        node_timeout_s: float = 3.0,
        tls: bool = False,
    ) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="shoal-cluster-"))
        self.token_path = str(self._dir / "token")
        self.node_timeout_s = node_timeout_s
        self.tls = tls
        self.nodes: list[ClusterNode] = []
        self.head: ClusterNode | None = None
        self._head_port = 0
        self._started = 0
        self._head_args: dict[str, Any] = {}
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()

    @property
    def address(self) -> str:
        if self.head is None:
            raise RuntimeError("the cluster has no head yet: call add_node() first")
        return self.head.address

    def add_node(
        self,
        num_cpus: int = 1,
        num_gpus: int = 0,
        resources: dict[str, float] | None = None,
        object_store_memory: int = 512 << 20,
        wait: bool = True,
        timeout: float = 60.0,
    ) -> ClusterNode:
        """Start a node agent (the first one is the head) and wait until it serves."""
        index = self._started
        self._started += 1
        ready = self._dir / f"node-{index}.json"
        log_path = self._dir / f"node-{index}.log"
        cmd = [
            sys.executable,
            "-m",
            "shoal._cluster.agent",
            "--num-cpus",
            str(num_cpus),
            "--num-gpus",
            str(num_gpus),
            "--object-store-memory",
            str(object_store_memory),
            "--token-path",
            self.token_path,
            "--temp-dir",
            str(self._dir / "tmp"),
            "--ready-file",
            str(ready),
            "--node-timeout",
            str(self.node_timeout_s),
            "--exit-with",
            str(os.getpid()),
        ]
        if resources:
            cmd += ["--resources", json.dumps(resources)]
        if self.head is None:
            cmd += ["--head", "--port", str(self._head_port), "--storage", str(self._dir / "head")]
            if self.tls:
                cmd += ["--tls"]
        else:
            cmd += ["--address", self.head.address]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.time() + timeout
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"the node agent exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.time() > deadline:
                proc.kill()
                proc.wait()
                raise TimeoutError(f"the node agent did not start within {timeout}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        ready.unlink()
        node = ClusterNode(info["node_id"], info["address"], info["pid"], self.head is None, proc, log_path)
        self.nodes.append(node)
        _LIVE.add(node.pid)
        if self.head is None:
            self.head = node
            self._head_port = int(info["address"].rsplit(":", 1)[1])
            self._head_args = {"num_cpus": num_cpus, "num_gpus": num_gpus, "resources": resources}
        if wait and not node.is_head:
            self.wait_for_nodes()
        return node

    def remove_node(self, node: ClusterNode, allow_graceful: bool = True) -> None:
        """Stop a node: gracefully (SIGTERM) or as a crash (SIGKILL)."""
        if node.alive:
            node.proc.send_signal(signal.SIGTERM if allow_graceful else signal.SIGKILL)
        try:
            node.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait()
        if node in self.nodes:
            self.nodes.remove(node)
        _LIVE.discard(node.pid)

    def kill_node(self, node: ClusterNode) -> None:
        self.remove_node(node, allow_graceful=False)

    def restart_head(self, kill: bool = True) -> ClusterNode:
        """Stop the head (SIGKILL by default) and start a new one on the same port and storage."""
        import shoal

        if shoal.is_initialized():
            shoal.shutdown()
        old = self.head
        assert old is not None
        self.remove_node(old, allow_graceful=not kill)
        self.head = None
        return self.add_node(**self._head_args)

    def _head_client(self) -> Any:
        from shoal.backend.cluster import head_client

        return head_client(self.address, self.token_path)

    def list_all_nodes(self) -> list[dict[str, Any]]:
        client = self._head_client()
        try:
            return [
                {"node_id": n.node_id, "address": n.address, "alive": n.alive, "is_head": n.is_head}
                for n in client.cluster_info().nodes
            ]
        finally:
            client.close()

    def wait_for_nodes(self, timeout: float = 30.0) -> None:
        """Wait until the head sees every node of this object alive."""
        want = {n.node_id for n in self.nodes if n.alive}
        deadline = time.time() + timeout
        while True:
            alive = {n["node_id"] for n in self.list_all_nodes() if n["alive"]}
            if want <= alive:
                return
            if time.time() > deadline:
                raise TimeoutError(f"nodes {sorted(want - alive)} did not join within {timeout}s")
            time.sleep(0.05)

    def connect(self, **init_kwargs: Any) -> dict[str, Any]:
        """``shoal.init`` against this cluster."""
        import shoal

        return shoal.init(address=self.address, token_path=self.token_path, **init_kwargs)

    def shutdown(self) -> None:
        """Disconnect this process and stop every node; nothing is left running."""
        import shoal

        if shoal.is_initialized():
            shoal.shutdown()
        for node in reversed(list(self.nodes)):
            if node.alive:
                node.proc.send_signal(signal.SIGTERM)
        for node in list(self.nodes):
            try:
                node.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
            _LIVE.discard(node.pid)
        self.nodes.clear()
        self.head = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
