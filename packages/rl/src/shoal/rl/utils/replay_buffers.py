"""Replay buffers for off-policy algorithms: uniform and proportional prioritized.

Both store flat transitions column by column in preallocated numpy arrays
(a ring of ``capacity`` rows) and sample with a seeded numpy generator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PrioritizedReplayBuffer", "ReplayBuffer", "make_replay_buffer"]


class ReplayBuffer:
    """A ring buffer of transitions sampled uniformly with replacement."""

    def __init__(self, capacity: int = 50_000, seed: int | None = None) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"replay buffer capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        self._columns: dict[str, np.ndarray] = {}
        self._next = 0
        self._size = 0
        self.num_added_lifetime = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self._size

    def add(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Append the rows of ``batch`` (columns of equal length); returns their slots."""
        n = len(next(iter(batch.values())))
        if not self._columns:
            for k, v in batch.items():
                self._columns[k] = np.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype)
        slots = (self._next + np.arange(n)) % self.capacity
        if n > self.capacity:
            # Only the newest `capacity` rows survive; writing the rest would fight over slots.
            batch = {k: v[-self.capacity :] for k, v in batch.items()}
            slots = slots[-self.capacity :]
        for k, v in batch.items():
            self._columns[k][slots] = v
        self._next = (self._next + n) % self.capacity
        self._size = min(self.capacity, self._size + n)
        self.num_added_lifetime += n
        return slots

    def _take(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[idx] for k, v in self._columns.items()}

    def sample(self, batch_size: int, **kwargs: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``batch_size`` rows and their slots; importance weights are all 1."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self._size, size=batch_size)
        batch = self._take(idx)
        batch["weights"] = np.ones(batch_size, dtype=np.float32)
        return batch, idx

    def update_priorities(self, idx: np.ndarray, td_errors: np.ndarray) -> None:
        """No-op: uniform sampling keeps no priorities."""

    def get_state(self) -> dict[str, Any]:
        return {
            "columns": {k: v[: self._size].copy() for k, v in self._columns.items()},
            "next": self._next,
            "size": self._size,
            "num_added_lifetime": self.num_added_lifetime,
            "rng": self.rng.bit_generator.state,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._columns = {}
        for k, v in state["columns"].items():
            self._columns[k] = np.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype)
            self._columns[k][: len(v)] = v
        self._next = state["next"]
        self._size = state["size"]
        self.num_added_lifetime = state["num_added_lifetime"]
        self.rng.bit_generator.state = state["rng"]


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay: row ``i`` is drawn with probability ``p_i^alpha / sum p^alpha``.

    New rows get the highest priority seen so far; ``update_priorities``
    sets ``|td_error| + eps``. Importance weights ``(N * P(i)) ** -beta``
    are normalized by their largest possible value.
    """

    def __init__(
        self, capacity: int = 50_000, alpha: float = 0.6, beta: float = 0.4, eps: float = 1e-6, seed: int | None = None
    ) -> None:
        super().__init__(capacity, seed)
        if alpha < 0:
            raise ValueError(f"prioritized replay alpha must be >= 0, got {alpha!r}")
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self._leaves = 1
        while self._leaves < capacity:
            self._leaves *= 2
        self._sum = np.zeros(2 * self._leaves, dtype=np.float64)
        self._min = np.full(2 * self._leaves, np.inf, dtype=np.float64)
        self._max_priority = 1.0

    def _set(self, slots: np.ndarray, priorities: np.ndarray) -> None:
        nodes = slots + self._leaves
        self._sum[nodes] = priorities
        self._min[nodes] = priorities
        nodes = np.unique(nodes // 2)
        while nodes.size and nodes[0] >= 1:
            self._sum[nodes] = self._sum[2 * nodes] + self._sum[2 * nodes + 1]
            self._min[nodes] = np.minimum(self._min[2 * nodes], self._min[2 * nodes + 1])
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes // 2)

    def add(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        slots = super().add(batch)
        self._set(np.unique(slots), np.full(len(np.unique(slots)), self._max_priority**self.alpha))
        return slots

    def sample(
        self, batch_size: int, beta: float | None = None, **kwargs: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        beta = self.beta if beta is None else beta
        total = self._sum[1]
        # Stratified: one uniform draw in each of batch_size equal slices of the total mass.
        u = (np.arange(batch_size) + self.rng.random(batch_size)) * (total / batch_size)
        node = np.ones(batch_size, dtype=np.int64)
        while node[0] < self._leaves:
            left = 2 * node
            go_right = u > self._sum[left]
            u = np.where(go_right, u - self._sum[left], u)
            node = left + go_right
        idx = np.minimum(node - self._leaves, self._size - 1)
        probs = self._sum[idx + self._leaves] / total
        min_prob = self._min[1] / total
        weights = (probs * self._size) ** (-beta) / (min_prob * self._size) ** (-beta)
        batch = self._take(idx)
        batch["weights"] = weights.astype(np.float32)
        return batch, idx

    def update_priorities(self, idx: np.ndarray, td_errors: np.ndarray) -> None:
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        # Keep one priority per slot (the last) when a slot was drawn twice.
        uniq, last = np.unique(idx[::-1], return_index=True)
        pr = priorities[::-1][last]
        self._max_priority = max(self._max_priority, float(pr.max()))
        self._set(uniq, pr**self.alpha)

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state.update(sum=self._sum.copy(), min=self._min.copy(), max_priority=self._max_priority)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._sum = state["sum"].copy()
        self._min = state["min"].copy()
        self._max_priority = state["max_priority"]


_TYPES = {
    "ReplayBuffer": ReplayBuffer,
    "EpisodeReplayBuffer": ReplayBuffer,
    "PrioritizedReplayBuffer": PrioritizedReplayBuffer,
    "PrioritizedEpisodeReplayBuffer": PrioritizedReplayBuffer,
}


def make_replay_buffer(config: dict[str, Any], seed: int | None = None) -> ReplayBuffer:
    """Build the buffer named by ``config["type"]`` (a name or a class) with the other keys as arguments."""
    cfg = dict(config)
    kind = cfg.pop("type", "PrioritizedEpisodeReplayBuffer")
    cls = _TYPES.get(kind) if isinstance(kind, str) else kind
    if cls is None or not (isinstance(cls, type) and issubclass(cls, ReplayBuffer)):
        raise ValueError(
            f"replay_buffer_config['type'] must be one of {sorted(_TYPES)} or a ReplayBuffer subclass, got {kind!r}"
        )
    priority_keys = {"alpha", "beta", "eps"}
    unknown = sorted(set(cfg) - {"capacity"} - priority_keys)
    if unknown:
        raise ValueError(
            f"replay_buffer_config has unknown keys {unknown}; known: ['alpha', 'beta', 'capacity', 'eps', 'type']"
        )
    if not issubclass(cls, PrioritizedReplayBuffer):
        # Configs are merged over the prioritized default, so its keys may linger: uniform buffers ignore them.
        cfg = {k: v for k, v in cfg.items() if k not in priority_keys}
    return cls(seed=seed, **cfg)
