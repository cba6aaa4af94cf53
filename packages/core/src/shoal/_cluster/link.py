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
from shoal._cluster.proto import cluster_pb2 as pb
from shoal._cluster.proto import cluster_pb2_grpc as pb_grpc
from shoal._runtime import protocol as P

if TYPE_CHECKING:
    from shoal._runtime.node import NodeRuntime

__all__ = ["LinkClient", "LinkEnd", "LinkServicer", "StreamConn", "CHUNK"]

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

    def send_blob(self, blob_id: bytes, source: Callable[[], Iterator[bytes]], total: int) -> None:
        """Queue ``total`` raw bytes, produced later by ``source`` on the sending thread.

        ``source`` yields the bytes in pieces (views are fine: each is framed before the next).

        The bytes never go through pickle, and they are copied chunk by chunk on the
        stream's own thread, so a large object holds neither the node lock nor the GIL
        for long.
        """
        self._buf += P.encode((P.BLOB_BEGIN, blob_id, total))
        self.flush()
        if not self.closed:
            self.out.put(source)

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
        """The stream's messages; whatever is queued at the moment goes out as one chunk."""
        held: Any = None
        while True:
            item, held = (held, None) if held is not None else (self.out.get(), None)
            if item is _CLOSE:
                return
            if callable(item):
                for piece in item():
                    yield pb.Chunk(data=P.encode_raw(piece))
                continue
            data = item.data
            pending: list[bytes] = []
            size = len(data)
            while size < CHUNK:
                try:
                    nxt = self.out.get_nowait()
                except queue.Empty:
                    break
                if nxt is _CLOSE or callable(nxt):
                    held = nxt  # goes right after this chunk
                    break
                pending.append(nxt.data)
                size += len(nxt.data)
            yield pb.Chunk(data=data + b"".join(pending)) if pending else item


class BlobReceiver:
    """Writes a link's raw frames straight into shared memory, outside the node lock."""

    def __init__(self, node: NodeRuntime) -> None:
        self.node = node
        self.blob_id: bytes | None = None
        self.alloc: Any = None
        self.total = 0
        self.pos = 0

    def begin(self, blob_id: bytes, total: int) -> None:
        with self.node.lock:
            self.alloc = self.node.objects.allocate(total)
        self.blob_id, self.total, self.pos = blob_id, total, 0
        if total == 0:
            self._finish()

    def write(self, data: bytes | memoryview) -> None:
        if self.alloc is None:
            raise ConnectionError("raw bytes without a blob header")
        import os

        n = data.nbytes if isinstance(data, memoryview) else len(data)
        if self.pos + n > self.total:
            raise ConnectionError("more raw bytes than the blob header announced")
        seg = self.alloc.segment
        os.pwrite(seg.fd, data, self.alloc.offset + self.pos)
        self.pos += n
        if self.pos >= self.total:
            self._finish()

    def receive(self, sock: Any, n: int) -> None:
        """Read the next ``n`` raw bytes from ``sock`` straight into the object's shared memory."""
        if self.alloc is None:
            raise ConnectionError("raw bytes without a blob header")
        if self.pos + n > self.total:
            raise ConnectionError("more raw bytes than the blob header announced")
        from shoal._runtime.store import own_write_view

        view = own_write_view(self.alloc.segment.fd, self.alloc.offset + self.pos, n)
        try:
            got = 0
            while got < n:
                k = sock.recv_into(view[got:], n - got)
                if k == 0:
                    raise ConnectionError("link closed in the middle of an object")
                got += k
        finally:
            view.release()
        self.pos += n
        if self.pos >= self.total:
            self._finish()

    def _finish(self) -> None:
        assert self.blob_id is not None
        with self.node.lock:
            self.node.blobs[self.blob_id] = self.alloc
        self.blob_id, self.alloc = None, None


