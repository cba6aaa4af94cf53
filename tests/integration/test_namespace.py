"""Editable installs of all seven distributions share one `shoal` namespace."""

from __future__ import annotations

import importlib
import subprocess
import sys

LIBS = ["data", "train", "tune", "serve", "rl", "autoscaler"]


def test_every_library_imports_under_one_namespace() -> None:
    import shoal

    for lib in LIBS:
        module = importlib.import_module(f"shoal.{lib}")
        assert module.__version__ == "0.1.0"
    assert len(shoal.__path__) >= 7


def test_import_shoal_is_cheap_and_imports_no_library() -> None:
    code = (
        "import sys, shoal\n"
        "libs = [m for m in sys.modules if m.split('.')[:2] in "
        "[['shoal', x] for x in ('data','train','tune','serve','rl','autoscaler')]]\n"
        "assert not libs, libs\n"
        "heavy = [m for m in ('numpy', 'cloudpickle', 'grpc', 'torch', 'pyarrow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
