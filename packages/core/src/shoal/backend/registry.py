"""Backends by name, fed by the ``shoal.backends`` entry-point group.

A third party adds a backend by declaring, in its package metadata::

    [project.entry-points."shoal.backends"]
    mine = "my_package.backend:MyBackend"

Unknown names get a "did you mean" answer; names that another shoal
distribution provides get the command that installs it.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from shoal.exceptions import BackendNotFoundError, BackendUnavailableError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from shoal.backend.base import Backend

__all__ = ["ENTRY_POINT_GROUP", "INSTALL_HINTS", "available_backends", "load_backend"]

ENTRY_POINT_GROUP = "shoal.backends"

#: Backends that ship in other distributions, and how to get them.
INSTALL_HINTS: dict[str, str] = {
    "cloud": "pip install shoal-autoscaler",
}


def available_backends() -> dict[str, EntryPoint]:
    """Every installed backend's entry point, by name."""
    # Imported here: importlib.metadata costs every worker process ~3 MB and 20 ms otherwise.
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_backend(name: str) -> type[Backend]:
    """The backend class registered as ``name``.

    Raises BackendNotFoundError for an unknown name and BackendUnavailableError
    when the backend is known but its package or extra is not installed.
    """
    from shoal.backend.base import Backend

    found = available_backends()
    ep = found.get(name)
    if ep is None:
        if name in INSTALL_HINTS:
            raise BackendUnavailableError(
                f"the {name!r} backend is not installed; to use it run: {INSTALL_HINTS[name]}"
            )
        choices = sorted(set(found) | set(INSTALL_HINTS))
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BackendNotFoundError(f"unknown backend {name!r} (known: {', '.join(choices)}){hint}")
    try:
        cls = ep.load()
    except ImportError as e:
        dist = ep.dist.name if ep.dist is not None else "its package"
        extras = f"[{','.join(ep.extras)}]" if ep.extras else ""
        hint = INSTALL_HINTS.get(name, f"pip install '{dist}{extras}'")
        raise BackendUnavailableError(
            f"the {name!r} backend could not be loaded ({e}); to install what it needs run: {hint}"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BackendUnavailableError(
            f"entry point {ep.value!r} for backend {name!r} is not a shoal.backend.Backend subclass"
        )
    return cls
