"""The request-based autoscaling policy: load samples in, a replica count out (no I/O)."""

from __future__ import annotations

import collections
import math

from shoal.serve.config import AutoscalingConfig

__all__ = ["AutoscalingPolicy"]


class AutoscalingPolicy:
    """Decides a deployment's replica count from the requests in flight and queued.

    ``record(now, total)`` adds a sample; ``decide(now, current)`` returns
    the count to run: the average load over ``look_back_period_s`` divided
    by ``target_ongoing_requests``, damped by the up/down scaling factors,
    clamped to ``[min_replicas, max_replicas]``, and applied only once the
    same direction has been wanted for the upscale or downscale delay.
    """

    def __init__(self, config: AutoscalingConfig) -> None:
        self.config = config
        self._samples: collections.deque[tuple[float, float]] = collections.deque()
        self._up_since: float | None = None
        self._down_since: float | None = None

    def record(self, now: float, total_requests: float) -> None:
        self._samples.append((now, total_requests))
        horizon = now - self.config.look_back_period_s
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()

    def average(self) -> float | None:
        if not self._samples:
            return None
        return sum(v for _, v in self._samples) / len(self._samples)

    def desired(self, current: int) -> int:
        """The count the load asks for now, before delays."""
        cfg = self.config
        avg = self.average()
        if avg is None:
            return current
        if current == 0:
            wanted = 1 if avg > 0 else 0
        else:
            ratio = avg / (cfg.target_ongoing_requests * current)
            factor = cfg.get_upscaling_factor() if ratio > 1 else cfg.get_downscaling_factor()
            wanted = math.ceil(current * (1 + (ratio - 1) * factor))
        return max(cfg.min_replicas, min(cfg.max_replicas, wanted))

    def decide(self, now: float, current: int) -> int:
        cfg = self.config
        wanted = self.desired(current)
        if wanted > current:
            self._down_since = None
            if self._up_since is None:
                self._up_since = now
            if now - self._up_since >= cfg.upscale_delay_s:
                self._up_since = None
                return wanted
        elif wanted < current:
            self._up_since = None
            if self._down_since is None:
                self._down_since = now
            delay = cfg.downscale_delay_s
            if wanted == 0 and cfg.downscale_to_zero_delay_s is not None:
                delay = cfg.downscale_to_zero_delay_s
            if now - self._down_since >= delay:
                self._down_since = None
                return wanted
        else:
            self._up_since = None
            self._down_since = None
        return current
