"""What one trial reserves: :class:`PlacementGroupFactory`, and resource dicts turned into one.

A trial's resources are a list of bundles. The trainable runs in the first
(the *head*); the others are for the workers it starts itself (a trainer's
training workers, an algorithm's env runners), which tune reserves together
with the head in one placement group. An empty head means the trainable
itself needs nothing and floats in the group while its workers hold the
bundles.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PlacementGroupFactory", "resource_dict_to_pg_factory"]

_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
_ALIASES = {"cpu": "CPU", "gpu": "GPU"}


def _check_amount(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"resource {key!r} must be a number >= 0, got {value!r}")
    return float(value)


def _clean_bundle(bundle: dict[str, Any]) -> dict[str, float]:
    """The bundle with amounts checked, ``cpu``/``gpu`` spelled ``CPU``/``GPU`` and zeros dropped."""
    out: dict[str, float] = {}
    for key, value in bundle.items():
        if not isinstance(key, str):
            raise ValueError(f"resource names must be strings, got {key!r}")
        amount = _check_amount(key, value)
        if amount:
            name = _ALIASES.get(key, key)
            out[name] = out.get(name, 0.0) + amount
    return out


class PlacementGroupFactory:
    """The resources of one trial as placement-group bundles (Ray Tune's ``PlacementGroupFactory``).

    The trainable runs in the first bundle; the others are for the actors and
    tasks it starts (they are scheduled into the trial's group). An empty
    first bundle (``[{}, {"CPU": 1}, {"CPU": 1}]``) means the trainable itself
    holds nothing, as a trainer that only coordinates its workers.
    """

    def __init__(self, bundles: list[dict[str, float]], strategy: str = "PACK", *args: Any, **kwargs: Any) -> None:
        if not isinstance(bundles, list) or not bundles or not all(isinstance(b, dict) for b in bundles):
            raise ValueError(f"bundles must be a non-empty list of dicts, got {bundles!r}")
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be PACK, SPREAD, STRICT_PACK or STRICT_SPREAD, got {strategy!r}")
        cleaned = [_clean_bundle(b) for b in bundles]
        self._head_bundle_is_empty = not cleaned[0]
        if self._head_bundle_is_empty:
            cleaned = cleaned[1:]
            if not cleaned:
                # Ray refuses this too: a trial must reserve something, or any number of
                # them would start at once and none would hold what it runs on.
                raise ValueError(
                    f"bundles {bundles!r} ask for no resources: the head bundle is empty and there are no "
                    "worker bundles; ask for at least one resource (e.g. {'CPU': 1})"
                )
        self._bundles = cleaned
        self.strategy = strategy

    @property
    def head_bundle_is_empty(self) -> bool:
        """True when the trainable itself holds nothing (its first bundle was empty)."""
        return self._head_bundle_is_empty

    @property
    def bundles(self) -> list[dict[str, float]]:
        """The bundles to reserve (without an empty head bundle), as copies."""
        return [dict(b) for b in self._bundles]

    @property
    def bundles_with_head(self) -> list[dict[str, float]]:
        """All bundles, the head first (``{}`` when it is empty)."""
        return ([{}] if self._head_bundle_is_empty else []) + self.bundles

    @property
    def head_bundle(self) -> dict[str, float]:
        """What the trainable itself holds."""
        return {} if self._head_bundle_is_empty else dict(self._bundles[0])

    @property
    def required_resources(self) -> dict[str, float]:
        """The sum of all bundles."""
        total: dict[str, float] = {}
        for bundle in self._bundles:
            for k, v in bundle.items():
                total[k] = total.get(k, 0.0) + v
        return total

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupFactory) and (
            self.bundles_with_head,
            self.strategy,
        ) == (other.bundles_with_head, other.strategy)

    def __hash__(self) -> int:
        return hash((tuple(tuple(sorted(b.items())) for b in self.bundles_with_head), self.strategy))

    def __repr__(self) -> str:
        return (
            f"PlacementGroupFactory({self.bundles}, strategy={self.strategy!r}, "
            f"head_bundle_is_empty={self._head_bundle_is_empty})"
        )


def resource_dict_to_pg_factory(spec: dict[str, Any] | None = None) -> PlacementGroupFactory:
    """A one-bundle factory from a ``with_resources`` dict, read as Ray reads it.

    ``cpu``/``CPU``, ``gpu``/``GPU`` and ``memory`` are the standard resources;
    ``custom_resources`` is a dict of custom ones; without it, every other key
    is a custom resource. A dict that asks for nothing (``{"cpu": 0}``) is a
    ValueError, as in Ray.
    """
    if not isinstance(spec, dict) and spec is not None:
        raise TypeError(f"resources must be a dict, got {spec!r}")
    original = dict(spec if spec is not None else {"cpu": 1})
    spec = dict(original)
    bundle: dict[str, Any] = {}
    for names, target in ((("cpu", "CPU"), "CPU"), (("gpu", "GPU"), "GPU"), (("memory",), "memory")):
        for name in names:
            if name in spec:
                bundle[target] = bundle.get(target, 0.0) + _check_amount(name, spec.pop(name))
    custom = spec.pop("custom_resources", None)
    if custom is not None and not isinstance(custom, dict):
        raise ValueError(f"custom_resources must be a dict of resource amounts, got {custom!r}")
    # Ray's rule: custom_resources, when given, names the custom resources; other keys are ignored.
    extra = custom if custom else spec
    for key, value in extra.items():
        bundle[key] = _check_amount(key, value)
    try:
        return PlacementGroupFactory([bundle])
    except ValueError:
        raise ValueError(
            f"resources {original!r} ask for nothing: a trial must reserve at least one resource "
            "(e.g. {'cpu': 1}, or {'cpu': 0.5}); to run a trainable that holds nothing itself while its "
            "workers hold bundles, pass PlacementGroupFactory([{}, {...worker bundle...}])"
        ) from None
