"""IR → one sqlglot statement that computes the whole attrition and the breakdown.

Shape of the statement (one handler per IR node builds each piece):

    scanN   one pre-filtered read of each table the statement reads (a register, or a
            prepared file's code table): the rows any condition can use, behind a hull of
            plain column predicates, a flag per use (see `_Scan`)
    ix      records of the index event (with its calendar window), from the scans
    idx     per person the index date: MIN or MAX over ix
    base    persons in the index step: population ⋈ idx, minus opt-outs, one row per person
            (duplicated population rows never count a person twice; see `_person_value`;
            a prepared file's person table, or a population the data check found one row
            per person, has them resolved already)
    isite   (report by hospital or clinic) the hospital and clinic of the index event on the
            index date
    evK     step K's events: one row per (criterion event, matching record) of the persons
            who passed every step before K, from the scans, only records inside the hull of
            the windows asking for them (joined to those persons' index dates for an index
            event)
    aggK    per person and criterion of step K: counts of distinct dates / latest dates in
            the window
    sK      the persons who passed step K too: the survivors of the one before, staged as a
            hand-written query is, so that each step reads its registers for them only
    persons the final cohort's breakdown values
    final   the cells: GROUP BY GROUPING SETS ((table 1's dims), (table 2's dims)...) over
            persons; and the attrition: the size of base and of every sK (engine/rows.py)

No user text reaches SQL: names come from the catalog, values become typed literals,
codes (validated to [A-Z0-9]) become LIKE patterns. Builders are called with copy=False:
the tree is built once and never shared, and copying dominated compile time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from antal.catalog import Catalog, EventSource, Register
from antal.catalog.installation import PhysicalLayout
from antal.catalog.vocabulary import DIMENSION_KEYS, OPTOUT_ALL, PURPOSES, Dialect, Purpose
from antal.engine import ir
from antal.engine.check import event_sources
from antal.engine.dialects import keeps_ctes, sqlglot_dialect
from antal.engine.dispatch import Dispatch
from antal.engine.errors import InternalError
from antal.engine.hierarchy import value_name
from antal.engine.rows import GROUPING, RowLayout, count_column

__all__ = ["Compiled", "columns_read", "compile_cohort"]


def _NUM(v: int | float) -> exp.Literal:
    """A number literal from a validated int or finite float only: sqlglot renders the
    text it is given, and `inf` or `nan` would be read by SQL as an identifier."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{v!r} is not a finite number")
    return exp.Literal.number(v)


@dataclass(frozen=True)
class Compiled:
    """A compiled cohort: one SELECT, and how to read its result rows."""

    tree: exp.Select
    labels: tuple[str, ...]  # attrition step labels, index step first
    tables: tuple[tuple[str, ...], ...]  # each `report by` table's columns, in report order
    registers: frozenset[str]  # registers read
    rebuild: Callable[[], exp.Select] = field(repr=False, compare=False)  # a fresh, equal tree
    # the same cohort's flat plan (`_Compiler._flat`), for an engine that computes a CTE
    # again at each reference to it (engine/dialects.py, `keeps_ctes`)
    flat: Callable[[], exp.Select] | None = field(default=None, repr=False, compare=False)
    # the name of a breakdown value (engine/hierarchy.py), e.g. ("region", "18") -> "Örebro län"
    namer: Callable[[str, Any], str | None] = field(
        default=lambda _c, _v: None, repr=False, compare=False
    )
    _rendered: dict[tuple[str, bool], str] = field(default_factory=dict, repr=False, compare=False)
    # (register, canonical column) the statement reads (`columns_read`)
    columns: frozenset[tuple[str, str]] = field(default=frozenset(), compare=False)

    @property
    def dims(self) -> tuple[str, ...]:
        """The first table's columns (the only table of most cohorts)."""
        return self.tables[0] if self.tables else ()

    @property
    def layout(self) -> RowLayout:
        """The columns of the rows the statement returns (engine/rows.py reads them)."""
        return RowLayout.of(self.tables, len(self.labels))

    def sql(self, dialect: Dialect = "duckdb", pretty: bool = False) -> str:
        """The statement's text in a dialect. A generator may rewrite the tree it renders,
        and copying the tree costs more than building it, so the first rendering uses the
        tree itself and any later one a freshly built tree."""
        key = (dialect, pretty)
        if key not in self._rendered:
            if not keeps_ctes(dialect) and self.flat is not None:
                tree = self.flat()
            else:
                tree = self.rebuild() if self._rendered else self.tree
            self._rendered[key] = tree.sql(
                dialect=sqlglot_dialect(dialect), pretty=pretty, copy=False
            )
        return self._rendered[key]


# ---- small builders ---------------------------------------------------------------------


def _lit(v: ir.Value) -> exp.Expression:
    if isinstance(v, bool):
        raise TypeError("booleans are not values of the cohort language")
    if isinstance(v, str):
        return exp.Literal.string(v)
    if isinstance(v, int | float):
        return _NUM(v)
    return exp.Cast(this=exp.Literal.string(v.isoformat()), to=exp.DataType.build("DATE"))


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.Column(
        this=exp.Identifier(this=name, quoted=True),
        table=exp.Identifier(this=table, quoted=False) if table else None,
    )


def _table(name: str, alias: str | None = None, quoted: bool = True) -> exp.Table:
    t = exp.Table(this=exp.Identifier(this=name, quoted=quoted))
    if alias:
        t.set("alias", exp.TableAlias(this=exp.Identifier(this=alias, quoted=False)))
    return t


def _alias(e: exp.Expression, name: str) -> exp.Alias:
    return exp.Alias(this=e, alias=exp.Identifier(this=name, quoted=False))


def _p(e: exp.Expression) -> exp.Paren:
    return exp.Paren(this=e)


def _and(*parts: exp.Expression | None) -> exp.Expression:
    items = [p for p in parts if p is not None]
    if not items:
        return exp.true()
    out = items[0]
    for p in items[1:]:
        out = exp.And(this=out, expression=p)
    return out


def _or(parts: list[exp.Expression]) -> exp.Expression:
    if not parts:
        return exp.false()
    out = parts[0]
    for p in parts[1:]:
        out = exp.Or(this=out, expression=p)
    return _p(out) if len(parts) > 1 else out


def _not(e: exp.Expression) -> exp.Not:
    return exp.Not(this=_p(e))


def _not_null(e: exp.Expression) -> exp.Not:
    return exp.Not(this=exp.Is(this=e, expression=exp.Null()))


def _case(cond: exp.Expression, value: exp.Expression) -> exp.Case:
    return exp.Case(ifs=[exp.If(this=cond, true=value)])


def _coalesce(e: exp.Expression, default: exp.Expression) -> exp.Coalesce:
    return exp.Coalesce(this=e, expressions=[default])


def _add_days(d: exp.Expression, n: int) -> exp.Expression:
    return exp.DateAdd(this=d, expression=_NUM(n), unit=exp.var("DAY"))


def _select(*cols: exp.Expression) -> exp.Select:
    return exp.Select(expressions=list(cols))


def _from(sel: exp.Select, t: exp.Expression) -> exp.Select:
    return sel.from_(t, copy=False)


def _union(selects: list[exp.Select]) -> exp.Expression:
    out: exp.Expression = selects[0]
    for s in selects[1:]:
        out = exp.Union(this=out, expression=s, distinct=False)
    return out


_PERSON_COLUMNS = ("kon", "lan", "fodelsear", "fodelsemanad")
_SITE_DIMS = ("hospital", "clinic")  # dimensions read from the index event's record


def _person_value(name: str) -> exp.Case:
    """A population column of one person, over all of that person's population rows: the
    value they agree on (missing values aside), else unknown. A correct extract has one row
    per person (`antal data check` refuses duplicates); this keeps a count correct, and each
    person's contribution at most 1 (the sensitivity the noise is scaled to), even if not."""
    lo, hi = exp.Min(this=_col(name, "p")), exp.Max(this=_col(name, "p"))
    return _case(exp.EQ(this=lo, expression=hi), lo.copy())


_MIN_RUN = 8  # categories in a run before it compiles to comparisons (see `codes`)


def _run_length(lo: str, hi: str) -> int:
    return int(hi[1:]) - int(lo[1:]) + 1


