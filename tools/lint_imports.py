"""Run import-linter over the whole `shoal` namespace.

The namespace is spread over seven source trees (one per distribution), and
import-linter reads one package directory. This builds a merged view of the
trees out of symbolic links in a temporary folder and runs ``lint-imports``
against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def merged_view(target: Path) -> Path:
    shoal = target / "shoal"
    shoal.mkdir()
    for entry in (ROOT / "packages" / "core" / "src" / "shoal").iterdir():
        (shoal / entry.name).symlink_to(entry)
    for package in sorted((ROOT / "packages").iterdir()):
        sub = package / "src" / "shoal" / package.name
        if package.name != "core" and sub.is_dir():
            (shoal / package.name).symlink_to(sub)
    return target


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        view = merged_view(Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(view)}
        exe = Path(sys.executable).with_name("lint-imports")
        cmd = [str(exe) if exe.exists() else "lint-imports", "--config", str(ROOT / "pyproject.toml")]
        return subprocess.call(cmd, env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
