"""Honest site tables: which sites' released counts a sponsor must not read as exact.

A table by site (`report by hospital`, `report by clinic`) is read as a ranking: which
hospitals have the most eligible patients, and which reach enough. Noise makes both
uncertain, so each shown site is marked (post-processing of released values: no ε):

- `near_threshold`: its interval reaches below the threshold, so the site may well hold
  fewer patients than the threshold; a site shown as 14 (2–26) is not a site with 14.
- `rank_uncertain`: its interval overlaps that of the site ranked just above or just below
  it by released count, so its place in the ranking is noise.

Suppressed sites (`<T`) are not ranked and carry no mark.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from antal.catalog.vocabulary import SITE_DIMENSIONS
from antal.privacy.mechanism import ReleasedCount

__all__ = ["SiteMarks", "is_site_table", "site_marks"]

SiteMarks = tuple[bool, bool]  # (near_threshold, rank_uncertain)


def is_site_table(dims: Sequence[str]) -> bool:
    """A table of one site dimension: the sites a sponsor ranks."""
    return len(dims) == 1 and dims[0] in SITE_DIMENSIONS


def site_marks(
    cells: Sequence[tuple[tuple[Any, ...], ReleasedCount]], threshold: int
) -> dict[tuple[Any, ...], SiteMarks]:
    """Per cell: (near_threshold, rank_uncertain), see the module docstring."""
    shown = sorted(
        ((key, c) for key, c in cells if c.value is not None),
        key=lambda kc: (-(kc[1].value or 0), str(kc[0])),
    )
    out: dict[tuple[Any, ...], SiteMarks] = {key: (False, False) for key, _ in cells}
    for i, (key, c) in enumerate(shown):
        near = (c.low or 0) < threshold
        neighbours = [shown[j][1] for j in (i - 1, i + 1) if 0 <= j < len(shown)]
        overlaps = any((n.low or 0) <= (c.high or 0) and (c.low or 0) <= (n.high or 0)
                       for n in neighbours)  # fmt: skip
        out[key] = (near, overlaps)
    return out
