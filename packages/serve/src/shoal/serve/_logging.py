"""Replica logging: one file per replica (records and access lines), records also to stderr.

Access lines go to the file only: every line on a worker's stderr travels
to the driver, and at thousands of requests a second that stream would
cost more than the requests. The file is buffered and written by a
background thread twice a second; warnings and errors are written at once.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading

from shoal.serve.config import LoggingConfig

__all__ = ["ReplicaLog", "default_logs_dir", "setup_replica_logging"]

logger = logging.getLogger("shoal.serve")


def default_logs_dir() -> str:
    """``<tmp>/shoal-serve-<uid>/logs``: where replicas write their logs unless ``logs_dir`` is set."""
    return os.path.join(tempfile.gettempdir(), f"shoal-serve-{os.getuid()}", "logs")


class ReplicaLog(logging.Handler):
    """A replica's log file: ``shoal.serve`` records and (when enabled) access lines."""

    def __init__(self, path: str, access_log: bool) -> None:
        super().__init__()
        self.path = path
        self.access_log = access_log
        self._lines: list[str] = []
        self._write_lock = threading.Lock()
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="serve-replica-log", daemon=True).start()

    def access(self, line: str) -> None:
        self._lines.append(line)  # list.append is atomic under the GIL

    def emit(self, record: logging.LogRecord) -> None:
        self._lines.append(self.format(record))
        if record.levelno >= logging.WARNING:
            self.flush()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.flush()

    def flush(self) -> None:
        with self._write_lock:
            lines, self._lines = self._lines, []
            if lines:
                with open(self.path, "a") as f:
                    f.write("\n".join(lines) + "\n")

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()


def setup_replica_logging(config: LoggingConfig, component: str) -> ReplicaLog:
    """Configure the ``shoal.serve`` logger of this replica process and return its log file."""
    logger.setLevel(config.log_level)
    logger.propagate = False
    formatter = logging.Formatter(f"%(levelname)s %(asctime)s {component} -- %(message)s")
    for handler in list(logger.handlers):
        if getattr(handler, "_shoal_serve", False):
            logger.removeHandler(handler)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    logs_dir = config.logs_dir or default_logs_dir()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in component)
    log = ReplicaLog(os.path.join(logs_dir, f"replica_{safe}.log"), config.enable_access_log)
    log.setFormatter(formatter)
    handlers: list[logging.Handler] = [stream, log]
    for handler in handlers:
        handler._shoal_serve = True  # type: ignore[attr-defined]  # marks handlers a later setup replaces
        logger.addHandler(handler)
    return log
