"""Serialization of task arguments, results and stored values.

cloudpickle with pickle protocol 5: large buffers (numpy arrays, Arrow
buffers, bytes-like objects that support out-of-band pickling) are kept out
of the pickle stream so they can live in shared memory and be read back as
zero-copy, read-only views. The ids of ObjectRefs found inside a value are
collected, because the runtime must keep those objects alive while the value
that holds them lives.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from shoal.actor import ActorHandle
from shoal.object_ref import ObjectRef

__all__ = ["Serialized", "deserialize", "dumps_small", "serialize", "serialize_call_args"]


@dataclass(slots=True)
class Serialized:
    """A pickled value: the stream, its out-of-band buffers and the refs it contains."""

    data: bytes
    buffers: list[memoryview] = field(default_factory=list)
    refs: list[bytes] = field(default_factory=list)
    actors: list[bytes] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.data) + sum(b.nbytes for b in self.buffers)


def _out_of_band(buffers: list[memoryview]) -> Any:
    """The pickler's buffer callback: large buffers go to ``buffers``, small ones stay in-band.

    A closure over the list, not a bound method of the pickler: a pickler that referred to
    itself would live (with its memo and the views of every buffer it saw, that is the
    value's memory) until the cyclic garbage collector happened to run.
    """

    def keep(buf: pickle.PickleBuffer) -> bool:
        view = buf.raw()
        # Small buffers are cheaper in-band than as separate pieces.
        if view.nbytes < 4096:
            return True
        buffers.append(view)
        return False

    return keep


class _Pickler(cloudpickle.CloudPickler):
    def __init__(self, file: io.BytesIO, buffers: list[memoryview], refs: list[bytes], actors: list[bytes]) -> None:
        super().__init__(file, protocol=5, buffer_callback=_out_of_band(buffers))
        self._refs = refs
        self._actors = actors

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is ObjectRef:
            self._refs.append(obj._id)
            return (ObjectRef, (obj._id,))
        if type(obj) is ActorHandle:
            self._actors.append(obj._actor_id)
        return super().reducer_override(obj)


def serialize(value: Any) -> Serialized:
    """Pickle ``value``; raises whatever pickling raises."""
    buf = io.BytesIO()
    buffers: list[memoryview] = []
    refs: list[bytes] = []
    actors: list[bytes] = []
    _Pickler(buf, buffers, refs, actors).dump(value)
    return Serialized(buf.getvalue(), buffers, refs, actors)


def deserialize(data: bytes | memoryview, buffers: list[Any] | None = None) -> Any:
    """Unpickle a value; ``buffers`` are its out-of-band buffers (views stay zero-copy)."""
    return pickle.loads(data, buffers=buffers or ())


def dumps_small(value: Any) -> bytes:
    """Pickle a control-plane value with everything in-band."""
    return cloudpickle.dumps(value, protocol=5)


def _describe_failure(args: tuple[Any, ...], kwargs: dict[str, Any], fn_name: str, error: Exception) -> TypeError:
    for i, arg in enumerate(args):
        try:
            serialize(arg)
        except Exception as e:  # noqa: BLE001 - any pickling failure is reported the same way
            return TypeError(f"could not serialize argument {i} ({type(arg).__name__}) of {fn_name}: {e}")
    for key, arg in kwargs.items():
        try:
            serialize(arg)
        except Exception as e:  # noqa: BLE001
            return TypeError(f"could not serialize argument {key!r} ({type(arg).__name__}) of {fn_name}: {e}")
    return TypeError(f"could not serialize the arguments of {fn_name}: {error}")


def serialize_call_args(args: tuple[Any, ...], kwargs: dict[str, Any], fn_name: str) -> Serialized:
    """Pickle the arguments of a call; a TypeError names the argument that cannot be pickled."""
    try:
        return serialize((args, kwargs))
    except Exception as e:
        raise _describe_failure(args, kwargs, fn_name, e) from e


def _source_file(obj: Any) -> str | None:
    code = getattr(obj, "__code__", None)
    if code is not None:
        return str(code.co_filename)
    try:
        import inspect

        return inspect.getsourcefile(obj)
    except (TypeError, OSError):
        return None


def dumps_callable(obj: Any) -> bytes:
    """Pickle a function or class for workers, remembering the file it was defined in.

    cloudpickle renames the file of code it pickles by value to ``<dynamic-code>``;
    the worker puts the real name back so that tracebacks show the user's source.
    """
    return cloudpickle.dumps((obj, _source_file(obj)), protocol=5)


def _fix_code(code: Any, filename: str) -> Any:
    consts = tuple(_fix_code(c, filename) if hasattr(c, "co_filename") else c for c in code.co_consts)
    if code.co_filename == "<dynamic-code>":
        return code.replace(co_filename=filename, co_consts=consts)
    return code.replace(co_consts=consts)


def _fix_function(fn: Any, filename: str) -> None:
    code = getattr(fn, "__code__", None)
    if code is not None and hasattr(code, "co_filename"):
        try:
            fn.__code__ = _fix_code(code, filename)
        except (TypeError, ValueError, AttributeError):
            pass


def loads_callable(data: bytes) -> Any:
    """The function or class pickled by :func:`dumps_callable`."""
    obj, filename = cloudpickle.loads(data)
    if filename:
        if isinstance(obj, type):
            for value in vars(obj).values():
                target = getattr(value, "__func__", value)
                _fix_function(target, filename)
        else:
            _fix_function(obj, filename)
    return obj
