"""The cluster's key-value store, for libraries that keep small state next to the runtime.

Mirrors Ray's ``ray.experimental.internal_kv``: keys and values are ``str``
or ``bytes`` (keys must be UTF-8), grouped by ``namespace``. On the
``cluster`` and ``cloud`` backends the store is the head's (shared by every
driver, durable across head restarts); on ``inline`` and ``local`` it lives
in the driver process.
"""

from __future__ import annotations

from shoal._session import current_backend
from shoal.backend.base import Backend

__all__ = [
    "_internal_kv_del",
    "_internal_kv_exists",
    "_internal_kv_get",
    "_internal_kv_initialized",
    "_internal_kv_list",
    "_internal_kv_put",
]

_DEFAULT_NAMESPACE = "default"


def _backend() -> Backend:
    b = current_backend()
    if b is None:
        raise RuntimeError("shoal is not initialized; call shoal.init() before using internal_kv")
    return b


def _key(key: str | bytes, what: str = "key") -> str:
    if isinstance(key, bytes):
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what} must be UTF-8, got {key!r}") from None
    if isinstance(key, str):
        return key
    raise TypeError(f"{what} must be str or bytes, got {type(key).__name__}")


def _namespace(namespace: str | bytes | None) -> str:
    return _DEFAULT_NAMESPACE if namespace is None else _key(namespace, "namespace")


def _internal_kv_initialized() -> bool:
    """Whether a runtime (and so a store) is there."""
    return current_backend() is not None


def _internal_kv_get(key: str | bytes, *, namespace: str | bytes | None = None) -> bytes | None:
    """The value under ``key`` as bytes, or None."""
    return _backend().kv_get(_namespace(namespace), _key(key))


def _internal_kv_exists(key: str | bytes, *, namespace: str | bytes | None = None) -> bool:
    """Whether ``key`` holds a value."""
    return _internal_kv_get(key, namespace=namespace) is not None


def _internal_kv_put(
    key: str | bytes, value: str | bytes, overwrite: bool = True, *, namespace: str | bytes | None = None
) -> bool:
    """Store ``value`` under ``key``; returns whether the key already existed (as Ray does).

    With ``overwrite=False`` an existing value is kept.
    """
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"value must be str or bytes, got {type(value).__name__}")
    b, ns, k = _backend(), _namespace(namespace), _key(key)
    if not overwrite:
        return not b.kv_put(ns, k, bytes(value), False)
    existed = b.kv_get(ns, k) is not None
    b.kv_put(ns, k, bytes(value), True)
    return existed


def _internal_kv_del(key: str | bytes, *, del_by_prefix: bool = False, namespace: str | bytes | None = None) -> int:
    """Remove ``key`` (or every key starting with it); returns how many went."""
    b, ns, k = _backend(), _namespace(namespace), _key(key)
    keys = b.kv_keys(ns, k) if del_by_prefix else [k]
    return sum(1 for one in keys if b.kv_delete(ns, one))


def _internal_kv_list(prefix: str | bytes, *, namespace: str | bytes | None = None) -> list[bytes]:
    """Keys that start with ``prefix``, as bytes."""
    return [k.encode() for k in _backend().kv_keys(_namespace(namespace), _key(prefix, "prefix"))]
