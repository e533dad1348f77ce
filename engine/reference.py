"""A pure-Python reference evaluator of the IR: the oracle the SQL engine is tested against.

Written from the language's contract (now docs/language.md) with plain loops over rows; it
shares no code with the SQL compiler. Correctness and clarity first, speed second (a few thousand rows are fine).

`tables` maps a register id to its rows (dicts with the canonical column names of
docs/extracts.md; dates as `datetime.date`, missing values as None). A register absent
from `tables` has no rows; a column absent from a row is None.

Semantics that the spec leaves to the implementation follow SQL: register filters use
three-valued logic (a record matches only when its filter is TRUE), while conditions
(event conditions, demographics, and/or/not over them) are plain two-valued.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from antal.catalog import Catalog, EventSource, Register
from antal.catalog.vocabulary import DIMENSION_KEYS, OPTOUT_ALL, Purpose
from antal.engine import ir
from antal.engine.dispatch import Dispatch
from antal.engine.errors import InternalError

__all__ = ["ReferenceResult", "Unit", "evaluate"]

Row = dict[str, Any]
Truth = bool | None  # None is SQL's UNKNOWN


# what a cohort counts: a person (lopnr), or for `index each` an episode (lopnr, index date)
Unit = int | tuple[int, dt.date]


@dataclass(frozen=True)
class ReferenceResult:
    index: dict[Unit, dt.date]  # unit -> index date of the units in the index step
    steps: list[frozenset[Unit]]  # units after the index step, then after each step
    breakdown: dict[tuple[Any, ...], int]  # final cohort by the first report's dims, in order
    tables: tuple[dict[tuple[Any, ...], int], ...] = ()  # every `report by` table, in order

    def counts(self) -> list[int]:
        return [len(s) for s in self.steps]


@dataclass(frozen=True)
class _Occurrence:
    """One matching event of a person: its date, and the site (sjukhus) and clinic (mvo)
    of its record."""

    date: dt.date
    site: str | None
    clinic: str | None = None


def evaluate(
    cohort: ir.Cohort,
    tables: dict[str, list[Row]],
    catalog: Catalog,
    purpose: Purpose = "forskning",
) -> ReferenceResult:
    """Evaluate a cohort over in-memory tables; see the module docstring."""
    return _Evaluator(tables, catalog, purpose).run(cohort)


# --- pure helpers ----------------------------------------------------------------------


def _in_window(d: dt.date, index: dt.date | None, w: ir.Window) -> bool:
    if w.lo is not None or w.hi is not None:
        if index is None:
            raise ValueError("a window relative to the index needs an index date")
        if w.lo is not None and d < index + dt.timedelta(days=w.lo):
            return False
        if w.hi is not None and d > index + dt.timedelta(days=w.hi):
            return False
    if w.start is not None and d < w.start:
        return False
    return not (w.end is not None and d > w.end)


def _codes_match(patterns: Iterable[ir.CodePattern], code: str) -> bool:
    return any(p.matches(code) for p in patterns)


def _check_types(var: str, x: Any, value: ir.Value) -> None:
    """A date column compares with a date, a number with a number, a string with a string."""
    if isinstance(value, dt.date):
        ok = isinstance(x, dt.date)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ok = isinstance(x, int | float) and not isinstance(x, bool)
    else:
        ok = isinstance(x, str)
    if not ok:
        raise TypeError(f"cannot compare {var}={x!r} with {value!r}")


def _compare(x: Any, op: str, value: Any) -> bool:
    if op == "=":
        return bool(x == value)
    if op == "!=":
        return bool(x != value)
    if op == "<":
        return bool(x < value)
    if op == "<=":
        return bool(x <= value)
    if op == ">":
        return bool(x > value)
    if op == ">=":
        return bool(x >= value)
    raise ValueError(f"unknown comparison {op!r}")


# One handler per node of each kind (engine/dispatch.py): a node without one is an
# InternalError naming it. (The handlers are this module's own: the oracle shares no
# code with the compiler, only the dispatch mechanism.)
_FILTER: Dispatch[Callable[..., Truth]] = Dispatch("reference: filter", ir.Filter)
_OCCURRENCES: Dispatch[Callable[..., Iterable[Any]]] = Dispatch("reference: event", ir.Event)
_COND: Dispatch[Callable[..., bool]] = Dispatch("reference: condition", ir.Cond)
_DIMENSION: Dispatch[Callable[..., Any]] = Dispatch("reference: dimension", DIMENSION_KEYS)


def _filter(f: ir.Filter, row: Row) -> Truth:
    """A register filter on one record, in SQL's three-valued (Kleene) logic."""
    return _FILTER.of(f)(f, row)


