"""The cluster launcher behind ``shoal up`` and ``shoal down``.

``up`` starts the head node through the provider, waits until its head
service serves, then starts the autoscaler as a background process
(``python -m shoal.autoscaler.monitor``) that publishes its status to the
head. What it started is recorded in the cluster's state directory
(``<state_dir>/<cluster_name>/launcher.json``; ``state_dir`` is the local
provider's setting, ``~/.shoal/clusters`` otherwise), with process start
times so that a reused pid is never taken for ours.

``down`` stops the recorded autoscaler, then terminates the cluster's workers
and its head through the provider (nodes found by their cluster tag), and
nothing else.

Providers that start node agents themselves (:class:`HeadBootstrap`: the
``local`` provider) start the head directly. Cloud providers start it with a
boot script (:mod:`shoal.autoscaler.boot`): ``up`` makes the cluster token
(kept 0600 in the state directory), launches the head with a script that
starts ``shoal start --head`` on it, and waits, up to the provider's
``head_start_timeout_s`` (600 s by default), until the head answers at its
public address (its internal one with ``use_internal_ips: true``). The
autoscaler then gives every worker it launches a script that joins the head
at its internal address. A head that never answers is terminated, and the
error says where its boot log is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from shoal.autoscaler._errors import AutoscalerError, HeadStartUnsupportedError, NodeProviderError
from shoal.autoscaler._machine import AutoscalerSettings
from shoal.autoscaler._redact import Redactor
from shoal.autoscaler._registry import create_node_provider
from shoal.autoscaler.config import ClusterConfig
from shoal.autoscaler.node_provider import (
    NODE_KIND_HEAD,
    TAG_NODE_KIND,
    HeadBootstrap,
    HeadEndpoint,
    NodeProvider,
    ProviderNode,
)

__all__ = [
    "ClusterEndpoint",
    "ClusterNodes",
    "cluster_nodes",
    "cluster_state_dir",
    "config_to_raw",
    "down",
    "running_cluster",
    "up",
]

Echo = Callable[[str], None]

DEFAULT_STATE_DIR = "~/.shoal/clusters"
LAUNCHER_FILE = "launcher.json"
CONFIG_FILE = "config.json"
MONITOR_LOG = "monitor.log"
#: The token of a cluster whose head ``up`` started with a boot script.
TOKEN_FILE = "token"
DEFAULT_HEAD_START_TIMEOUT_S = 600.0

#: Autoscaler processes started from this process, by pid: held so that they are reaped
#: here when stopped (not left as zombies, nor garbage-collected while running).
_monitors: dict[int, subprocess.Popen] = {}


@dataclass
class ClusterNodes:
    head: list[ProviderNode] = field(default_factory=list)
    workers: list[ProviderNode] = field(default_factory=list)


@dataclass(frozen=True)
class ClusterEndpoint:
    """A cluster brought up by :func:`up`: where to connect (the token stays in its file)."""

    cluster_name: str
    address: str
    token_path: str
    head_node_id: str
    monitor_pid: int
    state_dir: str


def cluster_nodes(provider: NodeProvider) -> ClusterNodes:
    """The cluster's live nodes, split into head and workers."""
    out = ClusterNodes()
    for n in provider.non_terminated_nodes():
        (out.head if n.kind == NODE_KIND_HEAD else out.workers).append(n)
    return out


def cluster_state_dir(config: ClusterConfig) -> Path:
    """Where ``up`` records what it started for this cluster."""
    base = config.provider.get("state_dir") or DEFAULT_STATE_DIR
    return Path(os.path.expanduser(str(base))) / config.cluster_name


def config_to_raw(config: ClusterConfig) -> dict[str, Any]:
    """The validated config as a plain mapping that validates back to the same config."""
    raw = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "source"}
    types = {}
    for name, t in config.available_node_types.items():
        entry = {
            "resources": dict(t.resources),
            "node_config": t.node_config,
            "min_workers": t.min_workers,
            "max_workers": t.max_workers,
            "labels": dict(t.labels),
        }
        if t.worker_setup_commands is not None:
            entry["worker_setup_commands"] = list(t.worker_setup_commands)
        types[name] = entry
    raw["available_node_types"] = types
    return raw


def _describe(nodes: ClusterNodes) -> str:
    by_type: dict[str, int] = {}
    for n in nodes.workers:
        by_type[n.node_type or "?"] = by_type.get(n.node_type or "?", 0) + 1
    workers = ", ".join(f"{c} x {t}" for t, c in sorted(by_type.items())) or "no workers"
    head = nodes.head[0].node_id if nodes.head else "no head"
    return f"{head}; {workers}"


