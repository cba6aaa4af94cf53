"""The autoscaler's section of ``shoal status`` (entry point group ``shoal.status``)."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["print_status", "format_published"]


def format_published(doc: dict[str, Any], now: float | None = None) -> str:
    """The text for a status document the autoscaler published to the head."""
    from shoal.autoscaler._status import AutoscalerStatus

    status = AutoscalerStatus.from_dict(doc["status"])
    now = time.time() if now is None else now
    age = max(0.0, now - float(doc.get("published_at", now)))
    interval = float(doc.get("interval_s", 5.0))
    text = status.format()
    head, _, rest = text.partition("\n")
    line = f"{head}, reported {age:.0f}s ago by pid {doc.get('pid', '?')}"
    if age > max(30.0, 3 * interval):
        line += f"\n  (stale: the autoscaler reports every {interval:g}s; is it still running?)"
    return f"{line}\n{rest}" if rest else line


def print_status(args: Any, cluster_info: Any) -> None:
    """Print the autoscaler's last published status, if this cluster has an autoscaler."""
    from shoal.autoscaler._head import connect
    from shoal.autoscaler._redact import Redactor
    from shoal.autoscaler.cluster_state import read_published_status

    head = connect(getattr(args, "address", None), getattr(args, "token_path", None))
    try:
        doc = read_published_status(head)
        redact = Redactor([head.secret])
    finally:
        head.close()
    if doc is None:
        return  # a cluster without an autoscaler
    print(redact(format_published(dict(doc))))
