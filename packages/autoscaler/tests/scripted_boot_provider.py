"""A node provider whose "machines" run their boot scripts on this machine (tests only).

It stands in for a cloud: ``create_nodes`` returns at once and each node
boots in the background by running the boot script that ``shoal up`` or the
autoscaler gave it, with its own ``$HOME`` (so ``shoal start`` records its
agent there) and ``BOOT_NODE_IP=127.0.0.1``. Terminating a node runs
``shoal stop`` in that home. Nodes are recorded in a JSON file so that the
autoscaler process and the test see the same machines.

Provider settings: ``state_dir`` (required) and the boot settings
(``head_port``...).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from shoal.autoscaler.node_provider import AgentInfo, NodeProvider, ProviderNode

_booting: dict[str, subprocess.Popen] = {}


def node_env(home: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "HOME": str(home),
        "BOOT_NODE_IP": "127.0.0.1",
        "BOOT_LOG": str(home / "boot.log"),
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "BOOT_PYTHON": sys.executable,
    }


class ScriptedBootProvider(NodeProvider):
    provider_name = "scripted"

    def __init__(self, provider_config: Mapping[str, Any], cluster_name: str) -> None:
        super().__init__(provider_config, cluster_name)
        self.root = Path(provider_config["state_dir"]) / cluster_name / "machines"
        self.root.mkdir(parents=True, exist_ok=True)
        self.scripts: list[str] = []

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        with open(self.root / "lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.root / "nodes.json"
            state = json.loads(path.read_text()) if path.exists() else {}
            yield state
            path.write_text(json.dumps(state))

    def with_boot_script(self, node_config: Mapping[str, Any], script: str) -> dict[str, Any]:
        return {**node_config, "boot_script": script}

    def create_nodes(self, node_type, node_config, tags, count, *, resources=None) -> list[str]:
        ids = []
        for _ in range(count):
            node_id = f"vm-{uuid.uuid4().hex[:8]}"
            home = self.root / node_id
            home.mkdir()
            script = node_config.get("boot_script")
            if script:
                (home / "user-data").write_text(script)
                _booting[node_id] = subprocess.Popen(
                    ["bash", str(home / "user-data")],
                    env=node_env(home),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            with self._state() as state:
                state[node_id] = {"tags": self._full_tags(node_type, tags), "home": str(home)}
            ids.append(node_id)
        return ids

    def non_terminated_nodes(self, tag_filters=None) -> list[ProviderNode]:
        with self._state() as state:
            return [
                ProviderNode(nid, rec["tags"], internal_ip="127.0.0.1")
                for nid, rec in state.items()
                if self._matches(rec["tags"], tag_filters)
            ]

    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        with self._state() as state:
            state[node_id]["tags"].update(tags)

    def terminate_nodes(self, node_ids: Sequence[str]) -> None:
        for node_id in node_ids:
            with self._state() as state:
                rec = state.pop(node_id, None)
            if rec is None:
                continue
            boot = _booting.pop(node_id, None)
            if boot is not None:
                boot.wait(timeout=60)  # `shoal start` returns once its agent is up
            subprocess.run(
                [str(Path(sys.executable).parent / "shoal"), "stop", "--grace", "5"],
                env=node_env(Path(rec["home"])),
                stdout=subprocess.DEVNULL,
                check=True,
                timeout=60,
            )

    def agent_node_id(self, agent: AgentInfo, nodes: Sequence[ProviderNode]) -> str | None:
        """Every machine here is 127.0.0.1: tell them apart by the agent pid `shoal start` recorded."""
        for node in nodes:
            record = self.root / node.node_id / ".shoal" / "processes.json"
            with contextlib.suppress(FileNotFoundError, ValueError):
                if any(r.get("pid") == agent.pid for r in json.loads(record.read_text())):
                    return node.node_id
        return None