def _run_range(column: exp.Expression, lo: str, hi: str) -> exp.Expression:
    """Codes whose category lies in lo..hi (one letter; both validated `[A-Z][0-9]{2}`).

    The code's first three characters lie between lo and hi: strings of one letter and two
    characters that compare only digit by digit, so the answer is the same under every
    collation (a byte-order trick such as `code < 'I2:'` is not: PostgreSQL's linguistic
    collations sort ':' before digits and would silently match nobody). Across decades the
    third character must also be a digit (else `I3A` would lie between I29 and I30); a code
    shorter than three characters sorts before lo and fails, as it fails every category."""
    head = exp.Substring(this=column.copy(), start=_NUM(1), length=_NUM(3))
    parts: list[exp.Expression] = [
        exp.Between(this=head, low=exp.Literal.string(lo), high=exp.Literal.string(hi))
    ]
    if lo[1] != hi[1]:
        third = exp.Substring(this=column.copy(), start=_NUM(3), length=_NUM(1))
        parts.append(
            exp.Between(this=third, low=exp.Literal.string("0"), high=exp.Literal.string("9"))
        )
    return _p(_and(*parts))


def _runs_regexp(column: exp.Expression, runs: list[tuple[str, str]]) -> exp.Expression:
    """A space-separated code list holding a code of any category in the runs: one regular
    expression, a character class per decade (`I2[0-5]`), anchored at an item's start."""
    alts = []
    for lo, hi in runs:
        a, b = int(lo[1:]), int(hi[1:])
        for tens in range(a // 10, b // 10 + 1):
            first, last = max(a, 10 * tens) % 10, min(b, 10 * tens + 9) % 10
            alts.append(f"{lo[0]}{tens}[{first}-{last}]")
    return exp.RegexpLike(
        this=column.copy(), expression=exp.Literal.string(f"(^| )({'|'.join(alts)})")
    )


def _wide(e: exp.Expression) -> exp.Expression:
    """A birth year or month widened before arithmetic: `12 * fodelsear` in the column's own
    SMALLINT overflows for some rows only, and an error that depends on a row is a membership
    oracle (docs/security.md). The data check also bounds the values."""
    return exp.Cast(this=e, to=exp.DataType.build("BIGINT"))


def _months(t: str = "base") -> exp.Expression:
    """Completed months of life at the index date (the day of birth is not in the extract)."""
    idx = _col("index_date", t)
    now = exp.Add(
        this=exp.Mul(this=_NUM(12), expression=exp.Year(this=idx)), expression=exp.Month(this=idx)
    )
    born = exp.Add(
        this=exp.Mul(this=_NUM(12), expression=_wide(_col("fodelsear", t))),
        expression=_wide(_col("fodelsemanad", t)),
    )
    return _p(exp.Sub(this=_p(now), expression=_p(born)))


# ---- the compiler ---------------------------------------------------------------------------

# One handler per node of each kind (engine/dispatch.py): a node without one is an
# InternalError naming it, never another node's SQL.
_MATCH: Dispatch[Callable[..., exp.Expression]] = Dispatch("compiler: event", ir.Event)
_FILTER: Dispatch[Callable[..., exp.Expression]] = Dispatch("compiler: filter", ir.Filter)
_COND: Dispatch[Callable[..., exp.Expression]] = Dispatch("compiler: condition", ir.Cond)
_DIMENSION: Dispatch[Callable[..., tuple[str, exp.Expression]]] = Dispatch(
    "compiler: dimension", DIMENSION_KEYS
)


@dataclass
class _Atom:
    """One criterion event: its rows in `ev` carry its number."""

    event: ir.Event
    number: int
    latest: bool = False  # rows for `latest`: records whose filtered variables are present
    # the windows of the conditions that read these rows: only rows inside one of them can
    # count, so the scan keeps only rows inside their hull (see `_hull`)
    windows: list[ir.Window] = field(default_factory=list)


# the columns of `base` an event scan joins to, under names no catalog variable has
_IX_PERSON, _IX_DATE = "_ix_lopnr", "_ix_date"
_EPISODE = "_episode"  # `index each`: the index date of the episode an `ev` row belongs to


def _hull(windows: list[ir.Window]) -> ir.Window:
    """The smallest window holding all of `windows`: each bound the loosest of theirs, and
    no bound where any of them has none. A row outside it is outside every one of them."""

    def loosest(values: list[Any], pick: Callable[..., Any]) -> Any:
        return None if not values or any(v is None for v in values) else pick(values)

    return ir.Window(
        lo=loosest([w.lo for w in windows], min),
        hi=loosest([w.hi for w in windows], max),
        start=loosest([w.start for w in windows], min),
        end=loosest([w.end for w in windows], max),
    )


@dataclass(frozen=True)
class _Use:
    """What one use keeps of a scan: rows with a date in `date` inside the calendar window
    `span` that satisfy `cond`; `codes`: (column, codes) when `cond` is exactly "the column
    holds one of the codes" (a single-code column or a code table), the scan's hull."""

    date: str
    span: ir.Window
    cond: exp.Expression
    codes: tuple[str, tuple[ir.CodePattern, ...]] | None


@dataclass
class _Scan:
    """The one read of a table (a register, or a prepared file's code table) that every
    event of the statement reading it shares: the rows any of them can use, each marked
    with a flag per use. A table read once is a plain subquery; one read by several uses
    (the index and its look-back, criteria on the same register) is a CTE that DuckDB and
    PostgreSQL keep (`materialized`), so the register is scanned once, as the hand-written
    baselines read it (bench/handwritten/)."""

    name: str
    table: str
    reg: Register
    flat: bool  # a prepared file's code table, sorted by code
    dates: dict[str, str] = field(default_factory=dict)  # a date column -> the scan's name
    site: bool = False  # carries the record's hospital and clinic (the index, for isite)
    uses: list[_Use] = field(default_factory=list)  # flag k: the rows of use k
    oks: list[exp.Expression] = field(default_factory=list)  # `latest`: does the row match

    def date(self, column: str) -> str:
        return self.dates.setdefault(column, f"d{len(self.dates)}")

    @property
    def materialized(self) -> bool | None:
        """Whether the engine keeps the scan's rows for its uses (`AS MATERIALIZED`) or
        reads the table for each (`AS NOT MATERIALIZED`); None, one use: the engine's
        choice (a CTE read once is inlined). A register's file or table is kept: reading
        it costs a pass over every row. A code table is read again: sorted by code, each
        use reads the few blocks of its codes, which costs less than keeping the rows of
        all of them (t2d_metformin at 1M: 280 ms of CPU against 570 kept)."""
        return None if len(self.uses) < 2 else not self.flat


def _cover(codes: list[ir.CodePattern]) -> tuple[ir.CodePattern, ...]:
    """The fewest patterns matching exactly the codes any of `codes` matches: a pattern
    that another prefix pattern already matches is left out."""
    kept: list[str] = []
    for p in sorted({c.code for c in codes if c.prefix}):  # a prefix of p sorts before p
        if not any(p.startswith(k) for k in kept):
            kept.append(p)
    exact = sorted({c.code for c in codes if not c.prefix})
    return tuple(ir.CodePattern(k, prefix=True) for k in kept) + tuple(
        ir.CodePattern(e) for e in exact if not any(e.startswith(k) for k in kept)
    )


@dataclass(frozen=True)
class _Read:
    """One use of a scan: its rows are those with `flag`, their date is column `date`."""

    scan: _Scan
    flag: str
    date: str
    ok: str | None = None  # `latest`: the scan's column telling whether the row matches


def _code_column(ev: ir.Event, src: EventSource) -> str:
    """The column of codes an event reads: the main code's for `diagnosis ... main`."""
    return (src.main or "") if isinstance(ev, ir.Diagnosis) and ev.main else src.codes


def _absolute(w: ir.Window, first: dt.date | None, last: dt.date | None) -> ir.Window:
    """The calendar dates a window can reach when every index date lies in first..last
    (None: unbounded): `lo <= d - index` gives `d >= first + lo`, `d - index <= hi` gives
    `d <= last + hi`. A bound on the rows a scan keeps before anyone's index date is known."""
    start, end = w.start, w.end
    if w.lo is not None and first is not None:
        reach = first + dt.timedelta(days=w.lo)
        start = reach if start is None else max(start, reach)
    if w.hi is not None and last is not None:
        reach = last + dt.timedelta(days=w.hi)
        end = reach if end is None else min(end, reach)
    return ir.Window(start=start, end=end)


@dataclass
class _Compiler:
    catalog: Catalog
    purpose: Purpose
    optout: str | None
    # a prepared file's tables read instead of registers (Installation.layout)
    layout: PhysicalLayout = field(default_factory=PhysicalLayout)
    atoms: dict[ir.Event, _Atom] = field(default_factory=dict)
    aggs: dict[tuple, tuple[str, exp.Expression]] = field(default_factory=dict)
    tables: set[str] = field(default_factory=set)
    scans: dict[str, _Scan] = field(default_factory=dict)  # by table read
    # the persons (and index dates) the step being compiled is evaluated for (`_staged`)
    people: str = "base"
    # the plan: staged (each step read for the survivors of the last) or flat (`_flat`)
    staged: bool = True
    numbered: int = 0  # atoms numbered so far
    named: int = 0  # aggregates named so far
    # `index each`: the unit is the episode (person, index date), not the person; every
    # step from `base` on is keyed by both (see `_key`)
    episodes: bool = False

    # ---- events: which records of which register match ----------------------------------
    def sources(self, ev: ir.Event) -> list[tuple[Register, EventSource | None]]:
        return event_sources(ev, self.catalog)

    def match(self, ev: ir.Event, src: EventSource | None, flat: bool = False) -> exp.Expression:
        """Does a record match the event? (the handler per event node). `flat`: the rows
        are a code table's, one code per row (see `scan`)."""
        return _MATCH.of(ev)(self, ev, src, flat)

    @_MATCH.on(ir.RegisterEvent)
    def _match_register(self, ev: ir.RegisterEvent, src: None, flat: bool) -> exp.Expression:
        return exp.true() if ev.filter is None else self.filter(ev.filter)

    @_MATCH.on(ir.Death)
    def _match_death(self, ev: ir.Death, src: EventSource, flat: bool) -> exp.Expression:
        if not ev.codes:
            return exp.true()
        if ev.mentioned:  # the underlying cause, or one of the contributing ones
            assert src.mentioned is not None and not flat
            return _or([self.codes(_col(src.codes), ev.codes, multi=src.multi),
                        self.codes(_col(src.mentioned), ev.codes, multi=True)])  # fmt: skip
        return self._match_codes(ev, src, flat)

    @_MATCH.on(ir.Diagnosis)
    def _match_diagnosis(self, ev: ir.Diagnosis, src: EventSource, flat: bool) -> exp.Expression:
        if ev.main:
            assert src.main is not None
            return self.codes(_col(src.main), ev.codes, multi=False)
        return self._match_codes(ev, src, flat)

    @_MATCH.on(ir.Procedure, ir.Drug)
    def _match_codes(
        self, ev: ir.Procedure | ir.Drug | ir.Death | ir.Diagnosis, src: EventSource, flat: bool
    ) -> exp.Expression:
        assert src is not None
        return self.codes(_col(src.codes), ev.codes, multi=src.multi and not flat)

    def scan(self, ev: ir.Event, reg: Register, src: EventSource | None) -> tuple[str, bool]:
        """The table an event's records are read from, and whether it is a code table.

        A code event on an installation with a prepared file reads the code table of its
        column (one code per row, sorted by code: a LIKE prefix reads a few row groups);
        everything else reads the register itself. Both give the same rows to `ev`, since
        a code table keeps the person, the dates, hospital and clinic of each record, and
        every later step counts distinct dates or asks whether any row exists."""
        if src is None or (isinstance(ev, ir.Death) and (not ev.codes or ev.mentioned)):
            return reg.id, False  # any death, or two code columns: the register itself
        table = self.layout.code_tables.get((reg.id, _code_column(ev, src)))
        return (table, True) if table else (reg.id, False)

    def present(self, ev: ir.Event) -> exp.Expression:
        """`latest` looks only at records where the filtered variables are present."""
        assert isinstance(ev, ir.RegisterEvent) and ev.filter is not None
        return _and(*(_not_null(_col(v)) for v in ir.filter_vars(ev.filter)))

    def codes(
        self, column: exp.Expression, codes: tuple[ir.CodePattern, ...], multi: bool
    ) -> exp.Expression:
        for c in codes:
            if not ir.SAFE_CODE.fullmatch(
                c.code
            ):  # the checker guarantees it; SQL safety must not rely on that
                raise ValueError(f"code {c.code!r} is not normalised")

        def like(pattern: str) -> exp.Like:
            return exp.Like(this=column.copy(), expression=exp.Literal.string(pattern))

        def starts(code: str) -> exp.StartsWith:
            # not LIKE 'E11%': DuckDB turns a lone LIKE into a prefix test, but evaluates
            # a disjunction of them as LIKEs, twice as slowly (engine/dialects.py renders
            # it as LIKE where that is what the engine reads best)
            return exp.StartsWith(this=column.copy(), expression=exp.Literal.string(code))

        # long runs of consecutive categories (a range like A00..B99, however it was written)
        # compile to comparisons instead of one LIKE per category; short ones stay LIKEs,
        # which DuckDB runs faster than a regular expression on a space-separated list
        all_runs, _others = ir.category_runs(codes)
        runs = [(lo, hi) for lo, hi in all_runs if _run_length(lo, hi) >= _MIN_RUN]
        in_runs = {
            f"{lo[0]}{n:02d}" for lo, hi in runs for n in range(int(lo[1:]), int(hi[1:]) + 1)
        }
        codes = tuple(c for c in codes if not (c.prefix and c.code in in_runs))
        parts: list[exp.Expression] = []
        if multi:
            if runs:
                parts.append(_runs_regexp(column, runs))
            # one code per space-separated item, so E11 never matches inside another code
            for c in codes:
                if c.prefix:
                    parts += [starts(c.code), like(f"% {c.code}%")]
                else:
                    parts += [
                        exp.EQ(this=column.copy(), expression=exp.Literal.string(c.code)),
                        like(f"{c.code} %"), like(f"% {c.code}"), like(f"% {c.code} %"),
                    ]  # fmt: skip
            return _or(parts)
        exact = [exp.Literal.string(c.code) for c in codes if not c.prefix]
        if len(exact) == 1:
            parts.append(exp.EQ(this=column.copy(), expression=exact[0]))
        elif exact:
            parts.append(exp.In(this=column.copy(), expressions=exact))
        parts += [starts(c.code) for c in codes if c.prefix]
        parts += [_run_range(column, lo, hi) for lo, hi in runs]
        return _or(parts)

    def filter(self, f: ir.Filter) -> exp.Expression:
        return _FILTER.of(f)(self, f)

    @_FILTER.on(ir.Cmp)
    def _cmp(self, f: ir.Cmp) -> exp.Expression:
        ops = {
            "=": exp.EQ,
            "!=": exp.NEQ,
            "<": exp.LT,
            "<=": exp.LTE,
            ">": exp.GT,
            ">=": exp.GTE,
        }
        return ops[f.op](this=_col(f.var), expression=_lit(f.value))

    @_FILTER.on(ir.FIn)
    def _in(self, f: ir.FIn) -> exp.Expression:
        return exp.In(this=_col(f.var), expressions=[_lit(v) for v in f.values])

    @_FILTER.on(ir.FAnd)
    def _fand(self, f: ir.FAnd) -> exp.Expression:
        return _p(_and(*(_p(self.filter(i)) for i in f.items)))

    @_FILTER.on(ir.FOr)
    def _for(self, f: ir.FOr) -> exp.Expression:
        return _or([_p(self.filter(i)) for i in f.items])

    @_FILTER.on(ir.FNot)
    def _fnot(self, f: ir.FNot) -> exp.Expression:
        return _not(self.filter(f.item))

    def read(self, ev: ir.Event, latest: bool = False, within: ir.Window | None = None,
             site: bool = False) -> list[_Read]:  # fmt: skip
        """A use of the event's records dated inside the calendar window `within`: one
        flag on the scan of each table its sources are read from (see `_Scan`)."""
        out = []
        for reg, src in self.sources(ev):
            self.tables.add(reg.id)
            table, flat = self.scan(ev, reg, src)
            s = self.scans.get(table)
            if s is None:
                s = self.scans[table] = _Scan(f"scan{len(self.scans)}", table, reg, flat)
            column = reg.event_date(src) if src else reg.date_column or ""
            m = self.match(ev, src, flat)
            codes = None if latest else self.restriction(ev, src, flat)
            cond = self.present(ev) if latest else m.copy()
            s.uses.append(_Use(column, within or ir.Window(), cond, codes))
            ok = None
            if latest:
                s.oks.append(_coalesce(_p(m), exp.false()))
                ok = f"ok{len(s.oks) - 1}"
            s.site |= site
            out.append(_Read(s, f"f{len(s.uses) - 1}", s.date(column), ok))
        return out

    def restriction(
        self, ev: ir.Event, src: EventSource | None, flat: bool
    ) -> tuple[str, tuple[ir.CodePattern, ...]] | None:
        """(column, codes) when every record the event matches has one of the codes as the
        whole value of the column (a single-code column, or a code table); else None."""
        if src is None or not isinstance(ev, ir.Diagnosis | ir.Procedure | ir.Drug | ir.Death):
            return None
        if not ev.codes or (isinstance(ev, ir.Death) and ev.mentioned):
            return None
        if isinstance(ev, ir.Diagnosis) and ev.main:  # the main code: one per record
            return (_code_column(ev, src), ev.codes)
        return (src.codes, ev.codes) if flat or not src.multi else None

    def scan_body(self, s: _Scan) -> exp.Select:
        """A scan's statement: the person, the dates, the flags of its uses, of the rows
        inside its hull (which every use's rows are: the earliest start and latest end of
        their calendar windows, and every code any of them matches when they all match
        codes of one column) and of some use. The hull is a conjunction of plain column
        predicates, which the engines push into the table scan; the uses' disjunction alone
        is evaluated on every row (t2d_metformin's lmr at 1M: 1.6 s against 0.2 s)."""
        cols: list[exp.Expression] = [_alias(_col(s.reg.person_key), "lopnr")]
        cols += [_alias(_col(column), name) for column, name in s.dates.items()]
        if s.site:
            for name, column in (("site", s.reg.site_column), ("clinic", s.reg.clinic_column)):
                value = _col(column) if column else exp.Cast(
                    this=exp.Null(), to=exp.DataType.build("VARCHAR"))  # fmt: skip
                cols.append(_alias(value, name))
        # the hull: every use's rows lie inside it
        hull: list[exp.Expression] = []
        span = _hull([u.span for u in s.uses])
        one_date = len(s.dates) == 1
        if one_date:
            hull += [_not_null(_col(s.uses[0].date)), self.window(span, _col(s.uses[0].date), None)]
        columns = {u.codes[0] if u.codes else None for u in s.uses}
        codes: tuple[ir.CodePattern, ...] | None = None
        if len(columns) == 1 and None not in columns:
            codes = _cover([c for u in s.uses if u.codes for c in u.codes[1]])
            hull.append(self.codes(_col(s.uses[0].codes[0]), codes, multi=False))  # type: ignore[index]
        # a flag tests only what its use asks beyond the hull: each row's flags are
        # computed for every row the scan keeps
        flags = []
        for u in s.uses:
            d = _col(u.date)
            parts = [] if one_date else [_not_null(d.copy())]
            if not one_date or u.span != span:
                parts.append(self.window(u.span, d, None))
            if u.codes is None:
                parts.append(_p(u.cond.copy()))
            elif _cover(list(u.codes[1])) != codes:
                parts.append(self.codes(_col(u.codes[0]), u.codes[1], multi=False))
            flags.append(_p(_and(*parts)))
        # rows of no use are left out where the hull lets them in, unless the hull is the
        # codes' (rows inside it then differ from the uses' only by date, and testing the
        # flags on every row would cost more than keeping them: t2d_metformin's lmr)
        cols += [_alias(f, f"f{k}") for k, f in enumerate(flags)]
        cols += [_alias(ok, f"ok{k}") for k, ok in enumerate(s.oks)]
        inner = _from(_select(*cols), _table(s.table)).where(_and(*hull), copy=False)
        if codes is not None:
            return inner
        # each use's condition is written once, as its flag: a code list can be long (a
        # range of a thousand categories is one regular expression per column)
        outer = _from(
            _select(exp.Star()),
            exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("r"))),
        )
        return outer.where(_or([_col(f"f{k}") for k in range(len(flags))]), copy=False)

    def event_rows(self, ev: ir.Event, extra: list[exp.Expression],
                   where: exp.Expression | None = None, site: bool = False, latest: bool = False,
                   window: ir.Window | None = None, index: exp.Expression | None = None,
                   join_base: bool = False, within: ir.Window | None = None,
                   ) -> list[exp.Select]:  # fmt: skip
        """One SELECT per source register of the event's matching records read from their
        scan, those dated inside the calendar window `within` (applied in the scan) and
        inside `window` (relative bounds from `index`); `join_base`: joined to base's
        persons and index dates (`_IX_PERSON`, `_IX_DATE`), for an `index` that is each
        person's own index date."""
        out = []
        for r in self.read(ev, latest, within, site):
            t = r.scan.name
            d = _col(r.date, t)
            cols: list[exp.Expression] = [_alias(_col("lopnr", t), "lopnr"), _alias(d, "d")]
            if join_base and self.episodes:  # the row's episode: agg groups by it
                cols.append(_alias(_col(_IX_DATE, "b"), _EPISODE))
            if site:
                cols += [_alias(_col("site", t), "site"), _alias(_col("clinic", t), "clinic")]
            cols += [e.copy() for e in extra]
            if (
                r.ok is not None
            ):  # last, like the `ok` other events' rows get: UNION ALL is by position
                cols.append(_alias(_col(r.ok, t), "ok"))
            sel = _from(_select(*cols), _table(t, quoted=False))
            if join_base:
                ix = _from(
                    _select(
                        _alias(_col("lopnr"), _IX_PERSON), _alias(_col("index_date"), _IX_DATE)
                    ),
                    _table(self.people, quoted=False),
                )
                sel.join(
                    exp.Subquery(this=ix, alias=exp.TableAlias(this=exp.to_identifier("b"))),
                    on=exp.EQ(this=_col("lopnr", t), expression=_col(_IX_PERSON, "b")),
                    copy=False,
                )
            rel = self.window(window, d.copy(), index) if window is not None else None
            sel.where(_and(_col(r.flag, t), where.copy() if where is not None else None, rel),
                      copy=False)  # fmt: skip
            out.append(sel)
        return out

    # ---- windows ------------------------------------------------------------------------------
    def window(
        self, w: ir.Window, d: exp.Expression, index: exp.Expression | None
    ) -> exp.Expression | None:
        parts: list[exp.Expression] = []
        if w.lo is not None:
            assert index is not None
            parts.append(
                exp.GTE(
                    this=d.copy(),
                    expression=_add_days(index.copy(), w.lo) if w.lo else index.copy(),
                )
            )
        if w.hi is not None:
            assert index is not None
            parts.append(
                exp.LTE(
                    this=d.copy(),
                    expression=_add_days(index.copy(), w.hi) if w.hi else index.copy(),
                )
            )
        if w.start is not None:
            parts.append(exp.GTE(this=d.copy(), expression=_lit(w.start)))
        if w.end is not None:
            parts.append(exp.LTE(this=d.copy(), expression=_lit(w.end)))
        return _and(*parts) if parts else None

    # ---- conditions: per-person booleans over `agg` and `base` --------------------------------
    def atom(self, ev: ir.Event, latest: bool) -> _Atom:
        key = (ev, latest)
        a = self.atoms.get(key)  # type: ignore[call-overload]
        if a is None:
            a = self.atoms[key] = _Atom(ev, self.numbered, latest)  # type: ignore[index]
            self.numbered += 1  # numbered across steps: the flat plan reads them all at once
        return a

    def agg(self, key: tuple, make: exp.Expression) -> exp.Column:
        if key not in self.aggs:
            self.aggs[key] = (f"c{self.named}", make)
            self.named += 1
        return _col(self.aggs[key][0], "agg")

    def cond(self, c: ir.Cond) -> exp.Expression:
        """The handler per condition node; the result is never NULL."""
        return _COND.of(c)(self, c)

    @_COND.on(ir.AllOf)
    def _all_of(self, c: ir.AllOf) -> exp.Expression:
        return _p(_and(*(_p(self.cond(i)) for i in c.items)))

    @_COND.on(ir.AnyOf)
    def _any_of(self, c: ir.AnyOf) -> exp.Expression:
        return _or([_p(self.cond(i)) for i in c.items])

    @_COND.on(ir.Not)
    def _not_cond(self, c: ir.Not) -> exp.Expression:
        return _not(self.cond(c.item))

    @_COND.on(ir.Age)
    def _age(self, c: ir.Age) -> exp.Expression:
        between = exp.Between(this=_months(), low=_NUM(12 * c.lo), high=_NUM(12 * c.hi + 11))
        return _coalesce(between, exp.false())

    @_COND.on(ir.Sex)
    def _sex(self, c: ir.Sex) -> exp.Expression:
        kon = exp.EQ(this=_col("kon", "base"), expression=_NUM(2 if c.sex == "female" else 1))
        return _coalesce(kon, exp.false())

    @_COND.on(ir.RegionIn)
    def _region(self, c: ir.RegionIn) -> exp.Expression:
        isin = exp.In(
            this=_col("lan", "base"), expressions=[exp.Literal.string(x) for x in c.codes]
        )
        return _coalesce(isin, exp.false())

    @_COND.on(ir.EventCond)
    def event_cond(self, c: ir.EventCond) -> exp.Expression:
        a = self.atom(c.event, c.latest)
        a.windows.append(c.window)
        d = _col("d", "ev")
        mine = exp.EQ(this=_col("atom", "ev"), expression=_NUM(a.number))
        win = self.window(c.window, d, _col("index_date", "base"))
        if c.latest:
            present = self.agg(
                ("latest_any", a.number, c.window), exp.Max(this=_case(_and(mine, win), d))
            )
            ok = self.agg(
                ("latest_ok", a.number, c.window),
                exp.Max(this=_case(_and(mine.copy(), _col("ok", "ev"), win), d.copy())),
            )
            return _coalesce(exp.EQ(this=ok, expression=present), exp.false())
        if c.count is None:
            n = self.agg(
                ("any", a.number, c.window), exp.Count(this=_case(_and(mine, win), _NUM(1)))
            )
            return exp.GT(this=_coalesce(n, _NUM(0)), expression=_NUM(0))
        dates = exp.Distinct(expressions=[_case(_and(mine, win), d)])
        n = self.agg(("dates", a.number, c.window), exp.Count(this=dates))
        ops = {">=": exp.GTE, "<=": exp.LTE, "=": exp.EQ}
        return ops[c.count.op](this=_coalesce(n, _NUM(0)), expression=_NUM(c.count.n))

    def _key(self, t: str, base: str, episode: str) -> exp.Expression:
        """The join of a per-unit table `t` to `base`: by person, and for `index each` by
        the episode's index date too (`t`'s column `episode`)."""
        on = exp.EQ(this=_col("lopnr", t), expression=_col("lopnr", base))
        if not self.episodes:
            return on
        return _and(on, exp.EQ(this=_col(episode, t), expression=_col("index_date", base)))

    # ---- the whole statement --------------------------------------------------------------------
    def compile(self, co: ir.Cohort, rebuild: Callable[[], exp.Select]) -> Compiled:
        pop = self.catalog.population
        if pop is None:
            raise ValueError("the catalog has no population register")
        self.tables.add(pop.id)
        self.episodes = isinstance(co.index, ir.IndexEvent) and co.index.episodes
        # each step's condition, over its own atoms and aggregates (see `_stages`)
        stages: list[tuple[exp.Expression, dict, dict]] = []
        for st in co.steps:
            self.atoms, self.aggs = {}, {}
            c = self.cond(st.cond)
            stages.append((c if st.action == "include" else _not(c), self.atoms, self.aggs))
        all_dims = [d for r in co.reports for d in r.dims]
        hospital = any(isinstance(d, ir.Dim) and d.name in _SITE_DIMS for d in all_dims)
        ctes: list[tuple[str, exp.Expression]] = []
        # base groups population rows by person (see _person_value)
        wanted = _PERSON_COLUMNS
        if any(isinstance(d, ir.Dim) and d.name == "sjukvardsregion" for d in all_dims):
            wanted = (*wanted, "kommun")  # Halland's healthcare region depends on the kommun
        # a prepared file's person table holds each person once with every value resolved
        # as _person_value resolves it, and so does a population whose person key a
        # passing data check found unique (Installation.unique_persons): read without
        # grouping the population by person (a hash aggregate over every person: a third
        # of copd_exacerbations' time on raw Parquet)
        person_table = self.layout.person_tables.get(pop.id)

        def value(c: str) -> exp.Expression:
            return _col(c, "p") if person_table else _person_value(c)

        person_cols = [_alias(value(c), c) for c in wanted]

        if isinstance(co.index, ir.IndexEvent):
            # the calendar window of the index applies to each source's date column (for
            # `index each`, widened back by the washout, which looks before the window)
            window = _episode_reach(co.index) if self.episodes else co.index.window
            ix = self.event_rows(co.index.event, [], site=hospital, within=window)
            ctes.append(("ix", _union(ix)))
            if self.episodes:
                idx = _episode_starts(co.index)
            else:
                fn = exp.Min if co.index.which == "first" else exp.Max
                idx = _from(
                    _select(_col("lopnr"), _alias(fn(this=_col("d")), "index_date")),
                    _table("ix", quoted=False),
                )
                idx.group_by(_col("lopnr"), copy=False)
            ctes.append(("idx", idx))
            base = _from(
                _select(
                    _alias(_col(pop.person_key, "p"), "lopnr"),
                    _col("index_date", "i"),
                    *person_cols,
                ),
                _table(person_table or pop.id, "p"),
            )
            base.join(
                _table("idx", "i", quoted=False),
                on=exp.EQ(this=_col(pop.person_key, "p"), expression=_col("lopnr", "i")),
                copy=False,
            )
            if not person_table:
                base.group_by(_col(pop.person_key, "p"), _col("index_date", "i"), copy=False)
        elif isinstance(co.index, ir.IndexDate):
            day = co.index.date
            born = exp.LTE(
                this=exp.Add(
                    this=exp.Mul(this=_NUM(12), expression=_wide(value("fodelsear"))),
                    expression=_wide(value("fodelsemanad")),
                ),
                expression=_NUM(12 * day.year + day.month),
            )
            alive = exp.Not(this=exp.Exists(this=self.dead_before(day, _col(pop.person_key, "p"))))
            base = _from(
                _select(
                    _alias(_col(pop.person_key, "p"), "lopnr"),
                    _alias(_lit(day), "index_date"),
                    *person_cols,
                ),
                _table(person_table or pop.id, "p"),
            )
            # a population row without a person key is nobody (the join drops it above)
            if person_table:
                base.where(_and(_not_null(_col(pop.person_key, "p")), alive, born), copy=False)
            else:
                base.where(_and(_not_null(_col(pop.person_key, "p")), alive), copy=False)
                base.group_by(_col(pop.person_key, "p"), copy=False)
                base.having(born, copy=False)
        else:
            raise InternalError(f"compiler: no handler for index {type(co.index).__name__}")
        if self.optout:
            self.tables.add(self.optout)
            # An anti join written as LEFT JOIN ... IS NULL over the distinct opted-out
            # persons. Not NOT IN: its NULL semantics make engines plan a null-aware join,
            # which Spark runs as a nested loop over every person when base is used inside
            # another subquery (egfr_lung_cancer at 1M: 25 s; no answer in 8 min at 10M).
            # Not a correlated NOT EXISTS: DuckDB decorrelates it through a join on the
            # distinct outer persons, 10M of them for an index date (recruitment_af_regions
            # at 10M: 5.7 s against 2.7 s)
            opted = _from(_select(_col("lopnr", "o")), _table(self.optout, "o"))
            purposes = [exp.Literal.string(self.purpose), exp.Literal.string(OPTOUT_ALL)]
            opted.where(exp.In(this=_col("andamal", "o"), expressions=purposes), copy=False)
            opted.distinct(copy=False)
            base.join(
                exp.Subquery(this=opted, alias=exp.TableAlias(this=exp.to_identifier("oo"))),
                on=exp.EQ(this=_col("lopnr", "oo"), expression=_col(pop.person_key, "p")),
                join_type="left",
                copy=False,
            )
            base.where(exp.Is(this=_col("lopnr", "oo"), expression=exp.Null()), copy=False)
        ctes.append(("base", base))

        if hospital:
            isite = _from(
                _select(
                    _col("lopnr", "ix"),
                    *([_col("index_date", "idx")] if self.episodes else []),
                    _alias(exp.Min(this=_col("site", "ix")), "site"),
                    _alias(exp.Min(this=_col("clinic", "ix")), "clinic"),
                ),
                _table("ix", quoted=False),
            )
            isite.join(
                _table("idx", quoted=False),
                on=_and(exp.EQ(this=_col("lopnr", "ix"), expression=_col("lopnr", "idx")),
                        exp.EQ(this=_col("d", "ix"), expression=_col("index_date", "idx"))),
                copy=False,
            )  # fmt: skip
            isite.group_by(_col("lopnr", "ix"), copy=False)
            if self.episodes:
                isite.group_by(_col("index_date", "idx"), copy=False)
            ctes.append(("isite", isite))

        dim_names: list[str] = []  # every table's columns, each once, in order of first use
        tables: list[tuple[str, ...]] = []
        for rep in co.reports:
            table = []
            for dm in rep.dims:
                name, _e = self.dimension(dm)
                table.append(name)
                if name not in dim_names:
                    dim_names.append(name)
            tables.append(tuple(table))
        plan = self._staged if self.staged else self._flat
        final = plan(co, stages, ["lopnr", "index_date", *wanted], dim_names, tables, hospital,
                     ctes)  # fmt: skip
        # the scans first: every use of them is known now
        scans = [
            exp.CTE(this=self.scan_body(s), alias=exp.TableAlias(this=exp.to_identifier(s.name)),
                    materialized=s.materialized)
            for s in self.scans.values()
        ]  # fmt: skip
        final.set(
            "with_",
            exp.With(
                expressions=scans
                + [
                    exp.CTE(
                        this=body,
                        alias=exp.TableAlias(this=exp.Identifier(this=name, quoted=False)),
                    )
                    for name, body in ctes
                ]
            ),
        )

        labels = [_index_label(co.index)] + [
            s.label or f"{s.action} {i + 1}" for i, s in enumerate(co.steps)
        ]
        out = Compiled(final, tuple(labels), tuple(tables), frozenset(self.tables), rebuild,
                       namer=functools.partial(value_name, self.catalog),
                       columns=columns_read(co, self.catalog, self.optout))  # fmt: skip
        if tuple(e.alias_or_name for e in final.expressions) != out.layout.columns:
            raise InternalError("compiler: the result's columns are not engine/rows.py's layout")
        return out

    def _persons(self, co: ir.Cohort, people: str, dim_names: list[str], hospital: bool,
                 *first: exp.Expression) -> exp.Select:  # fmt: skip
        """`first` and the breakdown values of each unit of `people`."""
        dims = dict(self.dimension(dm) for r in co.reports for dm in r.dims)
        persons = _from(_select(*first, *(_alias(dims[n], n) for n in dim_names)),
                        _table(people, "base", quoted=False))  # fmt: skip
        if hospital:
            persons.join(_table("isite", quoted=False),
                         on=self._key("isite", "base", "index_date"), join_type="left",
                         copy=False)  # fmt: skip
        return persons

    def _staged(self, co: ir.Cohort, stages: list[tuple[exp.Expression, dict, dict]],
                columns: list[str], dim_names: list[str], tables: list[tuple[str, ...]],
                hospital: bool, ctes: list[tuple[str, exp.Expression]]) -> exp.Select:  # fmt: skip
        """The steps, staged: each step's atoms are read for the persons who passed every
        step before it only (`people`), as a hand-written query reads each criterion for
        the survivors of the last; the engines turn that join into a filter on the scan.
        The result (engine/rows.py): the final cohort's cells, grouped by every `report
        by` table, and one row of the attrition, the size of every stage."""
        people = "base"
        sizes = [_count_of("base")]  # the attrition: how many units each step leaves
        for k, (passed, atoms, aggs) in enumerate(stages):
            agg = self.stage_aggregates(co.index, k, people, atoms, aggs, ctes)
            survivors = _from(_select(*(_col(c, "base") for c in columns)),
                              _table(people, "base", quoted=False))  # fmt: skip
            if agg is not None:
                survivors.join(_table(agg, "agg", quoted=False),
                               on=self._key("agg", "base", _EPISODE), join_type="left",
                               copy=False)  # fmt: skip
            ctes.append((f"s{k}", survivors.where(passed, copy=False)))
            people = f"s{k}"
            sizes.append(_count_of(people))
        counts = [count_column(k) for k in range(len(stages) + 1)]
        if not dim_names:
            return _select(*(_alias(size, c) for size, c in zip(sizes, counts, strict=True)))
        ctes.append(("persons", self._persons(co, people, dim_names, hospital)))
        # GROUPING(every column) tells the grouping sets apart: a bit per column, set where
        # the row aggregates over it; a cell's count is its last count (the earlier ones
        # are left empty: only the attrition row has them)
        cells = _select(
            *(_col(n) for n in dim_names),
            _alias(exp.Grouping(expressions=[_col(n) for n in dim_names]), GROUPING),
            *(_alias(_typed_null("BIGINT"), c) for c in counts[:-1]),
            _alias(exp.Count(this=exp.Star()), counts[-1]),
        )
        _from(cells, _table("persons", quoted=False))
        sets = [exp.Tuple(expressions=[_col(n) for n in t]) for t in tables]
        cells.set("group", exp.Group(expressions=[exp.GroupingSets(expressions=sets)]))
        attrition = _select(
            *(_alias(exp.Null(), n) for n in dim_names),
            _alias(_NUM((1 << len(dim_names)) - 1), GROUPING),
            *(_alias(size, c) for size, c in zip(sizes, counts, strict=True)),
        )
        rows = exp.Union(this=cells, expression=attrition, distinct=False)
        return _from(
            _select(*(_col(c) for c in (*dim_names, GROUPING, *counts))),
            exp.Subquery(this=rows, alias=exp.TableAlias(this=exp.to_identifier("r"))),
        )

    def _flat(self, co: ir.Cohort, stages: list[tuple[exp.Expression, dict, dict]],
              columns: list[str], dim_names: list[str], tables: list[tuple[str, ...]],
              hospital: bool, ctes: list[tuple[str, exp.Expression]]) -> exp.Select:  # fmt: skip
        """The steps, flat, for an engine that computes a CTE again for each reference to
        it (Spark: the stages' chain would be computed again at every step, exponentially,
        see engine/dialects.py): every atom read for every person of the index step, their
        aggregates in one `agg`, and per person the number of steps passed. The result:
        GROUP BY GROUPING SETS ((), every table) over the persons, every count per row."""
        atoms = {key: a for _p, step, _a in stages for key, a in step.items()}
        aggs = {key: a for _p, _at, step in stages for key, a in step.items()}
        agg = self.stage_aggregates(co.index, 0, "base", atoms, aggs, ctes, name="")
        reached: exp.Expression = _NUM(len(stages))
        if stages:
            reached = exp.Case(
                ifs=[exp.If(this=_not(passed), true=_NUM(k))
                     for k, (passed, _at, _ag) in enumerate(stages)],
                default=_NUM(len(stages)),
            )  # fmt: skip
        persons = self._persons(co, "base", dim_names, hospital, _alias(reached, "reached"))
        if agg is not None:
            persons.join(_table(agg, "agg", quoted=False),
                         on=self._key("agg", "base", _EPISODE), join_type="left",
                         copy=False)  # fmt: skip
        ctes.append(("persons", persons))
        counts = [
            _alias(
                exp.Count(this=_case(exp.GTE(this=_col("reached"), expression=_NUM(k)), _NUM(1))),
                count_column(k),
            )
            for k in range(len(stages) + 1)
        ]
        if dim_names:
            final = _select(
                *(_col(n) for n in dim_names),
                _alias(exp.Grouping(expressions=[_col(n) for n in dim_names]), GROUPING),
                *counts,
            )
            sets = [exp.Tuple(expressions=[])]
            sets += [exp.Tuple(expressions=[_col(n) for n in t]) for t in tables]
            final.set("group", exp.Group(expressions=[exp.GroupingSets(expressions=sets)]))
        else:
            final = _select(*counts)
        return _from(final, _table("persons", quoted=False))

    def stage_aggregates(self, index: ir.IndexEvent | ir.IndexDate, k: int, people: str,
                         atoms: dict, aggs: dict, ctes: list[tuple[str, exp.Expression]],
                         name: str | None = None) -> str | None:  # fmt: skip
        """Step k's `ev{k}` (its atoms' rows, for `people`) and `agg{k}` (their aggregates per
        person, or episode) into `ctes`; the name of `agg{k}`, or None: a step of the
        person's own values (age, sex, region) reads no register."""
        if not atoms:
            return None
        self.people = people
        rows: list[exp.Select] = []
        any_latest = any(a.latest for a in atoms.values())
        for a in atoms.values():
            sels = self.atom_rows(index, a, [_alias(_NUM(a.number), "atom")])
            if any_latest and not a.latest:
                for sel in sels:
                    sel.select(_alias(exp.true(), "ok"), append=True, copy=False)
            rows += sels
        suffix = str(k) if name is None else name
        ctes.append((f"ev{suffix}", _union(rows)))
        episode = [_col(_EPISODE, "ev")] if self.episodes else []
        agg = _from(
            _select(_col("lopnr", "ev"), *(e.copy() for e in episode),
                    *(_alias(e, name) for name, e in aggs.values())),
            _table(f"ev{suffix}", "ev", quoted=False),
        )  # fmt: skip
        agg.join(_table(people, "base", quoted=False), on=self._key("ev", "base", _EPISODE),
                 copy=False)  # fmt: skip
        agg.group_by(_col("lopnr", "ev"), *episode, copy=False)
        ctes.append((f"agg{suffix}", agg))
        self.people = "base"
        return f"agg{suffix}"

    def atom_rows(self, index: ir.IndexEvent | ir.IndexDate, a: _Atom,
                  extra: list[exp.Expression]) -> list[exp.Select]:  # fmt: skip
        """An atom's rows in `ev`: only rows inside the hull of its conditions' windows.
        With an index date the hull is a range of calendar dates; with an index event,
        relative to each person's index date, so the scan joins base (instead of only
        keeping base's persons): far fewer rows reach `ev` and `agg` when a criterion
        looks at a few days around the index among years of records."""
        hull = _hull(a.windows)
        rows = functools.partial(self.event_rows, a.event, extra, latest=a.latest)
        in_people = exp.In(
            this=_col("lopnr"),
            query=exp.Subquery(
                this=_from(_select(_col("lopnr")), _table(self.people, quoted=False))
            ),
        )
        if isinstance(index, ir.IndexDate):
            # the windows are calendar dates: the scan applies them. `base` is the whole
            # living population: a semi-join to it would build a hash table of every person
            # to remove almost nothing (`agg` joins `base` anyway); the survivors of a step
            # are fewer, often far fewer
            within = _absolute(hull, index.date, index.date)
            if self.people == "base":
                return rows(within=within)
            return rows(within=within, where=in_people)
        # every index date lies in the index's calendar window, which bounds the dates the
        # relative windows can reach before any index date is known
        within = _absolute(hull, index.window.start, index.window.end)
        if self.episodes:
            # every row is read once per episode of its person, tagged with the episode's
            # index date, so that agg counts it for each episode on its own
            return rows(within=within, window=hull, index=_col(_IX_DATE, "b"), join_base=True)
        if hull.lo is not None or hull.hi is not None:
            return rows(within=within, window=hull, index=_col(_IX_DATE, "b"), join_base=True)
        return rows(within=within, where=in_people)

    def dead_before(self, day: dt.date, person: exp.Expression) -> exp.Expression:
        """A record of the person's death before `day`, in any register that provides
        deaths (the reference evaluator reads them all too)."""
        reads = self.read(ir.Death(), within=ir.Window(end=day - dt.timedelta(days=1)))
        if not reads:  # the checker refuses an index date without one
            raise InternalError("an index date needs a register that provides `death`")
        selects = []
        for r in reads:
            sel = _from(_select(_NUM(1)), _table(r.scan.name, "x", quoted=False))
            sel.where(_and(_col(r.flag, "x"),
                           exp.EQ(this=_col("lopnr", "x"), expression=person.copy())), copy=False)  # fmt: skip
            selects.append(sel)
        return _union(selects)

    def dimension(self, d: ir.Dimension) -> tuple[str, exp.Expression]:
        """(column name, value) of a `report by` dimension, per person."""
        return _DIMENSION(ir.dimension_key(d))(self, d)

    @_DIMENSION.on("age")
    def _dim_age(self, d: ir.AgeBand) -> tuple[str, exp.Expression]:
        band = exp.Floor(this=exp.Div(this=_months(), expression=_NUM(float(12 * d.width))))
        return f"age_{d.width}", exp.Mul(
            this=exp.Cast(this=band, to=exp.DataType.build("INT")), expression=_NUM(d.width)
        )

    @_DIMENSION.on("region")
    def _dim_region(self, d: ir.Dim) -> tuple[str, exp.Expression]:
        return "region", _col("lan", "base")

    @_DIMENSION.on("sex")
    def _dim_sex(self, d: ir.Dim) -> tuple[str, exp.Expression]:
        return "sex", exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(this=_col("kon", "base"), expression=_NUM(1)),
                    true=exp.Literal.string("male"),
                ),
                exp.If(
                    this=exp.EQ(this=_col("kon", "base"), expression=_NUM(2)),
                    true=exp.Literal.string("female"),
                ),
            ]
        )

    @_DIMENSION.on("year")
    def _dim_year(self, d: ir.Dim) -> tuple[str, exp.Expression]:
        return "year", exp.Year(this=_col("index_date", "base"))

    @_DIMENSION.on("hospital")
    def _dim_hospital(self, d: ir.Dim) -> tuple[str, exp.Expression]:
        return "hospital", _col("site", "isite")

    @_DIMENSION.on("clinic")
    def _dim_clinic(self, d: ir.Dim) -> tuple[str, exp.Expression]:
        return "clinic", _col("clinic", "isite")

    @_DIMENSION.on("month")
    def _dim_month(self, d: ir.Dim) -> tuple[str, exp.Expression]:
        """202103 for March 2021: a number in every dialect (engine/hierarchy.py names it)."""
        idx = _col("index_date", "base")
        return "month", exp.Add(
            this=exp.Mul(this=exp.Year(this=idx), expression=_NUM(100)),
            expression=exp.Month(this=idx.copy()),
        )

    @_DIMENSION.on("quarter")
    def _dim_quarter(self, d: ir.Dim) -> tuple[str, exp.Expression]:
        """20211 for the first quarter of 2021. The quarter from the month by comparisons:
        QUARTER() is not in every dialect, and integer division differs between them."""
        idx = _col("index_date", "base")
        month = exp.Month(this=idx.copy())
        q = exp.Case(
            ifs=[exp.If(this=exp.LTE(this=month.copy(), expression=_NUM(3 * k)), true=_NUM(k))
                 for k in (1, 2, 3)],
            default=_NUM(4),
        )  # fmt: skip
        return "quarter", exp.Add(
            this=exp.Mul(this=exp.Year(this=idx), expression=_NUM(10)), expression=q
        )

    @_DIMENSION.on("sjukvardsregion")
    def _dim_healthcare_region(self, d: ir.Dim) -> tuple[str, exp.Expression]:
        """The healthcare region of residence: the län's, or in a split län (Halland) the
        one its kommun belongs to (catalog/regions.yaml). An unknown län is unknown."""
        lan, kommun = _col("lan", "base"), _col("kommun", "base")
        ifs = []
        for r in self.catalog.regions:
            if r.split:  # a split län without a kommun: its healthcare region is unknown
                ifs.append(exp.If(
                    this=_and(exp.EQ(this=lan.copy(), expression=exp.Literal.string(r.code)),
                              exp.Is(this=kommun.copy(), expression=exp.Null())),
                    true=exp.Cast(this=exp.Null(), to=exp.DataType.build("VARCHAR")),
                ))  # fmt: skip
            for h, kommuner in r.split.items():
                ifs.append(exp.If(
                    this=_and(exp.EQ(this=lan.copy(), expression=exp.Literal.string(r.code)),
                              exp.In(this=kommun.copy(),
                                     expressions=[exp.Literal.string(k) for k in kommuner])),
                    true=exp.Literal.string(h),
                ))  # fmt: skip
        for h in self.catalog.healthcare_regions:
            codes = [r.code for r in self.catalog.regions if r.sjukvardsregion == h.code]
            if codes:
                ifs.append(exp.If(
                    this=exp.In(this=lan.copy(), expressions=[exp.Literal.string(c) for c in codes]),
                    true=exp.Literal.string(h.code),
                ))  # fmt: skip
        return "sjukvardsregion", exp.Case(ifs=ifs)


