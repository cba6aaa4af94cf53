"""The test matrix: lint, each package's tests (by backend), integration, packaging, benchmarks.

nox -l                      list sessions
nox                         what CI runs: lint, tests, integration, packaging
nox -s "tests(package='core', backend='inline')"
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = ["core", "data", "train", "tune", "serve", "rl", "autoscaler"]
# Extras each package's tests need (beyond its own dependencies).
TEST_EXTRAS = {
    "core": "",
    "data": "[pandas,test]",
    "train": "[torch,data,xgboost]",
    "tune": "[hyperopt,cmaes]",
    "serve": "[test]",
    "rl": "",
    "autoscaler": "[aws,test]",
}
# Sibling packages a package's tests use.
TEST_SIBLINGS = {"train": ["data", "tune"], "rl": ["tune"]}
NEEDS_TORCH = {"train", "rl", "data", "tune"}  # data: iter_torch_batches; tune: optuna GP sampler
# Backends each package's tests run on; "local" is the default runtime.
BACKENDS = {"core": ["inline", "local", "cluster"]}
DIST = ROOT / "dist"

nox.options.sessions = ["lint", "tests", "integration", "packaging"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


def _install_package(session: nox.Session, package: str, extras: str = "") -> None:
    if package in NEEDS_TORCH:
        session.install("-r", "requirements/torch.txt")
    session.install("-r", "requirements/test.txt")
    pkgs = ["-e", "packages/core"]
    for sibling in TEST_SIBLINGS.get(package, []):
        pkgs += ["-e", f"packages/{sibling}{TEST_EXTRAS.get(sibling, '')}"]
    if package != "core":
        pkgs += ["-e", f"packages/{package}{extras}"]
    session.install(*pkgs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff, formatting, the import contracts, and mypy on core."""
    session.install("-r", "requirements/lint.txt")
    session.install("-e", "packages/core", *[x for p in PACKAGES[1:] for x in ("-e", f"packages/{p}")], "--no-deps")
    session.install("cloudpickle", "numpy", "psutil", "pytest", "grpcio", "protobuf")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "tools/lint_imports.py")
    session.run("mypy")


def _matrix() -> list[tuple[str, str]]:
    return [(p, b) for p in PACKAGES for b in BACKENDS.get(p, ["local"])]


@nox.session(python="3.11")
@nox.parametrize(("package", "backend"), _matrix(), ids=[f"{p}-{b}" for p, b in _matrix()])
def tests(session: nox.Session, package: str, backend: str) -> None:
    """One package's tests on one backend, in a venv holding only what it needs."""
    _install_package(session, package, TEST_EXTRAS[package])
    session.run(
        "pytest",
        f"packages/{package}/tests",
        f"--shoal-backend={backend}",
        *session.posargs,
    )


@nox.session(python="3.11")
def integration(session: nox.Session) -> None:
    """Cross-package and end-to-end tests (tests/integration), with every package installed."""
    session.install("-r", "requirements/torch.txt", "-r", "requirements/test.txt")
    session.install(*[x for p in PACKAGES for x in ("-e", f"packages/{p}{TEST_EXTRAS[p]}")])
    session.run("pytest", "tests/integration", *session.posargs)


@nox.session(python="3.11")
def packaging(session: nox.Session) -> None:
    """Build every wheel and check, in fresh venvs, that each installs and imports on its own."""
    if DIST.exists():
        shutil.rmtree(DIST)
    session.install("build", "-r", "requirements/test.txt")
    for package in PACKAGES:
        session.run("python", "-m", "build", "--wheel", "--outdir", str(DIST), f"packages/{package}", silent=True)
    env = {"SHOAL_PACKAGING_DIST": str(DIST)}
    # No conftest: this venv deliberately holds no shoal package (the tests build their own venvs).
    session.run("pytest", "--noconftest", "tests/packaging", *session.posargs, env=env)


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Benchmarks; give a Ray interpreter with --ray-python=PATH to compare side by side."""
    session.install("-r", "requirements/torch.txt")
    session.install(*[x for p in PACKAGES for x in ("-e", f"packages/{p}{TEST_EXTRAS[p]}")])
    args = session.posargs or []
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if script.name.startswith("_"):
            continue
        session.run("python", str(script), *args, env={"PYTHONPATH": str(ROOT / "benchmarks")})


@nox.session(python="3.11")
def proto(session: nox.Session) -> None:
    """Regenerate the committed gRPC/protobuf code from packages/core/src/shoal/_cluster/proto/*.proto."""
    session.install("grpcio-tools==1.85.1")
    session.run(
        "python",
        "-m",
        "grpc_tools.protoc",
        "-Ipackages/core/src",
        "--python_out=packages/core/src",
        "--grpc_python_out=packages/core/src",
        "--pyi_out=packages/core/src",
        "packages/core/src/shoal/_cluster/proto/cluster.proto",
    )
