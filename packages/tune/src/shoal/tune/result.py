"""The outcome of one trial: :class:`Result`."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from shoal.tune.checkpoint import Checkpoint
from shoal.tune.search.variant_generator import flatten_dict

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Result"]


def _read_results(path: str) -> list[dict[str, Any]]:
    rows = []
    try:
        with open(os.path.join(path, "result.json")) as f:
            for line in f:
                line = line.strip()
                if line:
                    rows.append(json.loads(line))
    except FileNotFoundError:
        pass
    return rows


class Result:
    """A trial's last metrics, latest checkpoint, error (if it failed) and folder.

    ``metrics_dataframe`` (every reported result, flattened) is read from the
    trial's ``result.json`` when first used.
    """

    def __init__(
        self,
        metrics: dict[str, Any] | None,
        checkpoint: Checkpoint | None,
        error: BaseException | None,
        path: str,
        best_checkpoints: list[tuple[Checkpoint, dict[str, Any]]] | None = None,
        metrics_dataframe: pd.DataFrame | None = None,
    ) -> None:
        self.metrics = metrics or {}
        self.checkpoint = checkpoint
        self.error = error
        self.path = path
        self.filesystem = None
        self.best_checkpoints = best_checkpoints or []
        self._metrics_dataframe = metrics_dataframe

    @property
    def config(self) -> dict[str, Any] | None:
        """The trial's config."""
        config = self.metrics.get("config")
        return config if isinstance(config, dict) else None

    @property
    def metrics_dataframe(self) -> pd.DataFrame | None:
        """Every result the trial reported, one row each, nested keys joined by ``/``."""
        if self._metrics_dataframe is None:
            import pandas as pd

            rows = _read_results(self.path)
            if not rows:
                return None
            self._metrics_dataframe = pd.DataFrame([flatten_dict(r) for r in rows])
        return self._metrics_dataframe

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Result:
        """Rebuild a Result from a trial folder (its result.json, error.txt and checkpoints)."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise ValueError(f"{path!r} is not a trial folder")
        rows = _read_results(path)
        names = sorted(n for n in os.listdir(path) if n.startswith("checkpoint_"))
        by_name = {r.get("checkpoint_dir_name"): r for r in rows if r.get("checkpoint_dir_name")}
        best = [(Checkpoint(os.path.join(path, n)), by_name.get(n, {})) for n in names]
        error = None
        error_file = os.path.join(path, "error.txt")
        if os.path.exists(error_file):
            with open(error_file) as f:
                error = RuntimeError(f.read())
        metrics = dict(rows[-1]) if rows else {}
        return cls(metrics, best[-1][0] if best else None, error, path, best)

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.metrics.items() if k not in ("config",)}
        keys = list(shown)[:8]
        text = ", ".join(f"{k}={shown[k]!r}" for k in keys)
        more = ", ..." if len(shown) > 8 else ""
        return (
            f"Result(metrics={{{text}{more}}}, path={self.path!r}, "
            f"checkpoint={self.checkpoint!r}, error={self.error!r})"
        )
