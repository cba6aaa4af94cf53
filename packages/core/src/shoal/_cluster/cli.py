"""``shoal start``, ``shoal stop``, ``shoal status`` and ``shoal job ...``.

``shoal start`` runs a node agent in the background and records its PID (and
start time) in ``~/.shoal/processes.json``; ``shoal stop`` ends only the
processes recorded there, never processes found by name.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shoal._cluster.auth import shoal_home

__all__ = ["register"]

_RECORD = "processes.json"


def _record_path() -> Path:
    return shoal_home() / _RECORD


def _load_records() -> list[dict[str, Any]]:
    try:
        return list(json.loads(_record_path().read_text()))
    except (FileNotFoundError, ValueError):
        return []


def _save_records(records: list[dict[str, Any]]) -> None:
    path = _record_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1))
    os.replace(tmp, path)


def _process_matches(record: dict[str, Any]) -> bool:
    """Is the recorded PID still the process we started (not a reused PID)?"""
    import psutil

    try:
        proc = psutil.Process(record["pid"])
        return abs(proc.create_time() - record["create_time"]) < 1.0
    except (psutil.Error, KeyError):
        return False


def _cmd_start(args: argparse.Namespace) -> int:
    import psutil

    if not args.head and not args.address:
        print("shoal start: give --head to start a cluster, or --address HOST:PORT to join one", file=sys.stderr)
        return 2
    logs = shoal_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ready = Path(tempfile.mkdtemp(prefix="shoal-start-")) / "ready.json"
    cmd = [sys.executable, "-m", "shoal._cluster.agent", "--host", args.host, "--ready-file", str(ready)]
    if args.head:
        cmd += ["--head"]
        from shoal.config import load_config

        if args.tls or load_config().tls:
            cmd += ["--tls"]
        if args.port is not None:
            cmd += ["--port", str(args.port)]
    else:
        cmd += ["--address", args.address]
        if args.port is not None:
            cmd += ["--port", str(args.port)]
    for flag, value in (
        ("--num-cpus", args.num_cpus),
        ("--num-gpus", args.num_gpus),
        ("--resources", args.resources),
        ("--object-store-memory", args.object_store_memory),
        ("--storage", args.storage),
        ("--token-path", args.token_path),
        ("--temp-dir", args.temp_dir),
    ):
        if value is not None:
            cmd += [flag, str(value)]
    log_path = logs / f"node-{int(time.time() * 1000)}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.time() + args.timeout
    while not ready.exists():
        if proc.poll() is not None:
            print(f"shoal start: the node agent exited ({proc.returncode}); log:\n", file=sys.stderr)
            print(log_path.read_text()[-3000:], file=sys.stderr)
            return 1
        if time.time() > deadline:
            proc.kill()
            print(f"shoal start: the node agent did not start within {args.timeout}s; see {log_path}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    ready.unlink()
    ready.parent.rmdir()
    records = [r for r in _load_records() if _process_matches(r)]
    records.append(
        {
            "pid": proc.pid,
            "create_time": psutil.Process(proc.pid).create_time(),
            "role": "head" if args.head else "node",
            "address": info["address"],
            "head_address": info["head_address"],
            "log": str(log_path),
        }
    )
    _save_records(records)
    if args.head:
        (shoal_home() / "last-head").write_text(info["address"])
        print(f"shoal head started at {info['address']} (node {info['node_id'][:12]}, pid {proc.pid})")
        print(f"  cluster token: {info['token_path']} (mode 0600; copy it to machines that join)")
        print(f'  connect from Python:  shoal.init(address="{info["address"]}")')
        print(f"  add a node:           shoal start --address {info['address']}")
        print(f"  submit a job:         shoal job submit --address {info['address']} -- python script.py")
        print("  stop everything here: shoal stop")
    else:
        print(f"shoal node started at {info['address']}, joined {info['head_address']} (pid {proc.pid})")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    records = _load_records()
    stopped = 0
    survivors = []
    for record in records:
        if not _process_matches(record):
            continue
        try:
            os.kill(record["pid"], signal.SIGTERM)
        except ProcessLookupError:
            continue
        survivors.append(record)
    deadline = time.time() + args.grace
    for record in survivors:
        while time.time() < deadline and _process_matches(record):
            time.sleep(0.05)
        if _process_matches(record):
            try:
                os.kill(record["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        stopped += 1
        print(f"stopped {record['role']} pid {record['pid']} ({record['address']})")
    _save_records([])
    last = shoal_home() / "last-head"
    if last.exists():
        last.unlink()
    if not stopped:
        print("no shoal processes started by `shoal start` are running on this machine")
    return 0


def _head_client(address: str | None, token_path: str | None) -> Any:
    from shoal.backend.cluster import head_client, resolve_address

    return head_client(resolve_address(address), token_path)


def _fmt_resources(res: dict[str, float]) -> str:
    keys = [k for k in sorted(res) if not k.startswith("node:") and k not in ("memory", "object_store_memory")]
    return ", ".join(f"{k} {res[k]:g}" for k in keys) or "-"


def _cmd_status(args: argparse.Namespace) -> int:
    client = _head_client(args.address, args.token_path)
    try:
        info = client.cluster_info()
    finally:
        client.close()
    alive = [n for n in info.nodes if n.alive]
    dead = [n for n in info.nodes if not n.alive]
    print(f"cluster {info.cluster_id[:12]}: {len(alive)} node(s) alive, {len(dead)} dead")
    total: dict[str, float] = {}
    used: dict[str, float] = {}
    for n in alive:
        for k, v in n.total.items():
            total[k] = total.get(k, 0.0) + v
            used[k] = used.get(k, 0.0) + v - n.available.get(k, 0.0)
    print("nodes:")
    for n in info.nodes:
        role = "head" if n.is_head else "node"
        state = "ALIVE" if n.alive else f"DEAD ({n.death_reason})"
        print(f"  {n.node_id[:12]}  {role:4s}  {n.address:21s}  {state:8s}  {_fmt_resources(dict(n.total))}")
    print("resources (used / total):")
    for k in sorted(total):
        if k.startswith("node:") or k in ("memory", "object_store_memory"):
            continue
        print(f"  {k}: {used.get(k, 0.0):g} / {total[k]:g}")
    print("pending demand:")
    if not info.demands:
        print("  (none)")
    for d in info.demands:
        print(f"  {d.count} x {d.kind} {dict(d.shape)}: {d.reason}")
    # Other distributions add sections (the autoscaler: nodes by type, launches).
    from importlib.metadata import entry_points

    for ep in entry_points(group="shoal.status"):
        try:
            ep.load()(args, info)
        except Exception as e:  # noqa: BLE001 - a broken section must not hide the rest
            print(f"({ep.name}: {e})")
    return 0


def _cmd_job(args: argparse.Namespace) -> int:
    from shoal.job_submission import JobSubmissionClient

    client = JobSubmissionClient(args.address, token_path=args.token_path)
    if args.job_command == "submit":
        entry = list(args.entrypoint)
        if entry and entry[0] == "--":
            entry = entry[1:]
        if not entry:
            print("shoal job submit: give the command after --, e.g. -- python script.py", file=sys.stderr)
            return 2
        import shlex

        job_id = client.submit_job(
            entrypoint=shlex.join(entry), submission_id=args.submission_id, runtime_env=_runtime_env(args)
        )
        print(f"submitted job {job_id}")
        if args.no_wait:
            return 0
        return _follow(client, job_id)
    if args.job_command == "status":
        info = client.get_job_info(args.job_id)
        print(f"{args.job_id}: {info.status}" + (f" ({info.message})" if info.message else ""))
        return 0
    if args.job_command == "logs":
        if args.follow:
            return _follow(client, args.job_id)
        sys.stdout.write(client.get_job_logs(args.job_id))
        return 0
    if args.job_command == "stop":
        client.stop_job(args.job_id)
        print(f"stopping job {args.job_id}")
        return 0
    if args.job_command == "list":
        for job in client.list_jobs():
            print(f"{job.submission_id}  {job.status.value:10s}  {job.entrypoint}")
        return 0
    return 2


def _runtime_env(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.working_dir:
        return {"working_dir": args.working_dir}
    return None


def _follow(client: Any, job_id: str) -> int:
    offset = 0
    while True:
        data, offset = client._logs_from(job_id, offset)
        if data:
            sys.stdout.write(data)
            sys.stdout.flush()
        status = client.get_job_status(job_id)
        if status.is_terminal():
            data, offset = client._logs_from(job_id, offset)
            sys.stdout.write(data)
            print(f"job {job_id} {status.value}")
            return 0 if status.value == "SUCCEEDED" else 1
        time.sleep(0.2)


def register(sub: Any) -> None:
    """Add the cluster commands to the ``shoal`` parser."""
    p = sub.add_parser("start", help="start a head or join a cluster on this machine (in the background)")
    p.add_argument("--head", action="store_true", help="start a new cluster's head here")
    p.add_argument("--address", help="HOST:PORT of the head to join")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (head default 6380)")
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument("--num-gpus", type=int, default=None)
    p.add_argument("--resources", default=None, help="custom resources as JSON, e.g. '{\"accel\": 2}'")
    p.add_argument("--object-store-memory", default=None)
    p.add_argument("--storage", default=None, help="head state directory; a head restarted on it recovers")
    p.add_argument("--token-path", default=None)
    p.add_argument("--temp-dir", default=None)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--tls", action="store_true", help="encrypt every cluster channel (also: tls = true in config)")
    p.set_defaults(func=_cmd_start)

    p = sub.add_parser("stop", help="stop the shoal processes that `shoal start` started on this machine")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to wait before SIGKILL")
    p.set_defaults(func=_cmd_stop)

    p = sub.add_parser("status", help="nodes, resources and pending demand of a cluster")
    p.add_argument("--address", default=None)
    p.add_argument("--token-path", default=None)
    p.set_defaults(func=_cmd_status)

    job = sub.add_parser("job", help="submit and follow jobs on a cluster")
    job_sub = job.add_subparsers(dest="job_command", metavar="JOB_COMMAND", required=True)
    for name, helptext in (
        ("submit", "run a command on the cluster"),
        ("status", "a job's status"),
        ("logs", "a job's output"),
        ("stop", "stop a job"),
        ("list", "all jobs"),
    ):
        jp = job_sub.add_parser(name, help=helptext)
        jp.add_argument("--address", default=None)
        jp.add_argument("--token-path", default=None)
        if name == "submit":
            jp.add_argument("--submission-id", default=None)
            jp.add_argument("--working-dir", default=None)
            jp.add_argument("--no-wait", action="store_true", help="return once submitted")
            jp.add_argument("entrypoint", nargs=argparse.REMAINDER, help="-- COMMAND ...")
        elif name != "list":
            jp.add_argument("job_id")
        if name == "logs":
            jp.add_argument("--follow", "-f", action="store_true")
        jp.set_defaults(func=_cmd_job)
