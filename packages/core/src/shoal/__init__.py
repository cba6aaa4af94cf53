"""shoal: distributed computing for Python with Ray's API.

``@shoal.remote`` turns functions into tasks and classes into actors;
``shoal.get``, ``shoal.put`` and ``shoal.wait`` move values through the
object store. Libraries live in subpackages (``shoal.data``, ``shoal.train``,
``shoal.tune``, ``shoal.serve``, ``shoal.rl``, ``shoal.autoscaler``), each
installed by its own distribution.
"""

# Other shoal distributions install subpackages into this namespace from
# other sys.path entries; extend_path must come first.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from typing import TYPE_CHECKING, Any

from shoal._version import __version__

if TYPE_CHECKING:
    from shoal import exceptions, util
    from shoal._api import (
        available_resources,
        cancel,
        cluster_resources,
        get,
        get_actor,
        get_gpu_ids,
        kill,
        nodes,
        put,
        remote,
        wait,
    )
    from shoal._session import init, is_initialized, shutdown
    from shoal.actor import ActorClass, ActorHandle, method
    from shoal.object_ref import ObjectRef, ObjectRefGenerator
    from shoal.remote_function import RemoteFunction
    from shoal.runtime_context import get_runtime_context

__all__ = [
    "ActorClass",
    "ActorHandle",
    "ObjectRef",
    "ObjectRefGenerator",
    "RemoteFunction",
    "__version__",
    "available_resources",
    "cancel",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "util",
    "wait",
]

# Loaded on first access so that `import shoal` stays cheap and side-effect free.
_LAZY = {
    "init": "shoal._session",
    "shutdown": "shoal._session",
    "is_initialized": "shoal._session",
    "remote": "shoal._api",
    "get": "shoal._api",
    "put": "shoal._api",
    "wait": "shoal._api",
    "cancel": "shoal._api",
    "kill": "shoal._api",
    "get_actor": "shoal._api",
    "get_gpu_ids": "shoal._api",
    "cluster_resources": "shoal._api",
    "available_resources": "shoal._api",
    "nodes": "shoal._api",
    "method": "shoal.actor",
    "ActorClass": "shoal.actor",
    "ActorHandle": "shoal.actor",
    "ObjectRef": "shoal.object_ref",
    "ObjectRefGenerator": "shoal.object_ref",
    "RemoteFunction": "shoal.remote_function",
    "get_runtime_context": "shoal.runtime_context",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        if name in ("exceptions", "util", "config", "backend", "actor", "runtime_context", "testing"):
            import importlib

            return importlib.import_module(f"shoal.{name}")
        raise AttributeError(f"module 'shoal' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
