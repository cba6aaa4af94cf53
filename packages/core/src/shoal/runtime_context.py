"""Where the calling code runs: :func:`get_runtime_context`."""

from __future__ import annotations

from typing import Any

from shoal.backend.base import RuntimeInfo

__all__ = ["RuntimeContext", "get_runtime_context"]


class RuntimeContext:
    """Ids of the current job, node, worker, task and actor, and the resources assigned."""

    def __init__(self, info: RuntimeInfo) -> None:
        self._info = info

    def get_job_id(self) -> str:
        return self._info.job_id

    def get_node_id(self) -> str:
        return self._info.node_id

    def get_worker_id(self) -> str:
        return self._info.worker_id

    def get_task_id(self) -> str | None:
        """The current task's id; None in the driver."""
        return self._info.task_id

    def get_task_name(self) -> str | None:
        return self._info.task_name

    def get_actor_id(self) -> str | None:
        """The current actor's id; None outside actors."""
        return self._info.actor_id

    def get_actor_name(self) -> str | None:
        return self._info.actor_name

    @property
    def namespace(self) -> str:
        return self._info.namespace

    def get_assigned_resources(self) -> dict[str, float]:
        """Resources held by the current task or actor."""
        return dict(self._info.assigned_resources)

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        return {"GPU": [str(i) for i in self._info.gpu_ids]}

    def get_placement_group_id(self) -> str | None:
        return self._info.placement_group_id

    @property
    def should_capture_child_tasks_in_placement_group(self) -> bool:
        """Whether tasks and actors started here land in the current placement group by default."""
        return self._info.capture_child_tasks

    @property
    def was_current_actor_reconstructed(self) -> bool:
        """True in an actor that has been restarted after a failure."""
        return self._info.was_restarted

    @property
    def current_actor(self) -> Any:
        """The handle of the current actor."""
        from shoal import _session
        from shoal.actor import ActorHandle

        if self._info.actor_id is None:
            raise RuntimeError("current_actor is only available inside an actor")
        return ActorHandle(_session.backend().actor_info(bytes.fromhex(self._info.actor_id)))

    @property
    def runtime_env(self) -> dict[str, Any]:
        return dict(self._info.runtime_env)

    def get(self) -> dict[str, Any]:
        """All of the above as a dict."""
        return {
            "job_id": self._info.job_id,
            "node_id": self._info.node_id,
            "task_id": self._info.task_id,
            "actor_id": self._info.actor_id,
            "namespace": self._info.namespace,
        }


def get_runtime_context() -> RuntimeContext:
    """The :class:`RuntimeContext` of the calling code."""
    from shoal import _session

    return RuntimeContext(_session.backend().runtime_info())