# -- records of what `up` started ------------------------------------------------------


def _write_private(path: Path, data: Any) -> None:
    """JSON readable by this user only (the cluster config may hold cloud settings)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _read_record(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / LAUNCHER_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _process_alive(rec: Mapping[str, Any] | None) -> bool:
    """Is the recorded process still the one we started (pid and start time)?"""
    if not rec:
        return False
    try:
        p = psutil.Process(int(rec["pid"]))
        return abs(p.create_time() - float(rec["create_time"])) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def _stop_process(rec: Mapping[str, Any] | None, grace_s: float = 10.0) -> bool:
    """SIGTERM the recorded process (then SIGKILL after ``grace_s``); False if it was not running."""
    if not rec:
        return False
    was_running = _process_alive(rec)
    if was_running:
        try:
            proc = psutil.Process(int(rec["pid"]))
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace_s)
        except psutil.TimeoutExpired:
            with contextlib.suppress(psutil.Error):
                proc.kill()
                proc.wait(timeout=5)
        except psutil.Error:
            pass
    popen = _monitors.pop(int(rec["pid"]), None)
    if popen is not None:
        popen.poll()  # reap it if it ended on its own
    return was_running


def running_cluster(config: ClusterConfig, provider: NodeProvider | None = None) -> ClusterEndpoint | None:
    """The cluster as :func:`up` left it, if its head and autoscaler are both still running."""
    state_dir = cluster_state_dir(config)
    rec = _read_record(state_dir)
    if rec is None or not _process_alive(rec.get("monitor")):
        return None
    own = provider is None
    provider = provider or create_node_provider(config.provider, config.cluster_name)
    try:
        heads = [n.node_id for n in provider.non_terminated_nodes({TAG_NODE_KIND: NODE_KIND_HEAD})]
    finally:
        if own:
            provider.close()
    if rec.get("head_node_id") not in heads:
        return None
    return ClusterEndpoint(
        cluster_name=config.cluster_name,
        address=rec["head_address"],
        token_path=rec["token_path"],
        head_node_id=rec["head_node_id"],
        monitor_pid=int(rec["monitor"]["pid"]),
        state_dir=str(state_dir),
    )


# -- up --------------------------------------------------------------------------------


def _start_monitor(state_dir: Path) -> dict[str, Any]:
    log_path = state_dir / MONITOR_LOG
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shoal.autoscaler.monitor", str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # `shoal up` may exit; the autoscaler stays
            close_fds=True,
        )
    _monitors[proc.pid] = proc
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:
        create_time = time.time()
    return {"pid": proc.pid, "create_time": create_time, "log": str(log_path)}


def _wait_for_monitor(endpoint_address: str, token_path: str, monitor: Mapping[str, Any], timeout_s: float) -> None:
    """Wait until the autoscaler published its first status to the head."""
    from shoal.autoscaler._head import HeadConnection
    from shoal.autoscaler.cluster_state import read_published_status

    deadline = time.monotonic() + timeout_s
    with HeadConnection(endpoint_address, token_path) as head:
        while True:
            doc = read_published_status(head)
            if doc is not None and doc.get("pid") == monitor["pid"]:
                return
            if not _process_alive(monitor):
                tail = Path(monitor["log"]).read_text(errors="replace")[-2000:]
                raise AutoscalerError(f"the autoscaler exited at start; its log ends:\n{tail}")
            if time.monotonic() > deadline:
                raise AutoscalerError(f"the autoscaler did not report within {timeout_s:g}s; see {monitor['log']}")
            time.sleep(0.05)


def _start_head_directly(
    config: ClusterConfig, provider: NodeProvider, nodes: ClusterNodes, timeout_s: float, echo: Echo
) -> tuple[str, HeadEndpoint]:
    """Start (or find) the head on a provider that starts node agents itself."""
    assert isinstance(provider, HeadBootstrap)
    head_type = config.head_type
    created = False
    if nodes.head:
        head_id = nodes.head[0].node_id
    else:
        (head_id,) = provider.create_nodes(
            head_type.name, head_type.node_config, {TAG_NODE_KIND: NODE_KIND_HEAD}, 1, resources=head_type.resources
        )
        created = True
        echo(f"started the head node {head_id} ({head_type.name})")
    try:
        return head_id, provider.head_endpoint(head_id, timeout_s)
    except NodeProviderError:
        if created:
            provider.terminate_nodes([head_id])
        raise


def _runs_boot_scripts(provider: NodeProvider) -> bool:
    return type(provider).with_boot_script is not NodeProvider.with_boot_script


def _head_address(node: ProviderNode, port: int, internal: bool) -> str | None:
    host = node.internal_ip if internal else (node.external_ip or node.internal_ip)
    return f"{host}:{port}" if host else None


def _start_head_booted(
    config: ClusterConfig, provider: NodeProvider, nodes: ClusterNodes, state_dir: Path, echo: Echo
) -> tuple[str, HeadEndpoint, dict[str, Any]]:
    """Start (or find) the head on a cloud provider, through a boot script; wait until it answers."""
    from shoal._cluster.auth import generate_token, write_token
    from shoal.autoscaler.boot import DEFAULT_HEAD_PORT, boot_script

    settings = config.provider
    port = int(settings.get("head_port") or DEFAULT_HEAD_PORT)
    internal = bool(settings.get("use_internal_ips", False))
    timeout_s = float(settings.get("head_start_timeout_s") or DEFAULT_HEAD_START_TIMEOUT_S)
    token_path = state_dir / TOKEN_FILE
    head_type = config.head_type
    created = False
    if nodes.head:
        head_id = nodes.head[0].node_id
        if not token_path.exists():
            raise AutoscalerError(
                f"the head node {head_id} is running but its token is not in {token_path}; "
                "it was started from elsewhere: run `shoal up` there, or `shoal down` first"
            )
    else:
        token = generate_token()
        script = boot_script(
            config, head_type.name, NODE_KIND_HEAD, token, head_port=port, foreground=provider.boot_in_foreground
        )
        node_config = provider.with_boot_script(head_type.node_config, script)  # unsupported: raises, nothing made
        write_token(token_path, token)
        try:
            (head_id,) = provider.create_nodes(
                head_type.name, node_config, {TAG_NODE_KIND: NODE_KIND_HEAD}, 1, resources=head_type.resources
            )
        except NodeProviderError:
            token_path.unlink(missing_ok=True)
            raise
        created = True
        echo(f"started the head node {head_id} ({head_type.name}); waiting for it to boot (up to {timeout_s:g}s)")
    try:
        address, internal_address = _wait_for_booted_head(provider, head_id, port, internal, token_path, timeout_s)
    except AutoscalerError as e:
        if created:
            provider.terminate_nodes([head_id])
            token_path.unlink(missing_ok=True)
            raise AutoscalerError(f"{e} (the head node was terminated)") from None
        raise
    boot = {"head_internal_address": internal_address, "foreground": provider.boot_in_foreground}
    return head_id, HeadEndpoint(address, str(token_path), head_id), boot


def _wait_for_booted_head(
    provider: NodeProvider, head_id: str, port: int, internal: bool, token_path: Path, timeout_s: float
) -> tuple[str, str]:
    """The head's address (as reached from here) and internal address, once its head service answers."""
    from shoal.autoscaler._head import HeadConnection

    deadline = time.monotonic() + timeout_s
    address = internal_address = None
    last_error = "it has no address yet"
    while time.monotonic() < deadline:
        node = next((n for n in provider.non_terminated_nodes() if n.node_id == head_id), None)
        if node is None:
            raise AutoscalerError(f"the head node {head_id} is gone (the provider no longer lists it)")
        address = _head_address(node, port, internal)
        internal_address = _head_address(node, port, True)
        if address and internal_address:
            try:
                with HeadConnection(address, token_path, timeout_s=5.0) as head:
                    head.cluster()
                return address, internal_address
            except Exception as e:  # noqa: BLE001 - still booting: any failure means "not yet"
                last_error = f"{type(e).__name__}: {e}"
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    where = address or "an address the provider never gave"
    raise AutoscalerError(
        f"the head node {head_id} did not answer at {where} within {timeout_s:g}s (last: {last_error[:300]}); "
        "its boot log is /var/log/shoal-boot.log on the machine"
    )


