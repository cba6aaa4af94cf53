"""The ``env_config`` dict handed to environment constructors, with where the env lives."""

from __future__ import annotations

from typing import Any

__all__ = ["EnvContext"]


class EnvContext(dict):
    """``env_config`` plus the index of the env runner and of the sub-environment.

    A plain dict to the environment's constructor (``config["size"]``), with
    ``worker_index`` (0 for the driver's own runner, 1..N for remote ones),
    ``num_workers``, ``vector_index`` (which of the runner's vectorized envs),
    ``remote`` and ``recreated_worker`` (True after a crashed runner was
    replaced) as attributes, so an environment can seed itself or pick a
    shard per runner.
    """

    def __init__(
        self,
        env_config: dict[str, Any] | None = None,
        worker_index: int = 0,
        vector_index: int = 0,
        remote: bool = False,
        num_workers: int = 0,
        recreated_worker: bool = False,
    ) -> None:
        super().__init__(env_config or {})
        self.worker_index = worker_index
        self.vector_index = vector_index
        self.remote = remote
        self.num_workers = num_workers
        self.recreated_worker = recreated_worker

    def copy_with_overrides(
        self,
        env_config: dict[str, Any] | None = None,
        worker_index: int | None = None,
        vector_index: int | None = None,
        remote: bool | None = None,
        num_workers: int | None = None,
        recreated_worker: bool | None = None,
    ) -> EnvContext:
        """A copy with some fields replaced."""
        return EnvContext(
            dict(self) if env_config is None else env_config,
            worker_index=self.worker_index if worker_index is None else worker_index,
            vector_index=self.vector_index if vector_index is None else vector_index,
            remote=self.remote if remote is None else remote,
            num_workers=self.num_workers if num_workers is None else num_workers,
            recreated_worker=self.recreated_worker if recreated_worker is None else recreated_worker,
        )

    def __reduce__(self) -> Any:
        return (
            EnvContext,
            (dict(self), self.worker_index, self.vector_index, self.remote, self.num_workers, self.recreated_worker),
        )

    def __repr__(self) -> str:
        return (
            f"EnvContext({dict(self)!r}, worker_index={self.worker_index}, vector_index={self.vector_index}, "
            f"remote={self.remote}, num_workers={self.num_workers})"
        )
