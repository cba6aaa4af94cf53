"""Boot scripts: how a cloud machine becomes a shoal node without SSH.

``shoal up`` on a cloud provider hands each machine a shell script that the
machine runs once at first boot (EC2 user data, a GCE ``startup-script``,
Azure custom data, a pod's command). The script runs the config's
``initialization_commands``, ``setup_commands`` and the head or worker setup
commands in that order, writes the cluster token 0600, and starts the node
agent: ``shoal start --head`` on the head, ``shoal start --address HEAD``
on a worker, with the node type's resources. ``head_start_commands`` /
``worker_start_commands`` replace that last step; they see the environment
variables ``BOOT_NODE_IP``, ``BOOT_NODE_TYPE``, ``BOOT_TOKEN_PATH``,
``BOOT_HEAD_PORT`` and, on workers, ``BOOT_HEAD_ADDRESS`` (not ``SHOAL_*``:
those are shoal's own settings, and shoal refuses unknown ones).

The machine's address defaults to the first one ``hostname -I`` prints; the
agent listens there (not on every interface). The script logs to
``$BOOT_LOG`` (default ``/var/log/shoal-boot.log``) and never echoes
the commands it runs, so the token stays out of the log.

The token travels in the script, so whoever can read a machine's user data
(``ec2:DescribeInstanceAttribute``, the GCE metadata server, ``kubectl get
pod -o yaml``) can read it: restrict those permissions as you would the token
file, and keep the cluster's ports closed to the outside (security groups,
firewall rules, network policies).
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping, Sequence

from shoal.autoscaler.config import ClusterConfig
from shoal.autoscaler.node_provider import NODE_KIND_HEAD

__all__ = ["DEFAULT_HEAD_PORT", "agent_flags", "boot_script"]

DEFAULT_HEAD_PORT = 6380
#: Where the token is written on the machine (relative to the user's home).
TOKEN_FILE = ".shoal/cluster-token"
_FLAG_RESOURCES = ("CPU", "GPU", "object_store_memory")


def agent_flags(resources: Mapping[str, float]) -> list[str]:
    """The ``shoal start`` flags that give a node its type's resources."""
    cpus = float(resources.get("CPU", 0.0))
    flags = ["--num-cpus", str(math.floor(cpus)), "--num-gpus", str(math.floor(resources.get("GPU", 0.0)))]
    custom = {k: v for k, v in resources.items() if k not in _FLAG_RESOURCES}
    if cpus != math.floor(cpus):
        custom["CPU"] = cpus  # the flag takes whole CPUs; the JSON carries the exact amount
    if custom:
        flags += ["--resources", json.dumps(custom, sort_keys=True)]
    if resources.get("object_store_memory"):
        flags += ["--object-store-memory", str(int(resources["object_store_memory"]))]
    return flags


def _section(title: str, commands: Sequence[str]) -> list[str]:
    if not commands:
        return []
    return [f"# {title}", *commands]


def boot_script(
    config: ClusterConfig,
    node_type: str,
    kind: str,
    token: str,
    *,
    head_port: int = DEFAULT_HEAD_PORT,
    head_address: str | None = None,
    foreground: bool = False,
) -> str:
    """The first-boot script for one node of ``config``.

    ``kind`` is ``head`` or ``worker``; a worker needs ``head_address``
    (``HOST:PORT`` as the workers reach the head). With ``foreground`` the
    agent replaces the script's process (containers, whose main process must
    not exit) instead of running in the background.
    """
    is_head = kind == NODE_KIND_HEAD
    if not is_head and not head_address:
        raise ValueError("a worker's boot script needs the head's address")
    if not token or any(c in token for c in "'\n"):
        raise ValueError("the cluster token must be a non-empty single-line string without quotes")
    spec = config.available_node_types[node_type]
    if is_head:
        setup = config.head_setup_commands
    else:
        setup = spec.worker_setup_commands if spec.worker_setup_commands is not None else config.worker_setup_commands
    lines = [
        "#!/bin/bash",
        f"# shoal: first boot of a {kind} node ({node_type}) of cluster {config.cluster_name}, written by `shoal up`.",
        "set -euo pipefail",  # never -x: the token below must not reach the log
        'export HOME="${HOME:-/root}"',
    ]
    if not foreground:  # a container's output is its log already
        lines += ['BOOT_LOG="${BOOT_LOG:-/var/log/shoal-boot.log}"', 'exec >>"$BOOT_LOG" 2>&1']
    lines += [
        'echo "shoal boot: started $(date -u +%FT%TZ)"',
        'export BOOT_NODE_IP="${BOOT_NODE_IP:-$(hostname -I | cut -d" " -f1)}"',
        f"export BOOT_NODE_TYPE={shlex.quote(node_type)}",
        f"export BOOT_HEAD_PORT={int(head_port)}",
        f'export BOOT_TOKEN_PATH="$HOME/{TOKEN_FILE}"',
    ]
    if not is_head:
        lines.append(f"export BOOT_HEAD_ADDRESS={shlex.quote(str(head_address))}")
    lines += _section("initialization_commands", config.initialization_commands)
    lines += _section("setup_commands", config.setup_commands)
    lines += _section("head_setup_commands" if is_head else "worker_setup_commands", setup)
    lines += [
        "# the cluster token, readable by this user only",
        'mkdir -p -m 700 "$(dirname "$BOOT_TOKEN_PATH")"',
        f"(umask 077 && printf '%s' '{token}' > \"$BOOT_TOKEN_PATH\")",
    ]
    custom = config.head_start_commands if is_head else config.worker_start_commands
    if custom:
        lines += _section("start commands", custom)
    else:
        where = ["--head", "--port", '"$BOOT_HEAD_PORT"'] if is_head else ["--address", '"$BOOT_HEAD_ADDRESS"']
        flags = [shlex.quote(f) for f in agent_flags(spec.resources)]
        common = ["--host", '"$BOOT_NODE_IP"', *where, "--token-path", '"$BOOT_TOKEN_PATH"', *flags]
        if foreground:
            lines.append(" ".join(['exec "${BOOT_PYTHON:-python3}" -m shoal._cluster.agent', *common]))
        else:
            lines.append(" ".join(["shoal start", *common]))
    lines.append('echo "shoal boot: done $(date -u +%FT%TZ)"')
    return "\n".join(lines) + "\n"
