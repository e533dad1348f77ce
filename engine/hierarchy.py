"""What a breakdown's values are called, and which dimensions have levels above them.

Names: a cell carries its code and, for coded dimensions, a `<column>_name` (the län's,
the healthcare region's, the hospital's or the clinic's name from the catalog; an age
band as `60–69`; a month as `2021-03`; a quarter as `2021 Q1`). Sex and year are their
own names.

Hierarchies (`report by ... with rollup`): the levels above a dimension, finest first.
Each value has exactly one parent, known from the catalog alone, so the levels form a
tree whose root is the whole cohort:

    hospital -> hospital_region -> hospital_sjukvardsregion -> (total)
    month    -> quarter         -> year                     -> (total)
    quarter  -> year            -> (total)

`hospital_region` is the län of the hospital (catalog/sites.yaml), not of residence
(`region`). Hallands län is split between two healthcare regions (catalog/regions.yaml),
so in the hospital tree it is two nodes, `13:syd` and `13:vast` (its hospitals in Södra
and in Västra): each node then has one parent. The residence dimensions `region` and
`sjukvardsregion` are not a tree for the same reason (a person's healthcare region in
Halland depends on the kommun) and are released as tables of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from antal.catalog import Catalog

__all__ = [
    "HIERARCHIES",
    "LEVEL_COLUMNS",
    "band_name",
    "has_names",
    "parent_value",
    "value_name",
]

# the columns of the levels above a dimension, finest first (the total is the root)
HIERARCHIES: dict[str, tuple[str, ...]] = {
    "hospital": ("hospital_region", "hospital_sjukvardsregion"),
    "month": ("quarter", "year"),
    "quarter": ("year",),
}
# columns that exist only as roll-up levels
LEVEL_COLUMNS: tuple[str, ...] = ("hospital_region", "hospital_sjukvardsregion")


def _site_area(catalog: Catalog, code: str | None) -> str | None:
    """The hospital's node in the län level: its län code, or `13:<healthcare region>`
    in a län split between two healthcare regions."""
    site = catalog.site(code) if code is not None else None
    if site is None:
        return None
    region = next((r for r in catalog.regions if r.code == site.region), None)
    if region is not None and region.split:
        return f"{site.region}:{catalog.site_healthcare_region(site)}"
    return site.region


def _area_healthcare_region(catalog: Catalog, area: str | None) -> str | None:
    if area is None:
        return None
    if ":" in area:
        return area.split(":", 1)[1]
    return next((r.sjukvardsregion for r in catalog.regions if r.code == area), None)


# (child column, parent column) -> the parent value of a child value
_UP: dict[tuple[str, str], Callable[[Catalog, Any], Any]] = {
    ("hospital", "hospital_region"): _site_area,
    ("hospital_region", "hospital_sjukvardsregion"): _area_healthcare_region,
    ("month", "quarter"): lambda _c, m: None if m is None else (m // 100) * 10 + (m % 100 + 2) // 3,
    ("quarter", "year"): lambda _c, q: None if q is None else q // 10,
}


def parent_value(catalog: Catalog, child: str, parent: str, value: Any) -> Any:
    """The value at the level above (`parent` column) of a value of `child`."""
    return _UP[(child, parent)](catalog, value)


def band_name(start: int, width: int) -> str:
    """An age band as people write it: `60–69` (an en dash), `7` for a band one year wide."""
    return str(start) if width == 1 else f"{start}–{start + width - 1}"


def value_name(catalog: Catalog, column: str, value: Any) -> str | None:
    """The name of a released value of a breakdown column (None: the column has no names,
    or the value is unknown)."""
    if value is None:
        return None
    if column.startswith("age_"):
        return band_name(int(value), int(column[4:]))
    if column == "region":
        return next((r.name for r in catalog.regions if r.code == value), None)
    if column in ("sjukvardsregion", "hospital_sjukvardsregion"):
        return next((h.name for h in catalog.healthcare_regions if h.code == value), None)
    if column == "hospital":
        site = catalog.site(value)
        return site.name if site else None
    if column == "hospital_region":
        code, _, part = str(value).partition(":")
        name = next((r.name for r in catalog.regions if r.code == code), None)
        if name and part:
            hname = next((h.name for h in catalog.healthcare_regions if h.code == part), part)
            return f"{name} ({hname})"
        return name
    if column == "clinic":
        return next((c.name for c in catalog.clinics if c.code == value), None)
    if column == "month":
        return f"{value // 100}-{value % 100:02d}"
    if column == "quarter":
        return f"{value // 10} Q{value % 10}"
    return None


def has_names(column: str) -> bool:
    """Does a breakdown column carry a `<column>_name` (coded values)?"""
    return column not in ("sex", "year")
