"""The ``local`` provider: each node is a local process running a node agent.

Provider settings::

    provider:
      type: local
      # The node agent to run; placeholders are filled per node:
      # {node_id} {node_type} {cluster_name} {resources} (JSON) {num_cpus} {num_gpus}
      command: ["shoal", "start", "--address", "127.0.0.1:6380", "--resources", "{resources}"]
      state_dir: ~/.shoal/clusters   # optional; where node records and logs live

A node type's ``node_config`` may set ``command`` (overriding the provider's)
and ``env`` (extra environment variables). Each process also gets
``SHOAL_AUTOSCALER_NODE_ID`` and ``SHOAL_AUTOSCALER_NODE_TYPE`` so that its
node agent can report which provider node it is.

Nodes are recorded in ``<state_dir>/<cluster_name>/nodes.json`` (with the
process start time, so a reused pid is never mistaken for a node), which lets
another process, such as ``shoal down``, find and stop them. Each node runs
in its own session; terminating it signals the whole process group (SIGTERM,
then SIGKILL after ``terminate_grace_s``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from shoal.autoscaler._errors import NodeLaunchError
from shoal.autoscaler.node_provider import NodeProvider, ProviderNode

__all__ = ["LocalNodeProvider"]

_KNOWN = {"type", "command", "state_dir", "terminate_grace_s"}


class LocalNodeProvider(NodeProvider):
    provider_name = "local"

    def __init__(self, provider_config: Mapping[str, Any], cluster_name: str) -> None:
        super().__init__(provider_config, cluster_name)
        base = Path(os.path.expanduser(str(provider_config.get("state_dir") or "~/.shoal/clusters")))
        self.state_dir = base / cluster_name
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._state_file = self.state_dir / "nodes.json"
        self._lock_file = self.state_dir / "nodes.lock"
        self.terminate_grace_s = float(provider_config.get("terminate_grace_s", 5.0))
        #: Children started by this object, so they can be reaped (no zombies).
        self._children: dict[str, subprocess.Popen] = {}

    @classmethod
    def validate_config(cls, provider_config, node_types):
        errors: list[tuple[str, str]] = []
        for key in provider_config:
            if key not in _KNOWN:
                errors.append((f"provider.{key}", "unknown key for the 'local' provider"))
        cmd = provider_config.get("command")
        has_type_cmds = node_types and all("command" in nc for nc in node_types.values())
        if cmd is None and not has_type_cmds:
            errors.append(("provider.command", "is required by the 'local' provider (the node agent to run)"))
        elif cmd is not None and not _valid_command(cmd):
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

    def _reap(self) -> None:
        for nid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[nid]

    # -- NodeProvider ----------------------------------------------------------------

    def create_nodes(self, node_type, node_config, tags, count, *, resources=None) -> list[str]:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        full = self._full_tags(node_type, tags)
        template = node_config.get("command", self.provider_config.get("command"))
        if not _valid_command(template):
            raise NodeLaunchError(f"local provider: no command to start a {node_type!r} node", "config")
        argv_template = shlex.split(template) if isinstance(template, str) else list(template)
        resources = dict(resources or {})
        ids: list[str] = []
        for _ in range(count):
            node_id = f"local-{uuid.uuid4().hex[:12]}"
            values = {
                "node_id": node_id,
                "node_type": node_type,
                "cluster_name": self.cluster_name,
                "resources": json.dumps(resources, sort_keys=True),
                "num_cpus": resources.get("CPU", 0),
                "num_gpus": resources.get("GPU", 0),
            }
            argv = [_fill(part, values) for part in argv_template]
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
            self._children[node_id] = proc
            with self._state() as state:
                state[node_id] = {
                    "pid": proc.pid,
                    "create_time": create_time,
                    "tags": full,
                    "log": str(log_path),
                }
            ids.append(node_id)
        return ids

    def non_terminated_nodes(self, tag_filters=None) -> list[ProviderNode]:
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
            proc = self._children.pop(nid, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)

    def close(self) -> None:
        self._reap()


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
