"""Execution statistics: time, tasks, rows and bytes per operator (``Dataset.stats()``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from shoal.data.block import BlockMetadata

__all__ = ["OpStats", "DatasetStats"]


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f}ms"
    return f"{seconds:.2f}s"


def _summary(values: list[float], fmt: type | None = None) -> str:
    lo, hi, total = min(values), max(values), sum(values)
    mean = total / len(values)
    if fmt is float:
        return f"{_fmt_time(lo)} min, {_fmt_time(hi)} max, {_fmt_time(mean)} mean, {_fmt_time(total)} total"
    return f"{int(lo)} min, {int(hi)} max, {int(mean)} mean, {int(total)} total"


@dataclass
class OpStats:
    """What one operator did during an execution."""

    name: str
    tasks: int = 0
    blocks: int = 0
    rows: int = 0
    bytes: int = 0
    task_wall: list[float] = field(default_factory=list)
    task_cpu: list[float] = field(default_factory=list)
    block_rows: list[int] = field(default_factory=list)
    block_bytes: list[int] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)
    started: float | None = None
    finished: float | None = None
    #: Sub-stages of all-to-all operators: (name, tasks, seconds).
    stages: list[tuple[str, int, float]] = field(default_factory=list)

    def mark_started(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def mark_finished(self) -> None:
        if self.finished is None:
            self.finished = time.perf_counter()

    def record_task(self, meta: BlockMetadata) -> None:
        if meta.exec_stats is not None:
            self.task_wall.append(meta.exec_stats.wall_time_s)
            self.task_cpu.append(meta.exec_stats.cpu_time_s)
            if meta.exec_stats.pid is not None:
                self.pids.add(meta.exec_stats.pid)

    def record_output(self, meta: BlockMetadata) -> None:
        self.mark_started()
        self.blocks += 1
        rows = int(meta.num_rows or 0)
        size = int(meta.size_bytes or 0)
        self.rows += rows
        self.bytes += size
        self.block_rows.append(rows)
        self.block_bytes.append(size)

    @property
    def wall_time(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.perf_counter()) - self.started

    def to_string(self, index: int) -> str:
        lines = [
            f"Operator {index} {self.name}: {self.tasks} tasks executed, {self.blocks} blocks produced "
            f"in {_fmt_time(self.wall_time)}"
        ]
        for name, tasks, seconds in self.stages:
            lines.append(f"* Stage {name}: {tasks} tasks in {_fmt_time(seconds)}")
        if self.task_wall:
            lines.append(f"* Remote wall time: {_summary(self.task_wall, float)}")
            lines.append(f"* Remote cpu time: {_summary(self.task_cpu, float)}")
        if self.block_rows:
            lines.append(f"* Output num rows per block: {_summary([float(r) for r in self.block_rows])}")
            lines.append(f"* Output size bytes per block: {_summary([float(b) for b in self.block_bytes])}")
        if self.pids:
            lines.append(f"* Tasks ran in {len(self.pids)} worker process(es)")
        if self.wall_time > 0:
            lines.append(f"* Operator throughput: {self.rows / self.wall_time:,.0f} rows/s")
        return "\n".join(lines)


@dataclass
class DatasetStats:
    """Stats of one execution: an entry per operator, plus the whole run's time."""

    operators: list[OpStats] = field(default_factory=list)
    wall_time: float = 0.0
    output_rows: int = 0
    #: Peak bytes of blocks the executor held at once (queues and running tasks' inputs).
    peak_held_bytes: int = 0
    #: The memory budget the executor ran under.
    budget_bytes: int = 0
    parent: DatasetStats | None = None

    def op(self, name: str) -> OpStats | None:
        for s in self.operators:
            if s.name == name:
                return s
        return None

    def to_string(self) -> str:
        parts = []
        if self.parent is not None:
            parts.append(self.parent.to_string())
        for i, s in enumerate(self.operators, 1):
            parts.append(s.to_string(i))
        if self.wall_time > 0:
            parts.append(
                f"Dataset throughput:\n* {self.output_rows / self.wall_time:,.0f} rows/s "
                f"({self.output_rows} rows in {_fmt_time(self.wall_time)}; "
                f"peak {self.peak_held_bytes / 2**20:.1f} MiB held of a {self.budget_bytes / 2**20:.0f} MiB budget)"
            )
        return "\n\n".join(parts)

    def __str__(self) -> str:
        return self.to_string()