def _episode_reach(index: ir.IndexEvent) -> ir.Window:
    """The index records an `index each` reads: its window, and the washout before it."""
    w = index.window
    if w.start is None or w.end is None or index.washout is None:
        raise InternalError("`index each` needs a window with both ends and a washout")
    return ir.Window(start=w.start - dt.timedelta(days=index.washout), end=w.end)


def _episode_starts(index: ir.IndexEvent) -> exp.Select:
    """`idx` of an `index each`: one row (lopnr, index_date) per episode, a date in the
    window whose person's previous matching date (LAG over their distinct dates, read back
    to the washout before the window) is absent or more than `washout` days before it."""
    assert index.window.start is not None and index.washout is not None
    days = _from(_select(_col("lopnr"), _col("d")), _table("ix", quoted=False))
    days.distinct(copy=False)
    lag = exp.Window(
        this=exp.Lag(this=_col("d")),
        partition_by=[_col("lopnr")],
        order=exp.Order(expressions=[exp.Ordered(this=_col("d"))]),
    )
    gaps = _from(
        _select(_col("lopnr"), _col("d"), _alias(lag, "prev")),
        exp.Subquery(this=days, alias=exp.TableAlias(this=exp.to_identifier("days"))),
    )
    idx = _from(
        _select(_col("lopnr"), _alias(_col("d"), "index_date")),
        exp.Subquery(this=gaps, alias=exp.TableAlias(this=exp.to_identifier("gaps"))),
    )
    new = _or([
        exp.Is(this=_col("prev"), expression=exp.Null()),
        exp.LT(this=_col("prev"), expression=_add_days(_col("d"), -index.washout)),
    ])  # fmt: skip
    idx.where(_and(exp.GTE(this=_col("d"), expression=_lit(index.window.start)), new), copy=False)
    return idx


