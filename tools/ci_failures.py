"""Reprint what each failed nox session said, so the end of a CI log names the failure.

CI keeps only the tail of its output; a session that fails early in a long run
would otherwise scroll out of sight. Usage: ``python tools/ci_failures.py LOG``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_START = re.compile(r"^nox > Running session (\S+)")
_FAILED = re.compile(r"^nox > \* (\S+): failed")
_SUMMARY = re.compile(r"^nox > Ran \d+ sessions?")
# Lines worth keeping from a failed session besides its tail.
_KEY = re.compile(r"(^FAILED |^ERROR |Timeout|^E\s{3}|Error:|^_{5,} .* _{5,}$)")
_TAIL = 40
_MAX_KEY_LINES = 80


def _sessions(lines: list[str]) -> dict[str, list[str]]:
    """Each session's output lines, by session name."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        match = _START.match(line)
        if match:
            current = out.setdefault(match.group(1), [])
        elif _SUMMARY.match(line):
            current = None
        elif current is not None:
            current.append(line)
    return out


def main(path: str) -> int:
    lines = Path(path).read_text(errors="replace").splitlines()
    failed = [m.group(1) for line in lines if (m := _FAILED.match(line))]
    if not failed:
        return 0
    sessions = _sessions(lines)
    for name in failed:
        body = sessions.get(name, [])
        print(f"\n======== failed session {name}: key lines ========")
        for line in [x for x in body if _KEY.search(x)][:_MAX_KEY_LINES]:
            print(line[:300])
        print(f"-------- failed session {name}: last {_TAIL} lines --------")
        for line in body[-_TAIL:]:
            print(line[:300])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
