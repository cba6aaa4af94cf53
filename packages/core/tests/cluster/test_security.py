"""Cluster endpoints refuse peers without the token, and survive malformed, truncated and oversized input."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import shoal
from shoal._cluster.auth import read_token, token_metadata
from shoal._cluster.client import HeadClient
from shoal._cluster.proto import cluster_pb2 as pb
from shoal._runtime.pool import encode_handshake
from shoal.exceptions import AuthenticationError
from shoal.testing.cluster import Cluster

pytestmark = [pytest.mark.timeout(180), pytest.mark.shoal_backends("cluster")]

HEAD_METHODS = [
    "RegisterNode",
    "Heartbeat",
    "GetClusterInfo",
    "KVPut",
    "KVGet",
    "KVDelete",
    "KVKeys",
    "SubmitJob",
    "GetJob",
    "ListJobs",
    "GetJobLogs",
    "StopJob",
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if shoal.is_initialized():
        shoal.shutdown()
    c = Cluster()
    try:
        c.add_node(num_cpus=1)
        c.add_node(num_cpus=1)
        yield c
    finally:
        c.shutdown()


def _alive(cluster: Cluster) -> None:
    for node in cluster.nodes:
        assert node.alive, f"node {node.node_id} died"
    token = read_token(Path(cluster.token_path))
    client = HeadClient(cluster.address, token)
    try:
        assert len(client.cluster_info().nodes) == len(cluster.nodes)
    finally:
        client.close()


def test_token_file_is_private(cluster: Cluster) -> None:
    assert os.stat(cluster.token_path).st_mode & 0o777 == 0o600


def test_calls_without_or_with_a_wrong_token_are_rejected(cluster: Cluster) -> None:
    channel = grpc.insecure_channel(cluster.address)
    try:
        for metadata in ((), token_metadata("not-the-token")):
            call = channel.unary_unary("/shoal.cluster.Head/GetClusterInfo")
            with pytest.raises(grpc.RpcError) as info:
                call(b"", metadata=metadata, timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()
    with pytest.raises(AuthenticationError):
        HeadClient(cluster.address, "wrong").cluster_info()
    _alive(cluster)


def test_link_stream_without_token_is_rejected(cluster: Cluster) -> None:
    channel = grpc.insecure_channel(cluster.nodes[1].address)
    try:
        call = channel.stream_stream("/shoal.cluster.Node/Link")
        responses = call(iter([b"\x00\x00\x00\x10garbage-garbage"]), metadata=token_metadata("nope"), timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            list(responses)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()
    _alive(cluster)


def test_local_socket_refuses_a_wrong_token(cluster: Cluster) -> None:
    token = read_token(Path(cluster.token_path))
    client = HeadClient(cluster.address, token)
    try:
        path = next(n.unix_socket for n in client.cluster_info().nodes if n.is_head)
    finally:
        client.close()
    for first_bytes in (encode_handshake("wrong", os.getpid()), b"GET / HTTP/1.0\r\n\r\n", b"SHOAL1\xff"):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(path)
        s.sendall(first_bytes)
        data = b""
        try:
            while True:
                chunk = s.recv(100)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
        s.close()
        assert data in (b"", b"SHOAL-DENIED"), data
    _alive(cluster)


def test_fuzzed_requests_get_errors_and_nothing_dies(cluster: Cluster) -> None:
    token = read_token(Path(cluster.token_path))
    md = token_metadata(token)
    rng = random.Random(7)
    valid = pb.KVRequest(ns="n", key="k", value=b"v").SerializeToString()
    payloads = [
        b"",
        b"\xff" * 64,
        valid[: len(valid) // 2],  # truncated
        bytes(rng.getrandbits(8) for _ in range(512)),
        b"\x0a\xff\xff\xff\xff\x0f",  # a length prefix far beyond the data
        pb.KVRequest(ns="n", key="k" * 5000).SerializeToString(),  # a key too long
        pb.KVRequest(ns="n", key="big", value=b"x" * (65 << 20)).SerializeToString(),  # oversized
    ]
    channel = grpc.insecure_channel(cluster.address, options=[("grpc.max_send_message_length", 128 << 20)])
    try:
        for method in HEAD_METHODS:
            call = channel.unary_unary(f"/shoal.cluster.Head/{method}")
            for payload in payloads:
                try:
                    call(payload, metadata=md, timeout=20)
                except grpc.RpcError as e:
                    assert e.code() != grpc.StatusCode.UNAUTHENTICATED
                    assert e.code() in (
                        grpc.StatusCode.INVALID_ARGUMENT,
                        grpc.StatusCode.INTERNAL,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        grpc.StatusCode.NOT_FOUND,
                        grpc.StatusCode.UNKNOWN,
                    ), (method, e.code(), e.details())
        for node in cluster.nodes:
            link = grpc.insecure_channel(node.address).stream_stream("/shoal.cluster.Node/Link")
            for garbage in (b"\x05\x00\x00\x00\x80\x05junk", b"\xff\xff\xff\x7f", os.urandom(4096)):
                chunk = pb.Chunk(data=garbage).SerializeToString()
                try:
                    list(link(iter([chunk, b"not a chunk"]), metadata=md, timeout=10))
                except grpc.RpcError:
                    pass
    finally:
        channel.close()
    _alive(cluster)
    # The cluster still runs work.
    cluster.connect()
    try:
        assert shoal.get(shoal.remote(lambda: 5).remote(), timeout=60) == 5
    finally:
        shoal.shutdown()


def _link_addresses(cluster: Cluster) -> list[tuple[str, int]]:
    client = HeadClient(cluster.address, read_token(Path(cluster.token_path)))
    try:
        out = []
        for n in client.cluster_info().nodes:
            host, _, port = n.link_address.rpartition(":")
            out.append((host, int(port)))
        return out
    finally:
        client.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """True once the other side has closed (reads drain whatever it sent first)."""
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_tcp_links_prove_the_token_and_survive_garbage(cluster: Cluster) -> None:
    import hashlib
    import hmac

    from shoal._cluster.tcp_link import _MAGIC, _NONCE

    token = read_token(Path(cluster.token_path))
    addresses = _link_addresses(cluster)
    assert len(addresses) == 2 and all(port > 0 for _, port in addresses)
    for address in addresses:
        # A wrong answer to the challenge: closed, never acknowledged.
        with socket.create_connection(address, timeout=10) as s:
            challenge = s.recv(len(_MAGIC) + _NONCE, socket.MSG_WAITALL)
            assert challenge.startswith(_MAGIC) and len(challenge) == len(_MAGIC) + _NONCE
            s.sendall(_MAGIC + hmac.new(b"not-the-token", challenge[len(_MAGIC) :], hashlib.sha256).digest())
            assert _closed_by_peer(s)
        # Garbage instead of an answer.
        with socket.create_connection(address, timeout=10) as s:
            s.sendall(os.urandom(4096))
            assert _closed_by_peer(s)
        # Silence: dropped after the handshake timeout.
        with socket.create_connection(address, timeout=15) as s:
            assert _closed_by_peer(s)
        # A peer that proves the token and then sends frames that do not decode is cut off;
        # one that stops in the middle of a frame (here a huge one) just waits, harmlessly.
        frames = [b"\x05\x00\x00\x00\x80\x05junk", (4096).to_bytes(4, "little") + os.urandom(4096)]
        for garbage in [*frames, b"\xff\xff\xff\x7f" + os.urandom(64)]:
            with socket.create_connection(address, timeout=5) as s:
                challenge = s.recv(len(_MAGIC) + _NONCE, socket.MSG_WAITALL)
                s.sendall(_MAGIC + hmac.new(token.encode(), challenge, hashlib.sha256).digest())
                assert s.recv(1) == b"\x01"
                s.sendall(garbage)
                assert _closed_by_peer(s) == (garbage in frames)
    _alive(cluster)
    # Work still crosses the links between the nodes.
    cluster.connect()
    try:

        @shoal.remote(scheduling_strategy="SPREAD")
        def node_of() -> str:
            return shoal.get_runtime_context().get_node_id()

        nodes = set(shoal.get([node_of.remote() for _ in range(8)], timeout=60))
        assert nodes == {n.node_id for n in cluster.nodes}
    finally:
        shoal.shutdown()


def test_tls_cluster_encrypts_every_channel() -> None:
    from shoal._cluster.tls import tls_folder

    c = Cluster(tls=True)
    try:
        c.add_node(num_cpus=1)
        c.add_node(num_cpus=1, resources={"far": 1})
        folder = tls_folder(Path(c.token_path))
        assert (folder / "cert.pem").exists()
        # No plain TCP link listeners: node-to-node links go over gRPC with TLS.
        client = HeadClient(c.address, read_token(Path(c.token_path)), tls=folder)
        try:
            assert [n.link_address for n in client.cluster_info().nodes] == ["", ""]
        finally:
            client.close()
        assert os.stat(folder / "key.pem").st_mode & 0o777 == 0o600
        # A plaintext client cannot even reach the services.
        channel = grpc.insecure_channel(c.address)
        try:
            call = channel.unary_unary("/shoal.cluster.Head/GetClusterInfo")
            with pytest.raises(grpc.RpcError) as info:
                call(b"", metadata=token_metadata(read_token(Path(c.token_path))), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            channel.close()
        c.connect()

        @shoal.remote(resources={"far": 1})
        def across(x):
            return x * 2

        assert shoal.get(across.remote(21), timeout=60) == 42
    finally:
        c.shutdown()
