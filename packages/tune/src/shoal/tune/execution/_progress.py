"""The live table of trials shown on a terminal while an experiment runs (silent otherwise)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from shoal.tune.experiment.trial import Trial

__all__ = ["TrialTable"]

_MAX_ROWS = 20
_STATUS_ORDER = (Trial.RUNNING, Trial.PAUSED, Trial.PENDING, Trial.TERMINATED, Trial.ERROR)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    text = str(value)
    return text if len(text) <= 14 else text[:13] + "…"


class TrialTable:
    """Redraws a status table in place every ``refresh_s`` seconds on a terminal."""

    def __init__(
        self,
        verbose: int,
        metric: str | None,
        out: TextIO | None = None,
        refresh_s: float = 1.0,
        force: bool = False,
    ) -> None:
        self._out = out if out is not None else sys.stdout
        is_tty = bool(getattr(self._out, "isatty", lambda: False)())
        self.enabled = verbose >= 1 and (is_tty or force)
        self.result_lines = verbose >= 2 and self.enabled
        self._metric = metric
        self._refresh_s = refresh_s
        self._last = 0.0
        self._drawn_lines = 0
        self._in_place = is_tty

    def render(self, trials: list[Trial], elapsed: float) -> str:
        counts = {s: 0 for s in _STATUS_ORDER}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        summary = " | ".join(f"{n} {s}" for s, n in counts.items() if n)
        lines = [
            f"Trial status: {summary}",
            f"Current time: {time.strftime('%Y-%m-%d %H:%M:%S')}. Total running time: {elapsed:.1f}s",
        ]
        params = sorted({k for t in trials for k in t.evaluated_params})[:4]
        header = ["Trial name", "status", *params, "iter"]
        if self._metric:
            header.append(self._metric)
        rows = []
        shown = sorted(trials, key=lambda t: _STATUS_ORDER.index(t.status))[:_MAX_ROWS]
        for t in shown:
            row = [str(t), t.status.lower(), *(_fmt(t.evaluated_params.get(p, "")) for p in params)]
            row.append(_fmt(t.last_result.get("training_iteration", "")))
            if self._metric:
                row.append(_fmt(t.last_result.get(self._metric, "")))
            rows.append(row)
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
        if len(trials) > len(shown):
            lines.append(f"... {len(trials) - len(shown)} more trials not shown")
        return "\n".join(lines)

    def maybe_draw(self, trials: list[Trial], elapsed: float, now: float, force: bool = False) -> None:
        if not self.enabled or (not force and now - self._last < self._refresh_s):
            return
        self._last = now
        text = self.render(trials, elapsed)
        if self._in_place and self._drawn_lines:
            # Move the cursor up over the previous table and clear to the end of the screen.
            self._out.write(f"\x1b[{self._drawn_lines}F\x1b[J")
        self._out.write(text + "\n")
        self._out.flush()
        self._drawn_lines = text.count("\n") + 1

    def result_line(self, trial: Trial, result: dict[str, Any]) -> None:
        if not self.result_lines:
            return
        metric = f" {self._metric}={_fmt(result.get(self._metric))}" if self._metric else ""
        self._drawn_lines = 0  # the table is redrawn below the line instead of over it
        self._out.write(f"Trial {trial} result: iter={result.get('training_iteration')}{metric}\n")

    def message(self, text: str) -> None:
        if self.enabled:
            self._drawn_lines = 0
            self._out.write(text + "\n")
            self._out.flush()