def _count_of(table: str) -> exp.Subquery:
    """How many rows (persons, or episodes) a CTE holds: a scalar subquery."""
    return exp.Subquery(
        this=_from(_select(exp.Count(this=exp.Star())), _table(table, quoted=False))
    )


def _typed_null(type_: str) -> exp.Cast:
    return exp.Cast(this=exp.Null(), to=exp.DataType.build(type_))


def _index_label(index: ir.IndexEvent | ir.IndexDate) -> str:
    if isinstance(index, ir.IndexDate):
        return f"Alive on {index.date.isoformat()}"
    if isinstance(index, ir.IndexEvent):
        return "Index event"
    raise InternalError(f"compiler: no label for index {type(index).__name__}")


def compile_cohort(
    co: ir.Cohort,
    catalog: Catalog,
    purpose: Purpose = "forskning",
    optout: str | None = None,
    layout: PhysicalLayout | None = None,
) -> Compiled:
    """Compile a checked cohort. `optout` names the opt-out register if the installation
    holds one; `layout` the tables of a prepared file read instead of registers
    (Installation.layout: code tables, the person table)."""
    if purpose not in PURPOSES:
        raise InternalError(f"purpose is one of {', '.join(PURPOSES)}, not {purpose!r}")
    tables = layout or PhysicalLayout()

    def rebuild() -> exp.Select:
        return _Compiler(catalog, purpose, optout, tables).compile(co, rebuild).tree

    def flat() -> exp.Select:
        return _Compiler(catalog, purpose, optout, tables, staged=False).compile(co, flat).tree

    out = _Compiler(catalog, purpose, optout, tables).compile(co, rebuild)
    return dataclasses.replace(out, flat=flat, _rendered={})


