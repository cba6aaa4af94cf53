"""A key-value store in the driver's memory, for the single-process-owner backends."""

from __future__ import annotations

import threading


class MemoryKV:
    """The ``kv_*`` methods of :class:`~shoal.backend.base.Backend`, held in a dict of this process.

    Right for ``inline`` and for the ``local`` driver, whose runtime lives and
    dies with this process; workers of ``local`` do not see it.
    """

    def __init__(self) -> None:
        self._kv_lock = threading.Lock()
        self._kv: dict[tuple[str, str], bytes] = {}

    def kv_get(self, namespace: str, key: str) -> bytes | None:
        with self._kv_lock:
            return self._kv.get((namespace, key))

    def kv_put(self, namespace: str, key: str, value: bytes, overwrite: bool) -> bool:
        with self._kv_lock:
            if not overwrite and (namespace, key) in self._kv:
                return False
            self._kv[(namespace, key)] = bytes(value)
            return True

    def kv_delete(self, namespace: str, key: str) -> bool:
        with self._kv_lock:
            return self._kv.pop((namespace, key), None) is not None

    def kv_keys(self, namespace: str, prefix: str) -> list[str]:
        with self._kv_lock:
            return sorted(k for ns, k in self._kv if ns == namespace and k.startswith(prefix))
