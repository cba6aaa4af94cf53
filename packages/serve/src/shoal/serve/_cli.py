"""``shoal serve run|deploy|status|shutdown``: registered in core's CLI through ``shoal.commands``.

``run`` starts shoal and serve in this process and blocks. ``deploy``,
``status`` and ``shutdown`` talk to a running serve through its proxy's
``/-/shoal/`` endpoints, authenticated with the token the controller left
(mode 0600) in a per-user temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any
from urllib.parse import urlparse

__all__ = ["register"]

DEFAULT_ADDRESS = "http://127.0.0.1:8000"


def register(subparsers: Any) -> None:
    """Add ``serve`` and its sub-commands to the ``shoal`` parser."""
    serve = subparsers.add_parser("serve", help="deploy and manage shoal.serve applications")
    sub = serve.add_subparsers(dest="serve_command", metavar="COMMAND")
    serve.set_defaults(func=lambda args: (serve.print_help(), 0)[1])

    p = sub.add_parser("run", help="run an application (module:app) or a config file, blocking until Ctrl-C")
    p.add_argument("target", help="import path like 'module:app', or a YAML config file")
    p.add_argument("args", nargs="*", help="key=value arguments for an application builder")
    p.add_argument("--host", default=None, help="HTTP host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default 8000)")
    p.add_argument("--name", default="default", help="application name (import path targets)")
    p.add_argument("--route-prefix", default="/", help="route prefix (import path targets)")
    p.add_argument("--app-dir", default=".", help="directory to import the application from")
    p.add_argument("--non-blocking", action="store_true", help="return once the application runs (stops it too)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("deploy", help="deploy a YAML config file to a running serve")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--address", "-a", default=DEFAULT_ADDRESS, help=f"serve's HTTP address (default {DEFAULT_ADDRESS})")
    p.set_defaults(func=_cmd_deploy)

    p = sub.add_parser("status", help="show the status of a running serve")
    p.add_argument("--address", "-a", default=DEFAULT_ADDRESS, help=f"serve's HTTP address (default {DEFAULT_ADDRESS})")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("shutdown", help="delete all applications and stop serve")
    p.add_argument("--address", "-a", default=DEFAULT_ADDRESS, help=f"serve's HTTP address (default {DEFAULT_ADDRESS})")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=_cmd_shutdown)


def _load_yaml(path: str) -> dict[str, Any]:
    import yaml

    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a serve config must be a mapping")
    return data


def _parse_args(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"application arguments must look like key=value, got {pair!r}")
        out[key] = value
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    import shoal
    from shoal import serve
    from shoal.serve import api
    from shoal.serve.deployment import build_app
    from shoal.serve.schema import ServeDeploySchema, apply_overrides, load_application

    app_dir = os.path.abspath(args.app_dir)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    http: dict[str, Any] = {}
    deployments: list[tuple[str, str | None, Any, list[dict[str, Any]]]] = []
    try:
        if args.target.endswith((".yaml", ".yml")):
            schema = ServeDeploySchema.parse(_load_yaml(args.target))
            if schema.http_options is not None:
                http = schema.http_options.to_dict()
            for app in schema.applications:
                deployments.append(
                    (app.name, app.route_prefix, load_application(app.import_path, app.args), app.deployments)
                )
        else:
            deployments.append(
                (args.name, args.route_prefix, load_application(args.target, _parse_args(args.args)), [])
            )
    except (ValueError, TypeError, ImportError, OSError) as e:
        print(f"shoal serve run: {e}", file=sys.stderr)
        return 1
    if args.host is not None:
        http["host"] = args.host
    if args.port is not None:
        http["port"] = args.port
    shoal.init()
    try:
        serve.start(http_options=http or None)
        for name, prefix, app, overrides in deployments:
            ingress, specs = build_app(app, name)
            api._deploy(name, prefix, ingress, apply_overrides(specs, overrides), wait=True)
            where = f"http://{http.get('host', '127.0.0.1')}:{http.get('port', 8000)}{prefix or ''}"
            print(f"Deployed app '{name}'" + (f" at {where}" if prefix is not None else ""), flush=True)
        if args.non_blocking:
            return 0
        controller = api._controller()
        while True:
            time.sleep(0.5)
            try:
                if shoal.get(controller.is_shutting_down.remote(), timeout=10):
                    break
            except Exception:  # noqa: BLE001 - the controller is gone: serve was shut down
                break
    except KeyboardInterrupt:
        pass
    except RuntimeError as e:
        print(f"shoal serve run: {e}", file=sys.stderr)
        return 1
    finally:
        try:
            serve.shutdown()
        finally:
            shoal.shutdown()
    return 0


def _request(address: str, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
    import urllib.error
    import urllib.request

    from shoal.serve._controller import token_path
    from shoal.serve._proxy import TOKEN_HEADER

    url = urlparse(address if "://" in address else f"http://{address}")
    port = url.port or 8000
    try:
        with open(token_path(port)) as f:
            token = f.read().strip()
    except OSError:
        raise ConnectionError(
            f"no serve is running at {address} for this user (no token at {token_path(port)})"
        ) from None
    request = urllib.request.Request(
        f"{url.scheme}://{url.hostname}:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={TOKEN_HEADER: token, "content-type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"serve answered {e.code}: {e.read().decode(errors='replace')}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, ConnectionRefusedError):
            # A token left by a serve that was killed: nothing listens on the port any more.
            raise ConnectionError(f"no serve is running at {address} (nothing listens there)") from None
        raise


def _alive(address: str) -> bool:
    import urllib.error
    import urllib.request

    url = address if "://" in address else f"http://{address}"
    try:
        with urllib.request.urlopen(f"{url}/-/healthz", timeout=1):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _cmd_deploy(args: argparse.Namespace) -> int:
    from shoal.serve.schema import ServeDeploySchema

    try:
        config = _load_yaml(args.config)
        schema = ServeDeploySchema.parse(config)
        config.setdefault("working_dir", os.path.dirname(os.path.abspath(args.config)))
        result = _request(args.address, "PUT", "/-/shoal/deploy", config)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"shoal serve deploy: {e}", file=sys.stderr)
        return 1
    names = ", ".join(result.get("deployed", [a.name for a in schema.applications]))
    print(f"Sent deploy request for applications: {names}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import yaml

    try:
        result = _request(args.address, "GET", "/-/shoal/status")
    except (OSError, RuntimeError) as e:
        print(f"shoal serve status: {e}", file=sys.stderr)
        return 1
    print(yaml.safe_dump(result, sort_keys=False), end="")
    return 0


def _cmd_shutdown(args: argparse.Namespace) -> int:
    if not args.yes:
        answer = input(f"Shut down serve at {args.address} and delete all its applications? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    try:
        _request(args.address, "POST", "/-/shoal/shutdown")
    except (OSError, RuntimeError) as e:
        print(f"shoal serve shutdown: {e}", file=sys.stderr)
        return 1
    # Wait until the proxy stops answering.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not _alive(args.address):
            print("Sent shutdown request; serve stopped.")
            return 0
        time.sleep(0.2)
    print("shoal serve shutdown: serve is still answering after 60 s", file=sys.stderr)
    return 1
