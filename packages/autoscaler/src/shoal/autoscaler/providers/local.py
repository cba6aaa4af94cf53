"""The ``local`` provider: each node is a node agent running as a local process.

Real autoscaling on one machine: ``shoal up`` starts the head's agent through
it, and the autoscaler starts and stops worker agents as demand comes and goes.

Provider settings (all optional)::

    provider:
      type: local
      state_dir: ~/.shoal/clusters   # node records, logs, the head's token and state
      head_port: 0                   # the head's gRPC port; 0 picks a free one
      object_store_memory: 512MiB    # each agent's object store
      temp_dir: /tmp/shoal           # agents' session directories (sockets: keep it short)
      terminate_grace_s: 5           # SIGTERM, then SIGKILL after this long
      exit_with_pid: 1234            # tests: every process of the cluster exits with this one
      # Run something else than the built-in node agent (placeholders filled per node:
      # {node_id} {node_type} {cluster_name} {resources} (JSON) {num_cpus} {num_gpus}
      # {head_address} {token_path} {head_ready_file} {storage_dir}):
      command: ["my-agent", "--address", "{head_address}", "--resources", "{resources}"]

Without ``command``, a node runs ``python -m shoal._cluster.agent`` with its
node type's resources: the head with ``--head`` (its token written 0600 to
``<state_dir>/<cluster>/token``, its address to ``head.json`` there), workers
with ``--address`` of that head. A node type's ``node_config`` may set
``command`` (overriding the provider's) and ``env`` (extra environment
variables). Each process also gets ``SHOAL_AUTOSCALER_NODE_ID`` and
``SHOAL_AUTOSCALER_NODE_TYPE``.

Nodes are recorded in ``<state_dir>/<cluster_name>/nodes.json`` (with the
process start time, so a reused pid is never mistaken for a node), which lets
another process, such as ``shoal down``, find and stop them. Each node runs
in its own session; terminating it signals the whole process group (SIGTERM,
then SIGKILL after ``terminate_grace_s``). The head reports each agent's pid,
which is how the autoscaler tells which provider node an agent is.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from shoal.autoscaler._errors import NodeLaunchError, NodeProviderError
from shoal.autoscaler.boot import agent_flags
from shoal.autoscaler.node_provider import (
    NODE_KIND_HEAD,
    TAG_NODE_KIND,
    AgentInfo,
    HeadEndpoint,
    NodeProvider,
    ProviderNode,
)
from shoal.config import parse_size

__all__ = ["LocalNodeProvider", "DEFAULT_STATE_DIR"]

DEFAULT_STATE_DIR = "~/.shoal/clusters"
_KNOWN = {
    "type",
    "command",
    "state_dir",
    "terminate_grace_s",
    "head_port",
    "object_store_memory",
    "temp_dir",
    "exit_with_pid",
}
#: Node processes started from this process, by node id, shared by every provider object
#: here so that whichever one terminates a node also reaps it (no zombies, no Popen
#: garbage-collected while its process runs).
_children: dict[str, subprocess.Popen] = {}
_children_lock = threading.Lock()


class LocalNodeProvider(NodeProvider):
    provider_name = "local"

    def __init__(self, provider_config: Mapping[str, Any], cluster_name: str) -> None:
        super().__init__(provider_config, cluster_name)
        base = Path(os.path.expanduser(str(provider_config.get("state_dir") or DEFAULT_STATE_DIR)))
        self.state_dir = base / cluster_name
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._state_file = self.state_dir / "nodes.json"
        self._lock_file = self.state_dir / "nodes.lock"
        self.terminate_grace_s = float(provider_config.get("terminate_grace_s", 5.0))
        self.token_path = self.state_dir / "token"
        self.head_ready_file = self.state_dir / "head.json"
        self.storage_dir = self.state_dir / "head"

    @classmethod
    def validate_config(
        cls, provider_config: Mapping[str, Any], node_types: Mapping[str, Mapping[str, Any]]
    ) -> list[tuple[str, str]]:
        errors: list[tuple[str, str]] = []
        for key in provider_config:
            if key not in _KNOWN:
                errors.append((f"provider.{key}", "unknown key for the 'local' provider"))
        cmd = provider_config.get("command")
        if cmd is not None and not _valid_command(cmd):
            errors.append(("provider.command", "must be a non-empty string or list of strings"))
        for name, nc in node_types.items():
            path = f"available_node_types.{name}.node_config"
            for key in nc:
                if key not in ("command", "env"):
                    errors.append((f"{path}.{key}", "unknown key for the 'local' provider (use command, env)"))
            if "command" in nc and not _valid_command(nc["command"]):
                errors.append((f"{path}.command", "must be a non-empty string or list of strings"))
            env = nc.get("env", {})
            if not isinstance(env, Mapping) or not all(isinstance(k, str) for k in env):
                errors.append((f"{path}.env", "must be a mapping of variable name to value"))
        grace = provider_config.get("terminate_grace_s", 5.0)
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
            errors.append(("provider.terminate_grace_s", "must be a number >= 0"))
        port = provider_config.get("head_port", 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            errors.append(("provider.head_port", "must be an int from 0 to 65535 (0: any free port)"))
        if "object_store_memory" in provider_config:
            try:
                if parse_size(provider_config["object_store_memory"]) <= 0:
                    raise ValueError
            except (TypeError, ValueError):
                errors.append(("provider.object_store_memory", "must be a size such as 512MiB or a byte count > 0"))
        temp = provider_config.get("temp_dir", "/tmp")
        if not isinstance(temp, str) or not temp:
            errors.append(("provider.temp_dir", "must be a non-empty path"))
        pid = provider_config.get("exit_with_pid", 1)
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
            errors.append(("provider.exit_with_pid", "must be a process id (int >= 1)"))
        return errors

    # -- state file ------------------------------------------------------------------

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The node records, locked against other processes for the duration of the block."""
        with open(self._lock_file, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    state = json.loads(self._state_file.read_text())
                except (FileNotFoundError, json.JSONDecodeError):
                    state = {}
                before = json.dumps(state, sort_keys=True)
                yield state
                if json.dumps(state, sort_keys=True) != before:
                    tmp = self._state_file.with_suffix(".tmp")
                    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
                    os.replace(tmp, self._state_file)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _alive(rec: Mapping[str, Any]) -> bool:
        try:
            p = psutil.Process(rec["pid"])
            return abs(p.create_time() - rec["create_time"]) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    @staticmethod
    def _reap() -> None:
        with _children_lock:
            for nid, proc in list(_children.items()):
                if proc.poll() is not None:
                    del _children[nid]

    # -- the built-in node agent -----------------------------------------------------

    def _live_head(self) -> tuple[str, dict[str, Any]] | None:
        """The cluster's head record, if its process is alive."""
        with self._state() as state:
            for nid, rec in state.items():
                if rec["tags"].get(TAG_NODE_KIND) == NODE_KIND_HEAD and self._alive(rec):
                    return nid, dict(rec)
        return None

    def _head_ready(self, head_pid: int | None = None) -> dict[str, Any] | None:
        """What the head agent wrote once serving; None until then (or if it is another process's)."""
        try:
            info = json.loads(self.head_ready_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if head_pid is not None and info.get("pid") != head_pid:
            return None
        return info

    def _head_address(self) -> str:
        head = self._live_head()
        info = self._head_ready(head[1]["pid"]) if head is not None else None
        if info is None:
            raise NodeLaunchError(
                f"local provider: cluster {self.cluster_name!r} has no running head to join (start it with `shoal up`)",
                "transient",
            )
        return str(info["address"])

    def _agent_argv(self, kind: str, resources: Mapping[str, float]) -> list[str]:
        cfg = self.provider_config
        argv = [sys.executable, "-m", "shoal._cluster.agent", "--token-path", str(self.token_path)]
        argv += agent_flags(resources)
        if not resources.get("object_store_memory") and "object_store_memory" in cfg:
            argv += ["--object-store-memory", str(int(parse_size(cfg["object_store_memory"])))]
        if cfg.get("temp_dir"):
            argv += ["--temp-dir", str(cfg["temp_dir"])]
        if cfg.get("exit_with_pid"):
            argv += ["--exit-with", str(int(cfg["exit_with_pid"]))]
        if kind == NODE_KIND_HEAD:
            argv += [
                "--head",
                "--port",
                str(int(cfg.get("head_port", 0))),
                "--storage",
                str(self.storage_dir),
                "--ready-file",
                str(self.head_ready_file),
            ]
        else:
            argv += ["--address", self._head_address()]
        return argv

    def head_endpoint(self, node_id: str, timeout_s: float) -> HeadEndpoint:
        """Wait until the head agent of node ``node_id`` serves (it writes ``head.json``)."""
        deadline = time.monotonic() + timeout_s
        with self._state() as state:
            rec = dict(state.get(node_id) or {})
        if not rec:
            raise NodeProviderError(f"local provider: no node {node_id!r} in cluster {self.cluster_name!r}")
        log = Path(rec["log"])
        while True:
            info = self._head_ready(rec["pid"])
            if info is not None:
                return HeadEndpoint(str(info["address"]), str(info.get("token_path") or self.token_path), node_id)
            if not self._alive(rec):
                raise NodeProviderError(f"local provider: the head agent exited; its log ends:\n{_tail(log)}", "config")
            if time.monotonic() > deadline:
                raise NodeProviderError(
                    f"local provider: the head agent did not serve within {timeout_s:g}s; see {log}", "transient"
                )
            time.sleep(0.05)

    def agent_node_id(self, agent: AgentInfo, nodes: Sequence[ProviderNode]) -> str | None:
        # Every node is on this machine: the agent's pid tells them apart (a custom command
        # may wrap the agent, so a recorded process that is an ancestor of the agent counts too).
        listed = {n.node_id for n in nodes}
        with self._state() as state:
            by_pid = {rec["pid"]: nid for nid, rec in state.items() if nid in listed}
        if not agent.pid:
            return None
        if agent.pid in by_pid:
            return by_pid[agent.pid]
        try:
            ancestors = [p.pid for p in psutil.Process(agent.pid).parents()]
        except psutil.Error:
            return None
        for pid in ancestors:
            if pid in by_pid:
                return by_pid[pid]
        return None

    # -- NodeProvider ----------------------------------------------------------------

    def create_nodes(
        self,
        node_type: str,
        node_config: Mapping[str, Any],
        tags: Mapping[str, str],
        count: int,
        *,
        resources: Mapping[str, float] | None = None,
    ) -> list[str]:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        full = self._full_tags(node_type, tags)
        kind = full[TAG_NODE_KIND]
        template = node_config.get("command", self.provider_config.get("command"))
        if template is not None and not _valid_command(template):
            raise NodeLaunchError(f"local provider: the command to start a {node_type!r} node is not valid", "config")
        resources = dict(resources or {})
        if count and kind == NODE_KIND_HEAD:
            if count != 1 or self._live_head() is not None:
                raise NodeLaunchError(
                    f"local provider: cluster {self.cluster_name!r} has (or would get) two heads", "config"
                )
            # A new head writes a new ready file; the old one must not be mistaken for it.
            self.head_ready_file.unlink(missing_ok=True)
        ids: list[str] = []
        for _ in range(count):
            node_id = f"local-{uuid.uuid4().hex[:12]}"
            if template is None:
                argv = self._agent_argv(kind, resources)
            else:
                argv = self._fill_template(template, node_id, node_type, resources)
            env = dict(os.environ)
            env.update({str(k): str(v) for k, v in node_config.get("env", {}).items()})
            env["SHOAL_AUTOSCALER_NODE_ID"] = node_id
            env["SHOAL_AUTOSCALER_NODE_TYPE"] = node_type
            log_path = self.state_dir / f"{node_id}.log"
            try:
                with open(log_path, "ab") as log:
                    proc = subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        start_new_session=True,
                        close_fds=True,
                    )
            except OSError as e:
                if ids:  # don't leave half a launch behind
                    self.terminate_nodes(ids)
                raise NodeLaunchError(
                    f"local provider: cannot start {argv[0]!r}: {e.strerror or e}", "config"
                ) from None
            try:
                create_time = psutil.Process(proc.pid).create_time()
            except psutil.NoSuchProcess:
                create_time = time.time()
            with _children_lock:
                _children[node_id] = proc
            with self._state() as state:
                state[node_id] = {
                    "pid": proc.pid,
                    "create_time": create_time,
                    "tags": full,
                    "log": str(log_path),
                }
            ids.append(node_id)
        return ids

    def _fill_template(self, template: Any, node_id: str, node_type: str, resources: Mapping[str, float]) -> list[str]:
        parts = shlex.split(template) if isinstance(template, str) else list(template)
        values: dict[str, Any] = {
            "node_id": node_id,
            "node_type": node_type,
            "cluster_name": self.cluster_name,
            "resources": json.dumps(resources, sort_keys=True),
            "num_cpus": resources.get("CPU", 0),
            "num_gpus": resources.get("GPU", 0),
            "token_path": str(self.token_path),
            "head_ready_file": str(self.head_ready_file),
            "storage_dir": str(self.storage_dir),
        }
        if any("{head_address}" in p for p in parts):  # only a joining node needs a head
            values["head_address"] = self._head_address()
        else:
            values["head_address"] = None
        return [_fill(part, values) for part in parts]

    def non_terminated_nodes(self, tag_filters: Mapping[str, str] | None = None) -> list[ProviderNode]:
        self._reap()
        out = []
        with self._state() as state:
            for nid in list(state):
                rec = state[nid]
                if not self._alive(rec):
                    del state[nid]  # exited on its own
                    continue
                if self._matches(rec["tags"], tag_filters):
                    out.append(ProviderNode(nid, dict(rec["tags"]), internal_ip="127.0.0.1"))
        return out

    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        with self._state() as state:
            if node_id not in state:
                raise NodeLaunchError(f"local provider: no node {node_id!r}", "config")
            state[node_id]["tags"].update({str(k): str(v) for k, v in tags.items()})

    def terminate_nodes(self, node_ids: Sequence[str]) -> None:
        with self._state() as state:
            recs = {nid: state.pop(nid) for nid in node_ids if nid in state}
        procs: list[psutil.Process] = []
        for rec in recs.values():
            if not self._alive(rec):
                continue
            try:
                os.killpg(rec["pid"], signal.SIGTERM)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass
            with contextlib.suppress(psutil.NoSuchProcess):
                procs.append(psutil.Process(rec["pid"]))
        _, still = psutil.wait_procs(procs, timeout=self.terminate_grace_s)
        for p in still:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
        psutil.wait_procs(still, timeout=5)
        for nid in node_ids:
            with _children_lock:
                proc = _children.pop(nid, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        if any(rec["tags"].get(TAG_NODE_KIND) == NODE_KIND_HEAD for rec in recs.values()):
            # The head's address, state and token die with it: a later `shoal up` starts afresh
            # (a new token, so one copied off for the old cluster opens nothing).
            self.head_ready_file.unlink(missing_ok=True)
            self.token_path.unlink(missing_ok=True)
            shutil.rmtree(self.storage_dir, ignore_errors=True)

    def close(self) -> None:
        self._reap()


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def _fill(part: str, values: Mapping[str, Any]) -> str:
    """Replace ``{name}`` placeholders; other braces (JSON, Python code) stay as they are."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise NodeLaunchError(
                f"local provider: unknown placeholder {{{name}}} in command (known: {', '.join(sorted(values))})",
                "config",
            )
        return str(values[name])

    return _PLACEHOLDER.sub(sub, part)


def _valid_command(cmd: Any) -> bool:
    if isinstance(cmd, str):
        return bool(cmd.strip())
    return isinstance(cmd, list) and bool(cmd) and all(isinstance(p, str) for p in cmd)
