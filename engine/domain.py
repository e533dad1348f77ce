"""The public domain of a breakdown: every cell it can have, known before any data is read.

Released breakdowns cover the whole domain (zero cells included) so that which cells
exist says nothing about the data. Values outside the domain (a län code the catalog
does not know, an age over the top band) are not released.

A cohort's released tables (`released_tables`) are each `report by` table, and for one
`with rollup` the levels above its hierarchical dimension (engine/hierarchy.py), each
with the table its cells sum into: the data's counts of a level are the sums of the
table's counts, and the privacy layer releases them all together (privacy/mechanism.py).
Months and quarters are released over the index's calendar window (the checker requires
both its ends); never over the months the data happen to hold.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from antal.catalog import Catalog
from antal.catalog.vocabulary import DIMENSION_KEYS, SEXES
from antal.engine import ir
from antal.engine.check import registers_used
from antal.engine.dispatch import Dispatch
from antal.engine.errors import InternalError
from antal.engine.hierarchy import HIERARCHIES, parent_value

__all__ = [
    "MAX_AGE",
    "TableDomain",
    "breakdown_domain",
    "column_name",
    "dimension_values",
    "domain_size",
    "released_tables",
    "roll_up",
]

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


@_VALUES.on("clinic")
def _clinics(d: ir.Dim, co: ir.Cohort, catalog: Catalog) -> list[Any]:
    return [*(c.code for c in catalog.clinics), None]


@_VALUES.on("sjukvardsregion")
def _healthcare_regions(d: ir.Dim, co: ir.Cohort, catalog: Catalog) -> list[Any]:
    return [*(h.code for h in catalog.healthcare_regions), None]


def _index_window(co: ir.Cohort) -> tuple[dt.date, dt.date]:
    """The first and last possible index date (the checker requires both for months)."""
    if isinstance(co.index, ir.IndexDate):
        return co.index.date, co.index.date
    w = co.index.window
    if w.start is None or w.end is None:
        raise InternalError("months and quarters need a bounded index window (the checker)")
    return w.start, w.end


@_VALUES.on("month")
def _months(d: ir.Dim, co: ir.Cohort, catalog: Catalog) -> list[Any]:
    first, last = _index_window(co)
    a, b = first.year * 12 + first.month - 1, last.year * 12 + last.month - 1
    return [(m // 12) * 100 + m % 12 + 1 for m in range(a, b + 1)]  # 202103: March 2021


@_VALUES.on("quarter")
def _quarters(d: ir.Dim, co: ir.Cohort, catalog: Catalog) -> list[Any]:
    first, last = _index_window(co)
    a = first.year * 4 + (first.month - 1) // 3
    b = last.year * 4 + (last.month - 1) // 3
    return [(q // 4) * 10 + q % 4 + 1 for q in range(a, b + 1)]  # 20211: 2021 Q1


def column_name(d: ir.Dimension) -> str:
    """The column of a dimension in the compiled rows and the released tables."""
    return f"age_{d.width}" if isinstance(d, ir.AgeBand) else ir.dimension_key(d)


def breakdown_domain(co: ir.Cohort, catalog: Catalog) -> list[tuple[Any, ...]]:
    """Every cell of a checked cohort's first `report by`, in a stable order."""
    if not co.report:
        return []
    return list(itertools.product(*(dimension_values(d, co, catalog) for d in co.report)))


@dataclass(frozen=True)
class TableDomain:
    """One released table: its columns, every cell it can have, and where its cells sum."""

    dims: tuple[str, ...]
    domain: tuple[tuple[Any, ...], ...]
    parent: int | None  # the released table its cells sum into (None: the cohort's total)
    up: tuple[tuple[Any, ...], ...] | None  # per cell of `domain`, its cell in `parent`
    report: int  # the `report by` it belongs to (its position in the cohort)
    level: int  # 0: the table as asked; 1, 2, ...: the levels above (with rollup)


def _unique(xs: list[Any]) -> list[Any]:
    return list(dict.fromkeys(xs))


