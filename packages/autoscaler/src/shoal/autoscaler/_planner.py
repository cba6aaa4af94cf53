"""The bin-packing planner: which nodes to launch for the demand, and why the rest waits.

A pure function of its inputs (no clock, no I/O). Demand is aggregated by
shape first, so 100,000 one-CPU tasks are one row with a count, and packing a
row onto 1,000 nodes is a handful of numpy operations: per node, how many
copies fit (the minimum over the row's resources of ``floor(free / need)``),
then a cumulative sum hands the row's count out to nodes in order.

Order of work, each step seeing the nodes the previous ones added:

1. ``min_workers``: launch each type's deficit.
2. ``request_resources`` floors: pack the bundles onto the *total* resources
   of live and pending nodes; launch nodes for what does not fit.
3. Pending demand: pack onto *free* resources of running nodes, then onto
   pending nodes; launch new nodes for the rest, at most ``demand_budget``
   (the upscaling_speed limit), choosing node types by score.
4. STRICT_SPREAD placement groups, bundle by bundle on distinct nodes.

Node-type score (lower is better), for the greedy fill of one fresh node:
special resources left unused (a GPU node for CPU work scores badly), then
the mean unused fraction of the resources the packed demand uses, then more
demand served per node, then the type name for determinism.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from shoal.autoscaler._resources import COMMODITY_RESOURCES, Shape, ShapeKey, add_shapes, shape_key
from shoal.autoscaler.demand import PlacementGroupDemand, ResourceDemand

__all__ = ["DemandRow", "Plan", "PlanInput", "PlanNode", "TypeSpec", "plan"]

_EPS = 1e-9
REASON_MIN_WORKERS = "min_workers"
REASON_REQUEST = "request_resources"
REASON_DEMAND = "pending demand"


@dataclass(frozen=True)
class TypeSpec:
    name: str
    resources: Mapping[str, float]
    max_workers: int
    min_workers: int = 0


@dataclass(frozen=True)
class PlanNode:
    """A live or pending node that can take work (not draining)."""

    node_id: str
    node_type: str | None
    pending: bool
    total: Mapping[str, float]
    available: Mapping[str, float]
    idle_s: float = 0.0
    #: False for nodes the autoscaler never terminates (the head, nodes it does not manage):
    #: work and floors go there first, so removable nodes can go idle.
    removable: bool = True


@dataclass
class PlanInput:
    types: Sequence[TypeSpec]
    nodes: Sequence[PlanNode]
    #: Worker nodes per type that exist in any non-terminated state (max_workers counts them).
    workers_by_type: Mapping[str, int]
    max_workers: int
    #: How many nodes pending demand may launch now (the upscaling_speed limit).
    demand_budget: int
    #: Why the budget is what it is, for explanations.
    budget_reason: str = ""
    #: Types that must not launch now (launch backoff), with the reason.
    blocked: Mapping[str, str] = field(default_factory=dict)
    demands: Sequence[ResourceDemand | PlacementGroupDemand] = ()
    resource_requests: Sequence[Mapping[str, float]] = ()
    #: Types that may launch only this many nodes now (after a quota error), with the reason.
    launch_caps: Mapping[str, tuple[int, str]] = field(default_factory=dict)


@dataclass
class DemandRow:
    """The fate of all pending demand of one kind and shape."""

    kind: str
    shape: ShapeKey
    count: int
    on_running: int = 0
    on_pending: int = 0
    on_new: dict[str, int] = field(default_factory=dict)
    unserved: int = 0
    reason: str = ""
    note: str = ""


@dataclass
class Plan:
    #: (node type, count, why) in launch order.
    launches: list[tuple[str, int, str]]
    rows: list[DemandRow]
    #: Running nodes that pending demand or request_resources floors would use.
    needed_node_ids: set[str]
    #: Floor bundles that fit nowhere (no node type can hold them, or limits).
    unserved_requests: int = 0


class _Planner:
    def __init__(self, inp: PlanInput) -> None:
        self.inp = inp
        names: dict[str, int] = {}
        for t in inp.types:
            for k in t.resources:
                names.setdefault(k, len(names))
        for n in inp.nodes:
            for k in n.total:
                names.setdefault(k, len(names))
        self.names = names
        self.type_names = [t.name for t in inp.types]
        self.type_index = {t.name: i for i, t in enumerate(inp.types)}
        self.type_caps = [self._vec_list(t.resources) for t in inp.types]
        self.special = [
            [i for k, i in names.items() if k not in COMMODITY_RESOURCES and t.resources.get(k, 0) > 0]
            for t in inp.types
        ]
        self.headroom = {t.name: max(0, t.max_workers - inp.workers_by_type.get(t.name, 0)) for t in inp.types}
        self.global_headroom = max(0, inp.max_workers - sum(inp.workers_by_type.values()))
        # A launch cap works like extra headroom that this round may use up.
        for name, (cap, _) in inp.launch_caps.items():
            if name in self.headroom:
                self.headroom[name] = min(self.headroom[name], cap)
        self.budget = max(0, inp.demand_budget)
        self.launches: list[tuple[str, int, str]] = []
        self.launched_total = 0

    # -- vectors ---------------------------------------------------------------------

    def _ensure(self, shape: Mapping[str, float]) -> None:
        for k in shape:
            if k not in self.names:
                self.names[k] = len(self.names)

    def _vec_list(self, shape: Mapping[str, float]) -> list[float]:
        v = [0.0] * len(self.names)
        for k, x in shape.items():
            idx = self.names.get(k)
            if idx is not None:
                v[idx] = x
        return v

    def _matrix(self, shapes: Sequence[Mapping[str, float]]) -> np.ndarray:
        m = np.zeros((len(shapes), len(self.names)))
        for i, s in enumerate(shapes):
            for k, x in s.items():
                m[i, self.names[k]] = x
        return m

    # -- packing ---------------------------------------------------------------------

    @staticmethod
    def _pack(cap: np.ndarray, shapes: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Greedy first-fit of ``counts[j]`` copies of row ``j`` over nodes in order; updates ``cap``."""
        n, m = cap.shape[0], shapes.shape[0]
        take = np.zeros((n, m), dtype=np.int64)
        if n == 0:
            return take
        for j in range(m):
            c = int(counts[j])
            if c <= 0:
                continue
            s = shapes[j]
            nz = np.flatnonzero(s)
            if nz.size == 0:
                take[0, j] = c  # needs nothing: any node holds it
                continue
            fit = np.floor((cap[:, nz] + _EPS) / s[nz]).min(axis=1)
            fit = np.clip(fit, 0, c).astype(np.int64)
            cum = np.cumsum(fit)
            if cum[-1] == 0:
                continue
            t = np.clip(c - (cum - fit), 0, fit)
            take[:, j] = t
            cap[:, nz] -= t[:, None] * s[nz]
        return take

    def _fill_one(self, cap: list[float], rows: list[list[tuple[int, float]]], remaining: list[int]):
        """Greedy fill of one fresh node: copies of each row, in row order. Returns (pattern, cap left)."""
        cap = list(cap)
        pattern = [0] * len(rows)
        for j, nz in enumerate(rows):
            k = remaining[j]
            if k <= 0:
                continue
            for idx, need in nz:
                q = int((cap[idx] + _EPS) // need)
                if q < k:
                    k = q
                    if k == 0:
                        break
            if k:
                pattern[j] = k
                for idx, need in nz:
                    cap[idx] -= k * need
        return pattern, cap

    def _score(self, t: int, rows, pattern: list[int], left: list[float]):
        cap = self.type_caps[t]
        used = {idx for j, k in enumerate(pattern) if k for idx, _ in rows[j]}
        wasted_special = sum(1 for i in self.special[t] if i not in used)
        fractions = [left[i] / cap[i] for i in used if cap[i] > 0]
        waste = sum(fractions) / len(fractions) if fractions else 1.0
        return (wasted_special, round(waste, 9), -sum(pattern), self.type_names[t])

    def _plain_type_exists(self, row: list[tuple[int, float]]) -> bool:
        """Whether some configured type holds ``row`` without leaving special resources unused."""
        used = {idx for idx, _ in row}
        for t, cap in enumerate(self.type_caps):
            if self.inp.types[t].max_workers == 0:
                continue
            if all(cap[idx] + _EPS >= need for idx, need in row) and all(i in used for i in self.special[t]):
                return True
        return False

    def _can_launch(self, name: str, limited: bool) -> bool:
        if name in self.inp.blocked or self.headroom[name] <= 0 or self.global_headroom <= 0:
            return False
        return not limited or self.budget > 0

    def _launch_for(
        self, rows: list[list[tuple[int, float]]], remaining: list[int], why: str, limited: bool
    ) -> tuple[list[tuple[int, list[float]]], dict[int, dict[str, int]]]:
        """Launch nodes for ``remaining`` copies of ``rows`` (updated in place).

        Returns each new node as ``(type index, capacity left after its fill)``
        and, per row, how many copies each type's new nodes take.
        """
        new_nodes: list[tuple[int, list[float]]] = []
        served: dict[int, dict[str, int]] = {}
        set_aside: dict[int, int] = {}  # rows no launchable type can hold, with their counts
        while True:
            # Rows come hardest first (special resources, then size): each new node is chosen
            # for the first row still waiting, and filled with whatever else fits on it.
            first = next((j for j, r in enumerate(remaining) if r), None)
            if first is None:
                break
            best = None
            plain = self._plain_type_exists(rows[first])
            for t, name in enumerate(self.type_names):
                if not self._can_launch(name, limited):
                    continue
                pattern, left = self._fill_one(self.type_caps[t], rows, remaining)
                if not pattern[first]:
                    continue
                score = self._score(t, rows, pattern, left)
                if score[0] and plain:
                    # Never a GPU (or other special) node for work that does not use it while
                    # the config has a plain type for it; that work waits for the plain type.
                    continue
                if best is None or score < best[0]:
                    best = (score, t, pattern, left)
            if best is None:
                set_aside[first] = remaining[first]
                remaining[first] = 0
                continue
            _, t, pattern, left = best
            name = self.type_names[t]
            # The same fill repeats until the scarcest row runs out: launch that many at once.
            reps = min(remaining[j] // k for j, k in enumerate(pattern) if k)
            limits = [self.headroom[name], self.global_headroom] + ([self.budget] if limited else [])
            reps = max(1, min([reps, *limits]))
            for j, k in enumerate(pattern):
                if k:
                    took = min(remaining[j], reps * k)
                    remaining[j] -= took
                    per_type = served.setdefault(j, {})
                    per_type[name] = per_type.get(name, 0) + took
            self.headroom[name] -= reps
            self.global_headroom -= reps
            if limited:
                self.budget -= reps
            self._record(name, reps, why)
            new_nodes.extend((t, list(left)) for _ in range(reps))
        for j, count in set_aside.items():
            remaining[j] = count
        return new_nodes, served

    def _record(self, name: str, count: int, why: str) -> None:
        if self.launches and self.launches[-1][0] == name and self.launches[-1][2] == why:
            self.launches[-1] = (name, self.launches[-1][1] + count, why)
        else:
            self.launches.append((name, count, why))
        self.launched_total += count

    # -- the plan --------------------------------------------------------------------

    def run(self) -> Plan:
        inp = self.inp
        # Aggregate demand by (kind, shape); STRICT_SPREAD groups stay whole.
        counts: dict[tuple[str, ShapeKey], int] = {}
        spread_groups: list[tuple[tuple[Shape, ...], int]] = []
        for d in inp.demands:
            if isinstance(d, ResourceDemand):
                counts[d.key] = counts.get(d.key, 0) + d.count
            elif d.strategy == "STRICT_PACK":
                key = ("placement_group", shape_key(add_shapes(d.bundles)))
                counts[key] = counts.get(key, 0) + d.count
            elif d.strategy == "STRICT_SPREAD":
                spread_groups.append((tuple(d.bundles), d.count))
            else:
                for b in d.bundles:
                    key = ("placement_group", shape_key(b))
                    counts[key] = counts.get(key, 0) + d.count
        for kind_shape in counts:
            self._ensure(dict(kind_shape[1]))
        for bundles, _ in spread_groups:
            for b in bundles:
                self._ensure(b)
        floors: dict[ShapeKey, int] = {}
        for b in inp.resource_requests:
            self._ensure(b)
            k = shape_key(b)
            floors[k] = floors.get(k, 0) + 1
        self.type_caps = [self._vec_list(t.resources) for t in inp.types]
        R = len(self.names)
        max_cap = np.maximum(np.array(self.type_caps).max(axis=0) if self.type_caps else np.ones(R), 1.0)

        # Existing nodes: running (busy ones first) then pending.
        nodes = sorted(inp.nodes, key=lambda n: (n.pending, n.removable, n.idle_s))
        n_exist = len(nodes)
        pending_mask = np.array([n.pending for n in nodes], dtype=bool)
        totals = np.array([self._vec_list(n.total) for n in nodes]).reshape(n_exist, R)
        self._totals = totals
        avail = np.array([self._vec_list(n.total if n.pending else n.available) for n in nodes]).reshape(n_exist, R)

        # 1. min_workers.
        new_totals: list[list[float]] = []
        for t, spec in enumerate(inp.types):
            deficit = spec.min_workers - inp.workers_by_type.get(spec.name, 0)
            deficit = min(deficit, self.headroom[spec.name], self.global_headroom)
            if deficit > 0:
                self.headroom[spec.name] -= deficit
                self.global_headroom -= deficit
                self._record(spec.name, deficit, REASON_MIN_WORKERS)
                new_totals.extend([list(self.type_caps[t]) for _ in range(deficit)])

        # 2. Floors on total capacity: busy running nodes, pending nodes, then idle ones.
        needed: set[str] = set()
        unserved_requests = 0
        if floors:
            order = sorted(
                range(n_exist),
                key=lambda i: (nodes[i].removable, nodes[i].idle_s > 0, not nodes[i].pending, nodes[i].idle_s),
            )

            # Hardest bundles first, as for demand below.
            def hardness(k: ShapeKey) -> tuple[int, float, ShapeKey]:
                special = sum(r not in COMMODITY_RESOURCES for r, _ in k)
                return (-special, -sum(v / max_cap[self.names[r]] for r, v in k), k)

            fkeys = sorted(floors, key=hardness)
            fshapes = [dict(k) for k in fkeys]
            fmat = self._matrix(fshapes)
            fcounts = np.array([floors[k] for k in fkeys], dtype=np.int64)
            cap = np.vstack([totals[order], np.array(new_totals).reshape(-1, R)])
            take = self._pack(cap, fmat, fcounts)
            for pos, i in enumerate(order):
                if take[pos].any() and not nodes[i].pending:
                    needed.add(nodes[i].node_id)
            left = (fcounts - take.sum(axis=0)).tolist()
            rows = [sorted((self.names[k], v) for k, v in s.items()) for s in fshapes]
            launched, _ = self._launch_for(rows, left, REASON_REQUEST, limited=False)
            # Floors only reserve totals: the new nodes' whole capacity serves demand too.
            new_totals.extend(list(self.type_caps[t]) for t, _ in launched)
            unserved_requests = int(sum(left))
        self.budget = max(0, self.budget - sum(c for _, c, w in self.launches if w != REASON_DEMAND))

        # 3. Pending demand, big and special shapes first.
        keys = list(counts)
        shapes = [dict(k[1]) for k in keys]
        smat = self._matrix(shapes)
        special_cols = np.array([k not in COMMODITY_RESOURCES for k in self.names], dtype=bool)
        size = (smat / max_cap).sum(axis=1) if len(keys) else np.zeros(0)
        n_special = (smat[:, special_cols] > 0).sum(axis=1) if len(keys) else np.zeros(0)
        order_rows = sorted(range(len(keys)), key=lambda j: (-n_special[j], -size[j], keys[j]))
        keys = [keys[j] for j in order_rows]
        smat = smat[order_rows] if len(keys) else smat
        cnt = np.array([counts[k] for k in keys], dtype=np.int64)
        new_arr = np.array(new_totals).reshape(-1, R)
        cap = np.vstack([avail, new_arr])
        take = self._pack(cap, smat, cnt)
        running_rows = ~pending_mask
        rows_out = [DemandRow(kind=k[0], shape=k[1], count=int(cnt[j])) for j, k in enumerate(keys)]
        for j, row in enumerate(rows_out):
            col = take[:, j]
            row.on_running = int(col[:n_exist][running_rows].sum())
            row.on_pending = int(col[:n_exist][pending_mask].sum())
            on_floor_nodes = int(col[n_exist:].sum())
            if on_floor_nodes:
                row.on_pending += on_floor_nodes
        used_running = take[:n_exist].sum(axis=1) > 0
        for i in np.flatnonzero(used_running & running_rows):
            needed.add(nodes[i].node_id)
        remaining = (cnt - take.sum(axis=0)).tolist()
        row_nz = [[(int(i), float(smat[j, i])) for i in np.flatnonzero(smat[j])] for j in range(len(keys))]
        launched, served_new = self._launch_for(row_nz, remaining, REASON_DEMAND, limited=True)
        new_caps = [left for _, left in launched]
        for j, per_type in served_new.items():
            rows_out[j].on_new = dict(per_type)
        for j, row in enumerate(rows_out):
            row.unserved = int(remaining[j])
        cap = np.vstack([cap, np.array(new_caps).reshape(-1, R)])

        # 4. STRICT_SPREAD groups: each bundle on its own node.
        self.spread_bundles: dict[int, tuple[Shape, ...]] = {}
        for bundles, group_count in spread_groups:
            holder = [cap]
            self.spread_bundles[len(rows_out)] = bundles
            rows_out.append(self._place_spread(bundles, group_count, holder))
            cap = holder[0]

        for j, row in enumerate(rows_out):
            if row.unserved and not row.reason:
                parts = self.spread_bundles.get(j, (dict(row.shape),))
                row.reason = self._why_unserved(parts, totals)
        return Plan(self.launches, rows_out, needed, unserved_requests)

    def _place_spread(self, bundles: tuple[Shape, ...], group_count: int, holder: list[np.ndarray]) -> DemandRow:
        total = add_shapes(bundles)
        row = DemandRow(
            kind="placement_group",
            shape=shape_key(total),
            count=group_count,
            note=f"STRICT_SPREAD of {len(bundles)} bundles",
        )
        vecs = [np.array(self._vec_list(b)) for b in bundles]
        for _ in range(group_count):
            cap = holder[0].copy()
            used: set[int] = set()
            launched: list[int] = []
            ok = True
            for v in vecs:
                fits = np.all(cap + _EPS >= v, axis=1)
                if used:
                    fits[list(used)] = False
                hit = np.flatnonzero(fits)
                if hit.size:
                    i = int(hit[0])
                    cap[i] -= v
                    used.add(i)
                    continue
                best = None
                for t, name in enumerate(self.type_names):
                    if not self._can_launch(name, limited=True):
                        continue
                    tc = np.array(self.type_caps[t])
                    if np.all(tc + _EPS >= v):
                        pattern = [1]
                        left = (tc - v).tolist()
                        rows = [[(int(i), float(v[i])) for i in np.flatnonzero(v)]]
                        score = self._score(t, rows, pattern, left)
                        if best is None or score < best[0]:
                            best = (score, t, left)
                if best is None:
                    ok = False
                    if not row.reason:  # explain with the limits as they stand now
                        row.reason = self._why_unserved(bundles, self._totals)
                    break
                _, t, left = best
                name = self.type_names[t]
                self.headroom[name] -= 1
                self.global_headroom -= 1
                self.budget -= 1
                launched.append(t)
                cap = np.vstack([cap, np.array(left)[None, :]])
                used.add(cap.shape[0] - 1)
            if not ok:
                for t in launched:  # give the group's launches back
                    name = self.type_names[t]
                    self.headroom[name] += 1
                    self.global_headroom += 1
                    self.budget += 1
                row.unserved += 1
                continue
            holder[0] = cap
            for t in launched:
                name = self.type_names[t]
                self._record(name, 1, REASON_DEMAND)
                row.on_new[name] = row.on_new.get(name, 0) + 1
            if not launched:
                row.on_running += 1
        return row

    def _why_unserved(self, parts: Sequence[Mapping[str, float]], totals: np.ndarray) -> str:
        """Why copies of a row (one shape, or a STRICT_SPREAD group's bundles) still wait."""
        vecs = [np.array(self._vec_list(p)) for p in parts]
        caps = np.array(self.type_caps).reshape(len(self.type_names), len(self.names))
        fit_by_part = [np.flatnonzero(np.all(caps + _EPS >= v, axis=1)) for v in vecs]
        if any(f.size == 0 for f in fit_by_part):
            busy_fit = totals.shape[0] > 0 and all(bool(np.any(np.all(totals + _EPS >= v, axis=1))) for v in vecs)
            if busy_fit:
                return "waiting for running work to finish (no node type fits it, but existing nodes do)"
            return "infeasible: no node type in the cluster config has these resources"
        fits_type = sorted({int(t) for f in fit_by_part for t in f})
        reasons: list[str] = []
        if self.global_headroom <= 0:
            # The binding limit; per-type limits would only add noise.
            fits_type = [t for t in fits_type if self.type_names[t] in self.inp.blocked]
        for t in fits_type:
            name = self.type_names[t]
            if self.inp.types[t].max_workers == 0 and len(fits_type) > 1:
                continue  # a type that never launches workers (often the head's) is not news
            if name in self.inp.blocked:
                reasons.append(f"{name}: {self.inp.blocked[name]}")
            elif self.headroom[name] <= 0 and name in self.inp.launch_caps:
                reasons.append(f"{name}: {self.inp.launch_caps[name][1]}")
            elif self.headroom[name] <= 0:
                reasons.append(f"{name}: max_workers ({self.inp.types[t].max_workers}) reached")
        if self.global_headroom <= 0:
            reasons.append(f"cluster max_workers ({self.inp.max_workers}) reached")
        launchable = [t for t in fits_type if self._can_launch(self.type_names[t], limited=False)]
        if self.budget <= 0 and launchable:
            reasons.append(f"upscaling_speed: {self.inp.budget_reason or 'pending-node limit reached'}")
        if not reasons:
            reasons.append("no launchable node type can place it with its strategy")
        return "; ".join(reasons)


def plan(inp: PlanInput) -> Plan:
    """Decide launches for ``inp`` and explain every demand row."""
    return _Planner(inp).run()
