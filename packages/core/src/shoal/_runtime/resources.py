"""Resource accounting of one node: totals, what is free, GPU ids, placement-group bundles."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Bundle", "Grant", "NodeResources"]

_EPS = 1e-9


@dataclass
class Grant:
    """What one task or actor holds: amounts, GPU ids, and the bundle they came from."""

    amounts: dict[str, float]
    gpu_ids: list[int] = field(default_factory=list)
    bundle: Bundle | None = None
    lent_cpu: float = 0.0  # CPU given back while the holder is blocked in get/wait


@dataclass
class Bundle:
    """A reserved placement-group bundle: its own little pool."""

    total: dict[str, float]
    free: dict[str, float]
    gpu_ids: list[int] = field(default_factory=list)


class NodeResources:
    """Totals and free amounts; the caller holds the runtime lock."""

    def __init__(self, total: dict[str, float]) -> None:
        self.total = dict(total)
        self.free = dict(total)
        n_gpus = int(total.get("GPU", 0))
        self._gpu_free: dict[int, float] = {i: 1.0 for i in range(n_gpus)}

    @staticmethod
    def _fits(pool: dict[str, float], need: dict[str, float]) -> bool:
        for k, v in need.items():
            if v > 0 and pool.get(k, 0.0) + _EPS < v:
                return False
        return True

    def feasible(self, need: dict[str, float]) -> bool:
        """Could ``need`` ever fit on this node?"""
        return self._fits(self.total, need)

    def fits(self, need: dict[str, float], bundle: Bundle | None = None) -> bool:
        return self._fits(bundle.free if bundle is not None else self.free, need)

    def how_many_fit(self, need: dict[str, float], bundle: Bundle | None = None, cap: int = 1 << 30) -> int:
        """How many tasks needing ``need`` could start at once (at most ``cap``)."""
        pool = bundle.free if bundle is not None else self.free
        count = cap
        for k, v in need.items():
            if v > 0:
                count = min(count, int((pool.get(k, 0.0) + _EPS) // v))
        return count

    def _take_gpus(self, amount: float, pool: dict[int, float]) -> list[int]:
        if amount <= 0:
            return []
        ids: list[int] = []
        if amount < 1:
            for i, free in sorted(pool.items()):
                if free + _EPS >= amount:
                    pool[i] = free - amount
                    return [i]
            return []
        whole = [i for i, free in sorted(pool.items()) if free >= 1 - _EPS]
        for i in whole[: round(amount)]:
            pool[i] = 0.0
            ids.append(i)
        return ids

    def acquire(self, need: dict[str, float], bundle: Bundle | None = None) -> Grant:
        """Take ``need`` (which must fit) from the node or from ``bundle``."""
        pool = bundle.free if bundle is not None else self.free
        for k, v in need.items():
            if v:
                pool[k] = pool.get(k, 0.0) - v
        gpu_ids: list[int] = []
        gpus = need.get("GPU", 0.0)
        if gpus:
            if bundle is not None:
                gpu_ids = bundle.gpu_ids[: max(1, int(gpus))] if bundle.gpu_ids else []
            else:
                gpu_ids = self._take_gpus(gpus, self._gpu_free)
        return Grant(dict(need), gpu_ids, bundle)

    def release(self, grant: Grant) -> None:
        pool = grant.bundle.free if grant.bundle is not None else self.free
        for k, v in grant.amounts.items():
            if v:
                pool[k] = pool.get(k, 0.0) + v
        if grant.lent_cpu:
            # The CPU was already returned while lent; take back the double count.
            pool["CPU"] = pool.get("CPU", 0.0) - grant.lent_cpu
            grant.lent_cpu = 0.0
        if grant.bundle is None and grant.gpu_ids:
            gpus = grant.amounts.get("GPU", 0.0)
            share = gpus if gpus < 1 else 1.0
            for i in grant.gpu_ids:
                self._gpu_free[i] = min(1.0, self._gpu_free.get(i, 0.0) + share)
        grant.amounts = {}
        grant.gpu_ids = []

    def lend_cpu(self, grant: Grant) -> None:
        """The holder blocks in get/wait: give its CPU back so nested work can run."""
        cpu = grant.amounts.get("CPU", 0.0)
        if cpu and not grant.lent_cpu:
            pool = grant.bundle.free if grant.bundle is not None else self.free
            pool["CPU"] = pool.get("CPU", 0.0) + cpu
            grant.lent_cpu = cpu

    def reclaim_cpu(self, grant: Grant) -> None:
        """The holder runs again: take its CPU back (the pool may go below zero for a while)."""
        if grant.lent_cpu:
            pool = grant.bundle.free if grant.bundle is not None else self.free
            pool["CPU"] = pool.get("CPU", 0.0) - grant.lent_cpu
            grant.lent_cpu = 0.0

    def reserve_bundle(self, need: dict[str, float]) -> Bundle:
        grant = self.acquire(need)
        return Bundle(total=dict(need), free=dict(need), gpu_ids=grant.gpu_ids)

    def release_bundle(self, bundle: Bundle) -> None:
        self.release(Grant(dict(bundle.total), list(bundle.gpu_ids)))

    def available(self) -> dict[str, float]:
        return {k: max(0.0, v) for k, v in self.free.items()}
