"""Piecewise-linear schedules over the number of sampled env steps (epsilon, learning rate)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

__all__ = ["PiecewiseSchedule", "make_schedule"]


class PiecewiseSchedule:
    """Linear interpolation between ``(timestep, value)`` points; flat before the first and after the last."""

    def __init__(self, points: Sequence[tuple[int, float]]) -> None:
        pts = [(int(t), float(v)) for t, v in points]
        if not pts:
            raise ValueError("a schedule needs at least one (timestep, value) point")
        if any(b[0] < a[0] for a, b in pairwise(pts)):
            raise ValueError(f"schedule timesteps must not decrease, got {points!r}")
        self.points = pts

    def value(self, t: float) -> float:
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (t0, v0), (t1, v1) in pairwise(pts):
            if t <= t1:
                if t1 == t0:
                    return v1
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        return pts[-1][1]

    __call__ = value


def make_schedule(spec: Any, name: str) -> PiecewiseSchedule:
    """A schedule from a number (constant) or a list of ``(timestep, value)`` pairs; ValueError names ``name``."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return PiecewiseSchedule([(0, float(spec))])
    try:
        points = [(t, v) for t, v in spec]
        return PiecewiseSchedule(points)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{name} must be a number or a list of (timestep, value) pairs such as [(0, 1.0), (10000, 0.05)], "
            f"got {spec!r}"
        ) from e
