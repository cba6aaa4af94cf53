"""Worker processes: starting them, streaming their output, ending them."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shoal._runtime.protocol import NonBlockingConnection
from shoal._runtime.resources import Grant

__all__ = ["LogPump", "WorkerProc", "spawn_worker"]

# Environment variables of the driver that workers must not inherit: they describe
# the driver's own session (a worker never starts a runtime).
_DROP_ENV = ("SHOAL_WORKER_FD", "SHOAL_PARENT_PID")


@dataclass(eq=False)
class WorkerProc:
    """A worker process as the node runtime sees it."""

    worker_id: int
    proc: subprocess.Popen[bytes] | None  # None for a connected driver
    conn: NonBlockingConnection
    env_key: str
    state: str = "starting"  # starting | idle | busy | actor | retiring | dead; hello | client for drivers
    known_functions: set[bytes] = field(default_factory=set)
    task: Any = None  # the task it runs (task workers)
    queued: collections.deque[Any] = field(default_factory=collections.deque)  # sent behind ``task``
    pipe_key: Any = None  # ready-queue key of the tasks it may take queued (None: none)
    woken_at: float = 0.0  # when it was last signalled to give queued tasks back
    actor: Any = None  # the actor it hosts (actor workers)
    grant: Grant | None = None
    blocked: int = 0  # requests it is blocked on (get/wait)
    holds: dict[bytes, int] = field(default_factory=dict)  # object refs it holds
    handle_holds: dict[bytes, int] = field(default_factory=dict)
    pins: dict[bytes, int] = field(default_factory=dict)
    allocs: dict[tuple[str, int], Any] = field(default_factory=dict)  # unsealed allocations
    calls: dict[bytes, int] = field(default_factory=dict)  # max_calls accounting per function
    retire: bool = False  # exit once the current task is done
    last_task_name: str | None = None
    pumps: list[Any] = field(default_factory=list)
    kind: str = "worker"  # worker | client
    client_pid: int = 0

    def close_output(self) -> None:
        """Forward what is left of its output, then close the pipes."""
        for pump in self.pumps:
            for _ in range(1000):
                if not pump.read():
                    break
        self.pumps.clear()
        if self.proc is None:
            return
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else self.client_pid


def spawn_worker(
    worker_id: int,
    env_key: str,
    extra_env: dict[str, str],
    working_dir: str | None,
    spin_us: int,
    capture_output: bool,
    log_file: str | None,
) -> tuple[WorkerProc, socket.socket]:
    """Start ``python -m shoal._runtime.worker`` connected by a socket pair."""
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    # Modules the driver can import must be importable by workers (functions
    # defined in them are pickled by reference).
    paths = [p for p in sys.path if p]
    if os.getcwd() not in paths:
        paths.insert(0, os.getcwd())
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env["SHOAL_WORKER_FD"] = str(child_sock.fileno())
    env["SHOAL_PARENT_PID"] = str(os.getpid())
    env["SHOAL_WORKER_SPIN_US"] = str(spin_us)
    env.update(extra_env)
    if capture_output:
        stdout: Any = subprocess.PIPE
        stderr: Any = subprocess.PIPE
    elif log_file is not None:
        stdout = open(log_file, "ab")  # noqa: SIM115 - handed to the child
        stderr = subprocess.STDOUT
    else:
        stdout = stderr = subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shoal._runtime.worker"],
            pass_fds=(child_sock.fileno(),),
            env=env,
            cwd=working_dir or os.getcwd(),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            # Keep the terminal's Ctrl-C away from workers; they follow the driver instead.
            start_new_session=True,
        )
    finally:
        child_sock.close()
        if not capture_output and log_file is not None:
            stdout.close()
    return WorkerProc(worker_id, proc, NonBlockingConnection(parent_sock), env_key), parent_sock


def send_and_wake(w: WorkerProc, msg: tuple[Any, ...]) -> None:
    """Send ``msg`` and signal the worker, whose main thread reads messages only then when busy."""
    w.conn.send(msg)
    w.conn.flush()  # the message must be there before the signal that makes the worker read it
    try:
        os.kill(w.pid, signal.SIGINT)
    except ProcessLookupError:
        pass


def kill_worker(w: WorkerProc, sig: int = signal.SIGKILL) -> None:
    if w.proc is None:
        return
    try:
        w.proc.send_signal(sig)
    except (ProcessLookupError, OSError):
        pass


class LogPump:
    """Reads a worker's stdout/stderr and writes whole lines with a ``(name pid=N)`` prefix."""

    def __init__(self, fd: int, is_err: bool, label: Callable[[], str]) -> None:
        self.fd = fd
        self.is_err = is_err
        self.label = label
        self._partial = b""
        os.set_blocking(fd, False)

    def read(self) -> bool:
        """Forward what is available; False at end of file."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            if self._partial:
                self._emit([self._partial])
                self._partial = b""
            return False
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if lines:
            self._emit(lines)
        return True

    def _emit(self, lines: list[bytes]) -> None:
        prefix = self.label()
        stream = sys.stderr if self.is_err else sys.stdout
        text = "".join(f"{prefix} {line.decode(errors='replace')}\n" for line in lines)
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass
