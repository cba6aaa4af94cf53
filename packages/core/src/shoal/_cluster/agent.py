"""The node agent process: one machine's node runtime, its gRPC services, and (on the head) the head service.

    python -m shoal._cluster.agent --head [--port 6380] [--host 127.0.0.1] ...
    python -m shoal._cluster.agent --address HEAD_HOST:PORT ...

``shoal start`` runs this in the background; ``shoal.testing.Cluster`` runs
several of them on 127.0.0.1. Once serving, the agent writes a JSON "ready"
file (address, node id, pid, socket path) if ``--ready-file`` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from shoal._cluster.auth import TokenInterceptor, default_token_path, generate_token, read_token, write_token
from shoal._cluster.client import HeadClient, channel_options
from shoal._cluster.proto import cluster_pb2 as pb
from shoal._cluster.proto import cluster_pb2_grpc as pb_grpc
from shoal._runtime.node import NodeRuntime
from shoal.config import parse_size
from shoal.object_ref import new_id

__all__ = ["main", "DEFAULT_PORT", "NodeAgent"]

log = logging.getLogger("shoal.agent")

DEFAULT_PORT = 6380


def _resources(args: argparse.Namespace) -> dict[str, float]:
    import psutil

    cpus = args.num_cpus if args.num_cpus is not None else (os.cpu_count() or 1)
    out: dict[str, float] = {"CPU": float(cpus)}
    if args.num_gpus:
        out["GPU"] = float(args.num_gpus)
    out["memory"] = float(int(psutil.virtual_memory().available * 0.7))
    out["object_store_memory"] = float(args.object_store_memory)
    if args.resources:
        custom = json.loads(args.resources)
        if not isinstance(custom, dict):
            raise SystemExit("--resources must be a JSON object such as '{\"accel\": 2}'")
        out.update({str(k): float(v) for k, v in custom.items()})
    out[f"node:{args.host}"] = 1.0
    if args.head:
        out["node:__internal_head__"] = 1.0
    return out


class NodeAgent:
    """Runs a node: its runtime, the local driver socket, heartbeats, and the gRPC server."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stop_event = threading.Event()
        self.node_id = new_id().hex()
        self.head_state: Any = None
        self.jobs: Any = None
        if args.head:
            # A head restarted on its old address keeps the token its nodes and drivers know.
            existing = Path(args.token_path) if args.token_path else None
            self.token = read_token(existing) if existing is not None and existing.exists() else generate_token()
        else:
            path = Path(args.token_path) if args.token_path else default_token_path(args.address)
            if not path.exists() and not args.token_path:
                path = default_token_path()
            self.token = read_token(path)
            self.token_path = str(path)
        temp = Path(args.temp_dir)
        temp.mkdir(parents=True, exist_ok=True)
        self.session_dir = Path(tempfile.mkdtemp(prefix=f"node-{self.node_id[:8]}-", dir=temp))
        self.resources = _resources(args)
        self.runtime = NodeRuntime(
            node_id=self.node_id,
            job_id="00000000",
            namespace="default",
            resources=self.resources,
            store_capacity=int(args.object_store_memory),
            session_dir=str(self.session_dir),
            spill_dir=str(self.session_dir / "spill"),
            max_inline=100 * 1024,
            spin_us=int(args.worker_spin_us),
            log_to_driver=True,
            job_runtime_env=None,
            prestart=0,
        )
        self.socket_path = str(self.session_dir / "node.sock")
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="shoal-grpc"),
            interceptors=[TokenInterceptor(self.token)],
            options=channel_options(),
        )
        self.address = ""
        self.head_address = ""
        self.head: HeadClient | None = None
        self.links: Any = None  # TcpLinkListener when links go over plain TCP (no TLS)

    def start(self) -> None:
        args = self.args
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning(
                "listening on %s: anyone who can reach this address and holds the cluster token controls the "
                "cluster; keep the token file secret and consider tls=true",
                args.host,
            )
        storage = Path(args.storage) if args.storage else None
        if args.head:
            from shoal._cluster.head import HeadServicer, HeadState, start_failure_detector
            from shoal._cluster.jobs import JobManager

            storage = storage or (Path(args.temp_dir) / "head")
            self.head_state = HeadState(storage, node_timeout_s=args.node_timeout)
        self.tls = self._tls_folder()
        if self.tls is not None:
            from shoal._cluster.tls import server_credentials

            port = self.server.add_secure_port(f"{args.host}:{args.port}", server_credentials(self.tls))
        else:
            port = self.server.add_insecure_port(f"{args.host}:{args.port}")
        if port == 0:
            raise SystemExit(f"cannot listen on {args.host}:{args.port} (is the port in use?)")
        self.address = f"{args.host}:{port}"
        self.head_address = self.address if args.head else args.address
        if args.head:
            token_path = Path(args.token_path) if args.token_path else default_token_path(self.address)
            write_token(token_path, self.token)
            self.token_path = str(token_path)
            if self.tls is not None:
                from shoal._cluster.tls import tls_folder

                final = tls_folder(token_path)
                if final != self.tls:
                    import shutil

                    shutil.rmtree(final, ignore_errors=True)
                    shutil.move(str(self.tls), str(final))
                    self.tls = final
            assert storage is not None
            self.jobs = JobManager(self.head_state.db, self.head_state.lock, storage, self.address, self.token_path)
            pb_grpc.add_HeadServicer_to_server(HeadServicer(self.head_state, self.jobs), self.server)
            start_failure_detector(self.head_state, self.stop_event)
        from shoal._cluster.link import LinkServicer

        pb_grpc.add_NodeServicer_to_server(LinkServicer(self.runtime), self.server)
        self.server.start()
        if self.tls is None:
            from shoal._cluster.tcp_link import TcpLinkListener

            self.links = TcpLinkListener(self.runtime, args.host, self.token)
        self.head = HeadClient(self.head_address, self.token, tls=self.tls)
        self.runtime.enable_cluster(self.token, ClusterDirectory(self.head, self.node_id), self.tls)
        self.runtime.listen(self.socket_path, self.token)
        self.runtime.start()
        self._register()
        threading.Thread(target=self._heartbeat_loop, name="shoal-heartbeat", daemon=True).start()

    def _tls_folder(self) -> Path | None:
        """The cluster's certificate folder when TLS is on (created by the head with --tls)."""
        from shoal._cluster.tls import ensure_certificate, tls_folder

        args = self.args
        if args.head:
            if not args.tls:
                return None
            if args.token_path:
                folder = tls_folder(Path(args.token_path))
            elif args.port:
                folder = tls_folder(default_token_path(f"{args.host}:{args.port}"))
            else:
                # The port is known only once bound: make it here and move it next to the token then.
                folder = Path(tempfile.mkdtemp(prefix="shoal-tls-"))
            return ensure_certificate(folder, args.host)
        folder = tls_folder(Path(self.token_path))
        return folder if (folder / "cert.pem").exists() else None

    def node_info(self) -> pb.NodeInfo:
        available = _snapshot(self.runtime.local_available)
        return pb.NodeInfo(
            node_id=self.node_id,
            address=self.address,
            unix_socket=self.socket_path,
            hostname=socket.gethostname(),
            total=self.resources,
            available=available,
            is_head=bool(self.args.head),
            pid=os.getpid(),
            link_address=self.links.address if self.links is not None else "",
        )

    def _register(self) -> None:
        assert self.head is not None
        deadline = time.time() + 30
        while True:
            try:
                self.head.register(self.node_info())
                return
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                if time.time() > deadline:
                    raise SystemExit(f"cannot register with the head at {self.head_address}: {e}") from None
                time.sleep(0.2)

    def _heartbeat_loop(self) -> None:
        from shoal._cluster.head import HEARTBEAT_INTERVAL_S

        assert self.head is not None
        while not self.stop_event.wait(HEARTBEAT_INTERVAL_S):
            try:
                # Heartbeats never wait for the node lock: a long transfer holding it must not
                # make the head think this node is dead.
                available = _snapshot(self.runtime.local_available)
                demands = _snapshot(self.runtime.pending_demand)
                reply = self.head.heartbeat(self.node_id, available, [pb.ResourceDemand(**d) for d in demands])
                if reply.reregister:
                    self.head.register(self.node_info())
                view = [_node_dict(n) for n in reply.nodes]
                if not self.runtime.lock.acquire(timeout=HEARTBEAT_INTERVAL_S):
                    # Busy with a transfer: this view will be picked up by a later beat.
                    continue
                try:
                    self.runtime.cluster_view = view
                    peers = self.runtime.peers
                    for n in reply.nodes:
                        if not n.alive and n.node_id != self.node_id and n.node_id not in peers.handled_dead:
                            peers.on_node_dead(n.node_id)
                    # Work waiting for other nodes may fit now.
                    self.runtime.dispatch()
                finally:
                    self.runtime.lock.release()
            except Exception as e:
                log.warning("heartbeat failed: %s", e, exc_info=True)

    def write_ready(self, path: str) -> None:
        data = {
            "address": self.address,
            "head_address": self.head_address,
            "node_id": self.node_id,
            "pid": os.getpid(),
            "unix_socket": self.socket_path,
            "token_path": self.token_path,
            "session_dir": str(self.session_dir),
        }
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)

    def stop(self) -> None:
        self.stop_event.set()
        self.server.stop(grace=0.5)
        if self.links is not None:
            self.links.close()
        if self.jobs is not None:
            self.jobs.shutdown()
        self.runtime.shutdown()
        if self.head is not None:
            self.head.close()
        if self.head_state is not None:
            self.head_state.close()
        import shutil

        shutil.rmtree(self.session_dir, ignore_errors=True)


