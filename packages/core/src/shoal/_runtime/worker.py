"""A worker process: runs the tasks and actor calls its node runtime sends.

The main thread reads the connection and runs plain tasks and the calls of
single-threaded actors. Threaded actors run calls on a thread pool and async
actors on an event loop thread; any thread waiting for a reply from the
runtime reads the connection itself when no one else is (leader/follower),
so a blocked task never deadlocks its own worker.

Run as ``python -m shoal._runtime.worker``; the runtime passes the
connection's file descriptor in ``SHOAL_WORKER_FD``.
"""

from __future__ import annotations

import _thread
import collections
import concurrent.futures
import contextvars
import ctypes
import inspect
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import cloudpickle

from shoal._runtime import protocol as P
from shoal._runtime.client import RuntimeClient
from shoal._runtime.errors import task_error
from shoal._runtime.serialization import loads_callable
from shoal._runtime.values import DepMarker, decode_payload, encode_error, encode_value, encode_values
from shoal.exceptions import AsyncioActorExit, TaskCancelledError

if TYPE_CHECKING:
    # Imported where used: only async actors need asyncio (~4 MB and 40 ms per worker).
    import asyncio

_FN_CACHE_MAX = 1024
_TRIM_AFTER_S = 0.02  # tasks longer than this give their freed heap back to the system
_IDLE_TRIM_S = 0.02  # so does a worker idle this long after tasks
_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def _glibc() -> Any:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
        except OSError:
            _libc = False
    return _libc


def _keep_freed_heap() -> None:
    """Let glibc reuse freed blocks of up to 32 MB instead of returning each to the system.

    By default an array of a few MB is mapped fresh and unmapped on free, so a worker
    running many short tasks page-faults its way through every output (measured: about
    600 faults per 4 MB block, a third of the task's time). What is kept goes back after
    any task longer than ``_TRIM_AFTER_S``, and when the worker idles (:func:`_give_memory_back`).
    """
    libc = _glibc()
    if libc:
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)


