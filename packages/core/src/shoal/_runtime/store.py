"""The shared-memory object store: memfd segments, an allocator, and zero-copy mapping.

Segments are anonymous memfds owned by the node runtime, so nothing can be
left behind in /dev/shm: the kernel frees them when the runtime's process
and every mapping are gone. Other processes reach a segment through
``/proc/<runtime pid>/fd/<fd>``.

Small and medium objects share 64 MiB chunks carved by a first-fit
allocator; large objects get a segment of their own. Freed memory is kept
and reused, because writing into pages that are already resident is several
times faster than faulting in fresh ones.
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["PAGE", "Allocation", "Segment", "SharedMemoryStore", "layout_size", "map_readonly", "write_into"]

PAGE = mmap.PAGESIZE
_DEDICATED_FRACTION = 4  # objects above chunk_size / 4 get their own segment


def _round_up(n: int, to: int = PAGE) -> int:
    return (n + to - 1) // to * to


@dataclass(eq=False)
class Segment:
    """One memfd: a shared chunk (with a free list) or a dedicated segment."""

    seg_id: int
    fd: int
    size: int
    path: str
    dedicated: bool
    free: list[list[int]] = field(default_factory=list)  # [offset, size], sorted by offset


@dataclass(eq=False)
class Allocation:
    segment: Segment
    offset: int
    size: int

    @property
    def path(self) -> str:
        return self.segment.path


class SharedMemoryStore:
    """Allocates space in memfd segments, within ``capacity`` bytes in all.

    Not thread-safe: the node runtime calls it under its own lock.
    """

    def __init__(self, capacity: int, chunk_size: int = 64 << 20, name: str = "shoal") -> None:
        self.capacity = capacity
        self.chunk_size = max(PAGE, min(_round_up(chunk_size), _round_up(max(capacity // 4, PAGE))))
        self._name = name
        self._pid = os.getpid()
        self._next_id = 0
        self._chunks: list[Segment] = []
        self._dedicated: dict[int, Segment] = {}
        self._spare: list[Segment] = []  # freed dedicated segments kept for reuse
        self.reserved = 0  # bytes of all segments, in use or spare
        self.used = 0  # bytes handed out

    # -- segments -----------------------------------------------------------

    def _new_segment(self, size: int, dedicated: bool) -> Segment:
        fd = os.memfd_create(f"{self._name}-{self._next_id}", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
        except OSError:
            os.close(fd)
            raise
        seg = Segment(self._next_id, fd, size, f"/proc/{self._pid}/fd/{fd}", dedicated)
        self._next_id += 1
        self.reserved += size
        return seg

    def _close_segment(self, seg: Segment) -> None:
        _forget_write_map(seg.fd)
        os.close(seg.fd)
        self.reserved -= seg.size

    def _drop_spares(self, need: int) -> None:
        self._spare.sort(key=lambda s: s.size)
        while self._spare and self.reserved + need > self.capacity:
            self._close_segment(self._spare.pop())

    # -- allocation ---------------------------------------------------------

    def allocate(self, size: int) -> Allocation | None:
        """Space for ``size`` bytes, or None if it does not fit (the caller may spill and retry)."""
        size = _round_up(max(size, 1))
        if size > self.chunk_size // _DEDICATED_FRACTION:
            return self._allocate_dedicated(size)
        for seg in self._chunks:
            alloc = self._take(seg, size)
            if alloc is not None:
                return alloc
        if self.reserved + self.chunk_size > self.capacity:
            self._drop_spares(self.chunk_size)
            if self.reserved + self.chunk_size > self.capacity:
                return None
        seg = self._new_segment(self.chunk_size, dedicated=False)
        seg.free.append([0, seg.size])
        self._chunks.append(seg)
        return self._take(seg, size)

    def _take(self, seg: Segment, size: int) -> Allocation | None:
        for i, (offset, free) in enumerate(seg.free):
            if free >= size:
                if free == size:
                    del seg.free[i]
                else:
                    seg.free[i][0] = offset + size
                    seg.free[i][1] = free - size
                self.used += size
                return Allocation(seg, offset, size)
        return None

    def _allocate_dedicated(self, size: int) -> Allocation | None:
        best = None
        for seg in self._spare:
            if size <= seg.size <= 2 * size and (best is None or seg.size < best.size):
                best = seg
        if best is not None:
            self._spare.remove(best)
        else:
            if self.reserved + size > self.capacity:
                self._drop_spares(size)
                if self.reserved + size > self.capacity:
                    return None
            best = self._new_segment(size, dedicated=True)
        self._dedicated[best.seg_id] = best
        self.used += best.size
        return Allocation(best, 0, best.size)

    def free(self, alloc: Allocation) -> None:
        """Give the space back (the memory stays reserved for reuse)."""
        seg = alloc.segment
        self.used -= alloc.size
        if seg.dedicated:
            del self._dedicated[seg.seg_id]
            self._spare.append(seg)
            return
        free = seg.free
        lo, hi = 0, len(free)
        while lo < hi:
            mid = (lo + hi) // 2
            if free[mid][0] < alloc.offset:
                lo = mid + 1
            else:
                hi = mid
        free.insert(lo, [alloc.offset, alloc.size])
        # Coalesce with the neighbours.
        if lo + 1 < len(free) and free[lo][0] + free[lo][1] == free[lo + 1][0]:
            free[lo][1] += free[lo + 1][1]
            del free[lo + 1]
        if lo > 0 and free[lo - 1][0] + free[lo - 1][1] == free[lo][0]:
            free[lo - 1][1] += free[lo][1]
            del free[lo]

    def close(self) -> None:
        for seg in [*self._chunks, *self._dedicated.values(), *self._spare]:
            _forget_write_map(seg.fd)
            try:
                os.close(seg.fd)
            except OSError:
                pass
        self._chunks.clear()
        self._dedicated.clear()
        self._spare.clear()
        self.reserved = self.used = 0


class PinnedMap(mmap.mmap):
    """A mapping that tells its owner when the last view of it is gone."""


def _open_fd(path: str) -> tuple[int, bool]:
    """An fd for a segment path: our own fd when the segment is ours, else a new one."""
    prefix = f"/proc/{os.getpid()}/fd/"
    if path.startswith(prefix):
        return int(path[len(prefix) :]), False
    return os.open(path, os.O_RDWR), True


def map_readonly(path: str, offset: int, size: int, on_release: Callable[[], None] | None) -> mmap.mmap:
    """Map ``size`` bytes at ``offset`` read-only; ``on_release`` runs when no view remains."""
    fd, owned = _open_fd(path)
    try:
        m = PinnedMap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=offset)
    finally:
        if owned:
            os.close(fd)
    if on_release is not None:
        weakref.finalize(m, on_release)
    return m


# Writable mappings of this process's own segments, kept while the segment lives: mapping a
# large segment again (and populating its page tables) for every write costs more than the copy.
_WRITE_MAPS: dict[int, mmap.mmap] = {}
_MAPS_LOCK = threading.Lock()


def own_write_view(fd: int, offset: int, size: int) -> memoryview:
    """A writable view of ``size`` bytes at ``offset`` of one of this process's own segments."""
    with _MAPS_LOCK:
        m = _WRITE_MAPS.get(fd)
        if m is None:
            total = os.fstat(fd).st_size
            m = _WRITE_MAPS[fd] = mmap.mmap(fd, total, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
    return memoryview(m)[offset : offset + size]


def _forget_write_map(fd: int) -> None:
    with _MAPS_LOCK:
        m = _WRITE_MAPS.pop(fd, None)
    if m is not None:
        try:
            m.close()
        except BufferError:
            pass  # a writer still holds a view; the mapping goes with it


def write_into(path: str, offset: int, size: int, pieces: list[memoryview | bytes]) -> list[int]:
    """Copy ``pieces`` one after another (64-byte aligned) into the region; returns their offsets."""
    fd, owned = _open_fd(path)
    if not owned:
        view = own_write_view(fd, offset, size)
        try:
            return _copy_pieces(view, pieces)
        finally:
            view.release()
    try:
        m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, offset=offset)
    finally:
        os.close(fd)
    try:
        view = memoryview(m)
        try:
            return _copy_pieces(view, pieces)
        finally:
            view.release()
    finally:
        m.close()


def _copy_pieces(view: memoryview, pieces: list[memoryview | bytes]) -> list[int]:
    pos = 0
    offsets = []
    for piece in pieces:
        mv = piece if isinstance(piece, memoryview) else memoryview(piece)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        n = mv.nbytes
        view[pos : pos + n] = mv
        offsets.append(pos)
        pos = (pos + n + 63) // 64 * 64
    return offsets


def layout_size(sizes: list[int]) -> int:
    """Bytes needed by :func:`write_into` for pieces of these sizes."""
    pos = 0
    for n in sizes:
        pos = (pos + n + 63) // 64 * 64
    return max(pos, 1)
