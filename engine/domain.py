"""The public domain of a breakdown: every cell it can have, known before any data is read.

Released breakdowns cover the whole domain (zero cells included) so that which cells
exist says nothing about the data. Values outside the domain (a län code the catalog
does not know, an age over the top band) are not released.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

from antal.catalog import Catalog
from antal.catalog.vocabulary import DIMENSION_KEYS, SEXES
from antal.engine import ir
from antal.engine.check import registers_used
from antal.engine.dispatch import Dispatch

__all__ = ["MAX_AGE", "breakdown_domain", "dimension_values", "domain_size"]

MAX_AGE = 120


def _index_years(co: ir.Cohort, catalog: Catalog) -> list[int]:
    if isinstance(co.index, ir.IndexDate):
        return [co.index.date.year]
    w = co.index.window
    regs = [
        catalog.registers[r]
        for r in registers_used(ir.Cohort(co.index), catalog)
        if catalog.registers[r].date_column and catalog.registers[r].kind == "events"
    ]
    first = min((r.coverage.from_year for r in regs), default=1900)
    last = max(
        (r.coverage.to_year or dt.date.today().year for r in regs), default=dt.date.today().year
    )
    if w.start is not None:
        first = max(first, w.start.year)
    if w.end is not None:
        last = min(last, w.end.year)
    return list(range(first, last + 1))


# One handler per dimension of the vocabulary (engine/dispatch.py): a dimension without
# one is an InternalError, never another dimension's domain (a privacy risk: the cells
# released would not be the public domain of what was counted).
_VALUES: Dispatch[Callable[[Any, ir.Cohort, Catalog], list[Any]]] = Dispatch(
    "breakdown domain: dimension", DIMENSION_KEYS
)


def dimension_values(d: ir.Dimension, co: ir.Cohort, catalog: Catalog) -> list[Any]:
    """Every value a dimension can take in a released breakdown (None: unknown)."""
    return _VALUES(ir.dimension_key(d))(d, co, catalog)


@_VALUES.on("age")
def _ages(d: ir.AgeBand, co: ir.Cohort, catalog: Catalog) -> list[Any]:
    return [*range(0, MAX_AGE + 1, d.width), None]


@_VALUES.on("region")
def _regions(d: ir.Dim, co: ir.Cohort, catalog: Catalog) -> list[Any]:
    return [*(r.code for r in catalog.regions), None]


@_VALUES.on("sex")
def _sexes(d: ir.Dim, co: ir.Cohort, catalog: Catalog) -> list[Any]:
    return [*SEXES, None]


@_VALUES.on("year")
def _years(d: ir.Dim, co: ir.Cohort, catalog: Catalog) -> list[Any]:
    return _index_years(co, catalog)


@_VALUES.on("hospital")
def _hospitals(d: ir.Dim, co: ir.Cohort, catalog: Catalog) -> list[Any]:
    return [*(s.code for s in catalog.sites), None]


def breakdown_domain(co: ir.Cohort, catalog: Catalog) -> list[tuple[Any, ...]]:
    """Every cell of a checked cohort's `report by`, in a stable order."""
    if not co.report:
        return []
    return list(itertools.product(*(dimension_values(d, co, catalog) for d in co.report)))


def domain_size(co: ir.Cohort, catalog: Catalog) -> int:
    n = 1
    for d in co.report:
        n *= len(dimension_values(d, co, catalog))
    return n if co.report else 0
