"""Placement groups: gang reservations of resource bundles (Ray's API)."""

from __future__ import annotations

import numbers
from typing import Any

from shoal.backend.specs import PlacementGroupSpec
from shoal.exceptions import GetTimeoutError

__all__ = [
    "PlacementGroup",
    "PlacementGroupID",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]

_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class PlacementGroupID:
    """The id of a placement group."""

    __slots__ = ("_id",)

    def __init__(self, pg_id: bytes) -> None:
        self._id = pg_id

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self.hex()})"


class PlacementGroup:
    """A handle to a placement group; picklable into tasks and actors."""

    def __init__(self, pg_id: PlacementGroupID, bundle_specs: list[dict[str, float]]) -> None:
        self.id = pg_id
        self.bundle_specs = bundle_specs

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> Any:
        """An ObjectRef that resolves once every bundle is reserved."""
        from shoal import _session

        return _session.backend().placement_group_ready(self.id.binary())

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Wait until the group is ready; False if it is not within the timeout."""
        from shoal import _session

        ref = self.ready()
        try:
            _session.backend().get([ref], timeout=timeout_seconds)
        except GetTimeoutError:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()}, bundles={self.bundle_specs})"


def _check_bundles(bundles: Any) -> list[dict[str, float]]:
    if not isinstance(bundles, (list, tuple)) or not bundles:
        raise ValueError("placement_group needs a non-empty list of bundles (dicts of resource amounts)")
    out = []
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, dict) or not bundle:
            raise ValueError(f"bundle {i} must be a non-empty dict of resource amounts, got {bundle!r}")
        clean: dict[str, float] = {}
        for key, amount in bundle.items():
            if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or amount < 0:
                raise ValueError(f"bundle {i}: resource {key!r} needs a number >= 0, got {amount!r}")
            if amount:
                clean[str(key)] = float(amount)
        if not clean:
            raise ValueError(f"bundle {i} asks for nothing: every resource in {bundle!r} is 0")
        out.append(clean)
    return out


def placement_group(
    bundles: list[dict[str, float]],
    strategy: str = "PACK",
    name: str = "",
    lifetime: str | None = None,
    **_ignored: Any,
) -> PlacementGroup:
    """Reserve ``bundles`` with ``strategy`` (PACK, SPREAD, STRICT_PACK, STRICT_SPREAD)."""
    from shoal import _session

    clean = _check_bundles(bundles)
    if strategy not in _STRATEGIES:
        raise ValueError(f"placement group strategy must be one of {', '.join(_STRATEGIES)}, got {strategy!r}")
    if lifetime not in (None, "detached"):
        raise ValueError(f"placement group lifetime must be None or 'detached', got {lifetime!r}")
    if not isinstance(name, str):
        raise ValueError(f"placement group name must be a string, got {name!r}")
    spec = PlacementGroupSpec(bundles=clean, strategy=strategy, name=name, lifetime=lifetime)  # type: ignore[arg-type]
    pg_id = _session.backend().create_placement_group(spec)
    return PlacementGroup(PlacementGroupID(pg_id), clean)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Release the group; tasks and actors in it are killed."""
    from shoal import _session

    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group expects a PlacementGroup, got {placement_group!r}")
    _session.backend().remove_placement_group(placement_group.id.binary())


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live placement group with this name; ValueError if none."""
    from shoal import _session

    for hex_id, info in _session.backend().placement_group_table(None).items():
        if info.get("name") == placement_group_name and info.get("state") != "REMOVED":
            return PlacementGroup(PlacementGroupID(bytes.fromhex(hex_id)), info["bundles_list"])
    raise ValueError(f"no placement group named {placement_group_name!r}")


def get_current_placement_group() -> PlacementGroup | None:
    """The group the calling task or actor runs in, if it captures child tasks; else None."""
    from shoal import _session

    info = _session.backend().runtime_info()
    if info.placement_group_id is None:
        return None
    table = _session.backend().placement_group_table(bytes.fromhex(info.placement_group_id))
    return PlacementGroup(PlacementGroupID(bytes.fromhex(info.placement_group_id)), table["bundles_list"])


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[str, Any]:
    """State of one group (or all, keyed by hex id)."""
    from shoal import _session

    pg_id = None if placement_group is None else placement_group.id.binary()
    return _session.backend().placement_group_table(pg_id)
