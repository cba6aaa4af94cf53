"""The README's main job (examples/main.py) runs end to end and says what each step produced."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

MAIN = Path(__file__).resolve().parents[2] / "examples" / "main.py"


@pytest.mark.timeout(300)
def test_main_job_runs_core_data_tune_and_serve() -> None:
    proc = subprocess.run([sys.executable, str(MAIN)], capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "shoal started (local backend)" in out
    assert "core: 4 tasks summed the columns [199980000, 199990000, 200000000, 200010000]" in out
    assert "the actor's total is 799980000" in out
    assert "data: 20000 rows, columns ['x0', 'x1', 'y']" in out
    assert re.search(r"tune: 3 trials; best lr=[0-9.]+ loss=[0-9.]+", out), out
    served = re.search(r"serve: prediction for \(1, 2\) = (-?[0-9.]+) \(true value -0.500\)", out)
    assert served and abs(float(served.group(1)) + 0.5) < 0.2, out
