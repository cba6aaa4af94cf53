"""Node-to-node links: the runtime protocol carried over a gRPC bidirectional stream.

A link is a byte stream of framed runtime messages cut into chunks of at
most 4 MiB, so a large object crosses in many chunks. The side that opens
the link (:class:`LinkClient`) acts towards the other node like a connected
driver; the accepting side (:class:`LinkServicer`) registers it with its node
runtime as a peer client. The token interceptor has already authenticated
the stream before any chunk is read.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from shoal._cluster.auth import token_metadata
from shoal._cluster.client import channel_options
from shoal._cluster.proto import cluster_pb2 as pb
from shoal._cluster.proto import cluster_pb2_grpc as pb_grpc
from shoal._runtime import protocol as P

if TYPE_CHECKING:
    from shoal._runtime.node import NodeRuntime

__all__ = ["LinkClient", "LinkServicer", "StreamConn", "CHUNK"]

log = logging.getLogger("shoal.link")

CHUNK = 4 << 20
_CLOSE = object()


def _chunks(data: bytes | bytearray) -> Iterator[pb.Chunk]:
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        yield pb.Chunk(data=bytes(view[start : start + CHUNK]))


class StreamConn:
    """What the node runtime sends to a peer: the same interface as a socket connection."""

    _fds = itertools.count(-1, -1)

    def __init__(self) -> None:
        self.out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._buf = bytearray()
        self.closed = False
        self.fd = next(self._fds)  # a fake, unique, never-watched descriptor

    def send(self, msg: tuple[Any, ...]) -> None:
        self._buf += P.encode(msg)
        self.flush()

    def queue(self, msg: tuple[Any, ...]) -> None:
        self._buf += P.encode(msg)

    def flush(self) -> bool:
        if self._buf and not self.closed:
            data = bytes(self._buf)
            self._buf.clear()
            for chunk in _chunks(data):
                self.out.put(chunk)
        return True

    @property
    def pending_output(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.out.put(_CLOSE)

    def outgoing(self) -> Iterator[pb.Chunk]:
        while True:
            item = self.out.get()
            if item is _CLOSE:
                return
            yield item


class LinkServicer(pb_grpc.NodeServicer):
    """Accepts links from peer nodes (and remote drivers) into this node's runtime."""

    def __init__(self, node: NodeRuntime) -> None:
        self.node = node

    def Link(self, request_iterator: Iterator[pb.Chunk], context: grpc.ServicerContext) -> Iterator[pb.Chunk]:
        conn = StreamConn()
        node = self.node
        with node.lock:
            peer = node.add_peer(conn)
        reader = P.FrameReader()

        def consume() -> None:
            try:
                for chunk in request_iterator:
                    msgs = list(reader.feed(chunk.data))
                    if msgs:
                        with node.lock:
                            node.handle_peer_messages(peer, msgs)
            except grpc.RpcError:
                pass
            except Exception:
                log.exception("bad data on a link; closing it")
            finally:
                with node.lock:
                    node.drop_peer(peer)
                conn.close()

        threading.Thread(target=consume, name="shoal-link-in", daemon=True).start()
        context.add_callback(conn.close)
        yield from conn.outgoing()


class LinkClient:
    """This node's end of a link it opened to another node; replies are handled under the node lock."""

    def __init__(
        self,
        node: NodeRuntime,
        peer_node_id: str,
        address: str,
        token: str,
        on_lost: Callable[[str], None],
    ) -> None:
        self.node = node
        self.peer_node_id = peer_node_id
        self.address = address
        self._on_lost = on_lost
        self.conn = StreamConn()
        self.callbacks: dict[int, Callable[[bool, Any], None]] = {}
        self._ids = itertools.count(1)
        self.closed = False
        self._channel = grpc.insecure_channel(address, options=channel_options())
        stub = pb_grpc.NodeStub(self._channel)
        self._responses = stub.Link(self.conn.outgoing(), metadata=token_metadata(token))
        self._reader = threading.Thread(target=self._read, name=f"shoal-link-{peer_node_id[:8]}", daemon=True)
        self._reader.start()

    def send(self, msg: tuple[Any, ...]) -> None:
        self.conn.send(msg)

    def request(self, op: str, args: Any, callback: Callable[[bool, Any], None]) -> None:
        """Send a request; ``callback(ok, result)`` runs under the node lock when the reply comes."""
        req_id = next(self._ids)
        self.callbacks[req_id] = callback
        self.conn.send((P.REQUEST, req_id, op, args))

    def _read(self) -> None:
        reader = P.FrameReader()
        node = self.node
        try:
            for chunk in self._responses:
                msgs = list(reader.feed(chunk.data))
                if not msgs:
                    continue
                with node.lock:
                    for msg in msgs:
                        if msg[0] == P.REPLY:
                            cb = self.callbacks.pop(msg[1], None)
                            if cb is not None:
                                cb(msg[2], msg[3])
                    node.dispatch()
        except grpc.RpcError as e:
            if not self.closed:
                detail = e.details() if hasattr(e, "details") else e
                log.warning("link to node %s lost: %s", self.peer_node_id[:12], detail)
        except Exception:
            log.exception("link to node %s failed", self.peer_node_id[:12])
        finally:
            with node.lock:
                callbacks, self.callbacks = self.callbacks, {}
                was_closed = self.closed
                self.closed = True
                if not was_closed:
                    self._on_lost(self.peer_node_id)
                from shoal.exceptions import NodeDiedError

                for cb in callbacks.values():
                    cb(False, NodeDiedError(f"node {self.peer_node_id[:12]} is unreachable"))

    def close(self) -> None:
        self.closed = True
        self.conn.close()
        self._channel.close()
