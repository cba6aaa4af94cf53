"""The backend registry: entry-point discovery, unknown names, missing extras."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from shoal.backend import Backend, available_backends, load_backend
from shoal.backend.inline import InlineBackend
from shoal.exceptions import BackendNotFoundError, BackendUnavailableError


def _fake_distribution(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """A minimal installed distribution (dist-info with entry points) under ``root``."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("fake_backend")]:
        del sys.modules[mod]


def test_builtin_backends_are_registered() -> None:
    found = available_backends()
    assert {"inline", "local"} <= set(found)
    assert load_backend("inline") is InlineBackend


def test_third_party_backend_is_discovered(site: Path) -> None:
    _fake_distribution(
        site,
        "fake-backend-dist",
        """
        [shoal.backends]
        fake = fake_backend_mod:FakeBackend
        """,
        {
            "fake_backend_mod": "from shoal.backend.inline import InlineBackend\n"
            "class FakeBackend(InlineBackend):\n    name = 'fake'\n"
        },
    )
    assert "fake" in available_backends()
    cls = load_backend("fake")
    assert issubclass(cls, Backend) and cls.name == "fake"


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(BackendNotFoundError, match=r"unknown backend 'locl'.*did you mean 'local'\?"):
        load_backend("locl")


def test_unknown_name_without_a_close_match_lists_known() -> None:
    with pytest.raises(BackendNotFoundError, match=r"known: .*inline.*local") as info:
        load_backend("zzzzzz")
    assert "did you mean" not in str(info.value)


def test_known_backend_from_an_uninstalled_distribution_gives_install_hint() -> None:
    if "cloud" in available_backends():
        pytest.skip("shoal-autoscaler provides the cloud backend in this environment")
    with pytest.raises(BackendUnavailableError, match=r"pip install shoal-autoscaler"):
        load_backend("cloud")


def test_missing_extra_gives_install_hint(site: Path) -> None:
    _fake_distribution(
        site,
        "fake-backend-extra",
        """
        [shoal.backends]
        needs-extra = fake_backend_extra:Backend [gpu]
        """,
        {"fake_backend_extra": "import a_module_that_is_not_installed_anywhere\n"},
    )
    with pytest.raises(BackendUnavailableError, match=r"pip install 'fake-backend-extra\[gpu\]'") as info:
        load_backend("needs-extra")
    assert "a_module_that_is_not_installed_anywhere" in str(info.value)


def test_entry_point_that_is_not_a_backend_is_refused(site: Path) -> None:
    _fake_distribution(
        site,
        "fake-backend-bad",
        """
        [shoal.backends]
        notabackend = fake_backend_bad:thing
        """,
        {"fake_backend_bad": "thing = 42\n"},
    )
    with pytest.raises(BackendUnavailableError, match=r"not a shoal\.backend\.Backend subclass"):
        load_backend("notabackend")


def test_init_with_unknown_backend_is_a_clear_error() -> None:
    import shoal

    with pytest.raises(BackendNotFoundError, match="did you mean 'inline'"):
        shoal.init(backend="inlin")
    assert not shoal.is_initialized()