def process(node: NodeRuntime, msgs: list[tuple[Any, ...]], blobs: BlobReceiver, handle: Callable[[Any], None]) -> None:
    """Handle a batch of link messages: raw blob frames outside the lock, the rest under it."""
    batch: list[tuple[Any, ...]] = []
    for msg in msgs:
        kind = msg[0]
        if kind == P.BLOB_DATA or kind == P.BLOB_BEGIN:
            if batch:
                with node.lock:
                    handle(batch)
                batch = []
            if kind == P.BLOB_BEGIN:
                blobs.begin(msg[1], msg[2])
            else:
                blobs.write(msg[1])
        else:
            batch.append(msg)
    if batch:
        with node.lock:
            handle(batch)


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
        blobs = BlobReceiver(node)

        def consume() -> None:
            try:
                for chunk in request_iterator:
                    msgs = list(reader.feed(chunk.data))
                    if msgs:
                        process(node, msgs, blobs, lambda batch: node.handle_peer_messages(peer, batch))
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


class LinkEnd:
    """What both kinds of link have in common on the side that opened them.

    Requests carry ids; replies run their callbacks under the node lock. When
    the link goes, every pending callback gets NodeDiedError and the owner is
    told once (unless the link was closed on purpose).
    """

    conn: Any

    def __init__(self, node: NodeRuntime, peer_node_id: str, on_lost: Callable[[str], None]) -> None:
        self.node = node
        self.peer_node_id = peer_node_id
        self._on_lost = on_lost
        self.callbacks: dict[int, Callable[[bool, Any], None]] = {}
        self._ids = itertools.count(1)
        self.closed = False

    def send(self, msg: tuple[Any, ...]) -> None:
        self.conn.send(msg)

    def request(self, op: str, args: Any, callback: Callable[[bool, Any], None]) -> None:
        """Send a request; ``callback(ok, result)`` runs under the node lock when the reply comes."""
        req_id = next(self._ids)
        self.callbacks[req_id] = callback
        self.conn.send((P.REQUEST, req_id, op, args))

    def _handle(self, msgs: list[tuple[Any, ...]]) -> None:
        for msg in msgs:
            if msg[0] == P.REPLY:
                cb = self.callbacks.pop(msg[1], None)
                if cb is not None:
                    cb(msg[2], msg[3])
        self.node.dispatch()

    def _gone(self) -> None:
        """The link has ended: fail what waits on it and tell the owner."""
        from shoal.exceptions import NodeDiedError

        with self.node.lock:
            callbacks, self.callbacks = self.callbacks, {}
            was_closed = self.closed
            self.closed = True
            if not was_closed:
                self._on_lost(self.peer_node_id)
            for cb in callbacks.values():
                cb(False, NodeDiedError(f"node {self.peer_node_id[:12]} is unreachable"))


class LinkClient(LinkEnd):
    """This node's end of a gRPC link it opened to another node (used when TLS is on)."""

    def __init__(
        self,
        node: NodeRuntime,
        peer_node_id: str,
        address: str,
        token: str,
        on_lost: Callable[[str], None],
        tls: Any = None,
    ) -> None:
        super().__init__(node, peer_node_id, on_lost)
        self.address = address
        self.conn = StreamConn()
        from shoal._cluster.tls import open_channel

        self._channel = open_channel(address, tls)
        stub = pb_grpc.NodeStub(self._channel)
        self._responses = stub.Link(self.conn.outgoing(), metadata=token_metadata(token))
        self._reader = threading.Thread(target=self._read, name=f"shoal-link-{peer_node_id[:8]}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        reader = P.FrameReader()
        node = self.node
        blobs = BlobReceiver(node)
        try:
            for chunk in self._responses:
                msgs = list(reader.feed(chunk.data))
                if msgs:
                    process(node, msgs, blobs, self._handle)
        except grpc.RpcError as e:
            if not self.closed:
                detail = e.details() if hasattr(e, "details") else e
                log.warning("link to node %s lost: %s", self.peer_node_id[:12], detail)
        except Exception:
            log.exception("link to node %s failed", self.peer_node_id[:12])
        finally:
            self._gone()

    def close(self) -> None:
        self.closed = True
        self.conn.close()
        self._channel.close()