# ---- what a statement reads ---------------------------------------------------------------
# Each handler adds the (register, column) pairs the compiler's handler of the same node
# reads; tests/test_datacheck.py runs compiled statements on tables holding exactly these
# columns, and on tables missing any one of them (which must fail), so the two agree.
_READS: Dispatch[Callable[..., None]] = Dispatch("columns read: condition", ir.Cond)
_EVENT_READS: Dispatch[Callable[..., list[str]]] = Dispatch("columns read: event", ir.Event)


def columns_read(
    co: ir.Cohort, catalog: Catalog, optout: str | None = None
) -> frozenset[tuple[str, str]]:
    """Every (register, canonical column) the statement of a checked cohort reads: each
    event's person key, date and code or filtered columns, the hospital and clinic of the
    index event for `report by hospital/clinic`, the population's person columns (and its
    kommun for `report by sjukvardsregion`), deaths before an index date, and `optout`'s
    person and purpose. An extract lacking any other column counts the same."""
    pop = catalog.population
    if pop is None:
        raise ValueError("the catalog has no population register")
    cols: set[tuple[str, str]] = {(pop.id, pop.person_key)} | {(pop.id, c) for c in _PERSON_COLUMNS}
    dims = [d for r in co.reports for d in r.dims if isinstance(d, ir.Dim)]
    if any(d.name == "sjukvardsregion" for d in dims):
        cols.add((pop.id, "kommun"))
    if isinstance(co.index, ir.IndexEvent):
        site = any(d.name in _SITE_DIMS for d in dims)
        _event_reads(co.index.event, catalog, cols, site=site)
    else:
        for reg, src in catalog.sources_of("death"):
            cols |= {(reg.id, reg.person_key), (reg.id, reg.event_date(src))}
    for st in co.steps:
        _READS.of(st.cond)(st.cond, catalog, cols)
    if optout is not None:
        cols |= {(optout, "lopnr"), (optout, "andamal")}
    return frozenset(cols)


