"""Progress bars, one line per operator, on a terminal only.

Drawn on stderr when it is a terminal and ``DataContext.enable_progress_bars``
is set; otherwise every call is a no-op. Redraws are throttled.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

__all__ = ["ProgressBars"]

_INTERVAL = 0.1


def _bar(done: int, total: int | None, width: int) -> str:
    if not total:
        return ""
    frac = min(1.0, done / total)
    filled = int(frac * width)
    return "[" + "#" * filled + "-" * (width - filled) + "] "


class ProgressBars:
    """A block of lines, redrawn in place: ``name [###---] done/total blocks, rows``."""

    def __init__(self, names: list[str], enabled: bool, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        isatty = getattr(self._stream, "isatty", None)
        self.enabled = bool(enabled and isatty is not None and isatty())
        self._names = names
        self._drawn = 0
        self._last = 0.0

    def update(self, states: list[tuple[int, int | None, int]], force: bool = False) -> None:
        """Redraw with (blocks done, blocks expected or None, rows) per operator."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < _INTERVAL:
            return
        self._last = now
        width = shutil.get_terminal_size((100, 20)).columns
        lines = []
        for name, (done, total, rows) in zip(self._names, states, strict=True):
            count = f"{done}/{total}" if total is not None else f"{done}"
            text = f"{name}: {_bar(done, total, 20)}{count} blocks, {rows:,} rows"
            lines.append(text[: width - 1])
        out: list[str] = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F")
        for line in lines:
            out.append("\x1b[2K" + line + "\n")
        self._stream.write("".join(out))
        self._stream.flush()
        self._drawn = len(lines)

    def close(self, states: Any = None) -> None:
        if self.enabled and states is not None:
            self.update(states, force=True)
