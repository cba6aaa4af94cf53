"""A driver's connection to a node agent's local socket (the ``cluster`` backend's transport)."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from shoal._runtime import protocol as P
from shoal._runtime.client import RuntimeClient
from shoal._runtime.pool import encode_handshake
from shoal.exceptions import AuthenticationError, ShoalSystemError

__all__ = ["DriverClient"]

_DENIED = b"SHOAL-DENIED"


class DriverClient(RuntimeClient):
    """Requests from a driver's threads, replies read by one background reader thread."""

    # A driver runs no task and hosts no actor.
    actor_id: bytes | None = None
    actor_name: str | None = None
    actor_restarted = False
    actor_resources: dict[str, float] = {}
    actor_gpu_ids: list[int] = []

    def __init__(self, path: str, token: str, job_config: dict[str, Any], timeout: float = 30.0) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            raise ShoalSystemError(f"cannot connect to the node agent at {path}: {e}") from None
        super().__init__(P.BlockingConnection(sock, 0))
        sock.sendall(encode_handshake(token, os.getpid()) + P.encode((P.HELLO, job_config)))
        sock.settimeout(timeout)
        try:
            first = sock.recv(1 << 20)
        except TimeoutError:
            sock.close()
            raise ShoalSystemError(f"the node agent at {path} did not answer within {timeout}s") from None
        finally:
            sock.settimeout(None)
        if not first or first.startswith(_DENIED):
            sock.close()
            raise AuthenticationError(f"the node agent at {path} refused the cluster token")
        self.dispatch(self.conn.feed(first), main=False)
        self._reader = threading.Thread(target=self._read_loop, name="shoal-driver-reader", daemon=True)
        self._reader.start()
        if not self.info_event.wait(timeout):
            self.close()
            raise ShoalSystemError(f"the node agent at {path} did not send the session information")

    def _read_loop(self) -> None:
        with self.reader_lock:
            while not self.closed:
                try:
                    msgs = self.conn.receive(timeout=0.1, spin=False)
                except (ConnectionError, OSError):
                    if not self.closed:
                        self.fail_all(ShoalSystemError("lost the connection to the node agent"))
                    return
                if msgs:
                    self.dispatch(msgs, main=False)
                try:
                    self.flush()
                except OSError:
                    pass

    def close(self) -> None:
        """Flush what is pending and hang up; the node releases everything this driver held."""
        if self.closed:
            return
        try:
            self.flush()
        except OSError:
            pass
        self.closed = True
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._reader is not threading.current_thread():
            self._reader.join(timeout=5)
        self.conn.sock.close()