def up(
    config: ClusterConfig,
    *,
    provider: NodeProvider | None = None,
    interval_s: float = 5.0,
    settings: AutoscalerSettings | None = None,
    timeout_s: float = 60.0,
    echo: Echo = print,
) -> ClusterEndpoint:
    """Bring the cluster up: its head through the provider, then the autoscaler on the head.

    Idempotent: a head that is already running is kept; the autoscaler is
    (re)started so that config changes apply. ``interval_s`` is the
    autoscaler's round period and ``settings`` its timings and limits.
    Raises HeadStartUnsupportedError, before launching anything, for
    providers that neither start node agents themselves nor run boot scripts.
    """
    if interval_s <= 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
    redact = Redactor.from_config(config.provider)
    own = provider is None
    provider = provider or create_node_provider(config.provider, config.cluster_name)
    try:
        nodes = cluster_nodes(provider)
        echo(f"cluster {config.cluster_name!r} ({config.provider_type}): {redact(_describe(nodes))}")
        if not isinstance(provider, HeadBootstrap) and not _runs_boot_scripts(provider):
            raise HeadStartUnsupportedError(
                f"`shoal up` cannot start a head on the {provider.provider_name or config.provider_type!r} provider: "
                "it neither starts node agents itself nor runs boot scripts; the config is valid, the provider "
                "answered, and nothing was launched"
            )
        state_dir = cluster_state_dir(config)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if isinstance(provider, HeadBootstrap):
            head_id, endpoint = _start_head_directly(config, provider, nodes, timeout_s, echo)
            boot = None
        else:
            head_id, endpoint, boot = _start_head_booted(config, provider, nodes, state_dir, echo)

        old = _read_record(state_dir) or {}
        if _stop_process(old.get("monitor")):
            echo("stopped the previous autoscaler")
        _write_private(state_dir / CONFIG_FILE, config_to_raw(config))
        record: dict[str, Any] = {
            "cluster_name": config.cluster_name,
            "head_address": endpoint.address,
            "token_path": endpoint.token_path,
            "head_node_id": head_id,
            "interval_s": float(interval_s),
            "settings": dataclasses.asdict(settings or AutoscalerSettings()),
        }
        if boot is not None:
            record["boot"] = boot
        _write_private(state_dir / LAUNCHER_FILE, record)  # the monitor reads it at start
        record["monitor"] = _start_monitor(state_dir)
        _write_private(state_dir / LAUNCHER_FILE, record)
        try:
            _wait_for_monitor(endpoint.address, endpoint.token_path, record["monitor"], timeout_s)
        except AutoscalerError:
            _stop_process(record["monitor"])
            raise
    finally:
        if own:
            provider.close()
    echo(f"head {head_id} serving at {endpoint.address}; autoscaler running (pid {record['monitor']['pid']})")
    echo(f"  token file:  {endpoint.token_path} (mode 0600)")
    echo(f'  connect:     shoal.init(address="{endpoint.address}", token_path="{endpoint.token_path}")')
    echo(f"  status:      shoal status --address {endpoint.address} --token-path {endpoint.token_path}")
    echo(f"  autoscaler log: {record['monitor']['log']}")
    return ClusterEndpoint(
        cluster_name=config.cluster_name,
        address=endpoint.address,
        token_path=endpoint.token_path,
        head_node_id=head_id,
        monitor_pid=int(record["monitor"]["pid"]),
        state_dir=str(state_dir),
    )


