"""Jobs: entrypoint commands the head runs as subprocesses, with their status and logs.

A job's driver finds the cluster through ``SHOAL_ADDRESS``. Jobs are kept in
the head's SQLite database so that a restarted head still knows them; a job
that was running when its head died is marked FAILED on restart.
"""

from __future__ import annotations

import os
import shlex
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path

from shoal._cluster.proto import cluster_pb2 as pb

__all__ = ["JobManager", "TERMINAL"]

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class JobManager:
    """Runs and tracks jobs; thread-safe."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock, storage: Path, address: str, token_path: str):
        self.db = db
        self.lock = lock
        self.log_dir = storage / "jobs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.address = address
        self.token_path = token_path
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping: set[str] = set()
        with lock:
            db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, entrypoint TEXT, status TEXT, start REAL, "
                "end REAL, code INTEGER, message TEXT, metadata TEXT)"
            )
            # Jobs a previous head was running cannot be followed any more.
            db.execute(
                "UPDATE jobs SET status = 'FAILED', message = 'the head restarted while the job ran', end = ? "
                "WHERE status IN ('PENDING', 'RUNNING')",
                (time.time(),),
            )

    def _row(self, job_id: str) -> pb.JobInfo | None:
        with self.lock:
            row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        import json

        return pb.JobInfo(
            submission_id=row[0],
            entrypoint=row[1],
            status=row[2],
            start_time=row[3] or 0.0,
            end_time=row[4] or 0.0,
            exit_code=row[5] if row[5] is not None else 0,
            message=row[6] or "",
            metadata=json.loads(row[7] or "{}"),
        )

    def _set(self, job_id: str, **fields: object) -> None:
        names = ", ".join(f"{k} = ?" for k in fields)
        with self.lock:
            self.db.execute(f"UPDATE jobs SET {names} WHERE id = ?", (*fields.values(), job_id))

    def submit(
        self,
        entrypoint: str,
        submission_id: str | None,
        env_vars: dict[str, str],
        working_dir: str | None,
        metadata: dict[str, str],
    ) -> pb.JobInfo:
        import json

        job_id = submission_id or f"shoal_job_{uuid.uuid4().hex[:12]}"
        with self.lock:
            if self.db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                raise ValueError(f"a job with submission id {job_id!r} already exists")
            self.db.execute(
                "INSERT INTO jobs VALUES (?, ?, 'PENDING', ?, NULL, NULL, '', ?)",
                (job_id, entrypoint, time.time(), json.dumps(metadata)),
            )
        env = dict(os.environ)
        env.update(env_vars)
        env["SHOAL_ADDRESS"] = self.address
        env["SHOAL_TOKEN_PATH"] = self.token_path
        env.setdefault("PYTHONUNBUFFERED", "1")
        log_path = self.log_dir / f"{job_id}.log"
        with open(log_path, "wb") as log:
            try:
                proc = subprocess.Popen(
                    entrypoint,
                    shell=True,
                    cwd=working_dir or os.getcwd(),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as e:
                self._set(job_id, status="FAILED", message=f"could not start: {e}", end=time.time())
                return self._row(job_id)  # type: ignore[return-value]
        self.procs[job_id] = proc
        self._set(job_id, status="RUNNING", message=f"pid {proc.pid}")
        threading.Thread(target=self._watch, args=(job_id, proc), name=f"job-{job_id}", daemon=True).start()
        return self._row(job_id)  # type: ignore[return-value]

    def _watch(self, job_id: str, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        self.procs.pop(job_id, None)
        if job_id in self.stopping:
            self._set(job_id, status="STOPPED", code=code, end=time.time(), message="stopped by the user")
        elif code == 0:
            self._set(job_id, status="SUCCEEDED", code=0, end=time.time(), message="")
        else:
            self._set(job_id, status="FAILED", code=code, end=time.time(), message=f"exit code {code}")

    def get(self, job_id: str) -> pb.JobInfo | None:
        return self._row(job_id)

    def list(self) -> list[pb.JobInfo]:
        with self.lock:
            ids = [r[0] for r in self.db.execute("SELECT id FROM jobs ORDER BY start")]
        return [j for j in (self._row(i) for i in ids) if j is not None]

    def logs(self, job_id: str, offset: int) -> tuple[bytes, int]:
        path = self.log_dir / f"{job_id}.log"
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(4 << 20)
        except FileNotFoundError:
            return b"", offset
        return data, offset + len(data)

    def stop(self, job_id: str) -> pb.JobInfo | None:
        job = self._row(job_id)
        if job is None:
            return None
        proc = self.procs.get(job_id)
        if proc is not None and job.status not in TERMINAL:
            self.stopping.add(job_id)
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

            def escalate() -> None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

            threading.Thread(target=escalate, daemon=True).start()
        return self._row(job_id)

    def shutdown(self) -> None:
        for job_id, proc in list(self.procs.items()):
            self.stopping.add(job_id)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def quote(args: list[str]) -> str:
    """A shell command line for ``args``."""
    return shlex.join(args)
