"""The ``cloud`` backend: a ``cluster`` whose nodes the autoscaler launches and removes.

::

    shoal.init(backend="cloud", cluster_config="cluster.yaml")  # up if needed, then connect
    ...
    shoal.shutdown()   # disconnects; the cluster keeps running (`shoal down cluster.yaml` ends it)

Connecting brings the cluster up first when its head or its autoscaler is not
running (as ``shoal up`` does), then attaches like ``shoal.init(address=...)``
and routes :func:`~shoal.autoscaler.request_resources` to the cluster's head.

``shoal.init(backend="cloud", address=...)`` connects to a cluster that is
already up.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import shoal
from shoal.autoscaler._machine import AutoscalerSettings
from shoal.backend.cluster import ClusterBackend
from shoal.config import Config
from shoal.exceptions import ConfigError

__all__ = ["CloudBackend", "init"]

logger = logging.getLogger("shoal.autoscaler")


def init(
    cluster_config: str | os.PathLike[str],
    *,
    autoscaler_interval_s: float = 5.0,
    autoscaler_settings: AutoscalerSettings | None = None,
    **init_kwargs: Any,
) -> dict[str, Any]:
    """Same as ``shoal.init(backend="cloud", cluster_config=...)``.

    ``autoscaler_interval_s`` and ``autoscaler_settings`` apply when the
    autoscaler has to be started. Other keywords go to :func:`shoal.init`
    (``namespace``, ``runtime_env``, ``ignore_reinit_error``...). Returns
    what :func:`shoal.init` returns.
    """
    if init_kwargs.get("backend", "cloud") != "cloud":
        raise ValueError(f"backend must be 'cloud' here, got {init_kwargs['backend']!r}")
    init_kwargs.pop("backend", None)
    return shoal.init(
        backend="cloud",
        cluster_config=cluster_config,
        autoscaler_interval_s=autoscaler_interval_s,
        autoscaler_settings=autoscaler_settings,
        **init_kwargs,
    )


class CloudBackend(ClusterBackend):
    """The ``cluster`` backend on a cluster that ``shoal up`` (or :func:`init`) brought up."""

    name = "cloud"
    init_kwargs = frozenset({"cluster_config", "autoscaler_interval_s", "autoscaler_settings"})

    def __init__(
        self,
        config: Config,
        *,
        cluster_config: str | os.PathLike[str] | None = None,
        autoscaler_interval_s: float = 5.0,
        autoscaler_settings: AutoscalerSettings | None = None,
    ) -> None:
        from shoal.autoscaler._head import connect
        from shoal.autoscaler.cluster_state import HeadRequestChannel
        from shoal.autoscaler.config import load_cluster_config
        from shoal.autoscaler.launcher import running_cluster, up
        from shoal.autoscaler.sdk import set_resource_request_channel

        if cluster_config is not None:
            if not isinstance(cluster_config, (str, os.PathLike)):
                raise TypeError(f"cluster_config must be a path, got {type(cluster_config).__name__}")
            cluster = load_cluster_config(os.fspath(cluster_config))
            endpoint = running_cluster(cluster)
            if endpoint is None:
                endpoint = up(
                    cluster, interval_s=float(autoscaler_interval_s), settings=autoscaler_settings, echo=logger.info
                )
            values = dict(config.values, address=endpoint.address, token_path=endpoint.token_path)
            config = Config(values, dict(config.sources, address="cluster config", token_path="cluster config"))
        elif config.address is None:
            raise ConfigError(
                "the 'cloud' backend needs a cluster: call shoal.init(backend='cloud', cluster_config='cluster.yaml'), "
                "or give address= of a cluster started with `shoal up`"
            )
        super().__init__(config)
        self._requests = connect(self.address, config.token_path)
        self._old_channel = set_resource_request_channel(HeadRequestChannel(self._requests))

    def shutdown(self) -> None:
        from shoal.autoscaler.sdk import set_resource_request_channel

        set_resource_request_channel(self._old_channel)
        self._requests.close()
        super().shutdown()