_Level = tuple[tuple[str, ...], list[list[Any]]]  # a level's columns and their values


def _levels(co: ir.Cohort, catalog: Catalog) -> list[tuple[int, int | None, list[_Level]]]:
    """Per `report by`: its position, the rolled-up column's position (None without
    rollup), and its levels as columns and values, finest first (no cells enumerated)."""
    out: list[tuple[int, int | None, list[_Level]]] = []
    for r, rep in enumerate(co.reports):
        dims = tuple(column_name(d) for d in rep.dims)
        values = [dimension_values(d, co, catalog) for d in rep.dims]
        if not rep.rollup:
            out.append((r, None, [(dims, values)]))
            continue
        at = next(i for i, d in enumerate(dims) if d in HIERARCHIES)  # the checker: exactly one
        chain = (dims[at], *HIERARCHIES[dims[at]])
        levels: list[_Level] = [(dims, values)]
        for child, parent in itertools.pairwise(chain):
            vals = list(levels[-1][1])
            vals[at] = _unique([parent_value(catalog, child, parent, v) for v in vals[at]])
            levels.append(((*dims[:at], parent, *dims[at + 1 :]), vals))
        if len(dims) > 1:  # the top: the other columns alone, whose cells sum to the total
            vals = levels[-1][1]
            levels.append(((*dims[:at], *dims[at + 1 :]), [*vals[:at], *vals[at + 1 :]]))
        out.append((r, at, levels))
    return out


def released_tables(co: ir.Cohort, catalog: Catalog) -> list[TableDomain]:
    """Every table a checked cohort releases: each `report by` as asked, each followed by
    its roll-up levels (finest first). A level's domain is its parents' values of the
    finer level's domain: known from the catalog and the cohort alone, and a tree.
    Enumerates every cell: call `domain_size` first to refuse a table too fine."""
    out: list[TableDomain] = []
    for r, at, levels in _levels(co, catalog):
        first = len(out)
        for k, (ldims, lvals) in enumerate(levels):
            domain = tuple(itertools.product(*lvals))
            if k + 1 == len(levels):
                out.append(TableDomain(ldims, domain, None, None, r, k))
                continue
            assert at is not None
            pdims = levels[k + 1][0]
            if len(pdims) == len(ldims):  # the hierarchical column one level up
                up = tuple(
                    (*key[:at], parent_value(catalog, ldims[at], pdims[at], key[at]),
                     *key[at + 1 :])
                    for key in domain
                )  # fmt: skip
            else:  # the hierarchical column dropped
                up = tuple((*key[:at], *key[at + 1 :]) for key in domain)
            out.append(TableDomain(ldims, domain, first + k + 1, up, r, k))
    return out


def roll_up(
    tables: list[TableDomain], asked: list[dict[tuple[Any, ...], int]]
) -> list[dict[tuple[Any, ...], int]]:
    """The counts of every released table from the counts of the tables as asked: a level's
    cell is the sum of its cells one level down (values outside the domain are in none)."""
    result: list[dict[tuple[Any, ...], int]] = []
    for t in tables:
        keys = set(t.domain) if t.level == 0 else set()
        result.append({k: n for k, n in asked[t.report].items() if k in keys})
    # a level follows the table below it in `tables`: each is complete before it is summed
    for i, t in enumerate(tables):
        if t.parent is not None and t.up is not None:
            cells, parent = result[i], result[t.parent]
            for key, up in zip(t.domain, t.up, strict=True):
                if cells.get(key):
                    parent[up] = parent.get(up, 0) + cells[key]
    return result


def domain_size(co: ir.Cohort, catalog: Catalog) -> int:
    """Cells released in all: every table's, the roll-up levels' included (counted, never
    enumerated: a table too fine is refused before its cells exist)."""
    n = 0
    for _r, _at, levels in _levels(co, catalog):
        for _dims, values in levels:
            cells = 1
            for v in values:
                cells *= len(v)
            n += cells
    return n
