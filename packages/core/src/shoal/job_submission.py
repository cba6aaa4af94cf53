"""Submitting jobs to a cluster from Python (Ray's ``ray.job_submission``).

client = JobSubmissionClient("127.0.0.1:6380")
job_id = client.submit_job(entrypoint="python script.py")
client.get_job_status(job_id)
"""

from __future__ import annotations

import asyncio
import enum
import shlex
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JobSubmissionClient", "JobStatus", "JobDetails", "JobInfo"]


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    def is_terminal(self) -> bool:
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


@dataclass
class JobDetails:
    """A job as the head knows it."""

    submission_id: str
    status: JobStatus
    entrypoint: str
    message: str = ""
    start_time: float = 0.0
    end_time: float | None = None
    driver_exit_code: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)


JobInfo = JobDetails


class JobSubmissionClient:
    """Submit, follow and stop jobs on the cluster whose head is at ``address``."""

    def __init__(self, address: str | None = None, token_path: str | None = None) -> None:
        from shoal.backend.cluster import head_client, resolve_address

        self._client = head_client(resolve_address(address), token_path)

    def submit_job(
        self,
        *,
        entrypoint: str | list[str],
        submission_id: str | None = None,
        job_id: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        **_ignored: Any,
    ) -> str:
        """Start ``entrypoint`` (a shell command) on the head; returns the submission id."""
        from shoal._cluster.proto import cluster_pb2 as pb

        if isinstance(entrypoint, list):
            entrypoint = shlex.join(entrypoint)
        if not isinstance(entrypoint, str) or not entrypoint.strip():
            raise ValueError("entrypoint must be a non-empty command")
        renv = dict(runtime_env or {})
        unknown = set(renv) - {"env_vars", "working_dir"}
        if unknown:
            raise ValueError(f"runtime_env keys not supported for jobs: {sorted(unknown)}")
        request = pb.JobSubmitRequest(
            entrypoint=entrypoint,
            submission_id=submission_id or job_id or "",
            env_vars=dict(renv.get("env_vars") or {}),
            working_dir=renv.get("working_dir") or "",
            metadata=dict(metadata or {}),
        )
        import grpc

        try:
            return str(self._client.submit_job(request).submission_id)
        except grpc.RpcError as e:
            raise ValueError(e.details()) from None

    def _info(self, submission_id: str) -> Any:
        import grpc

        try:
            return self._client.get_job(submission_id)
        except grpc.RpcError as e:
            raise ValueError(f"no job with submission id {submission_id!r}") from e

    def get_job_info(self, submission_id: str) -> JobDetails:
        j = self._info(submission_id)
        return JobDetails(
            submission_id=j.submission_id,
            status=JobStatus(j.status),
            entrypoint=j.entrypoint,
            message=j.message,
            start_time=j.start_time,
            end_time=j.end_time or None,
            driver_exit_code=j.exit_code if JobStatus(j.status).is_terminal() else None,
            metadata=dict(j.metadata),
        )

    def get_job_status(self, submission_id: str) -> JobStatus:
        return JobStatus(self._info(submission_id).status)

    def _logs_from(self, submission_id: str, offset: int) -> tuple[str, int]:
        data, offset = self._client.job_logs(submission_id, offset)
        return data.decode(errors="replace"), offset

    def get_job_logs(self, submission_id: str) -> str:
        """Everything the job has printed so far."""
        self._info(submission_id)
        out: list[str] = []
        offset = 0
        while True:
            data, offset = self._logs_from(submission_id, offset)
            if not data:
                return "".join(out)
            out.append(data)

    async def tail_job_logs(self, submission_id: str) -> AsyncIterator[str]:
        """Output as it is printed, until the job ends."""
        offset = 0
        while True:
            data, offset = self._logs_from(submission_id, offset)
            if data:
                yield data
            elif self.get_job_status(submission_id).is_terminal():
                data, offset = self._logs_from(submission_id, offset)
                if data:
                    yield data
                return
            else:
                await asyncio.sleep(0.2)

    def stop_job(self, submission_id: str) -> bool:
        """Ask the job to stop (SIGTERM, then SIGKILL); False if it had already ended."""
        before = self.get_job_status(submission_id)
        self._client.stop_job(submission_id)
        return not before.is_terminal()

    def list_jobs(self) -> list[JobDetails]:
        return [self.get_job_info(j.submission_id) for j in self._client.list_jobs()]

    def wait_until_finished(self, submission_id: str, timeout: float = 300.0) -> JobStatus:
        """Block until the job ends; returns its final status."""
        deadline = time.time() + timeout
        while True:
            status = self.get_job_status(submission_id)
            if status.is_terminal():
                return status
            if time.time() > deadline:
                raise TimeoutError(f"job {submission_id} still {status.value} after {timeout}s")
            time.sleep(0.1)
