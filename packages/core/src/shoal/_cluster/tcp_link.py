"""Node-to-node links over plain TCP sockets, for clusters without TLS.

The gRPC link (:mod:`shoal._cluster.link`) hands every message through
gRPC's own threads and HTTP/2 framing, which costs several hundred
microseconds per hop in Python. A link here is one TCP connection carrying
the runtime's frames as they are: a reader thread per link feeds them to the
node, and outgoing bytes are written straight from the sending thread when
the socket takes them, else by a writer thread, so nothing blocks the node
lock on a slow peer.

A connection is authenticated before any frame is read: the listener sends a
random challenge and the caller answers with its HMAC under the cluster
token (the token never crosses the wire). With TLS on, the cluster uses gRPC
links instead, whose TLS is done by gRPC.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import os
import pickle
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from shoal._cluster.link import BlobReceiver, LinkEnd, process
from shoal._runtime import protocol as P

if TYPE_CHECKING:
    from shoal._runtime.node import NodeRuntime

__all__ = ["SocketConn", "TcpLinkClient", "TcpLinkListener"]

log = logging.getLogger("shoal.link")

_MAGIC = b"SHOAL-LINK1"
_NONCE = 32
_OK = b"\x01"
_HANDSHAKE_TIMEOUT_S = 5.0
_MAX_HANDSHAKING = 64  # connections being authenticated at once; more are refused
_RECV = 1 << 20
_CLOSE = object()


def _answer(token: str, nonce: bytes) -> bytes:
    return hmac.new(token.encode(), _MAGIC + nonce, hashlib.sha256).digest()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ConnectionError("link closed during the handshake")
        data += part
    return data


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


class SocketConn:
    """What the node runtime sends to a peer: the interface of its other connections.

    Bytes go out from the calling thread with a non-blocking send when nothing is
    waiting before them; the rest (and raw blob frames, produced chunk by chunk)
    go through the writer thread, in order.
    """

    _fds = itertools.count(-1000000, -1)

    def __init__(self, node: NodeRuntime) -> None:
        self.node = node
        self.sock: socket.socket | None = None
        self.closed = False
        self.fd = next(self._fds)  # a fake, unique, never-watched descriptor
        self._buf = bytearray()
        self._out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0  # items handed to the writer and not yet written
        self._writer: threading.Thread | None = None

    def attach(self, sock: socket.socket) -> None:
        """Start sending on ``sock`` (what was sent before goes first)."""
        self.sock = sock
        self._writer = threading.Thread(target=self._write_loop, name="shoal-link-out", daemon=True)
        self._writer.start()

    def send(self, msg: tuple[Any, ...]) -> None:
        self._buf += P.encode(msg)
        if self.node.defers():
            self.node.deferred.add(self)
        else:
            self.flush()

    def queue(self, msg: tuple[Any, ...]) -> None:
        self._buf += P.encode(msg)

    def send_blob(self, blob_id: bytes, source: Callable[[], Iterator[bytes]], total: int) -> None:
        """Send ``total`` raw bytes produced later, on the writer thread, by ``source``."""
        self._buf += P.encode((P.BLOB_BEGIN, blob_id, total))
        self.flush()
        with self._lock:
            if not self.closed:
                self._queued += 1
                self._out.put(source)

    def flush(self) -> bool:
        if not self._buf or self.closed:
            return True
        data = bytes(self._buf)
        self._buf.clear()
        with self._lock:
            if self.closed:
                return True
            if self._queued == 0 and self.sock is not None:
                try:
                    n = self.sock.send(data, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    n = 0
                except OSError:
                    self._closed_by_error()
                    return True
                if n == len(data):
                    return True
                data = data[n:]
            self._queued += 1
            self._out.put(data)
        return True

    @property
    def pending_output(self) -> bool:
        return False

    def _closed_by_error(self) -> None:
        self.closed = True
        self._out.put(_CLOSE)

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._out.put(_CLOSE)
        if self._writer is None and self.sock is not None:
            self._shutdown()

    def _shutdown(self) -> None:
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _write_loop(self) -> None:
        sock = self.sock
        assert sock is not None
        held: Any = None
        try:
            while True:
                item, held = (held, None) if held is not None else (self._out.get(), None)
                if item is _CLOSE:
                    return
                if callable(item):
                    for piece in item():
                        n = piece.nbytes if isinstance(piece, memoryview) else len(piece)
                        sock.sendall((n | P.RAW_FLAG).to_bytes(P.HEADER_SIZE, "little"))
                        sock.sendall(piece)
                    written = 1
                else:
                    parts = [item]
                    while True:  # what is already waiting goes out in the same write
                        try:
                            nxt = self._out.get_nowait()
                        except queue.Empty:
                            break
                        if nxt is _CLOSE or callable(nxt):
                            held = nxt  # goes right after this write
                            break
                        parts.append(nxt)
                    sock.sendall(b"".join(parts) if len(parts) > 1 else parts[0])
                    written = len(parts)
                with self._lock:
                    self._queued -= written
        except OSError:
            with self._lock:
                self.closed = True
        except Exception:
            log.exception("sending on a link failed; closing it")
            with self._lock:
                self.closed = True
        finally:
            self._shutdown()


def _read_loop(sock: socket.socket, node: NodeRuntime, handle: Callable[[list[tuple[Any, ...]]], None]) -> None:
    """Feed the node every frame that arrives until the peer closes; raises on bad data.

    Raw frames (an object's bytes) are read from the socket straight into the
    object's shared memory; only their first bytes, read along with other
    frames, are copied.
    """
    blobs = BlobReceiver(node)

    def batched(batch: list[tuple[Any, ...]]) -> None:  # called under the node lock
        node.begin_batch()
        try:
            handle(batch)
        finally:
            node.end_batch()

    buf = bytearray()
    chunk = bytearray(_RECV)
    view = memoryview(chunk)
    header = P.HEADER_SIZE
    while True:
        n = sock.recv_into(view)
        if n == 0:
            return
        buf += view[:n]
        msgs: list[tuple[Any, ...]] = []
        pos = 0
        while len(buf) - pos >= header:
            size = int.from_bytes(buf[pos : pos + header], "little")
            raw = size & P.RAW_FLAG
            size &= ~P.RAW_FLAG
            if size >= P.MAX_FRAME:
                raise ConnectionError(f"frame of {size} bytes is too large")
            start = pos + header
            if raw:
                if msgs:  # the blob's header message is among them
                    process(node, msgs, blobs, batched)
                    msgs = []
                have = min(size, len(buf) - start)
                with memoryview(buf) as mv:
                    blobs.write(mv[start : start + have])
                pos = start + have
                if have < size:
                    del buf[:pos]
                    pos = 0
                    blobs.receive(sock, size - have)
                continue
            if len(buf) - start < size:
                break
            msgs.append(pickle.loads(buf[start : start + size]))
            pos = start + size
        if pos:
            del buf[:pos]
        if msgs:
            process(node, msgs, blobs, batched)


class TcpLinkListener:
    """Accepts links from peer nodes on ``host`` (port chosen by the OS) into a node runtime."""

    def __init__(self, node: NodeRuntime, host: str, token: str) -> None:
        self.node = node
        self.token = token
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.address = f"{host}:{self.sock.getsockname()[1]}"
        self._handshaking = threading.BoundedSemaphore(_MAX_HANDSHAKING)
        self._closed = False
        threading.Thread(target=self._accept_loop, name="shoal-link-accept", daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self.sock.accept()
            except OSError:
                return
            if not self._handshaking.acquire(blocking=False):
                sock.close()
                continue
            threading.Thread(target=self._serve, args=(sock,), name="shoal-link-in", daemon=True).start()

    def _authenticate(self, sock: socket.socket) -> bool:
        try:
            sock.settimeout(_HANDSHAKE_TIMEOUT_S)
            nonce = os.urandom(_NONCE)
            sock.sendall(_MAGIC + nonce)
            answer = _recv_exactly(sock, len(_MAGIC) + hashlib.sha256().digest_size)
            if not answer.startswith(_MAGIC) or not hmac.compare_digest(
                answer[len(_MAGIC) :], _answer(self.token, nonce)
            ):
                log.warning("refused a link that did not prove the cluster token")
                return False
            sock.sendall(_OK)
            sock.settimeout(None)
            return True
        except (OSError, ConnectionError):
            return False
        finally:
            self._handshaking.release()

    def _serve(self, sock: socket.socket) -> None:
        if not self._authenticate(sock):
            sock.close()
            return
        _tune(sock)
        node = self.node
        conn = SocketConn(node)
        conn.attach(sock)
        with node.lock:
            peer = node.add_peer(conn)
        try:
            _read_loop(sock, node, lambda batch: node.handle_peer_messages(peer, batch))
        except OSError:
            pass
        except Exception:
            log.exception("bad data on a link; closing it")
        finally:
            with node.lock:
                node.drop_peer(peer)
            conn.close()
            sock.close()

    def close(self) -> None:
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class TcpLinkClient(LinkEnd):
    """This node's end of a TCP link it opened; replies are handled under the node lock.

    Connecting happens on the link's own thread: messages sent before the
    connection is up wait in order, and a peer that cannot be reached shows up
    as a lost link, not as an error in the caller.
    """

    def __init__(
        self, node: NodeRuntime, peer_node_id: str, address: str, token: str, on_lost: Callable[[str], None]
    ) -> None:
        super().__init__(node, peer_node_id, on_lost)
        self.address = address
        self._token = token
        self.conn = SocketConn(node)
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"shoal-link-{peer_node_id[:8]}", daemon=True)
        self._thread.start()

    def _connect(self) -> socket.socket:
        host, _, port = self.address.rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=_HANDSHAKE_TIMEOUT_S)
        try:
            challenge = _recv_exactly(sock, len(_MAGIC) + _NONCE)
            if not challenge.startswith(_MAGIC):
                raise ConnectionError(f"{self.address} is not a shoal node link")
            sock.sendall(_MAGIC + _answer(self._token, challenge[len(_MAGIC) :]))
            if _recv_exactly(sock, 1) != _OK:
                raise ConnectionError(f"node at {self.address} refused the cluster token")
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        _tune(sock)
        return sock

    def _run(self) -> None:
        try:
            sock = self._sock = self._connect()
            self.conn.attach(sock)
            _read_loop(sock, self.node, self._handle)
        except (OSError, ConnectionError) as e:
            if not self.closed:
                log.warning("link to node %s lost: %s", self.peer_node_id[:12], e)
        except Exception:
            log.exception("link to node %s failed", self.peer_node_id[:12])
        finally:
            self._gone()
            self.conn.close()
            if self._sock is not None:
                self._sock.close()

    def close(self) -> None:
        self.closed = True
        self.conn.close()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
