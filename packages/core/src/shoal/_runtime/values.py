"""Turning values into payloads (inline bytes or shared memory) and back.

Used the same way by the driver and by workers; only the allocator differs
(the driver allocates in-process, a worker asks its node runtime).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import cloudpickle

from shoal._runtime import protocol as P
from shoal._runtime.serialization import Serialized, deserialize, serialize, serialize_call_args
from shoal._runtime.store import layout_size, map_readonly, write_into
from shoal.object_ref import ObjectRef

__all__ = [
    "Allocator",
    "DepMarker",
    "ManyAllocator",
    "decode_payload",
    "encode_call",
    "encode_error",
    "encode_serialized",
    "encode_value",
    "encode_values",
    "payload_size",
]

#: ``allocate(nbytes) -> (path, offset, size)`` of a region of shared memory.
Allocator = Callable[[int], tuple[str, int, int]]
#: ``allocate_many([nbytes, ...]) -> [(path, offset, size), ...]``: all the regions, or an error.
ManyAllocator = Callable[[list[int]], list[tuple[str, int, int]]]


class DepMarker:
    """Stands for the i-th top-level ObjectRef argument of a call; the worker puts the value there."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> Any:
        return (DepMarker, (self.index,))


def encode_serialized(ser: Serialized, max_inline: int, allocate: Allocator) -> tuple[Any, ...]:
    """A payload for an already-serialized value."""
    if ser.size <= max_inline:
        return _inline(ser)
    return _write_shared(ser, allocate(_shared_size(ser)))


def _inline(ser: Serialized) -> tuple[Any, ...]:
    return (P.INLINE, ser.data, [bytes(b) for b in ser.buffers])


def _shared_size(ser: Serialized) -> int:
    return layout_size([len(ser.data), *(b.nbytes for b in ser.buffers)])


def _write_shared(ser: Serialized, region: tuple[str, int, int]) -> tuple[Any, ...]:
    path, offset, size = region
    offsets = write_into(path, offset, size, [ser.data, *ser.buffers])
    spans = [(o, b.nbytes) for o, b in zip(offsets[1:], ser.buffers, strict=True)]
    return (P.SHM, path, offset, size, len(ser.data), spans)


_SIMPLE = frozenset({int, float, str, bytes, bool, type(None)})


def encode_call(
    args: tuple[Any, ...], kwargs: dict[str, Any], fn_name: str, max_inline: int, allocate: Allocator
) -> tuple[tuple[Any, ...], list[bytes], list[bytes], list[bytes]]:
    """``(payload, dep_ids, contained_ids, actor_ids)`` for a call's arguments.

    Top-level ObjectRef arguments become :class:`DepMarker` placeholders: the
    runtime waits for them and the worker receives their values. Refs nested
    deeper stay refs (``contained_ids``), as in Ray.
    """
    if not kwargs and all(type(a) in _SIMPLE for a in args):
        # Plain scalars need neither cloudpickle nor a scan for refs.
        data = pickle.dumps((args, kwargs), protocol=5)
        if len(data) <= max_inline:
            return (P.INLINE, data, []), [], [], []
    deps: list[bytes] = []
    marked: list[Any] = []
    for a in args:
        if type(a) is ObjectRef:
            marked.append(DepMarker(len(deps)))
            deps.append(a._id)
        else:
            marked.append(a)
    marked_kwargs = kwargs
    if kwargs:
        marked_kwargs = {}
        for k, v in kwargs.items():
            if type(v) is ObjectRef:
                marked_kwargs[k] = DepMarker(len(deps))
                deps.append(v._id)
            else:
                marked_kwargs[k] = v
    ser = serialize_call_args(tuple(marked), marked_kwargs, fn_name)
    return encode_serialized(ser, max_inline, allocate), deps, ser.refs, ser.actors


def encode_value(value: Any, max_inline: int, allocate: Allocator) -> tuple[tuple[Any, ...], list[bytes]]:
    """``(payload, contained_ref_ids)`` for ``value``."""
    ser = serialize(value)
    return encode_serialized(ser, max_inline, allocate), ser.refs


def encode_values(
    values: list[Any], max_inline: int, allocate_many: ManyAllocator
) -> list[tuple[tuple[Any, ...], list[bytes]]]:
    """:func:`encode_value` of several values, with one request for all their shared memory."""
    sers = [serialize(v) for v in values]
    large = [ser for ser in sers if ser.size > max_inline]
    regions = iter(allocate_many([_shared_size(ser) for ser in large]) if large else ())
    return [(_write_shared(ser, next(regions)) if ser.size > max_inline else _inline(ser), ser.refs) for ser in sers]


def encode_error(error: BaseException) -> tuple[Any, ...]:
    try:
        return (P.ERROR, cloudpickle.dumps(error, protocol=5))
    except Exception:  # noqa: BLE001 - fall back to something that always pickles
        from shoal.exceptions import ShoalError

        return (P.ERROR, pickle.dumps(ShoalError(f"{type(error).__name__}: {error}"), protocol=5))


def payload_size(payload: tuple[Any, ...]) -> int:
    kind = payload[0]
    if kind == P.INLINE:
        return len(payload[1]) + sum(len(b) for b in payload[2])
    if kind == P.SHM:
        return int(payload[3])
    return len(payload[1])


def decode_payload(payload: tuple[Any, ...], on_release: Callable[[], None] | None = None) -> Any:
    """The value of a payload; an ERROR payload's exception is raised."""
    kind = payload[0]
    if kind == P.INLINE:
        data, buffers = payload[1], payload[2]
        return deserialize(data, buffers) if buffers else pickle.loads(data)
    if kind == P.SHM:
        _, path, offset, size, data_len, spans = payload
        m = map_readonly(path, offset, size, on_release)
        view = memoryview(m)
        try:
            buffers = [view[o : o + n] for o, n in spans]
            return deserialize(view[:data_len], buffers)
        finally:
            del buffers
            view.release()
    if kind == P.ERROR:
        raise pickle.loads(payload[1])
    raise ValueError(f"unknown payload kind {kind!r}")
