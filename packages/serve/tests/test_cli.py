"""``shoal serve run|deploy|status|shutdown`` in real subprocesses, over loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import pytest
import yaml

pytestmark = pytest.mark.shoal_backends("local")

APP = textwrap.dedent(
    """
    from shoal import serve

    @serve.deployment(ray_actor_options={"num_cpus": 0}, user_config={"word": "hello"})
    class Greeter:
        def reconfigure(self, config):
            self.word = config["word"]

        def __call__(self, request):
            return f"{self.word} from {request.url.path}"

    app = Greeter.bind()

    def build(args):
        return Greeter.options(user_config={"word": args.get("word", "built")}).bind()
    """
)


def shoal_cli(*args: str, cwd: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw
    )


def wait_for(url: str, timeout: float, proc: subprocess.Popen) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return r
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@pytest.mark.timeout(120)
def test_run_status_deploy_shutdown(tmp_path, free_port) -> None:
    (tmp_path / "greeter_app.py").write_text(APP)
    address = f"http://127.0.0.1:{free_port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli", "serve", "run", "greeter_app:app", "--port", str(free_port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(f"{address}/x", 60, proc).text == "hello from /x"

        status = shoal_cli("serve", "status", "--address", address, cwd=str(tmp_path))
        assert status.returncode == 0, status.stderr
        parsed = yaml.safe_load(status.stdout)
        assert parsed["applications"]["default"]["status"] == "RUNNING"
        assert parsed["applications"]["default"]["deployments"]["Greeter"]["replica_states"] == {"RUNNING": 1}

        config = {
            "applications": [
                {
                    "name": "default",
                    "route_prefix": "/",
                    "import_path": "greeter_app:app",
                    "deployments": [{"name": "Greeter", "user_config": {"word": "bonjour"}}],
                },
                {"name": "second", "route_prefix": "/two", "import_path": "greeter_app:build", "args": {"word": "hej"}},
            ]
        }
        (tmp_path / "serve.yaml").write_text(yaml.safe_dump(config))
        deploy = shoal_cli("serve", "deploy", "serve.yaml", "--address", address, cwd=str(tmp_path))
        assert deploy.returncode == 0, deploy.stderr
        assert "default" in deploy.stdout and "second" in deploy.stdout
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            a = httpx.get(f"{address}/", timeout=5).text
            b = httpx.get(f"{address}/two/y", timeout=5)
            if a == "bonjour from /" and b.status_code == 200:
                break
            time.sleep(0.2)
        assert httpx.get(f"{address}/").text == "bonjour from /"
        assert httpx.get(f"{address}/two/y").text == "hej from /two/y"

        # A wrong token is refused.
        assert httpx.get(f"{address}/-/shoal/status", headers={"x-shoal-serve-token": "nope"}).status_code == 401

        down = shoal_cli("serve", "shutdown", "-y", "--address", address, cwd=str(tmp_path))
        assert down.returncode == 0, down.stderr
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "Deployed app 'default'" in out
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=30)


BLOCKING = textwrap.dedent(
    """
    import faulthandler
    import signal
    import sys

    import shoal
    from shoal import serve

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for stacks if this hangs
    # As in a terminal: a runner that starts the tests in the background (SIGINT ignored, which
    # children inherit, and then Python keeps ignoring it) must not change what Ctrl-C does here.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    def hi(request):
        return "hi"

    shoal.init(num_cpus=1)
    serve.start(http_options={"port": int(sys.argv[1])})
    handle = None
    try:
        handle = serve.run(hi.bind(), blocking=True)
    finally:
        print(f"run returned: {handle is not None}", flush=True)
    """
)


@pytest.mark.timeout(90)
def test_run_blocking_waits_until_ctrl_c_and_lets_the_interrupt_through(tmp_path, free_port) -> None:
    (tmp_path / "blocking_app.py").write_text(BLOCKING)
    proc = subprocess.Popen(
        [sys.executable, "blocking_app.py", str(free_port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(f"http://127.0.0.1:{free_port}/", 60, proc).text == "hi"
        time.sleep(1.5)
        assert proc.poll() is None  # still blocked in serve.run
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            proc.kill()
            out, _ = proc.communicate(timeout=30)
            pytest.fail(f"the program did not end within 60s of Ctrl-C; its output and stacks:\n{out[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    # As in Ray: serve.run does not return; KeyboardInterrupt reaches the program, which exits.
    assert "run returned: False" in out, out
    assert "Got KeyboardInterrupt, exiting..." in out and "KeyboardInterrupt" in out.split("exiting...")[-1]
    assert proc.returncode != 0
    # Serve ended with the program: nothing listens on the port any more.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{free_port}/", timeout=2)


def test_cli_errors_are_clear(tmp_path, free_port) -> None:
    missing = shoal_cli("serve", "status", "--address", f"http://127.0.0.1:{free_port}", cwd=str(tmp_path))
    assert missing.returncode == 1 and "no serve is running" in missing.stderr
    # The same with a token left behind by a serve that was killed on that port.
    from shoal.serve._controller import token_path

    stale = token_path(free_port)
    os.makedirs(os.path.dirname(stale), mode=0o700, exist_ok=True)
    with open(stale, "w") as f:
        f.write("left-over")
    try:
        missing = shoal_cli("serve", "status", "--address", f"http://127.0.0.1:{free_port}", cwd=str(tmp_path))
    finally:
        os.unlink(stale)
    assert missing.returncode == 1 and "no serve is running" in missing.stderr, missing.stderr
    (tmp_path / "bad.yaml").write_text("applications:\n  - name: x\n")
    bad = shoal_cli("serve", "deploy", "bad.yaml", "--address", f"http://127.0.0.1:{free_port}", cwd=str(tmp_path))
    assert bad.returncode == 1 and "import_path" in bad.stderr
    run = shoal_cli("serve", "run", "no_such_module:app", cwd=str(tmp_path), env={**os.environ})
    assert run.returncode == 1 and "no_such_module" in run.stderr
