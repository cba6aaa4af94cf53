"""The node runtime's object table: values, reference counts, waiters, spilling.

An object is freed when its count reaches zero and no zero-copy view of it
is mapped anywhere. The count is the sum of: one per process holding at
least one ObjectRef to it, one per pending task that takes it as an
argument, and one per stored value that contains a ref to it.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from typing import Any

from shoal._runtime import protocol as P
from shoal._runtime.store import Allocation, SharedMemoryStore, write_into
from shoal.exceptions import ObjectStoreFullError

__all__ = ["SPILLED", "Obj", "ObjectTable"]

SPILLED = 3  # payload kind, internal to the runtime: (SPILLED, file, size, data_len, spans)
REMOTE = 4  # payload kind: (REMOTE, node_id): the value lives on another node, which we hold a ref on


class Obj:
    """One object: its payload once ready (None while pending) and who keeps it alive."""

    __slots__ = ("alloc", "contained", "count", "payload", "pins", "task_id", "waiters")

    def __init__(self, count: int, task_id: bytes | None = None) -> None:
        self.payload: tuple[Any, ...] | None = None
        self.count = count
        self.pins = 0
        self.waiters: list[Callable[[], None]] | None = None
        self.contained: list[bytes] | None = None
        self.alloc: Allocation | None = None
        self.task_id = task_id  # the task that produces it (lineage, cancel)


class ObjectTable:
    """Objects of one node runtime; the caller holds the runtime lock."""

    def __init__(self, store: SharedMemoryStore, spill_dir: str) -> None:
        self.store = store
        # Called when an entry standing for a remote object is freed: (object_id, node_id).
        self.release_remote: Callable[[bytes, str], None] | None = None
        self.spill_dir = spill_dir
        self.objects: dict[bytes, Obj] = {}
        # Spill candidates in the order they were stored (oldest first).
        self._spillable: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self.spilled_bytes = 0
        self.spill_count = 0
        self.restore_count = 0

    # -- lifecycle ----------------------------------------------------------

    def create(self, object_id: bytes, count: int, task_id: bytes | None = None) -> Obj:
        obj = self.objects.get(object_id)
        if obj is None:
            obj = self.objects[object_id] = Obj(count, task_id)
        else:
            obj.count += count
        return obj

    def set_ready(self, object_id: bytes, payload: tuple[Any, ...], contained: list[bytes] | None) -> None:
        """Store a value (or error) and wake its waiters; a value nobody holds is freed at once."""
        obj = self.objects.get(object_id)
        if obj is None:
            # Nobody holds it any more (e.g. the caller dropped the ref before the task
            # finished): release what the payload owns.
            self._release_payload(object_id, payload, None, contained)
            return
        if obj.payload is not None and obj.payload[0] != REMOTE:
            # A retry or a restored value racing a duplicate: keep the first.
            self._release_payload(object_id, payload, None, contained)
            return
        obj.payload = payload
        if contained:
            obj.contained = contained
            for cid in contained:
                self.incref(cid)
        if payload[0] == P.SHM:
            self._spillable[object_id] = None
        waiters = obj.waiters
        obj.waiters = None
        if waiters:
            for w in waiters:
                w()
        # A waiter may have dropped the last ref (and freed it) already.
        if obj.count <= 0 and obj.pins <= 0 and self.objects.get(object_id) is obj:
            self._free(object_id, obj)

    def set_remote(self, object_id: bytes, node_id: str) -> bool:
        """A pending object turned out to be kept on node ``node_id``, which holds it for us.

        Only waiters content with knowing where it is (``remote_ok``) are woken; the
        others stay, and the caller pulls a copy for them. False if it was not kept
        (nobody holds it, or it already has a value): the caller releases the remote copy.
        """
        obj = self.objects.get(object_id)
        if obj is None or obj.payload is not None:
            return False
        if obj.count <= 0 and obj.pins <= 0:
            self._free(object_id, obj)
            return False
        obj.payload = (REMOTE, node_id)
        if obj.waiters:
            content = [w for w in obj.waiters if getattr(w, "remote_ok", False)]
            obj.waiters = [w for w in obj.waiters if not getattr(w, "remote_ok", False)] or None
            for w in content:
                w()
        return True

    def attach_alloc(self, object_id: bytes, alloc: Allocation) -> None:
        obj = self.objects.get(object_id)
        if obj is not None and obj.alloc is None:
            obj.alloc = alloc
        else:
            self.store.free(alloc)

    def incref(self, object_id: bytes, n: int = 1) -> None:
        obj = self.objects.get(object_id)
        if obj is None:
            # A hold on something already freed, or on an id this node never saw:
            # track it so a later value still finds its holder.
            obj = self.objects[object_id] = Obj(0)
        obj.count += n

    def decref(self, object_id: bytes, n: int = 1) -> None:
        obj = self.objects.get(object_id)
        if obj is None:
            return
        obj.count -= n
        if obj.count <= 0 and obj.pins <= 0 and obj.payload is not None:
            self._free(object_id, obj)
        elif obj.count <= 0 and obj.payload is None and not obj.waiters and obj.task_id is None:
            del self.objects[object_id]

    def pin(self, object_id: bytes) -> None:
        obj = self.objects.get(object_id)
        if obj is not None:
            obj.pins += 1
            self._spillable.pop(object_id, None)

    def unpin(self, object_id: bytes) -> None:
        obj = self.objects.get(object_id)
        if obj is None:
            return
        obj.pins -= 1
        if obj.pins <= 0:
            obj.pins = 0
            if obj.count <= 0 and obj.payload is not None:
                self._free(object_id, obj)
            elif obj.payload is not None and obj.payload[0] == P.SHM:
                self._spillable[object_id] = None

    def _free(self, object_id: bytes, obj: Obj) -> None:
        del self.objects[object_id]
        self._spillable.pop(object_id, None)
        self._release_payload(object_id, obj.payload, obj.alloc, obj.contained)

    def _release_payload(
        self,
        object_id: bytes,
        payload: tuple[Any, ...] | None,
        alloc: Allocation | None,
        contained: list[bytes] | None,
    ) -> None:
        if alloc is not None:
            self.store.free(alloc)
        if payload is not None and payload[0] == REMOTE and self.release_remote is not None:
            self.release_remote(object_id, payload[1])
        if payload is not None and payload[0] == SPILLED:
            self.spilled_bytes -= payload[2]
            try:
                os.unlink(payload[1])
            except OSError:
                pass
        if contained:
            for cid in contained:
                self.decref(cid)

    def add_waiter(self, object_id: bytes, waiter: Callable[[], None]) -> bool:
        """Register ``waiter`` for a pending (or remote) object; False if it is here (or unknown)."""
        obj = self.objects.get(object_id)
        if obj is None or (obj.payload is not None and obj.payload[0] != REMOTE):
            return False
        if obj.waiters is None:
            obj.waiters = [waiter]
        else:
            obj.waiters.append(waiter)
        return True

    def remove_waiter(self, object_id: bytes, waiter: Callable[[], None]) -> None:
        obj = self.objects.get(object_id)
        if obj is not None and obj.waiters:
            try:
                obj.waiters.remove(waiter)
            except ValueError:
                pass

    def is_ready(self, object_id: bytes) -> bool:
        """Is the value (or error) here on this node?"""
        obj = self.objects.get(object_id)
        return obj is not None and obj.payload is not None and obj.payload[0] != REMOTE

    def settled(self, object_id: bytes, fetch: bool = True) -> bool:
        """Does a wait for this object end: its value (or error) is here (or, without
        ``fetch``, on another node), or it is unknown here (freed, never existed)?"""
        obj = self.objects.get(object_id)
        if obj is None:
            return True
        return obj.payload is not None and (not fetch or obj.payload[0] != REMOTE)

    def is_remote(self, object_id: bytes) -> bool:
        obj = self.objects.get(object_id)
        return obj is not None and obj.payload is not None and obj.payload[0] == REMOTE

    # -- memory ---------------------------------------------------------------

    def allocate(self, nbytes: int, keep: bytes | None = None) -> Allocation:
        """Space in the store, spilling old unpinned objects when it is full."""
        alloc = self.store.allocate(nbytes)
        while alloc is None:
            if not self._spill_one(keep):
                raise ObjectStoreFullError(
                    f"the object store is full: {nbytes} bytes needed, {self.store.used} of "
                    f"{self.store.capacity} bytes in use by objects that cannot be spilled"
                )
            alloc = self.store.allocate(nbytes)
        return alloc

    def _spill_one(self, keep: bytes | None) -> bool:
        for object_id in list(self._spillable):
            if object_id == keep:
                continue
            obj = self.objects.get(object_id)
            del self._spillable[object_id]
            if obj is None or obj.pins > 0 or obj.alloc is None or obj.payload is None:
                continue
            if obj.payload[0] != P.SHM:
                continue
            self._spill(object_id, obj)
            return True
        return False

    def _spill(self, object_id: bytes, obj: Obj) -> None:
        assert obj.payload is not None and obj.alloc is not None
        _, path, offset, size, data_len, spans = obj.payload
        os.makedirs(self.spill_dir, exist_ok=True)
        target = os.path.join(self.spill_dir, object_id.hex())
        fd = os.open(path, os.O_RDONLY) if not path.startswith(f"/proc/{os.getpid()}/") else None
        src_fd = fd if fd is not None else obj.alloc.segment.fd
        try:
            with open(target, "wb") as out:
                remaining, pos = size, offset
                while remaining:
                    chunk = os.pread(src_fd, min(remaining, 64 << 20), pos)
                    if not chunk:
                        break
                    out.write(chunk)
                    pos += len(chunk)
                    remaining -= len(chunk)
        finally:
            if fd is not None:
                os.close(fd)
        self.store.free(obj.alloc)
        obj.alloc = None
        obj.payload = (SPILLED, target, size, data_len, spans)
        self.spilled_bytes += size
        self.spill_count += 1

    def restore(self, object_id: bytes) -> None:
        """Bring a spilled object back into shared memory."""
        obj = self.objects[object_id]
        assert obj.payload is not None and obj.payload[0] == SPILLED
        _, target, size, data_len, spans = obj.payload
        alloc = self.allocate(size, keep=object_id)
        with open(target, "rb") as f:
            data = f.read()
        write_into(alloc.path, alloc.offset, alloc.size, [data])
        os.unlink(target)
        self.spilled_bytes -= size
        obj.alloc = alloc
        obj.payload = (P.SHM, alloc.path, alloc.offset, alloc.size, data_len, spans)
        self._spillable[object_id] = None
        self.restore_count += 1

    def readable_payload(self, object_id: bytes) -> tuple[Any, ...]:
        """The payload to hand to a reader (restoring it if spilled); the caller pins SHM ones."""
        obj = self.objects[object_id]
        assert obj.payload is not None
        if obj.payload[0] == SPILLED:
            self.restore(object_id)
        return obj.payload
