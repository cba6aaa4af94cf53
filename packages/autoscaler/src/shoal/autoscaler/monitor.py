"""The autoscaler process that ``shoal up`` starts: ``python -m shoal.autoscaler.monitor STATE_DIR``.

It reads what ``up`` recorded in ``STATE_DIR`` (the cluster config, the
head's address and token file, the round period and settings), then every
round observes the provider and the head, lets the state machine decide,
carries the decisions out and publishes the autoscaler's status to the head
(where ``shoal status`` reads it). SIGTERM stops it after the round in
progress; the nodes stay (``shoal down`` terminates them). It also stops by
itself when the provider no longer lists the head node.

Everything it logs goes through a redacting formatter: provider secrets from
the config, the cluster token and credential-looking patterns are masked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal.autoscaler._redact import Redactor

if TYPE_CHECKING:
    from shoal.autoscaler.config import ClusterConfig
    from shoal.autoscaler.node_provider import NodeProvider

__all__ = ["main", "run_monitor"]

logger = logging.getLogger("shoal.autoscaler")


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _head_listed(provider: Any, head_node_id: str) -> bool:
    from shoal.autoscaler.node_provider import NODE_KIND_HEAD, TAG_NODE_KIND

    try:
        return head_node_id in {n.node_id for n in provider.non_terminated_nodes({TAG_NODE_KIND: NODE_KIND_HEAD})}
    except Exception:  # noqa: BLE001 - cannot tell: keep going
        return True


def with_worker_boot_scripts(
    config: ClusterConfig, provider: NodeProvider, token: str, boot: dict[str, Any]
) -> ClusterConfig:
    """``config`` whose worker node types start a node agent that joins the head at first boot."""
    from shoal.autoscaler.boot import boot_script
    from shoal.autoscaler.node_provider import NODE_KIND_WORKER

    types = {}
    for name, spec in config.available_node_types.items():
        script = boot_script(
            config,
            name,
            NODE_KIND_WORKER,
            token,
            head_address=str(boot["head_internal_address"]),
            foreground=bool(boot.get("foreground")),
        )
        types[name] = dataclasses.replace(spec, node_config=provider.with_boot_script(spec.node_config, script))
    return dataclasses.replace(config, available_node_types=types)


def run_monitor(state_dir: Path, stop: threading.Event) -> None:
    """Run autoscaler rounds for the cluster recorded in ``state_dir`` until ``stop`` is set."""
    from shoal.autoscaler._head import HeadConnection
    from shoal.autoscaler._machine import AutoscalerSettings
    from shoal.autoscaler._registry import create_node_provider
    from shoal.autoscaler._shell import AutoscalerShell
    from shoal.autoscaler.cluster_state import HeadClusterState
    from shoal.autoscaler.config import validate_cluster_config
    from shoal.autoscaler.launcher import CONFIG_FILE, LAUNCHER_FILE

    record = json.loads((state_dir / LAUNCHER_FILE).read_text())
    config = validate_cluster_config(json.loads((state_dir / CONFIG_FILE).read_text()), source=str(state_dir))
    settings = AutoscalerSettings(**record.get("settings", {}))
    interval = float(record.get("interval_s", 5.0))
    exit_with = config.provider.get("exit_with_pid")

    redactor = Redactor.from_config(config.provider, *(t.node_config for t in config.available_node_types.values()))
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_RedactingFormatter(redactor))
    head = HeadConnection(record["head_address"], record["token_path"])
    redactor.add(head.secret)
    provider = create_node_provider(config.provider, config.cluster_name)
    if record.get("boot"):
        config = with_worker_boot_scripts(config, provider, head.secret, record["boot"])
    cluster = HeadClusterState(head, provider)
    shell = AutoscalerShell(config, provider, cluster, settings=settings, redactor=redactor)
    logger.info(
        "autoscaler for cluster %r: head %s, provider %s, a round every %gs",
        config.cluster_name,
        record["head_address"],
        config.provider_type,
        interval,
    )
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                shell.step()
            except Exception:  # a bug in one round must not end autoscaling
                logger.exception("autoscaler round failed")
            try:
                cluster.publish_status(shell.status(), redactor, pid=os.getpid(), interval_s=interval)
            except Exception as e:  # noqa: BLE001 - the head may be restarting; publish next round
                logger.warning("cannot publish the autoscaler status: %s", e)
                # Unreachable: is the head node still there at all? (Asked only now: listings cost.)
                if not _head_listed(provider, record["head_node_id"]):
                    logger.warning(
                        "the head node %s is gone (no longer listed by the provider): stopping", record["head_node_id"]
                    )
                    break
            if exit_with is not None and not _pid_alive(int(exit_with)):
                logger.warning("process %s, which this cluster belongs to, is gone: stopping", exit_with)
                break
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    finally:
        shell.close(wait=True)
        provider.close()
        head.close()
        logger.info("autoscaler stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shoal.autoscaler.monitor", description=__doc__)
    parser.add_argument("state_dir", help="the cluster's state directory, written by `shoal up`")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        run_monitor(Path(args.state_dir), stop)
    except Exception:
        logger.exception("the autoscaler cannot run")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
