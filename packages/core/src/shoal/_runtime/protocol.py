"""Messages between a node runtime and its workers, and the framed connections that carry them.

A message is a tuple whose first item is its kind (an int below); it
travels pickled, behind a 4-byte little-endian length. Senders batch: many
frames go out in one write, and a reader parses every complete frame it has.

Value payloads (``Payload``) are tuples too:

* ``(INLINE, data, buffers)``: the pickle stream and its out-of-band buffers as bytes;
* ``(SHM, path, offset, size, data_len, spans)``: the value lives in shared memory at
  ``path`` (a ``/proc/PID/fd/N`` path of the store's memfd), ``spans`` locate the
  out-of-band buffers relative to ``offset``;
* ``(ERROR, pickled_exception)``.
"""

from __future__ import annotations

import errno
import os
import pickle
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

# -- runtime -> worker -------------------------------------------------------
EXEC = 1  # (EXEC, task_id, fn_id, fn_bytes|None, args_payload, deps, return_ids, num_returns, name, ctx)
CREATE_ACTOR = 2  # (CREATE_ACTOR, task_id, actor_id, cls_id, cls_bytes|None, args_payload, deps, opts, ctx)
ACTOR_CALL = 3  # (ACTOR_CALL, task_id, method, args_payload, deps, return_ids, num_returns, name)
REPLY = 4  # (REPLY, request_id, ok, result)
CANCEL = 5  # (CANCEL, task_id, force)
EXIT = 6  # (EXIT,)
RECALL = 7  # (RECALL, [task_id, ...]): give back these queued tasks if they have not started

# -- worker -> runtime -------------------------------------------------------
DONE = 10  # (DONE, task_id, payloads|None, error_payload|None, app_error)
GEN_ITEM = 11  # (GEN_ITEM, task_id, index, payload)
SUBMIT = 12  # (SUBMIT, task_tuple)
ACTOR_SUBMIT = 13  # (ACTOR_SUBMIT, call_tuple)
REQUEST = 14  # (REQUEST, request_id, op, args)
REFS = 15  # (REFS, [(object_id, delta), ...], [(actor_id, delta), ...])
UNPIN = 16  # (UNPIN, [object_id, ...])
PUT = 17  # (PUT, object_id, payload, contained_ids)
READY = 18  # (READY, pid)
RECALLED = 19  # (RECALLED, [task_id, ...]): the queued tasks given back (never started)
HELLO = 20  # (HELLO, job_config): a connected driver's first message after the token handshake
BLOB_BEGIN = 21  # (BLOB_BEGIN, blob_id, total_bytes): raw frames with the bytes follow (links only)
BLOB_DATA = 22  # pseudo-message (BLOB_DATA, bytes) for a raw frame; never pickled

# -- payload kinds -----------------------------------------------------------
INLINE = 0
SHM = 1
ERROR = 2
BLOB = 5  # (BLOB, blob_id, data_len, spans): the bytes crossed a link as raw frames (links only)

#: Set in a frame's length when the frame carries raw bytes instead of a pickled message.
RAW_FLAG = 1 << 31

_HEADER = 4
_MAX_FRAME = 1 << 31
HEADER_SIZE = _HEADER  # bytes of the length prefix of every frame
MAX_FRAME = _MAX_FRAME


def encode(msg: tuple[Any, ...]) -> bytes:
    """One framed message."""
    data = pickle.dumps(msg, protocol=5)
    return len(data).to_bytes(_HEADER, "little") + data


def encode_raw(data: bytes | memoryview) -> bytes:
    """One raw frame (for blobs on links)."""
    n = data.nbytes if isinstance(data, memoryview) else len(data)
    out = bytearray(_HEADER + n)
    out[:_HEADER] = (n | RAW_FLAG).to_bytes(_HEADER, "little")
    out[_HEADER:] = data
    return bytes(out)


