"""Hooks that the driver calls while a run goes on: :class:`UserCallback`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoal.train.checkpoint import Checkpoint
    from shoal.train.context import TrainRunContext

__all__ = ["UserCallback"]


class UserCallback:
    """Subclass and pass in ``RunConfig(callbacks=[...])``; runs in the driver process."""

    def after_report(
        self,
        run_context: TrainRunContext,
        metrics: list[dict[str, Any]],
        checkpoint: Checkpoint | None,
    ) -> None:
        """Called once every worker has reported: ``metrics[rank]`` is what that rank reported,
        ``checkpoint`` the persisted checkpoint (if any rank gave one)."""

    def after_exception(self, run_context: TrainRunContext, worker_exceptions: dict[int, Exception]) -> None:
        """Called when the worker group fails: ``worker_exceptions`` maps world rank to its error."""