class ClusterDirectory:
    """What a node asks the head: cluster-wide actor names (kept in its KV store) and the node list."""

    NS = "named_actors"

    def __init__(self, head: HeadClient, node_id: str) -> None:
        self.head = head
        self.node_id = node_id

    @staticmethod
    def _key(namespace: str, name: str) -> str:
        return f"{namespace}\x00{name}"

    def register(self, namespace: str, name: str, actor_id: bytes, info: Any) -> bool:
        import pickle

        value = pickle.dumps((actor_id, self.node_id, info))
        return self.head.kv_put(self.NS, self._key(namespace, name), value, overwrite=False)

    def lookup(self, namespace: str, name: str) -> tuple[bytes, str, Any] | None:
        import pickle

        value = self.head.kv_get(self.NS, self._key(namespace, name))
        return None if value is None else pickle.loads(value)

    def relocate(self, namespace: str, name: str, actor_id: bytes, node_id: str, info: Any) -> None:
        import pickle

        self.head.kv_put(self.NS, self._key(namespace, name), pickle.dumps((actor_id, node_id, info)), overwrite=True)

    def remove(self, namespace: str, name: str, actor_id: bytes) -> None:
        found = self.lookup(namespace, name)
        if found is not None and found[0] == actor_id:
            self.head.kv_delete(self.NS, self._key(namespace, name))

    def nodes(self) -> list[dict[str, Any]]:
        return [_node_dict(n) for n in self.head.cluster_info().nodes]


