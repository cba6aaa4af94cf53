"""``request_resources``: ask the autoscaler to keep room for given shapes (Ray's API).

The request is a standing floor, replaced by the next call: the autoscaler
keeps enough nodes that the requested bundles would all fit on the cluster's
total resources (work already running counts towards them, so
``request_resources(num_cpus=100)`` with 45 busy CPUs does not add 145). It
bypasses ``upscaling_speed`` and protects nodes from the idle timeout.

The request travels through a :class:`~shoal.autoscaler.demand.ResourceRequestChannel`.
A runtime that has an autoscaler installs its channel with
:func:`set_resource_request_channel`: the ``cloud`` backend sends requests to
its cluster's head, where the autoscaler reads them. Without one, the request
goes to the runtime's key-value store (``shoal.experimental.internal_kv``),
which on a cluster is the head's, so a driver attached with plain
``shoal.init(address=...)`` reaches the autoscaler too. It is also kept in
this process, where an in-process autoscaler (the simulation, tests) reads it
with :func:`get_resource_requests`; as in Ray, on a runtime with no
autoscaler the request has no effect.
"""

from __future__ import annotations

import json
import logging
import numbers
import threading

import shoal
from shoal.autoscaler._resources import Shape
from shoal.autoscaler.demand import ResourceRequestChannel

__all__ = ["get_resource_requests", "request_resources", "set_resource_request_channel"]

logger = logging.getLogger("shoal.autoscaler")

_lock = threading.Lock()
_channel: ResourceRequestChannel | None = None
_last_request: list[Shape] = []


def set_resource_request_channel(channel: ResourceRequestChannel | None) -> ResourceRequestChannel | None:
    """Route :func:`request_resources` to ``channel`` (None: keep requests in process); returns the old one."""
    global _channel
    if channel is not None and not isinstance(channel, ResourceRequestChannel):
        raise TypeError(f"channel must have set_resource_requests(bundles), got {type(channel).__name__}")
    with _lock:
        old, _channel = _channel, channel
    return old


def get_resource_requests() -> list[Shape]:
    """The bundles of the last :func:`request_resources` call made in this process."""
    with _lock:
        return [dict(b) for b in _last_request]


def _check_bundles(bundles: object) -> list[Shape]:
    if not isinstance(bundles, list):
        raise TypeError(f"bundles must be a list of dicts, got {type(bundles).__name__}")
    out = []
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, dict):
            raise TypeError(f"bundles[{i}] must be a dict, got {type(bundle).__name__}")
        shape: Shape = {}
        for key, value in bundle.items():
            if not isinstance(key, str):
                raise TypeError(f"bundles[{i}]: resource names must be str, got {key!r}")
            # bool is an int subclass; {"CPU": True} must not mean one CPU.
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"bundles[{i}][{key!r}] must be a number (int or float), got {value!r}")
            if value < 0:
                raise ValueError(f"bundles[{i}][{key!r}] must be >= 0, got {value!r}")
            if value > 0:
                shape[key] = float(value)
        out.append(shape)
    return out


def request_resources(
    num_cpus: int | None = None,
    bundles: list[dict[str, float]] | None = None,
    bundle_label_selectors: list[dict[str, str]] | None = None,
) -> None:
    """Ask the autoscaler to scale so that the given resources fit, until the next call.

    Args:
        num_cpus: keep this many CPUs in the cluster (as that many 1-CPU bundles).
        bundles: keep room for each of these resource shapes, e.g.
            ``[{"GPU": 1, "CPU": 4}]``.
        bundle_label_selectors: not supported yet; passing any raises
            NotImplementedError rather than silently ignoring the labels.

    A call replaces the previous request; ``request_resources()`` with no
    arguments clears it. Raises RuntimeError if shoal is not initialized and
    no channel is installed, TypeError/ValueError for bad arguments.
    """
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int)):
        raise TypeError(f"num_cpus must be an int, got {type(num_cpus).__name__}")
    if num_cpus is not None and num_cpus < 0:
        raise ValueError(f"num_cpus must be >= 0, got {num_cpus}")
    shapes = _check_bundles(bundles) if bundles is not None else []
    if bundle_label_selectors is not None:
        raise NotImplementedError("bundle_label_selectors is not supported by shoal's autoscaler yet")
    to_request: list[Shape] = [{"CPU": 1.0} for _ in range(num_cpus or 0)] + shapes
    global _last_request
    with _lock:
        channel = _channel
        if channel is None and not shoal.is_initialized():
            raise RuntimeError("shoal is not initialized; call shoal.init() before request_resources()")
        _last_request = [dict(b) for b in to_request]
    if channel is not None:
        channel.set_resource_requests(to_request)
    elif shoal.is_initialized():
        _put_in_runtime_store(to_request)


def _put_in_runtime_store(bundles: list[Shape]) -> None:
    """Leave the request in the runtime's key-value store, where a cluster's autoscaler reads it."""
    from shoal.autoscaler._head import KEY_RESOURCE_REQUESTS, KV_NAMESPACE
    from shoal.experimental import internal_kv

    try:
        value = json.dumps([dict(b) for b in bundles], sort_keys=True)
        internal_kv._internal_kv_put(KEY_RESOURCE_REQUESTS, value, namespace=KV_NAMESPACE)
    except NotImplementedError:
        logger.debug("no key-value store in this runtime; keeping the resource request in process")