@_FILTER.on(ir.Cmp)
def _filter_cmp(f: ir.Cmp, row: Row) -> Truth:
    x = row.get(f.var)
    if x is None:
        return None
    _check_types(f.var, x, f.value)
    return _compare(x, f.op, f.value)


@_FILTER.on(ir.FIn)
def _filter_in(f: ir.FIn, row: Row) -> Truth:
    x = row.get(f.var)
    if x is None:
        return None
    for v in f.values:
        _check_types(f.var, x, v)
    return any(x == v for v in f.values)


@_FILTER.on(ir.FAnd)
def _filter_and(f: ir.FAnd, row: Row) -> Truth:
    parts = [_filter(g, row) for g in f.items]
    if any(p is False for p in parts):
        return False
    return None if any(p is None for p in parts) else True


@_FILTER.on(ir.FOr)
def _filter_or(f: ir.FOr, row: Row) -> Truth:
    parts = [_filter(g, row) for g in f.items]
    if any(p is True for p in parts):
        return True
    return None if any(p is None for p in parts) else False


@_FILTER.on(ir.FNot)
def _filter_not(f: ir.FNot, row: Row) -> Truth:
    inner = _filter(f.item, row)
    return None if inner is None else not inner


def _months(index: dt.date, person: Row) -> int | None:
    """Whole months from the birth month to the index month (the day is not known)."""
    year, month = person.get("fodelsear"), person.get("fodelsemanad")
    if year is None or month is None:
        return None
    return 12 * index.year + index.month - 12 * int(year) - int(month)


def _age(index: dt.date, person: Row) -> int | None:
    m = _months(index, person)
    return None if m is None else m // 12  # floor, also for negative months


_SEX = {1: "male", 2: "female"}


def _merge(rows: list[Row]) -> Row:
    """One person's rows as one: per column the single value present, else None."""
    merged: Row = {}
    for name in {k for row in rows for k in row}:
        values = {row[name] for row in rows if row.get(name) is not None}
        merged[name] = values.pop() if len(values) == 1 else None
    return merged


# --- the evaluator ---------------------------------------------------------------------


