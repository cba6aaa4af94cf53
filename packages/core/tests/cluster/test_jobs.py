"""Jobs: submit, status, logs, stop — from Python and from the `shoal job` command."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import shoal
from shoal.job_submission import JobStatus, JobSubmissionClient
from shoal.testing.cluster import Cluster

pytestmark = [pytest.mark.timeout(180), pytest.mark.shoal_backends("cluster")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if shoal.is_initialized():
        shoal.shutdown()
    c = Cluster()
    try:
        c.add_node(num_cpus=2)
        yield c
    finally:
        c.shutdown()


@pytest.fixture
def client(cluster: Cluster) -> JobSubmissionClient:
    return JobSubmissionClient(cluster.address, token_path=cluster.token_path)


def test_a_job_runs_a_shoal_driver(cluster: Cluster, client: JobSubmissionClient, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            import shoal
            shoal.init()

            @shoal.remote
            def square(x):
                return x * x

            print("squares", shoal.get([square.remote(i) for i in range(5)]))
            """
        )
    )
    job_id = client.submit_job(entrypoint=f"{sys.executable} {script}", metadata={"owner": "test"})
    assert client.wait_until_finished(job_id, timeout=120) == JobStatus.SUCCEEDED
    assert "squares [0, 1, 4, 9, 16]" in client.get_job_logs(job_id)
    info = client.get_job_info(job_id)
    assert info.driver_exit_code == 0 and info.metadata == {"owner": "test"}
    assert job_id in [j.submission_id for j in client.list_jobs()]


def test_failing_job_and_duplicate_id(client: JobSubmissionClient) -> None:
    job_id = client.submit_job(entrypoint="exit 3", submission_id="fails-once")
    assert client.wait_until_finished(job_id, timeout=60) == JobStatus.FAILED
    assert client.get_job_info(job_id).driver_exit_code == 3
    with pytest.raises(ValueError, match="already exists"):
        client.submit_job(entrypoint="true", submission_id="fails-once")
    with pytest.raises(ValueError):
        client.get_job_status("no-such-job")
    with pytest.raises(ValueError):
        client.submit_job(entrypoint="  ")


def test_stop_a_running_job(client: JobSubmissionClient) -> None:
    job_id = client.submit_job(entrypoint="sleep 60")
    assert client.get_job_status(job_id) == JobStatus.RUNNING
    assert client.stop_job(job_id) is True
    assert client.wait_until_finished(job_id, timeout=30) == JobStatus.STOPPED


def test_job_cli(cluster: Cluster, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "shoal.cli", "job"]
    common = ["--address", cluster.address, "--token-path", cluster.token_path]
    out = subprocess.run(
        [*base, "submit", *common, "--", "echo", "hello from the cli"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "hello from the cli" in out.stdout
    job_id = out.stdout.split("submitted job ", 1)[1].split()[0]
    status = subprocess.run([*base, "status", *common, job_id], capture_output=True, text=True, timeout=60)
    assert "SUCCEEDED" in status.stdout
    logs = subprocess.run([*base, "logs", *common, job_id], capture_output=True, text=True, timeout=60)
    assert "hello from the cli" in logs.stdout
