"""Worker output reaches the driver with a (name pid=N) prefix, unless log_to_driver=False."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.shoal_backends("local")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_task_and_actor_output_is_prefixed() -> None:
    out = _run(
        """
        import shoal, sys
        shoal.init(num_cpus=1)

        @shoal.remote
        def hello():
            print("hello from a task")
            print("to stderr", file=sys.stderr)

        @shoal.remote
        class Talker:
            def say(self):
                print("actor speaking")

        shoal.get(hello.remote())
        t = Talker.remote()
        shoal.get(t.say.remote())
        shoal.shutdown()
        """
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"^\(hello pid=\d+\) hello from a task$", out.stdout, re.M)
    assert re.search(r"^\(Talker pid=\d+\) actor speaking$", out.stdout, re.M)
    assert re.search(r"^\(hello pid=\d+\) to stderr$", out.stderr, re.M)


def test_log_to_driver_false_silences_workers() -> None:
    out = _run(
        """
        import shoal
        shoal.init(num_cpus=1, log_to_driver=False)

        @shoal.remote
        def hello():
            print("should not appear")
            return 1

        assert shoal.get(hello.remote()) == 1
        shoal.shutdown()
        """
    )
    assert out.returncode == 0, out.stderr
    assert "should not appear" not in out.stdout + out.stderr
