"""The ``cloud`` backend: a ``cluster`` whose nodes the autoscaler launches and removes.

::

    import shoal.autoscaler.cloud

    shoal.autoscaler.cloud.init(cluster_config="cluster.yaml")  # up if needed, then connect
    ...
    shoal.shutdown()   # disconnects; the cluster keeps running (`shoal down cluster.yaml` ends it)

Connecting brings the cluster up first when its head or its autoscaler is not
running (as ``shoal up`` does), then attaches like ``shoal.init(address=...)``
and routes :func:`~shoal.autoscaler.request_resources` to the cluster's head.

``shoal.init(backend="cloud", address=...)`` connects to a cluster that is
already up. ``shoal.init(backend="cloud", cluster_config=...)`` is the
intended spelling but needs shoal-core to pass backend-specific keywords
through ``shoal.init``; until then :func:`init` here takes the config.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import shoal
from shoal.autoscaler._machine import AutoscalerSettings
from shoal.backend.cluster import ClusterBackend
from shoal.config import Config
from shoal.exceptions import ConfigError

__all__ = ["CloudBackend", "init"]

logger = logging.getLogger("shoal.autoscaler")

_init_lock = threading.Lock()


@dataclass(frozen=True)
class _Request:
    cluster_config: str
    interval_s: float
    settings: AutoscalerSettings | None


# Set by init() for the backend that shoal.init() creates in the same call.
_request: _Request | None = None


def init(
    cluster_config: str | os.PathLike[str],
    *,
    autoscaler_interval_s: float = 5.0,
    autoscaler_settings: AutoscalerSettings | None = None,
    **init_kwargs: Any,
) -> dict[str, Any]:
    """Bring the cluster of ``cluster_config`` up if it is not running, and connect to it.

    ``autoscaler_interval_s`` and ``autoscaler_settings`` apply when the
    autoscaler has to be started. Other keywords go to :func:`shoal.init`
    (``namespace``, ``runtime_env``, ``ignore_reinit_error``...). Returns
    what :func:`shoal.init` returns.
    """
    global _request
    if not isinstance(cluster_config, (str, os.PathLike)):
        raise TypeError(f"cluster_config must be a path, got {type(cluster_config).__name__}")
    if init_kwargs.get("backend", "cloud") != "cloud":
        raise ValueError(f"backend must be 'cloud' here, got {init_kwargs['backend']!r}")
    init_kwargs.pop("backend", None)
    with _init_lock:
        _request = _Request(os.fspath(cluster_config), float(autoscaler_interval_s), autoscaler_settings)
        try:
            return shoal.init(backend="cloud", **init_kwargs)
        finally:
            _request = None


class CloudBackend(ClusterBackend):
    """The ``cluster`` backend on a cluster that ``shoal up`` (or :func:`init`) brought up."""

    name = "cloud"

    def __init__(self, config: Config) -> None:
        from shoal.autoscaler._head import connect
        from shoal.autoscaler.cluster_state import HeadRequestChannel
        from shoal.autoscaler.config import load_cluster_config
        from shoal.autoscaler.launcher import running_cluster, up
        from shoal.autoscaler.sdk import set_resource_request_channel

        request = _request
        if request is not None:
            cluster = load_cluster_config(request.cluster_config)
            endpoint = running_cluster(cluster)
            if endpoint is None:
                endpoint = up(cluster, interval_s=request.interval_s, settings=request.settings, echo=logger.info)
            values = dict(config.values, address=endpoint.address, token_path=endpoint.token_path)
            config = Config(values, dict(config.sources, address="cluster config", token_path="cluster config"))
        elif config.address is None:
            raise ConfigError(
                "the 'cloud' backend needs a cluster: call shoal.autoscaler.cloud.init(cluster_config='cluster.yaml') "
                "(shoal.init() cannot pass cluster_config to a backend yet), or give address= of a cluster "
                "started with `shoal up`"
            )
        super().__init__(config)
        self._requests = connect(self.address, config.token_path)
        self._old_channel = set_resource_request_channel(HeadRequestChannel(self._requests))

    def shutdown(self) -> None:
        from shoal.autoscaler.sdk import set_resource_request_channel

        set_resource_request_channel(self._old_channel)
        self._requests.close()
        super().shutdown()
