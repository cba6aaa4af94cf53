"""The autoscaler's I/O shell: reads the provider and the head, feeds the state machine, acts.

Provider calls can take seconds (cloud APIs), so launches and terminations
run on an executor and their results come back as events on a later
:meth:`AutoscalerShell.step`. Draining asks the head, which is quick, so it
happens inline. Every message and error is redacted before it is logged or
handed to the state machine, so credentials never reach logs or status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from shoal.autoscaler._errors import NodeProviderError
from shoal.autoscaler._machine import Autoscaler, AutoscalerSettings
from shoal.autoscaler._redact import Redactor
from shoal.autoscaler._status import AutoscalerStatus
from shoal.autoscaler.config import ClusterConfig
from shoal.autoscaler.demand import ClusterStateSource
from shoal.autoscaler.events import (
    Decision,
    DrainFinished,
    DrainNode,
    Event,
    LaunchFailed,
    LaunchNodes,
    LaunchSucceeded,
    Observed,
    TerminateFinished,
    TerminateNodes,
)
from shoal.autoscaler.node_provider import NODE_KIND_WORKER, TAG_LAUNCH_ID, TAG_NODE_KIND, NodeProvider

__all__ = ["AutoscalerShell", "InlineExecutor"]

logger = logging.getLogger("shoal.autoscaler")


class InlineExecutor(Executor):
    """Runs each call at submit time (deterministic simulations and tests)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(e)
        return fut


class AutoscalerShell:
    """Runs an :class:`Autoscaler` against a real provider and head.

    Call :meth:`step` once per round (or ``await run()``). ``clock`` returns
    seconds; inject a virtual one to simulate.
    """

    def __init__(
        self,
        config: ClusterConfig,
        provider: NodeProvider,
        cluster: ClusterStateSource,
        *,
        settings: AutoscalerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        executor: Executor | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.cluster = cluster
        self.machine = Autoscaler(config, settings)
        self._clock = clock
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=8, thread_name_prefix="shoal-autoscaler")
        self._redact = redactor or Redactor.from_config(
            config.provider, *(t.node_config for t in config.available_node_types.values())
        )
        self._inflight: dict[Future, Decision] = {}
        self._closed = False

    # -- rounds ----------------------------------------------------------------------

    def step(self) -> list[Decision]:
        """One round: collect finished provider calls, observe, decide, act. Returns the decisions."""
        if self._closed:
            raise RuntimeError("the autoscaler shell is closed")
        done: list[Decision] = []
        done += self._collect()
        try:
            nodes = self.provider.non_terminated_nodes()
            load = self.cluster.read_load()
        except Exception as e:  # noqa: BLE001 - a flaky API must not kill the loop; retry next round
            logger.warning("autoscaler: cannot observe the cluster: %s", self._error_text(e))
            return done
        done += self._feed(Observed(now=self._clock(), provider_nodes=nodes, load=load))
        done += self._collect()  # calls that finished already (inline executor)
        return done

    async def run(self, interval_s: float = 5.0, stop: asyncio.Event | None = None) -> None:
        """Step every ``interval_s`` seconds until ``stop`` is set (provider I/O off the event loop)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await asyncio.to_thread(self.step)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                pass

    def status(self) -> AutoscalerStatus:
        return self.machine.status()

    def close(self, wait: bool = True) -> None:
        """Stop using the executor (waiting for in-flight provider calls by default)."""
        if self._closed:
            return
        self._closed = True
        if self._own_executor:
            self._executor.shutdown(wait=wait)
        if wait:
            self._collect(block=True)

    # -- plumbing --------------------------------------------------------------------

    def _error_text(self, e: BaseException) -> str:
        text = str(e) or type(e).__name__
        if not isinstance(e, NodeProviderError):
            text = f"{type(e).__name__}: {text}"
        return self._redact(text)

    def _feed(self, event: Event) -> list[Decision]:
        """Hand an event to the machine and carry out what it decides, until nothing is left."""
        executed: list[Decision] = []
        queue = list(self.machine.handle(event))
        while queue:
            d = queue.pop(0)
            executed.append(d)
            queue.extend(self._execute(d))
        return executed

    def _execute(self, d: Decision) -> list[Decision]:
        if isinstance(d, LaunchNodes):
            logger.info("autoscaler: %s: launching %d x %s (%s)", d.launch_id, d.count, d.node_type, d.reason)
            self._inflight[self._executor.submit(self._create, d)] = d
            return []
        if isinstance(d, TerminateNodes):
            logger.info("autoscaler: terminating %s (%s)", ", ".join(d.node_ids), self._redact(d.reason))
            self._inflight[self._executor.submit(self.provider.terminate_nodes, list(d.node_ids))] = d
            return []
        if isinstance(d, DrainNode):
            now = self._clock()
            try:
                accepted = bool(self.cluster.drain_node(d.node_id, d.reason))
                ev = DrainFinished(now=now, node_id=d.node_id, accepted=accepted)
            except Exception as e:  # noqa: BLE001 - the head's error becomes an event
                ev = DrainFinished(now=now, node_id=d.node_id, accepted=False, error=self._error_text(e))
            return list(self.machine.handle(ev))
        raise TypeError(f"unknown decision {type(d).__name__}")

    def _create(self, d: LaunchNodes) -> list[str]:
        spec = self.config.available_node_types[d.node_type]
        tags = {TAG_NODE_KIND: NODE_KIND_WORKER, TAG_LAUNCH_ID: d.launch_id}
        return self.provider.create_nodes(d.node_type, spec.node_config, tags, d.count, resources=spec.resources)

    def _collect(self, block: bool = False) -> list[Decision]:
        executed: list[Decision] = []
        for fut in [f for f in self._inflight if block or f.done()]:
            d = self._inflight.pop(fut)
            now = self._clock()
            exc = fut.exception()
            ev: Event
            if isinstance(d, LaunchNodes):
                if exc is None:
                    ids = list(fut.result())
                    logger.info("autoscaler: %s: created %s", d.launch_id, ", ".join(ids) or "nothing")
                    ev = LaunchSucceeded(now=now, launch_id=d.launch_id, node_ids=ids)
                else:
                    text = self._error_text(exc)
                    category = exc.category if isinstance(exc, NodeProviderError) else "transient"
                    logger.warning(
                        "autoscaler: %s: launching %s failed (%s): %s", d.launch_id, d.node_type, category, text
                    )
                    ev = LaunchFailed(now=now, launch_id=d.launch_id, error=text, category=category)
            else:
                assert isinstance(d, TerminateNodes)
                error = None if exc is None else self._error_text(exc)
                if error:
                    logger.warning("autoscaler: terminating %s failed: %s", ", ".join(d.node_ids), error)
                ev = TerminateFinished(now=now, node_ids=d.node_ids, error=error)
            executed += self._feed(ev)
        return executed