class _Evaluator:
    def __init__(self, tables: dict[str, list[Row]], catalog: Catalog, purpose: Purpose) -> None:
        self.catalog = catalog
        self.purpose = purpose
        # register id -> lopnr -> that person's rows (rows without a person key are dropped)
        self.rows: dict[str, dict[int, list[Row]]] = {}
        for rid, rows in tables.items():
            reg = catalog.register(rid)
            key = reg.person_key if reg is not None else "lopnr"
            by_person: dict[int, list[Row]] = defaultdict(list)
            for row in rows:
                if row.get(key) is not None:
                    by_person[int(row[key])].append(row)
            self.rows[rid] = dict(by_person)
        self._cache: dict[tuple[ir.Event, int], list[_Occurrence]] = {}

    def person_rows(self, register: str, lopnr: int) -> list[Row]:
        return self.rows.get(register, {}).get(lopnr, [])

    def _register(self, rid: str) -> Register:
        reg = self.catalog.register(rid)
        if reg is None:
            raise KeyError(f"register {rid!r} is not in the catalog")
        return reg

    # ---- population and opt-out ----

    def opted_out(self) -> set[int]:
        reg = self.catalog.optout
        if reg is None:
            return set()
        out = set()
        for lopnr, rows in self.rows.get(reg.id, {}).items():
            if any(r.get("andamal") in (self.purpose, OPTOUT_ALL) for r in rows):
                out.add(lopnr)
        return out

    def population(self) -> dict[int, Row]:
        """Population persons (minus opt-outs) -> their population row.

        A person with several population rows (an extract `antal data check` refuses) is
        still one person: each column is the value the rows agree on, missing values aside,
        and unknown (None) when they disagree."""
        reg = self.catalog.population
        if reg is None:
            raise KeyError("the catalog has no population register")
        out = self.opted_out()
        return {
            lopnr: _merge(rows)
            for lopnr, rows in self.rows.get(reg.id, {}).items()
            if lopnr not in out
        }

    # ---- events ----

    def _sources(self, event: ir.Event) -> list[tuple[Register, EventSource]]:
        sources = self.catalog.sources_of(event.kind)
        if isinstance(event, ir.Drug) and event.sources:
            sources = [(r, p) for r, p in sources if (p.source or r.id) in event.sources]
        if isinstance(event, ir.Diagnosis) and event.main:  # only a main-code column is main
            sources = [(r, p) for r, p in sources if p.main is not None]
        return sources

    def occurrences(self, event: ir.Event, lopnr: int) -> list[_Occurrence]:
        """Every matching event of a person, any date (rows with no date never match)."""
        key = (event, lopnr)
        if key not in self._cache:
            self._cache[key] = list(self._occurrences(event, lopnr))
        return self._cache[key]

    def _occurrences(self, event: ir.Event, lopnr: int) -> Iterable[_Occurrence]:
        return _OCCURRENCES.of(event)(self, event, lopnr)

    @_OCCURRENCES.on(ir.RegisterEvent)
    def _register_occurrences(self, event: ir.RegisterEvent, lopnr: int) -> Iterable[_Occurrence]:
        reg = self._register(event.register)
        if not reg.date_column:
            raise ValueError(f"register {reg.id!r} has no date column")
        for row in self.person_rows(reg.id, lopnr):
            d = row.get(reg.date_column)
            if d is None:
                continue
            if event.filter is None or _filter(event.filter, row) is True:
                yield _Occurrence(d, self._site(reg, row), self._clinic(reg, row))

    @_OCCURRENCES.on(ir.Diagnosis, ir.Procedure, ir.Drug, ir.Death)
    def _coded_occurrences(
        self, event: ir.Diagnosis | ir.Procedure | ir.Drug | ir.Death, lopnr: int
    ) -> Iterable[_Occurrence]:
        for reg, src in self._sources(event):
            date_col = reg.event_date(src)
            for row in self.person_rows(reg.id, lopnr):
                d = row.get(date_col)
                if d is not None and self._codes_ok(event, src, row):
                    yield _Occurrence(d, self._site(reg, row), self._clinic(reg, row))

    @staticmethod
    def _site(reg: Register, row: Row) -> str | None:
        return row.get(reg.site_column) if reg.site_column else None

    @staticmethod
    def _clinic(reg: Register, row: Row) -> str | None:
        return row.get(reg.clinic_column) if reg.clinic_column else None

    @staticmethod
    def _codes_ok(event: ir.Event, src: EventSource, row: Row) -> bool:
        patterns: tuple[ir.CodePattern, ...] = event.codes  # type: ignore[union-attr]
        if isinstance(event, ir.Death) and not patterns:
            return True  # any death, whatever (or whether) its cause
        if isinstance(event, ir.Death) and event.mentioned:
            if src.mentioned is None:
                raise ValueError("this death source has no column of contributing causes")
            underlying = row.get(src.codes)
            others = (row.get(src.mentioned) or "").split(" ")
            return any(_codes_match(patterns, c) for c in [underlying, *others] if c)
        if isinstance(event, ir.Diagnosis) and event.main:
            if src.main is None:
                raise ValueError("this diagnosis source has no main-diagnosis column")
            value = row.get(src.main)
            return value is not None and _codes_match(patterns, value)
        value = row.get(src.codes)
        if value is None:
            return False
        codes = value.split(" ") if src.multi else [value]
        return any(_codes_match(patterns, c) for c in codes if c)

    # ---- index ----

    def index_dates(self, index: ir.IndexEvent | ir.IndexDate, pop: dict[int, Row]):
        """lopnr -> index date, for the persons that have one."""
        out: dict[int, dt.date] = {}
        if isinstance(index, ir.IndexDate):
            d = index.date
            deaths = self.catalog.sources_of("death")
            for lopnr, person in sorted(pop.items()):
                m = _months(d, person)
                if m is None or m < 0:
                    continue  # not born in or before the index month
                dead = any(
                    row.get(reg.event_date(src)) is not None and row[reg.event_date(src)] < d
                    for reg, src in deaths
                    for row in self.person_rows(reg.id, lopnr)
                )
                if not dead:
                    out[lopnr] = d
            return out
        if not isinstance(index, ir.IndexEvent):
            raise InternalError(f"reference: no handler for index {type(index).__name__}")
        if index.window.relative:
            raise ValueError("the window of an index must be a calendar window")
        if index.which == "each":
            return self.episodes(index, pop)
        pick = min if index.which == "first" else max
        for lopnr in sorted(pop):
            dates = [
                o.date
                for o in self.occurrences(index.event, lopnr)
                if _in_window(o.date, None, index.window)
            ]
            if dates:
                out[lopnr] = pick(dates)
        return out

    def episodes(self, index: ir.IndexEvent, pop: dict[int, Row]) -> dict[Unit, dt.date]:
        """(lopnr, d) -> d for every date d in the window with a matching event and no
        matching event in the `washout` days before d, whatever their date (the window
        bounds the index dates, not the washout's look-back)."""
        if index.washout is None:
            raise ValueError("`index each` needs a washout")
        out: dict[Unit, dt.date] = {}
        for lopnr in sorted(pop):
            dates = sorted({o.date for o in self.occurrences(index.event, lopnr)})
            for d in dates:
                if not _in_window(d, None, index.window):
                    continue
                since = d - dt.timedelta(days=index.washout)
                if not any(since <= e < d for e in dates):
                    out[(lopnr, d)] = d
        return out

    def hospital(
        self, index: ir.IndexEvent | ir.IndexDate, lopnr: int, d: dt.date, what: str = "site"
    ):
        """The smallest site (or clinic: `what`) among the matching index events on the
        index date; the two are chosen independently."""
        if isinstance(index, ir.IndexDate):
            return None
        sites = [
            getattr(o, what)
            for o in self.occurrences(index.event, lopnr)
            if o.date == d
            and getattr(o, what) is not None
            and _in_window(o.date, None, index.window)
        ]
        return min(sites) if sites else None

    # ---- conditions ----

    def cond(self, c: ir.Cond, lopnr: int, index: dt.date, person: Row) -> bool:
        return _COND.of(c)(self, c, lopnr, index, person)

    @_COND.on(ir.Age)
    def _age_cond(self, c: ir.Age, lopnr: int, index: dt.date, person: Row) -> bool:
        age = _age(index, person)
        return age is not None and c.lo <= age <= c.hi

    @_COND.on(ir.Sex)
    def _sex_cond(self, c: ir.Sex, lopnr: int, index: dt.date, person: Row) -> bool:
        kon = person.get("kon")
        return kon is not None and _SEX.get(int(kon)) == c.sex

    @_COND.on(ir.RegionIn)
    def _region_cond(self, c: ir.RegionIn, lopnr: int, index: dt.date, person: Row) -> bool:
        lan = person.get("lan")
        return lan is not None and lan in c.codes

    @_COND.on(ir.AllOf)
    def _all_cond(self, c: ir.AllOf, lopnr: int, index: dt.date, person: Row) -> bool:
        return all(self.cond(i, lopnr, index, person) for i in c.items)

    @_COND.on(ir.AnyOf)
    def _any_cond(self, c: ir.AnyOf, lopnr: int, index: dt.date, person: Row) -> bool:
        return any(self.cond(i, lopnr, index, person) for i in c.items)

    @_COND.on(ir.Not)
    def _not_cond(self, c: ir.Not, lopnr: int, index: dt.date, person: Row) -> bool:
        return not self.cond(c.item, lopnr, index, person)

    @_COND.on(ir.EventCond)
    def _event_cond(self, c: ir.EventCond, lopnr: int, index: dt.date, person: Row) -> bool:
        return self.event_cond(c, lopnr, index)

    def event_cond(self, c: ir.EventCond, lopnr: int, index: dt.date) -> bool:
        if c.latest:
            return self.latest(c, lopnr, index)
        dates = {
            o.date for o in self.occurrences(c.event, lopnr) if _in_window(o.date, index, c.window)
        }
        if c.count is None:
            return bool(dates)
        n = len(dates)
        if c.count.op == ">=":
            return n >= c.count.n
        if c.count.op == "<=":
            return n <= c.count.n
        if c.count.op == "=":
            return n == c.count.n
        raise ValueError(f"unknown count operator {c.count.op!r}")

    def latest(self, c: ir.EventCond, lopnr: int, index: dt.date) -> bool:
        """The most recent record in the window with every filtered variable present must
        satisfy the filter (any one of several records on that date is enough)."""
        ev = c.event
        if not isinstance(ev, ir.RegisterEvent):
            raise ValueError("`latest` applies to a register event")
        if c.count is not None:
            raise ValueError("`latest` cannot be combined with a count")
        reg = self._register(ev.register)
        date_col = reg.date_column or ""
        needed = ir.filter_vars(ev.filter) if ev.filter is not None else []
        candidates = [
            row
            for row in self.person_rows(reg.id, lopnr)
            if row.get(date_col) is not None
            and _in_window(row[date_col], index, c.window)
            and all(row.get(v) is not None for v in needed)
        ]
        if not candidates:
            return False
        last = max(row[date_col] for row in candidates)
        return any(
            ev.filter is None or _filter(ev.filter, row) is True
            for row in candidates
            if row[date_col] == last
        )

    # ---- the whole cohort ----

    def run(self, cohort: ir.Cohort) -> ReferenceResult:
        pop = self.population()
        index = self.index_dates(cohort.index, pop)

        def who(u: Unit) -> int:  # the person of a unit
            return u[0] if isinstance(u, tuple) else u

        current = frozenset(index)
        steps = [current]
        for step in cohort.steps:
            want = step.action == "include"
            current = frozenset(
                u for u in current
                if self.cond(step.cond, who(u), index[u], pop[who(u)]) is want
            )  # fmt: skip
            steps.append(current)
        tables: list[dict[tuple[Any, ...], int]] = []
        for rep in cohort.reports:  # each table counts every unit of the final cohort once
            table: dict[tuple[Any, ...], int] = {}
            for u in sorted(current, key=lambda u: u if isinstance(u, tuple) else (u,)):
                p = who(u)
                key = tuple(self.dim(d, cohort.index, p, index[u], pop[p]) for d in rep.dims)
                table[key] = table.get(key, 0) + 1
            tables.append(table)
        return ReferenceResult(
            index=index, steps=steps, breakdown=tables[0] if tables else {}, tables=tuple(tables)
        )

    def dim(
        self,
        d: ir.Dim | ir.AgeBand,
        index_spec: ir.IndexEvent | ir.IndexDate,
        lopnr: int,
        index: dt.date,
        person: Row,
    ) -> Any:
        return _DIMENSION(ir.dimension_key(d))(self, d, index_spec, lopnr, index, person)

    @_DIMENSION.on("age")
    def _dim_age(self, d: ir.AgeBand, spec: Any, lopnr: int, index: dt.date, person: Row) -> Any:
        age = _age(index, person)
        return None if age is None else (age // d.width) * d.width

    @_DIMENSION.on("region")
    def _dim_region(self, d: ir.Dim, spec: Any, lopnr: int, index: dt.date, person: Row) -> Any:
        lan = person.get("lan")
        return None if lan is None else str(lan)

    @_DIMENSION.on("sex")
    def _dim_sex(self, d: ir.Dim, spec: Any, lopnr: int, index: dt.date, person: Row) -> Any:
        kon = person.get("kon")
        return None if kon is None else _SEX.get(int(kon))

    @_DIMENSION.on("year")
    def _dim_year(self, d: ir.Dim, spec: Any, lopnr: int, index: dt.date, person: Row) -> Any:
        return index.year

    @_DIMENSION.on("hospital")
    def _dim_hospital(self, d: ir.Dim, spec: Any, lopnr: int, index: dt.date, person: Row) -> Any:
        return self.hospital(spec, lopnr, index)

    @_DIMENSION.on("clinic")
    def _dim_clinic(self, d: ir.Dim, spec: Any, lopnr: int, index: dt.date, person: Row) -> Any:
        return self.hospital(spec, lopnr, index, "clinic")

    @_DIMENSION.on("month")
    def _dim_month(self, d: ir.Dim, spec: Any, lopnr: int, index: dt.date, person: Row) -> Any:
        return index.year * 100 + index.month  # 202103: March 2021

    @_DIMENSION.on("quarter")
    def _dim_quarter(self, d: ir.Dim, spec: Any, lopnr: int, index: dt.date, person: Row) -> Any:
        return index.year * 10 + (index.month - 1) // 3 + 1  # 20211: 2021 Q1

    @_DIMENSION.on("sjukvardsregion")
    def _dim_healthcare_region(
        self, d: ir.Dim, spec: Any, lopnr: int, index: dt.date, person: Row
    ) -> Any:
        """The län's healthcare region; in a split län (Halland) the kommun's, unknown
        without one (catalog/regions.yaml)."""
        lan = person.get("lan")
        region = next((r for r in self.catalog.regions if r.code == lan), None)
        if region is None:
            return None
        if region.split:
            kommun = person.get("kommun")
            if kommun is None:
                return None
            for h, kommuner in region.split.items():
                if kommun in kommuner:
                    return h
        return region.sjukvardsregion
