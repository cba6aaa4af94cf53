"""Each wheel installs on its own with only its own dependencies; only core owns shoal/__init__.py."""

from __future__ import annotations

import json
import os
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

DIST = Path(os.environ.get("SHOAL_PACKAGING_DIST", Path(__file__).parents[2] / "dist"))
ROOT = Path(__file__).parents[2]
LIBS = ["data", "train", "tune", "serve", "rl", "autoscaler"]

# For each distribution: what it must bring, and what it must not.
EXPECT = {
    "core": (
        {"shoal-core", "cloudpickle", "grpcio", "protobuf", "numpy", "psutil"},
        {"torch", "pyarrow", "starlette"},
    ),
    "data": ({"shoal-core", "pyarrow", "numpy"}, {"torch", "starlette", "optuna"}),
    "train": ({"shoal-core", "pyarrow"}, {"torch", "starlette", "optuna", "xgboost"}),
    "tune": ({"shoal-core", "optuna"}, {"torch", "pyarrow", "starlette"}),
    "serve": ({"shoal-core", "starlette", "uvicorn"}, {"torch", "pyarrow", "optuna"}),
    "rl": ({"shoal-core", "torch", "gymnasium"}, {"pyarrow", "starlette", "optuna"}),
    "autoscaler": ({"shoal-core"}, {"torch", "pyarrow", "starlette", "boto3"}),
}

pytestmark = pytest.mark.skipif(not DIST.is_dir(), reason="run through `nox -s packaging`, which builds dist/")


def _wheel(name: str) -> Path:
    found = sorted(DIST.glob(f"shoal_{name}-*.whl"))
    assert found, f"no wheel for shoal-{name} in {DIST}"
    return found[-1]


def test_only_core_ships_the_namespace_init() -> None:
    core = zipfile.ZipFile(_wheel("core")).namelist()
    assert "shoal/__init__.py" in core
    for lib in LIBS:
        names = zipfile.ZipFile(_wheel(lib)).namelist()
        assert "shoal/__init__.py" not in names, lib
        assert f"shoal/{lib}/__init__.py" in names, lib
        stray = [n for n in names if n.startswith("shoal/") and not n.startswith(f"shoal/{lib}/")]
        assert not stray, f"shoal-{lib} ships files outside shoal/{lib}/: {stray}"


def _fresh_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(path)
    return path / "bin" / "python"


def _installed(python: Path) -> set[str]:
    out = subprocess.run(
        [
            str(python),
            "-c",
            "import json, importlib.metadata as m; "
            "print(json.dumps(sorted({d.metadata['Name'].lower() for d in m.distributions()})))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(json.loads(out))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["core", *LIBS])
def test_installs_alone_with_only_its_dependencies(name: str, tmp_path: Path) -> None:
    python = _fresh_venv(tmp_path / "venv")
    pip = [str(python), "-m", "pip", "install", "-q", "--find-links", str(DIST)]
    if "torch" in EXPECT[name][0]:
        # The CPU build from this machine's disk; a bare range would pull a CUDA build.
        subprocess.run([*pip, "-r", str(ROOT / "requirements" / "torch.txt")], check=True)
    subprocess.run([*pip, f"shoal-{name}"], check=True)
    installed = _installed(python)
    must, must_not = EXPECT[name]
    assert must <= installed, f"shoal-{name} did not bring {must - installed}"
    assert not (must_not & installed), f"shoal-{name} brought {must_not & installed}"
    module = "shoal" if name == "core" else f"shoal.{name}"
    code = f"import sys, shoal; assert 'shoal.serve' not in sys.modules; import {module}; print({module}.__version__)"
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "0.1.0"
    out = subprocess.run([str(python), "-m", "shoal.cli", "--version"], check=True, capture_output=True, text=True)
    assert out.stdout.startswith("shoal ")