# -- down ------------------------------------------------------------------------------


def down(
    config: ClusterConfig,
    *,
    provider: NodeProvider | None = None,
    workers_only: bool = False,
    echo: Echo = print,
) -> list[str]:
    """Stop the autoscaler ``up`` started, then terminate the workers and (unless ``workers_only``) the head.

    Returns the provider ids of the nodes terminated.
    """
    state_dir = cluster_state_dir(config)
    rec = _read_record(state_dir)
    if rec is not None and _stop_process(rec.get("monitor")):
        echo(f"stopped the autoscaler (pid {rec['monitor']['pid']})")
    own = provider is None
    provider = provider or create_node_provider(config.provider, config.cluster_name)
    try:
        nodes = cluster_nodes(provider)
        done: list[str] = []
        if nodes.workers:
            ids = [n.node_id for n in nodes.workers]
            echo(f"terminating {len(ids)} worker node(s): {', '.join(ids)}")
            provider.terminate_nodes(ids)
            done += ids
        if nodes.head and not workers_only:
            ids = [n.node_id for n in nodes.head]
            echo(f"terminating the head node: {', '.join(ids)}")
            provider.terminate_nodes(ids)
            done += ids
            (state_dir / TOKEN_FILE).unlink(missing_ok=True)  # a new head gets a new token
        if not done:
            echo(f"cluster {config.cluster_name!r} has no nodes to terminate")
        if rec is not None and not workers_only:
            (state_dir / LAUNCHER_FILE).unlink(missing_ok=True)
        return done
    finally:
        if own:
            provider.close()
