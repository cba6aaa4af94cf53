"""HyperBand for BOHB: :class:`HyperBandForBOHB`.

The synchronous HyperBand of :mod:`shoal.tune.schedulers.hyperband`, which
also tells the searcher each result's budget (``result["hyperband_info"]
["budget"]``, the bracket's current milestone) so that
:class:`~shoal.tune.search.bohb.TuneBOHB` can fit one model per budget.
"""

from __future__ import annotations

from typing import Any

from shoal.tune.schedulers.hyperband import HyperBandScheduler, _Bracket

__all__ = ["HyperBandForBOHB"]


class HyperBandForBOHB(HyperBandScheduler):
    """HyperBand whose results carry the bracket's budget for BOHB's per-budget models."""

    def _annotate(self, bracket: _Bracket, result: dict[str, Any]) -> None:
        result["hyperband_info"] = {"budget": bracket.milestone, "bracket": bracket.s}
