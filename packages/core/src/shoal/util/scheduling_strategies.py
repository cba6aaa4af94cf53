"""Scheduling strategies accepted by the ``scheduling_strategy`` option (Ray's names)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoal.util.placement_group import PlacementGroup

__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]


class PlacementGroupSchedulingStrategy:
    """Run in a bundle of a placement group (``-1``: any bundle of it).

    With ``placement_group_capture_child_tasks``, tasks and actors that this
    work starts run in the same group unless they say otherwise.
    """

    def __init__(
        self,
        placement_group: PlacementGroup,
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: bool | None = None,
    ) -> None:
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def __repr__(self) -> str:
        return (
            f"PlacementGroupSchedulingStrategy({self.placement_group!r}, "
            f"bundle_index={self.placement_group_bundle_index})"
        )


class NodeAffinitySchedulingStrategy:
    """Run on the node with ``node_id``; with ``soft=True`` elsewhere if it cannot."""

    def __init__(
        self,
        node_id: str,
        soft: bool,
        _spill_on_unavailable: bool = False,
        _fail_on_unavailable: bool = False,
    ) -> None:
        if not isinstance(node_id, str):
            raise ValueError(f"node_id must be a hex string, got {node_id!r}")
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"