def _snapshot(read: Any) -> Any:
    """Read runtime state without its lock; retried if another thread changed it meanwhile."""
    for _ in range(10):
        try:
            return read()
        except RuntimeError:  # a dict changed size while being read
            continue
    return read()


def _node_dict(n: pb.NodeInfo) -> dict[str, Any]:
    return {
        "node_id": n.node_id,
        "address": n.address,
        "link_address": n.link_address,
        "unix_socket": n.unix_socket,
        "hostname": n.hostname,
        "total": dict(n.total),
        "available": dict(n.available),
        "alive": n.alive,
        "is_head": n.is_head,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m shoal._cluster.agent", description=__doc__)
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", action="store_true", help="start the head (and a node on it)")
    role.add_argument("--address", help="HOST:PORT of the head to join")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help=f"gRPC port (head default {DEFAULT_PORT}, nodes: any)")
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument("--num-gpus", type=int, default=0)
    p.add_argument("--resources", default=None, help="custom resources as JSON, e.g. '{\"accel\": 2}'")
    p.add_argument("--object-store-memory", type=parse_size, default=2 << 30)
    p.add_argument("--temp-dir", default="/tmp/shoal")
    p.add_argument("--storage", default=None, help="head state directory (SQLite); survives restarts")
    p.add_argument("--token-path", default=None)
    p.add_argument("--node-timeout", type=float, default=3.0, help="seconds without heartbeat before a node is dead")
    p.add_argument("--ready-file", default=None)
    p.add_argument("--tls", action="store_true", help="head: encrypt every cluster channel (TLS)")
    # Workers of a node sleep at once when idle by default: a node's workers
    # usually fill its cores, and polling then takes CPU from the busy ones
    # (tasks across 3 nodes on 2 cores: 4,500/s polling 200 us, 5,800/s not).
    p.add_argument("--worker-spin-us", type=int, default=0, help="microseconds an idle worker polls before sleeping")
    p.add_argument("--exit-with", type=int, default=None, help="exit when the process with this PID ends (tests)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.port is None:
        args.port = DEFAULT_PORT if args.head else 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import faulthandler

    # `kill -USR1 <pid>` prints every thread's stack to the agent's log: for diagnosing hangs.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    agent = NodeAgent(args)
    stopped = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        agent.start()
    except SystemExit as e:
        print(f"shoal node agent: {e}", file=sys.stderr)
        agent.stop()
        return 1
    if args.ready_file:
        agent.write_ready(args.ready_file)
    log.info("node %s serving at %s (head %s)", agent.node_id[:12], agent.address, agent.head_address)
    from shoal._runtime.protocol import pid_alive

    while not stopped.wait(0.5):
        if args.exit_with is not None and not pid_alive(args.exit_with):
            log.warning("process %d, which this node belongs to, is gone: stopping", args.exit_with)
            break
    agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
