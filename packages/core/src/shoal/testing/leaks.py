"""Finding what a run left behind: child processes and /dev/shm segments."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil

__all__ = ["SHM_DIR", "SHM_PREFIX", "LeakReport", "leftover_children", "shm_segments"]

SHM_DIR = "/dev/shm"
#: Every shared-memory segment shoal creates starts with this.
SHM_PREFIX = "shoal"


def shm_segments() -> set[str]:
    """Names of shoal's segments now in /dev/shm."""
    try:
        return {n for n in os.listdir(SHM_DIR) if n.startswith(SHM_PREFIX)}
    except FileNotFoundError:  # pragma: no cover - systems without /dev/shm
        return set()


def leftover_children(ignore: set[int] = frozenset()) -> list[psutil.Process]:  # type: ignore[assignment]
    """Live descendants of this process, except ``ignore`` and zombies."""
    out = []
    for child in psutil.Process().children(recursive=True):
        if child.pid in ignore:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.NoSuchProcess:
            continue
        out.append(child)
    return out


def _describe(p: psutil.Process) -> str:
    try:
        return f"pid {p.pid}: {' '.join(p.cmdline())[:120]}"
    except psutil.Error:
        return f"pid {p.pid}"


@dataclass
class LeakReport:
    """What is left over after waiting ``grace`` seconds for things to go away."""

    processes: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)

    @classmethod
    def collect(
        cls, known_pids: set[int], known_segments: set[str], grace: float = 5.0, clean: bool = False
    ) -> LeakReport:
        deadline = time.monotonic() + grace
        while True:
            procs = leftover_children(known_pids)
            segs = shm_segments() - known_segments
            if (not procs and not segs) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        report = cls([_describe(p) for p in procs], sorted(segs))
        if clean:
            for p in procs:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            for name in segs:
                try:
                    os.unlink(os.path.join(SHM_DIR, name))
                except OSError:
                    pass
        return report

    def __bool__(self) -> bool:
        return bool(self.processes or self.segments)

    def __str__(self) -> str:
        lines = []
        if self.processes:
            lines.append("processes left running:")
            lines.extend(f"  {p}" for p in self.processes)
        if self.segments:
            lines.append("shared-memory segments left in /dev/shm:")
            lines.extend(f"  {s}" for s in self.segments)
        return "\n".join(lines)