def _event_reads(ev: ir.Event, catalog: Catalog, cols: set[tuple[str, str]],
                 site: bool = False) -> None:  # fmt: skip
    for reg, src in event_sources(ev, catalog):
        date = reg.event_date(src) if src else reg.date_column or ""
        own = [reg.person_key, date, *_EVENT_READS.of(ev)(ev, src)]
        if site:
            own += [c for c in (reg.site_column, reg.clinic_column) if c]
        cols |= {(reg.id, c) for c in own}


@_EVENT_READS.on(ir.RegisterEvent)
def _reads_register(ev: ir.RegisterEvent, src: None) -> list[str]:
    return [] if ev.filter is None else ir.filter_vars(ev.filter)


@_EVENT_READS.on(ir.Death)
def _reads_death(ev: ir.Death, src: EventSource) -> list[str]:
    if not ev.codes:
        return []
    return [src.codes, src.mentioned or ""] if ev.mentioned else [src.codes]


@_EVENT_READS.on(ir.Diagnosis)
def _reads_diagnosis(ev: ir.Diagnosis, src: EventSource) -> list[str]:
    return [src.main or ""] if ev.main else [src.codes]


@_EVENT_READS.on(ir.Procedure, ir.Drug)
def _reads_codes(ev: ir.Procedure | ir.Drug, src: EventSource) -> list[str]:
    return [src.codes]


@_READS.on(ir.EventCond)
def _reads_event_cond(c: ir.EventCond, catalog: Catalog, cols: set[tuple[str, str]]) -> None:
    _event_reads(c.event, catalog, cols)


@_READS.on(ir.AllOf, ir.AnyOf)
def _reads_items(c: ir.AllOf | ir.AnyOf, catalog: Catalog, cols: set[tuple[str, str]]) -> None:
    for i in c.items:
        _READS.of(i)(i, catalog, cols)


@_READS.on(ir.Not)
def _reads_not(c: ir.Not, catalog: Catalog, cols: set[tuple[str, str]]) -> None:
    _READS.of(c.item)(c.item, catalog, cols)


@_READS.on(ir.Age, ir.Sex, ir.RegionIn)
def _reads_person(c: ir.Age | ir.Sex | ir.RegionIn, catalog: Catalog,
                  cols: set[tuple[str, str]]) -> None:  # fmt: skip
    """The population's person columns, which every statement reads already."""
