"""Operators that need all of their input: shuffle, sort, groupby, repartition, zip.

Each collects its input blocks, then runs up to three stages of tasks:
a preparation stage whose small results the driver needs (key samples for
sort and groupby), a map stage that partitions every block (its parts stay
in the object store and feed the reducers directly), and a reduce stage of
one task per output block, which the executor launches under its memory
budget like any other work.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import shoal
from shoal.data import _tasks
from shoal.data._operators import PhysicalOperator, RefMeta, _bytes, cancel_quietly
from shoal.data._partition import SortKey, compute_boundaries
from shoal.data.context import DataContext

__all__ = ["AllToAllOperator", "ZipOperator", "plan_slices"]

_SAMPLES_PER_BLOCK = 100


def plan_slices(metas: list[int], start: int, end: int) -> list[tuple[int, int, int]]:
    """``(block index, start, end)`` pieces covering global rows ``[start, end)`` of blocks with these row counts."""
    out = []
    offset = 0
    for i, rows in enumerate(metas):
        lo, hi = max(start, offset), min(end, offset + rows)
        if lo < hi:
            out.append((i, lo - offset, hi - offset))
        offset += rows
        if offset >= end:
            break
    return out


class _Reduce:
    """A reduce-stage task, launched when the executor allows."""

    __slots__ = ("block_ref", "est", "meta", "meta_ref", "passthrough", "submit")

    def __init__(self, submit: Callable[[], tuple[Any, Any]] | None, est: int, passthrough: RefMeta | None = None):
        self.submit = submit
        self.est = est
        self.block_ref: Any = None
        self.meta_ref: Any = None
        self.meta: Any = None
        self.passthrough = passthrough


class _Staged(PhysicalOperator):
    """Collect input, run a preparation stage, then emit reduce outputs in order."""

    def __init__(self, name: str, inputs: list[PhysicalOperator]) -> None:
        super().__init__(name, inputs)
        self.blocks: list[list[RefMeta]] = [[] for _ in inputs]
        self._prep: dict[Any, int] = {}
        self._prep_results: list[Any] = []
        self._prep_done: Callable[[list[Any]], None] | None = None
        self._reduces: list[_Reduce] = []
        self._next_reduce = 0
        self._active: dict[Any, _Reduce] = {}
        self._emitted = 0
        self._planned = False
        self._stage_started = 0.0
        self._stage_name = ""
        self._stage_tasks = 0
        self.target_min_block_size = 1 << 20

    def configure(self, ctx: DataContext, cluster_cpus: float) -> None:
        super().configure(ctx, cluster_cpus)
        self.target_min_block_size = ctx.target_min_block_size

    def add_input(self, item: RefMeta, index: int) -> None:
        if not self.cancelled:
            self.blocks[index].append(item)

    def input_done(self, index: int) -> None:
        super().input_done(index)
        if self.all_inputs_done() and not self._planned and not self.cancelled:
            self._planned = True
            self.stats.mark_started()
            self.plan()
            self._maybe_finish_prep()

    def plan(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement plan()")  # each exchange plans its own

    # -- stages -----------------------------------------------------------------------
    def _stage(self, name: str, tasks: int) -> None:
        self._close_stage()
        self._stage_name, self._stage_tasks, self._stage_started = name, tasks, time.perf_counter()
        self.stats.tasks += tasks

    def _close_stage(self) -> None:
        if self._stage_started:
            elapsed = time.perf_counter() - self._stage_started
            self.stats.stages.append((self._stage_name, self._stage_tasks, elapsed))
            self._stage_started = 0.0

    def start_prep(self, name: str, refs: list[Any], then: Callable[[list[Any]], None]) -> None:
        """Wait for ``refs`` (small values), then call ``then`` with their values in order."""
        self._stage(name, len(refs))
        self._prep = {r: i for i, r in enumerate(refs)}
        self._prep_results = [None] * len(refs)
        self._prep_done = then

    def _maybe_finish_prep(self) -> None:
        if self._prep_done is not None and not self._prep:
            then, self._prep_done = self._prep_done, None
            then(self._prep_results)

    def set_reduces(self, name: str, reduces: list[_Reduce]) -> None:
        self._stage(name, sum(1 for r in reduces if r.submit is not None))
        self._reduces = reduces

    # -- executor interface --------------------------------------------------------------
    def has_work(self) -> bool:
        return not self.cancelled and self._prep_done is None and self._next_reduce < len(self._reduces)

    def max_active(self) -> int:
        return max(1, int(self.cluster_cpus) * 2)

    def num_active(self) -> int:
        return len(self._active) + len(self._prep)

    def est_task_output(self) -> int:
        if self._next_reduce < len(self._reduces):
            return self._reduces[self._next_reduce].est
        return 0

    def dispatch(self) -> None:
        r = self._reduces[self._next_reduce]
        self._next_reduce += 1
        if r.passthrough is not None:
            r.block_ref, r.meta = r.passthrough
        else:
            assert r.submit is not None
            r.block_ref, r.meta_ref = r.submit()
            self._active[r.meta_ref] = r
        self._emit()

    def active_refs(self) -> list[Any]:
        return [*self._prep, *self._active]

    def on_ready(self, ref: Any) -> None:
        if ref in self._prep:
            i = self._prep.pop(ref)
            self._prep_results[i] = shoal.get(ref)
            self._maybe_finish_prep()
            return
        r = self._active.pop(ref)
        r.meta = shoal.get(ref)
        self.stats.record_task(r.meta)
        self._emit()

    def _emit(self) -> None:
        while self._emitted < self._next_reduce and self._reduces[self._emitted].meta is not None:
            r = self._reduces[self._emitted]
            self.outputs.append((r.block_ref, r.meta))
            self._reduces[self._emitted] = _Reduce(None, 0)  # drop refs to its inputs
            self._emitted += 1
        if self._emitted == len(self._reduces) and self._planned and self._prep_done is None:
            self.blocks = [[] for _ in self.inputs]
            self._close_stage()

    def completed(self) -> bool:
        if self.cancelled:
            return True
        return self._planned and self._prep_done is None and not self._prep and self._emitted == len(self._reduces)

    def held_bytes(self) -> int:
        # The collected input is exempt from the budget (an all-to-all step
        # needs all of it); what it has produced and not handed on is not.
        return super().held_bytes() + sum(
            _bytes(r.meta) for r in self._reduces[self._emitted : self._next_reduce] if r.meta is not None
        )

    def pending_output_bytes(self) -> int:
        return sum(r.est for r in self._active.values())

    def progress(self) -> tuple[int, int | None]:
        return self._emitted, len(self._reduces) if self._planned else None

    def cancel(self) -> None:
        super().cancel()
        self.shutdown()
        self._reduces = self._reduces[: self._emitted]
        self._next_reduce = self._emitted
        self._prep_done = None
        self.blocks = [[] for _ in self.inputs]

    def shutdown(self) -> None:
        for ref in [*self._prep, *self._active]:
            cancel_quietly(ref)
        self._prep.clear()
        self._active.clear()

    # -- helpers ----------------------------------------------------------------------------
    def _inputs(self) -> list[RefMeta]:
        return [b for b in self.blocks[0] if (b[1].num_rows or 0) > 0 or b[1].num_rows is None]

    def auto_partitions(self, n_blocks: int, total_bytes: int, requested: int | None) -> int:
        if requested is not None:
            return requested
        by_size = math.ceil(total_bytes / max(1, self.target_min_block_size))
        return max(1, min(n_blocks, by_size))


def _as_list(refs: Any, n: int) -> list[Any]:
    return [refs] if n == 1 else list(refs)


def _seed(seed: Any, *salt: int) -> Any:
    if seed is None:
        return None
    return [int(seed), *salt]


class AllToAllOperator(_Staged):
    """random_shuffle, sort, aggregate (groupby), repartition and randomize_block_order."""

    def __init__(self, name: str, input_op: PhysicalOperator, kind: str, params: dict[str, Any]) -> None:
        super().__init__(name, [input_op])
        self.kind = kind
        self.params = params
        # Without a seed, draw one per execution so that map and reduce sides agree.
        if kind in ("random_shuffle", "randomize_block_order") and params.get("seed") is None:
            self.params = {**params, "seed": int.from_bytes(os.urandom(4), "little")}

    def plan(self) -> None:
        getattr(self, f"_plan_{self.kind}")()

    # -- randomize_block_order -----------------------------------------------------------
    def _plan_randomize_block_order(self) -> None:
        blocks = list(self.blocks[0])
        order = np.random.default_rng(self.params["seed"]).permutation(len(blocks))
        self.set_reduces("randomize", [_Reduce(None, 0, blocks[i]) for i in order])

    # -- repartition -------------------------------------------------------------------------
    def _plan_repartition(self) -> None:
        blocks = self._inputs()
        rows = [int(m.num_rows or 0) for _, m in blocks]
        total = sum(rows)
        num_blocks = self.params.get("num_blocks")
        per_block = self.params.get("target_num_rows_per_block")
        if num_blocks is None:
            assert per_block is not None
            num_blocks = max(1, math.ceil(total / per_block)) if total else 1
        bounds = np.linspace(0, total, num_blocks + 1).astype(np.int64)
        avg = sum(_bytes(m) for _, m in blocks) // max(1, num_blocks)
        reduces = []
        for a, b in itertools.pairwise(bounds):
            spec = plan_slices(rows, int(a), int(b))
            if len(spec) == 1 and spec[0][1] == 0 and spec[0][2] == rows[spec[0][0]]:
                reduces.append(_Reduce(None, avg, blocks[spec[0][0]]))
                continue
            used = sorted({i for i, _, _ in spec})
            local = {g: j for j, g in enumerate(used)}
            lspec = [(local[i], s, e) for i, s, e in spec]
            refs = [blocks[i][0] for i in used]
            reduces.append(_Reduce(_submitter("slice_concat", lspec, *refs), avg))
        self.set_reduces("repartition", reduces)

    # -- random_shuffle --------------------------------------------------------------------------
    def _plan_random_shuffle(self) -> None:
        blocks = self._inputs()
        if not blocks:
            self.set_reduces("shuffle_reduce", [])
            return
        total = sum(_bytes(m) for _, m in blocks)
        p = self.auto_partitions(len(blocks), total, self.params.get("num_blocks"))
        seed = self.params["seed"]
        self._stage("shuffle_map", len(blocks))
        fn = _tasks.remote_fn("shuffle_map", p)
        parts = [_as_list(fn.remote(ref, p, _seed(seed, i)), p) for i, (ref, _) in enumerate(blocks)]
        reduces = [
            _Reduce(_submitter("shuffle_reduce", _seed(seed, 1 << 30, j), *[row[j] for row in parts]), total // p)
            for j in range(p)
        ]
        self.set_reduces("shuffle_reduce", reduces)

    # -- sort ------------------------------------------------------------------------------------------
    def _plan_sort(self) -> None:
        blocks = self._inputs()
        key: SortKey = self.params["key"]
        if not blocks:
            self.set_reduces("sort_reduce", [])
            return
        total = sum(_bytes(m) for _, m in blocks)
        p = self.auto_partitions(len(blocks), total, self.params.get("num_blocks"))
        if p == 1:
            self.set_reduces("sort_reduce", [_Reduce(_submitter("sort_reduce", key, *[r for r, _ in blocks]), total)])
            return
        fn = _tasks.remote_fn("sample")
        refs = [fn.remote(ref, key.columns[0], _SAMPLES_PER_BLOCK, i) for i, (ref, _) in enumerate(blocks)]

        def then(samples: list[np.ndarray]) -> None:
            boundaries = compute_boundaries(samples, p, key.descending[0])
            n = len(boundaries) + 1
            self._stage("sort_map", len(blocks))
            mfn = _tasks.remote_fn("sort_map", n)
            parts = [_as_list(mfn.remote(ref, key, boundaries), n) for ref, _ in blocks]
            reduces = [
                _Reduce(_submitter("sort_reduce", key, *[row[j] for row in parts]), total // n) for j in range(n)
            ]
            self.set_reduces("sort_reduce", reduces)

        self.start_prep("sort_sample", refs, then)

    # -- aggregate ----------------------------------------------------------------------------------------
    def _plan_aggregate(self) -> None:
        blocks = self._inputs()
        keys: list[str] = self.params["keys"]
        aggs = self.params["aggs"]
        requested = self.params.get("num_partitions")
        if not blocks:
            self.set_reduces("aggregate", [])
            return
        fn = _tasks.remote_fn("agg_partial", 2)
        outs = [fn.remote(ref, keys, aggs, _SAMPLES_PER_BLOCK) for ref, _ in blocks]
        partials = [o[0] for o in outs]

        def then(results: list[Any]) -> None:
            samples = [s for s, _ in results]
            total = sum(b for _, b in results)
            p = 1 if not keys else self.auto_partitions(len(blocks), total, requested)
            if p == 1:
                self.set_reduces("aggregate", [_Reduce(_submitter("agg_reduce", keys, aggs, *partials), total)])
                return
            boundaries = compute_boundaries(samples, p, False)
            n = len(boundaries) + 1
            self._stage("aggregate_partition", len(partials))
            pfn = _tasks.remote_fn("agg_partition", n)
            parts = [_as_list(pfn.remote(ref, keys, boundaries), n) for ref in partials]
            reduces = [
                _Reduce(_submitter("agg_reduce", keys, aggs, *[row[j] for row in parts]), total // n) for j in range(n)
            ]
            self.set_reduces("aggregate", reduces)

        self.start_prep("aggregate_partial", [o[1] for o in outs], then)


def _submitter(name: str, *args: Any) -> Callable[[], tuple[Any, Any]]:
    def submit() -> tuple[Any, Any]:
        block_ref, meta_ref = _tasks.remote_fn(name, 2).remote(*args)
        return block_ref, meta_ref

    return submit


class ZipOperator(_Staged):
    """Columns of two datasets side by side, row by row (same number of rows required)."""

    def __init__(self, left: PhysicalOperator, right: PhysicalOperator) -> None:
        super().__init__("Zip", [left, right])

    def plan(self) -> None:
        left, right = self.blocks
        lrows = [int(m.num_rows or 0) for _, m in left]
        rrows = [int(m.num_rows or 0) for _, m in right]
        if sum(lrows) != sum(rrows):
            raise ValueError(
                f"zip: the datasets have different numbers of rows ({sum(lrows)} and {sum(rrows)}); "
                "zip needs the same number of rows on both sides"
            )
        reduces = []
        offset = 0
        for (ref, meta), n in zip(left, lrows, strict=True):
            spec = plan_slices(rrows, offset, offset + n)
            offset += n
            used = sorted({i for i, _, _ in spec})
            local = {g: j for j, g in enumerate(used)}
            lspec = [(local[i], s, e) for i, s, e in spec]
            est = _bytes(meta) * 2
            reduces.append(_Reduce(_submitter("zip_blocks", ref, lspec, *[right[i][0] for i in used]), est))
        self.set_reduces("zip", reduces)