class FrameReader:
    """Accumulates bytes and yields complete messages."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes | memoryview) -> Iterator[tuple[Any, ...]]:
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        while end - pos >= _HEADER:
            n = int.from_bytes(buf[pos : pos + _HEADER], "little")
            raw = n & RAW_FLAG
            n &= ~RAW_FLAG
            if n >= _MAX_FRAME:
                raise ConnectionError(f"frame of {n} bytes is too large")
            if end - pos - _HEADER < n:
                break
            start = pos + _HEADER
            if raw:
                msg: tuple[Any, ...] = (BLOB_DATA, bytes(buf[start : start + n]))
            else:
                msg = pickle.loads(buf[start : start + n])
            pos = start + n
            yield msg
        if pos:
            del buf[:pos]


class NonBlockingConnection:
    """The runtime's side of a worker socket: never blocks, buffers what it cannot send yet."""

    __slots__ = ("_out", "_reader", "batch", "closed", "fd", "on_pending", "sock")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self._reader = FrameReader()
        self._out = bytearray()
        self.closed = False
        # Called when output is left waiting (the owner's loop must come back to flush it).
        self.on_pending: Any = None
        # The node whose batches of incoming messages this connection's writes may wait for
        # (one write per batch instead of one per message); see NodeRuntime.defers.
        self.batch: Any = None

    def send(self, msg: tuple[Any, ...]) -> None:
        """Queue a message and write everything queued, now or at the end of the node's batch."""
        self._out += encode(msg)
        self.flush_soon()

    def flush_soon(self) -> None:
        """Write what is queued now, or at the end of the node's batch when one is open."""
        batch = self.batch
        if batch is not None and batch.defers():
            batch.deferred.add(self)
        else:
            self.flush()

    def queue(self, msg: tuple[Any, ...]) -> None:
        """Queue a message without writing yet (call :meth:`flush` later)."""
        self._out += encode(msg)

    def flush(self) -> bool:
        """Write what the socket takes; True when nothing is left queued."""
        out = self._out
        while out and not self.closed:
            try:
                n = self.sock.send(out)
            except BlockingIOError:
                if self.on_pending is not None:
                    self.on_pending()
                return False
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.EBADF):
                    self.closed = True
                    out.clear()
                    return True
                raise
            del out[:n]
        return True

    @property
    def pending_output(self) -> bool:
        return bool(self._out)

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        """Messages in bytes that were read before this connection existed."""
        return list(self._reader.feed(data))

    def receive(self) -> list[tuple[Any, ...]] | None:
        """Every complete message available now; None once the peer has closed."""
        msgs: list[tuple[Any, ...]] = []
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return msgs
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return msgs or None
            msgs.extend(self._reader.feed(data))
            if len(data) < (1 << 20):
                return msgs

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


class BlockingConnection:
    """A worker's side: sends under the caller's lock, receives with spin-then-block.

    Spinning briefly before sleeping matters on virtual machines, where
    waking an idle core costs tens of microseconds per message.
    """

    __slots__ = ("_pending", "_reader", "sock", "spin_s")

    def __init__(self, sock: socket.socket, spin_us: int) -> None:
        sock.setblocking(True)
        self.sock = sock
        self._reader = FrameReader()
        self.spin_s = spin_us / 1e6
        self._pending: list[tuple[Any, ...]] = []

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        """Messages in bytes read elsewhere (e.g. during a handshake)."""
        return list(self._reader.feed(data))

    def receive(self, timeout: float | None = None, spin: bool = True) -> list[tuple[Any, ...]]:
        """At least one message, or [] after ``timeout``; raises ConnectionError on EOF."""
        sock = self.sock
        if spin and self.spin_s > 0:
            deadline = time.perf_counter() + self.spin_s
            while True:
                try:
                    data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    if time.perf_counter() > deadline:
                        break
                    continue
                return self._parse(data)
        if timeout is not None:
            # Wait with poll, not settimeout: a socket timeout would also apply to
            # another thread's sendall on the same socket and cut it short under load.
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            if not poller.poll(timeout * 1000):
                return []
            try:
                data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return []
        else:
            data = sock.recv(1 << 20)
        return self._parse(data)

    def receive_nowait(self) -> list[tuple[Any, ...]]:
        """Whatever complete messages can be read without waiting."""
        msgs: list[tuple[Any, ...]] = []
        while True:
            try:
                data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return msgs
            if not data:
                raise ConnectionError("the node runtime closed the connection")
            msgs.extend(self._reader.feed(data))

    def _parse(self, data: bytes) -> list[tuple[Any, ...]]:
        if not data:
            raise ConnectionError("the node runtime closed the connection")
        msgs = list(self._reader.feed(data))
        # A large frame may need more reads.
        while not msgs:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("the node runtime closed the connection")
            msgs = list(self._reader.feed(data))
        return msgs


def set_parent_death_signal(sig: int) -> None:
    """Ask Linux to send ``sig`` to this process when its parent thread exits (best effort)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, sig, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists, other user
        return True
    return True