def _give_memory_back() -> None:
    """Return the freed heap (glibc) and freed Arrow memory to the system."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)
    # Arrow's allocator (mimalloc) likewise keeps freed pages until its next call, which an
    # idle worker does not make. Imported by the task, never by this module.
    pool = _arrow_pool()
    if pool is not None:
        pool.release_unused()


def _arrow_pool() -> Any:
    """Arrow's default memory pool if a task imported pyarrow (completely: another thread of
    the worker may be importing it right now), else None."""
    pyarrow = sys.modules.get("pyarrow")
    get_pool = getattr(pyarrow, "default_memory_pool", None)
    if get_pool is None:
        return None
    try:
        return get_pool()
    except Exception:  # noqa: BLE001 - memory housekeeping must never fail a worker
        return None


def _release_arrow_if_used() -> None:
    """After a short task: hand back what Arrow's allocator kept, if the task allocated there.

    mimalloc keeps freed pages for reuse: ~12 MB per worker through a groupby of short
    tasks. Tasks that allocate with numpy only (most maps) skip this.
    """
    global _arrow_allocs
    pool = _arrow_pool()
    if pool is None:
        return
    counter = getattr(pool, "num_allocations", None)
    if counter is None:
        return  # pyarrow < 16: released only after long tasks and when idle
    if counter() != _arrow_allocs:
        pool.release_unused()
        _arrow_allocs = counter()


_libc: Any = None
_arrow_allocs = -1


class TaskContext:
    """What a running task knows about itself (per thread, or per asyncio task)."""

    __slots__ = ("capture_pg", "gpu_ids", "name", "pg_id", "resources", "task_id")

    def __init__(
        self,
        task_id: bytes,
        name: str,
        resources: dict[str, float],
        gpu_ids: list[int],
        pg_id: bytes | None,
        capture_pg: bool,
    ) -> None:
        self.task_id = task_id
        self.name = name
        self.resources = resources
        self.gpu_ids = gpu_ids
        self.pg_id = pg_id
        self.capture_pg = capture_pg


_CONTEXT: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("shoal_task", default=None)


class Worker(RuntimeClient):
    """The executing side of a worker process."""

    def __init__(self, sock: socket.socket, spin_us: int) -> None:
        super().__init__(P.BlockingConnection(sock, spin_us))
        self.pid = os.getpid()
        self.functions: collections.OrderedDict[bytes, Any] = collections.OrderedDict()
        self.work: collections.deque[tuple[Any, ...]] = collections.deque()
        self.worked = False  # ran a task since it last gave memory back
        # Actor state.
        self.actor: Any = None
        self.actor_id: bytes | None = None
        self.actor_name: str | None = None
        self.actor_class: str | None = None
        self.actor_restarted = False
        self.actor_resources: dict[str, float] = {}
        self.actor_gpu_ids: list[int] = []
        self.mode = "task"  # task | sync | threaded | async
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.semaphore: asyncio.Semaphore | None = None
        self.running: dict[bytes, Any] = {}  # task_id -> thread ident or asyncio task
        self.cancelled: set[bytes] = set()
        self.recalled: list[bytes] = []  # queued tasks given back, not yet reported
        self.main_cancel = False
        self.interruptible = False  # the main thread is in user code (a cancel may interrupt it)
        self.retry_types: dict[bytes, tuple[type[BaseException], ...]] = {}
        self.exiting = False
        # Contexts for threads the user starts: the running plain task's, or the actor's.
        self.main_context: TaskContext | None = None
        self.base_context: TaskContext | None = None

    # -- incoming messages --------------------------------------------------

    def on_message(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == P.ACTOR_CALL and self.mode == "threaded":
            assert self.pool is not None
            self.pool.submit(self.run_actor_call, msg)
        elif kind == P.ACTOR_CALL and self.mode == "async":
            import asyncio

            assert self.loop is not None
            asyncio.run_coroutine_threadsafe(self.run_async_call(msg), self.loop)
        elif kind == P.CANCEL:
            self.cancel(msg[1], msg[2])
        elif kind == P.RECALL:
            self.recall(msg[1])
        elif kind == P.EXIT:
            self.exiting = True
        else:
            self.work.append(msg)

    def recall(self, task_ids: list[bytes]) -> None:
        """Give back the queued tasks among ``task_ids`` that have not started (see pipeline.py)."""
        wanted = set(task_ids)
        given = []
        for msg in list(self.work):
            if msg[0] != P.EXEC or msg[1] not in wanted:
                continue
            try:
                self.work.remove(msg)
            except ValueError:  # the main thread has just taken it: it runs
                continue
            self._drop_exec(msg)
            given.append(msg[1])
        if not given:
            return
        self.recalled.extend(given)
        # This may run in the SIGINT handler, on top of a send of this thread: never wait
        # for the send lock here.
        self.flush(wait=False)

    def _pending_bookkeeping(self) -> bytes:
        out = super()._pending_bookkeeping()
        if self.recalled:
            given, self.recalled = self.recalled, []
            out += P.encode((P.RECALLED, given))
        return out

    def _drop_exec(self, msg: tuple[Any, ...]) -> None:
        """Settle a task that will not run here: learn its function, release its pinned values."""
        if msg[3] is not None:
            self.function(msg[2], msg[3])  # the runtime now counts on us knowing it
        if msg[4][0] == P.SHM:
            self.unpins.append(msg[1])
        for dep_id, payload in msg[5]:
            if payload[0] == P.SHM:
                self.unpins.append(dep_id)

    def cancel(self, task_id: bytes, force: bool) -> None:
        self.cancelled.add(task_id)
        target = self.running.get(task_id)
        if target is None:
            # Queued here, or already finished: execute() answers a queued one as cancelled.
            return
        aio = sys.modules.get("asyncio")
        if aio is not None and isinstance(target, aio.Task):
            assert self.loop is not None
            self.loop.call_soon_threadsafe(target.cancel)
        elif target == self.main_ident:
            self.main_cancel = True
            if threading.get_ident() != self.main_ident:
                _thread.interrupt_main()
        else:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(KeyboardInterrupt))

    def on_sigint(self, signum: int, frame: Any) -> None:
        """The runtime interrupts a busy main thread so that it reads a CANCEL it has not seen."""
        if self.reader_lock.acquire(blocking=False):
            try:
                msgs = self.conn.receive_nowait()
                if msgs:
                    self.dispatch(msgs, main=True)
            finally:
                self.reader_lock.release()
        if self.main_cancel and self.interruptible:
            # Only while user code runs: never in the middle of shoal's own sends.
            self.main_cancel = False
            raise KeyboardInterrupt

    def _enter_user_code(self) -> None:
        if threading.get_ident() == self.main_ident:
            if self.main_cancel:
                self.main_cancel = False
                raise KeyboardInterrupt
            self.interruptible = True

    def _leave_user_code(self) -> None:
        self.interruptible = False

    # -- main loop ----------------------------------------------------------

    def run(self) -> None:
        self.send((P.READY, self.pid))
        while not self.exiting:
            if not self.work:
                with self.reader_lock:
                    if not self.work:
                        self.flush()
                        try:
                            msgs = self._receive_idle()
                        except KeyboardInterrupt:
                            # A cancel that arrived just after its task finished.
                            continue
                        self.dispatch(msgs, main=True)
            while self.work and not self.exiting:
                self.execute(self.work.popleft())
        self.flush()

    def _receive_idle(self) -> list[tuple[Any, ...]]:
        """The next messages; after tasks, a worker that stays idle gives memory back first.

        Short tasks leave freed memory with glibc and Arrow's allocator (~15 MB per worker
        after a groupby); giving it back after each task would make the next one fault it
        in again, so it goes back only when no work follows soon.
        """
        if self.worked:
            msgs = self.conn.receive(timeout=_IDLE_TRIM_S)
            if msgs:
                return msgs
            self.worked = False
            _give_memory_back()
        return self.conn.receive()

    def execute(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if msg[1] in self.cancelled:
            self.cancelled.discard(msg[1])
            if kind == P.EXEC:
                self._drop_exec(msg)
            err = TaskCancelledError(f"task {msg[8] if kind == P.EXEC else msg[-1]} was cancelled")
            self.send((P.DONE, msg[1], None, encode_error(err), False))
            return
        started = time.perf_counter()
        try:
            if kind == P.EXEC:
                self.run_task(msg)
            elif kind == P.ACTOR_CALL:
                self.run_actor_call(msg)
            elif kind == P.CREATE_ACTOR:
                self.create_actor(msg)
        except KeyboardInterrupt:
            # Interrupted outside user code (should not happen): still answer for the task.
            err = TaskCancelledError("the task was cancelled", task_id=msg[1].hex())
            self.send((P.DONE, msg[1], None, encode_error(err), False))
        finally:
            self.main_cancel = False
            self.interruptible = False
            self._after_task(time.perf_counter() - started)

    def _after_task(self, elapsed: float) -> None:
        """Memory housekeeping between tasks, skipped when the next task is already here.

        That task reuses the freed memory; giving it back first made it fault the pages in
        again (a shuffle ran 13% slower). The idle worker gives it back (:meth:`_receive_idle`).
        """
        if self._work_waiting():
            self.worked = True
        elif elapsed > _TRIM_AFTER_S:
            # glibc keeps freed heap (the big temporaries of a long task) otherwise.
            _give_memory_back()
            self.worked = False
        else:
            self.worked = True
            _release_arrow_if_used()

    def _work_waiting(self) -> bool:
        """Whether work is queued here, reading what the connection already holds."""
        if not self.work and self.reader_lock.acquire(blocking=False):
            try:
                msgs = self.conn.receive_nowait()
                if msgs:
                    self.dispatch(msgs, main=True)
            except ConnectionError:
                return False  # the main loop's next read reports it
            finally:
                self.reader_lock.release()
        return bool(self.work)

    # -- helpers ------------------------------------------------------------

    def function(self, fn_id: bytes, fn_bytes: bytes | None) -> Any:
        fn = self.functions.get(fn_id)
        if fn is None:
            if fn_bytes is None:
                raise RuntimeError("the runtime sent a call to a function this worker does not know")
            fn = loads_callable(fn_bytes)
            self.functions[fn_id] = fn
            if len(self.functions) > _FN_CACHE_MAX:
                self.functions.popitem(last=False)
        return fn

    def decode_args(
        self, task_id: bytes, payload: tuple[Any, ...], deps: list[tuple[bytes, tuple[Any, ...]]]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Arguments of a call, with each top-level ref replaced by its value.

        Shared-memory values stay pinned by the runtime until every view of them is gone.
        """
        release = self.unpin_later(task_id) if payload[0] == P.SHM else None
        args, kwargs = decode_payload(payload, release)
        if deps:
            values = [decode_payload(p, self.unpin_later(dep_id) if p[0] == P.SHM else None) for dep_id, p in deps]
            args = tuple(values[a.index] if type(a) is DepMarker else a for a in args)
            if kwargs:
                kwargs = {k: values[v.index] if type(v) is DepMarker else v for k, v in kwargs.items()}
        return args, kwargs

    def encode_returns(self, result: Any, num_returns: int, name: str) -> list[tuple[Any, list[bytes]]]:
        if num_returns == 1:
            values = [result]
        elif num_returns == 0:
            return []
        else:
            try:
                values = list(result)
            except TypeError:
                raise ValueError(f"{name} returned a non-iterable, but num_returns={num_returns}") from None
            if len(values) != num_returns:
                raise ValueError(f"{name} returned {len(values)} values, but num_returns={num_returns}")
        max_inline = self.info.get("max_inline", 100 * 1024)
        if len(values) == 1:
            return [encode_value(values[0], max_inline, self.allocate)]
        return encode_values(values, max_inline, self.allocate_many)

    def context(self) -> TaskContext | None:
        """The calling task's context; threads a task or actor starts inherit it (as in Ray)."""
        ctx = _CONTEXT.get()
        if ctx is None:
            ctx = self.main_context if self.main_context is not None else self.base_context
        return ctx

    def _set_context(self, ctx: TaskContext | None) -> None:
        _CONTEXT.set(ctx)
        if threading.get_ident() == self.main_ident and self.mode == "task":
            self.main_context = ctx

    # -- tasks --------------------------------------------------------------

    def run_task(self, msg: tuple[Any, ...]) -> None:
        _, task_id, fn_id, fn_bytes, args_payload, deps, _return_ids, num_returns, name, ctx = msg
        resources, gpu_ids, pg_id, capture_pg, retry = ctx
        if gpu_ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)
        self._set_context(TaskContext(task_id, name, resources, gpu_ids, pg_id, capture_pg))
        self.running[task_id] = self.main_ident
        if task_id in self.cancelled:
            # A CANCEL read (by the signal handler) after execute() checked and before the
            # line above found no running task to interrupt: honour it here.
            self.main_cancel = True
        try:
            fn = self.function(fn_id, fn_bytes)
            args, kwargs = self.decode_args(task_id, args_payload, deps)
            self._enter_user_code()
            try:
                result = fn(*args, **kwargs)
            finally:
                self._leave_user_code()
            if num_returns == -1:
                self.stream(task_id, result, name)
                return
            results = self.encode_returns(result, num_returns, name)
        except KeyboardInterrupt:
            self._report_cancel_or_interrupt(task_id, name)
        except BaseException as e:  # noqa: BLE001 - user code may raise anything
            self.send((P.DONE, task_id, None, encode_error(task_error(e, name)), self._retryable(e, retry)))
        else:
            self.send((P.DONE, task_id, results, None, False))
        finally:
            self.running.pop(task_id, None)
            self._set_context(None)

    def _retryable(self, error: BaseException, spec: Any) -> bool:
        """Does ``retry_exceptions`` (True, False, or pickled exception types) cover this error?"""
        if spec is True or spec is False or spec is None:
            return bool(spec)
        types = self.retry_types.get(spec)
        if types is None:
            types = self.retry_types[spec] = cloudpickle.loads(spec)
        return isinstance(error, types)

    def _report_cancel_or_interrupt(self, task_id: bytes, name: str) -> None:
        if task_id in self.cancelled:
            self.cancelled.discard(task_id)
            err: BaseException = TaskCancelledError(f"task {name} was cancelled", task_id=task_id.hex())
            self.send((P.DONE, task_id, None, encode_error(err), False))
        else:
            self.send((P.DONE, task_id, None, encode_error(task_error(KeyboardInterrupt(), name)), True))

    def stream(self, task_id: bytes, gen: Any, name: str) -> None:
        """Send each yielded value as it comes, then DONE with the count."""
        max_inline = self.info.get("max_inline", 100 * 1024)
        index = 0
        if inspect.isasyncgen(gen):
            gen = _drive_async_gen(gen)
        try:
            while True:
                self._enter_user_code()
                try:
                    value = next(gen)
                except StopIteration:
                    break
                finally:
                    self._leave_user_code()
                payload, contained = encode_value(value, max_inline, self.allocate)
                self.send((P.GEN_ITEM, task_id, index, (payload, contained)))
                index += 1
        except KeyboardInterrupt:
            self._report_cancel_or_interrupt(task_id, name)
            return
        except BaseException as e:  # noqa: BLE001
            self.send((P.GEN_ITEM, task_id, index, (encode_error(task_error(e, name)), [])))
            index += 1
        self.send((P.DONE, task_id, [], None, False))

    # -- actors -------------------------------------------------------------

    def create_actor(self, msg: tuple[Any, ...]) -> None:
        _, task_id, actor_id, cls_id, cls_bytes, args_payload, deps, opts, ctx = msg
        resources, gpu_ids, pg_id, capture_pg, _retry = ctx
        self.actor_id = actor_id
        self.actor_name = opts["name"]
        self.actor_class = opts["class_name"]
        self.actor_restarted = opts["restarted"]
        self.actor_resources = resources
        self.actor_gpu_ids = gpu_ids
        if gpu_ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)
        name = f"{self.actor_class}.__init__"
        self._set_context(TaskContext(task_id, name, resources, gpu_ids, pg_id, capture_pg))
        self.base_context = TaskContext(task_id, name, resources, gpu_ids, pg_id, capture_pg)
        try:
            cls = self.function(cls_id, cls_bytes)
            args, kwargs = self.decode_args(task_id, args_payload, deps)
            if opts["is_async"]:
                import asyncio

                self.mode = "async"
                self.loop = asyncio.new_event_loop()
                ready = threading.Event()
                threading.Thread(target=self._loop_main, args=(ready, opts["max_concurrency"]), daemon=True).start()
                ready.wait()
                # The constructor runs on the loop thread so that it may create asyncio objects.
                fut = asyncio.run_coroutine_threadsafe(_call_sync(cls, args, kwargs), self.loop)
                self.actor = fut.result()
            else:
                self.actor = cls(*args, **kwargs)
                if opts["max_concurrency"] > 1:
                    self.mode = "threaded"
                    self.pool = concurrent.futures.ThreadPoolExecutor(
                        opts["max_concurrency"], thread_name_prefix=f"{self.actor_class}"
                    )
                else:
                    self.mode = "sync"
        except BaseException as e:  # noqa: BLE001
            self.send((P.DONE, task_id, None, encode_error(task_error(e, name)), True))
            return
        finally:
            self._set_context(None)
        self.send((P.DONE, task_id, [], None, False))
        # Calls that arrived before the actor existed.
        if self.mode in ("threaded", "async"):
            queued = [m for m in self.work if m[0] == P.ACTOR_CALL]
            for m in queued:
                self.work.remove(m)
            self.dispatch(queued, main=True)

    def _loop_main(self, ready: threading.Event, max_concurrency: int) -> None:
        import asyncio

        assert self.loop is not None
        asyncio.set_event_loop(self.loop)
        self.semaphore = asyncio.Semaphore(max_concurrency)
        ready.set()
        self.loop.run_forever()

    def _call_context(self, task_id: bytes, name: str) -> TaskContext:
        base = self.base_context
        assert base is not None
        return TaskContext(task_id, name, base.resources, base.gpu_ids, base.pg_id, base.capture_pg)

    def run_actor_call(self, msg: tuple[Any, ...]) -> None:
        _, task_id, method, args_payload, deps, _return_ids, num_returns, name = msg
        if method == "__ray_terminate__":
            self.actor_exit(task_id)
            return
        self._set_context(self._call_context(task_id, name))
        self.running[task_id] = threading.get_ident()
        try:
            args, kwargs = self.decode_args(task_id, args_payload, deps)
            bound = getattr(self.actor, method)
            self._enter_user_code()
            try:
                result = bound(*args, **kwargs)
            finally:
                self._leave_user_code()
            if num_returns == -1:
                self.stream(task_id, result, name)
                return
            results = self.encode_returns(result, num_returns, name)
        except AsyncioActorExit:
            self.actor_exit(task_id)
        except KeyboardInterrupt:
            self._report_cancel_or_interrupt(task_id, name)
        except SystemExit:
            self.actor_exit(task_id)
        except BaseException as e:  # noqa: BLE001
            self.send((P.DONE, task_id, None, encode_error(task_error(e, name)), True))
        else:
            self.send((P.DONE, task_id, results, None, False))
        finally:
            self.running.pop(task_id, None)
            self._set_context(None)

    async def run_async_call(self, msg: tuple[Any, ...]) -> None:
        import asyncio

        _, task_id, method, args_payload, deps, _return_ids, num_returns, name = msg
        assert self.semaphore is not None
        if method == "__ray_terminate__":
            self.actor_exit(task_id)
            return
        async with self.semaphore:
            self._set_context(self._call_context(task_id, name))
            current = asyncio.current_task()
            self.running[task_id] = current
            try:
                args, kwargs = self.decode_args(task_id, args_payload, deps)
                bound = getattr(self.actor, method)
                result = bound(*args, **kwargs)
                if num_returns == -1:
                    await self._stream_async(task_id, result, name)
                    return
                if inspect.isawaitable(result):
                    result = await result
                results = self.encode_returns(result, num_returns, name)
            except AsyncioActorExit:
                self.actor_exit(task_id)
            except asyncio.CancelledError:
                err = TaskCancelledError(f"task {name} was cancelled", task_id=task_id.hex())
                self.send((P.DONE, task_id, None, encode_error(err), False))
            except BaseException as e:  # noqa: BLE001
                self.send((P.DONE, task_id, None, encode_error(task_error(e, name)), True))
            else:
                self.send((P.DONE, task_id, results, None, False))
            finally:
                self.running.pop(task_id, None)

    async def _stream_async(self, task_id: bytes, gen: Any, name: str) -> None:
        import asyncio

        max_inline = self.info.get("max_inline", 100 * 1024)
        index = 0
        try:
            if inspect.isasyncgen(gen):
                async for value in gen:
                    payload, contained = encode_value(value, max_inline, self.allocate)
                    self.send((P.GEN_ITEM, task_id, index, (payload, contained)))
                    index += 1
            else:
                for value in gen:
                    payload, contained = encode_value(value, max_inline, self.allocate)
                    self.send((P.GEN_ITEM, task_id, index, (payload, contained)))
                    index += 1
        except asyncio.CancelledError:
            err = TaskCancelledError(f"task {name} was cancelled", task_id=task_id.hex())
            self.send((P.GEN_ITEM, task_id, index, (encode_error(err), [])))
        except BaseException as e:  # noqa: BLE001
            self.send((P.GEN_ITEM, task_id, index, (encode_error(task_error(e, name)), [])))
        self.send((P.DONE, task_id, [], None, False))

    def actor_exit(self, task_id: bytes) -> None:
        """exit_actor(): report, then leave; the runtime fails what is still queued."""
        self.send((P.DONE, task_id, None, None, False))
        self.flush()
        _flush_std()
        os._exit(0)


async def _call_sync(cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return cls(*args, **kwargs)


def _drive_async_gen(agen: Any) -> Any:
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.close()


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _on_sigterm(signum: int, frame: Any) -> None:
    _flush_std()
    os._exit(0)


def main() -> None:
    """Entry point of a worker process."""
    from shoal import _session
    from shoal._runtime.worker_backend import WorkerBackend

    fd = int(os.environ["SHOAL_WORKER_FD"])
    signal.signal(signal.SIGTERM, _on_sigterm)
    P.set_parent_death_signal(signal.SIGTERM)
    parent = int(os.environ.get("SHOAL_PARENT_PID", "0"))
    if parent and not P.pid_alive(parent):
        os._exit(0)
    sock = socket.socket(fileno=fd)
    _keep_freed_heap()
    spin_us = int(os.environ.get("SHOAL_WORKER_SPIN_US", "200"))
    worker = Worker(sock, spin_us)
    signal.signal(signal.SIGINT, worker.on_sigint)
    _session.install(WorkerBackend(worker))
    try:
        worker.run()
    except (ConnectionError, OSError):
        pass
    _flush_std()
    os._exit(0)


if __name__ == "__main__":
    main()
