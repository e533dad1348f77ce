"""IR → one sqlglot statement that computes the whole attrition and the breakdown
in a single pass over each register.

Shape of the statement (every CTE built here, one handler per IR node):

    ev      every record, of every register the cohort reads, that matches at least
            one event of the cohort; one boolean column per event ("atom")
    idx     per person the index date (min/max over the index atom's records)
    base    persons in the index step: population ⋈ idx, minus opt-outs
    agg     per person and atom: counts of distinct dates / latest dates in the window
    persons per person: how many steps they passed, and their breakdown values
    final   GROUP BY GROUPING SETS ((), (dims...)): attrition + cells in one scan

No user text reaches SQL: names come from the catalog, values become typed
literals, codes (validated to [A-Z0-9]) become LIKE/regex literals.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from sqlglot import exp

from catalog import Catalog, EventSource, Register
from engine import ir

__all__ = ["Compiled", "compile_cohort"]

_SAFE_CODE = re.compile(r"^[A-Z0-9]+$")


@dataclass(frozen=True)
class Compiled:
    """A compiled cohort: one SELECT, and how to read its result rows."""

    tree: exp.Select
    labels: tuple[str, ...]  # attrition step labels, index step first
    dims: tuple[str, ...]  # breakdown column names, in report order
    registers: frozenset[str]  # registers read

    def sql(self, dialect: str = "duckdb", pretty: bool = False) -> str:
        return self.tree.sql(dialect=dialect, pretty=pretty)


def _lit(v: ir.Value) -> exp.Expression:
    if isinstance(v, bool):
        raise TypeError("booleans are not values of the cohort language")
    if isinstance(v, str):
        return exp.Literal.string(v)
    if isinstance(v, int | float):
        return exp.Literal.number(v)
    return exp.cast(exp.Literal.string(v.isoformat()), exp.DataType.Type.DATE)


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _count_if(
    cond: exp.Expression, value: exp.Expression | None = None, distinct: bool = False
) -> exp.Expression:
    case = exp.Case(ifs=[exp.If(this=cond, true=value or exp.Literal.number(1))])
    arg: exp.Expression = exp.Distinct(expressions=[case]) if distinct else case
    return exp.Count(this=arg)


def _max_if(cond: exp.Expression, value: exp.Expression) -> exp.Expression:
    return exp.Max(this=exp.Case(ifs=[exp.If(this=cond, true=value)]))


def _and(*parts: exp.Expression | None) -> exp.Expression:
    items = [p for p in parts if p is not None]
    if not items:
        return exp.true()
    return exp.and_(*items) if len(items) > 1 else items[0]


def _or(parts: list[exp.Expression]) -> exp.Expression:
    if not parts:
        return exp.false()
    return exp.or_(*parts) if len(parts) > 1 else parts[0]


def _add_days(d: exp.Expression, n: int) -> exp.Expression:
    return exp.DateAdd(this=d, expression=exp.Literal.number(n), unit=exp.var("DAY"))


@dataclass
class _Atom:
    """One event of the cohort, with the boolean columns it gets in `ev`."""

    event: ir.Event
    name: str
    need_notnull: bool = False  # `latest`: also flag records whose filtered variables are present


@dataclass
class _Compiler:
    catalog: Catalog
    purpose: str
    optout: str | None
    atoms: dict[ir.Event, _Atom] = field(default_factory=dict)
    aggs: dict[tuple, tuple[str, exp.Expression]] = field(default_factory=dict)
    tables: set[str] = field(default_factory=set)

    # ---- atoms: which records match an event --------------------------------------------
    def atom(self, ev: ir.Event, latest: bool = False) -> _Atom:
        a = self.atoms.get(ev)
        if a is None:
            a = self.atoms[ev] = _Atom(ev, f"a{len(self.atoms)}")
        a.need_notnull |= latest
        return a

    def sources(self, ev: ir.Event) -> list[tuple[Register, EventSource | None]]:
        if isinstance(ev, ir.RegisterEvent):
            reg = self.catalog.registers[ev.register]
            return [(reg, None)]
        out = []
        for reg, src in self.catalog.sources_of(ev.kind):
            if isinstance(ev, ir.Drug) and reg.id not in ev.sources:
                continue
            out.append((reg, src))
        return out

    def match(
        self, ev: ir.Event, reg: Register, src: EventSource | None, notnull_only: bool = False
    ) -> exp.Expression:
        """Does a record of `reg` match the event? (the handler per event node)"""
        if isinstance(ev, ir.RegisterEvent):
            if ev.filter is None:
                return exp.true()
            if (
                notnull_only
            ):  # `latest` looks only at records where the filtered variables are present
                return _and(
                    *(
                        exp.Not(this=exp.Is(this=_col(v), expression=exp.null()))
                        for v in ir.filter_vars(ev.filter)
                    )
                )
            return self.filter(ev.filter)  # SQL's three-valued logic: only TRUE matches
        assert src is not None
        if isinstance(ev, ir.Death) and not ev.codes:
            return exp.true()
        if isinstance(ev, ir.Diagnosis) and ev.main:
            assert src.main is not None
            return self.codes(_col(src.main), ev.codes, multi=False)
        return self.codes(_col(src.codes), ev.codes, multi=src.multi)

    def codes(
        self, column: exp.Expression, codes: tuple[ir.CodePattern, ...], multi: bool
    ) -> exp.Expression:
        for c in codes:
            if not _SAFE_CODE.match(
                c.code
            ):  # the checker guarantees it; SQL safety must not depend on that
                raise ValueError(f"code {c.code!r} is not normalised")
        if multi:
            # one code per space-separated item: E11 must not match inside another code
            alts = [c.code if c.prefix else f"{c.code}( |$)" for c in codes]
            return exp.RegexpLike(
                this=column, expression=exp.Literal.string(f"(^| )({'|'.join(alts)})")
            )
        exact = [exp.Literal.string(c.code) for c in codes if not c.prefix]
        parts: list[exp.Expression] = [
            exp.Like(this=column, expression=exp.Literal.string(c.code + "%"))
            for c in codes
            if c.prefix
        ]
        if len(exact) == 1:
            parts.insert(0, exp.EQ(this=column, expression=exact[0]))
        elif exact:
            parts.insert(0, exp.In(this=column, expressions=exact))
        return _or(parts)

    def filter(self, f: ir.Filter) -> exp.Expression:
        if isinstance(f, ir.Cmp):
            ops = {
                "=": exp.EQ,
                "!=": exp.NEQ,
                "<": exp.LT,
                "<=": exp.LTE,
                ">": exp.GT,
                ">=": exp.GTE,
            }
            return ops[f.op](this=_col(f.var), expression=_lit(f.value))
        if isinstance(f, ir.FIn):
            return exp.In(this=_col(f.var), expressions=[_lit(v) for v in f.values])
        if isinstance(f, ir.FAnd):
            return exp.and_(*(exp.Paren(this=self.filter(i)) for i in f.items))
        if isinstance(f, ir.FOr):
            return exp.Paren(this=exp.or_(*(exp.Paren(this=self.filter(i)) for i in f.items)))
        return exp.Not(this=exp.Paren(this=self.filter(f.item)))

    # ---- windows ----------------------------------------------------------------------------
    def window(
        self, w: ir.Window, d: exp.Expression, index: exp.Expression | None
    ) -> exp.Expression | None:
        parts: list[exp.Expression] = []
        if w.lo is not None:
            assert index is not None
            parts.append(exp.GTE(this=d, expression=_add_days(index, w.lo) if w.lo else index))
        if w.hi is not None:
            assert index is not None
            parts.append(exp.LTE(this=d, expression=_add_days(index, w.hi) if w.hi else index))
        if w.start is not None:
            parts.append(exp.GTE(this=d, expression=_lit(w.start)))
        if w.end is not None:
            parts.append(exp.LTE(this=d, expression=_lit(w.end)))
        return _and(*parts) if parts else None

    # ---- conditions: per-person booleans over `agg` and `base` ------------------------------
    def agg(self, key: tuple, make: exp.Expression) -> exp.Column:
        if key not in self.aggs:
            self.aggs[key] = (f"c{len(self.aggs)}", make)
        return _col(self.aggs[key][0], "agg")

    def cond(self, c: ir.Cond) -> exp.Expression:
        """The handler per condition node; the result is never NULL."""
        if isinstance(c, ir.EventCond):
            return self.event_cond(c)
        if isinstance(c, ir.AllOf):
            return exp.and_(*(exp.Paren(this=self.cond(i)) for i in c.items))
        if isinstance(c, ir.AnyOf):
            return exp.Paren(this=exp.or_(*(exp.Paren(this=self.cond(i)) for i in c.items)))
        if isinstance(c, ir.Not):
            return exp.Not(this=exp.Paren(this=self.cond(c.item)))
        if isinstance(c, ir.Age):
            m = _months()
            between = exp.Between(
                this=m, low=exp.Literal.number(12 * c.lo), high=exp.Literal.number(12 * c.hi + 11)
            )
            return exp.Coalesce(this=between, expressions=[exp.false()])
        if isinstance(c, ir.Sex):
            kon = exp.EQ(
                this=_col("kon", "base"),
                expression=exp.Literal.number(2 if c.sex == "female" else 1),
            )
            return exp.Coalesce(this=kon, expressions=[exp.false()])
        if isinstance(c, ir.RegionIn):
            isin = exp.In(
                this=_col("lan", "base"), expressions=[exp.Literal.string(x) for x in c.codes]
            )
            return exp.Coalesce(this=isin, expressions=[exp.false()])
        raise TypeError(f"no handler for {type(c).__name__}")

    def event_cond(self, c: ir.EventCond) -> exp.Expression:
        a = self.atom(c.event, latest=c.latest)
        d = _col("d", "ev")
        win = self.window(c.window, d, _col("index_date", "base"))
        if c.latest:
            present = self.agg(
                ("latest_any", a.name, c.window), _max_if(_and(_col(a.name + "n", "ev"), win), d)
            )
            ok = self.agg(
                ("latest_ok", a.name, c.window),
                _max_if(_and(_col(a.name + "n", "ev"), _col(a.name, "ev"), win), d),
            )
            return exp.Coalesce(this=exp.EQ(this=ok, expression=present), expressions=[exp.false()])
        if c.count is None:
            n = self.agg(("any", a.name, c.window), _count_if(_and(_col(a.name, "ev"), win)))
            return exp.GT(
                this=exp.Coalesce(this=n, expressions=[exp.Literal.number(0)]),
                expression=exp.Literal.number(0),
            )
        n = self.agg(
            ("dates", a.name, c.window), _count_if(_and(_col(a.name, "ev"), win), d, distinct=True)
        )
        ops = {">=": exp.GTE, "<=": exp.LTE, "=": exp.EQ}
        return ops[c.count.op](
            this=exp.Coalesce(this=n, expressions=[exp.Literal.number(0)]),
            expression=exp.Literal.number(c.count.n),
        )

    # ---- the event table ------------------------------------------------------------------
    def ev_cte(self) -> exp.Expression:
        by_table: dict[str, list[tuple[Register, EventSource | None, _Atom]]] = {}
        for a in self.atoms.values():
            for reg, src in self.sources(a.event):
                by_table.setdefault(reg.id, []).append((reg, src, a))
        selects = []
        for rid in sorted(by_table):
            uses = by_table[rid]
            reg = uses[0][0]
            self.tables.add(rid)
            # an event's date column may differ by source within one register; group by it
            date_cols = sorted(
                {reg.event_date(src) if src else reg.date_column or "" for _, src, _ in uses}
            )
            for dcol in date_cols:
                cols: list[exp.Expression] = [
                    exp.alias_(_col(reg.person_key), "lopnr"),
                    exp.alias_(_col(dcol), "d"),
                    exp.alias_(
                        _col(reg.site_column)
                        if reg.site_column
                        else exp.cast(exp.null(), exp.DataType.Type.VARCHAR),
                        "site",
                    ),
                ]
                any_match: list[exp.Expression] = []
                for a in self.atoms.values():
                    hit = [
                        self.match(a.event, r, s)
                        for r, s, b in uses
                        if b is a and (reg.event_date(s) if s else reg.date_column) == dcol
                    ]
                    m = _or(hit) if hit else exp.false()
                    cols.append(exp.alias_(m, a.name))
                    if hit:
                        any_match.append(m)
                    if a.need_notnull:
                        nn = (
                            [
                                self.match(a.event, r, s, notnull_only=True)
                                for r, s, b in uses
                                if b is a
                            ]
                            if hit
                            else []
                        )
                        n = _or(nn) if nn else exp.false()
                        cols.append(exp.alias_(n, a.name + "n"))
                        if nn:
                            any_match.append(n)
                where = _and(
                    exp.Not(this=exp.Is(this=_col(dcol), expression=exp.null())),
                    exp.Paren(this=_or(any_match)),
                )
                selects.append(exp.select(*cols).from_(exp.to_table(rid, quoted=True)).where(where))
        union = selects[0]
        for s in selects[1:]:
            union = exp.union(union, s, distinct=False)
        return union

    # ---- the whole statement ----------------------------------------------------------------
    def compile(self, co: ir.Cohort) -> Compiled:
        pop = self.catalog.population
        if pop is None:
            raise ValueError("the catalog has no population register")
        self.tables.add(pop.id)
        steps = [self.cond(s.cond) for s in co.steps]
        dims = list(co.report)
        hospital = any(isinstance(d, ir.Dim) and d.name == "hospital" for d in dims)

        ctes: list[tuple[str, exp.Expression]] = []
        idx_atom = None
        if isinstance(co.index, ir.IndexEvent):
            idx_atom = self.atom(co.index.event)
        if self.atoms:
            ctes.append(("ev", self.ev_cte()))

        # idx: the index date per person
        if isinstance(co.index, ir.IndexEvent):
            assert idx_atom is not None
            d = _col("d", "ev")
            fn = exp.Min if co.index.which == "first" else exp.Max
            idx = (
                exp.select(_col("lopnr", "ev"), exp.alias_(fn(this=d), "index_date"))
                .from_(exp.alias_(exp.to_table("ev"), "ev", table=True))
                .where(_and(_col(idx_atom.name, "ev"), self.window(co.index.window, d, None)))
                .group_by(_col("lopnr", "ev"))
            )
            ctes.append(("idx", idx))
            base_from = (
                exp.select(
                    exp.alias_(_col(pop.person_key, "p"), "lopnr"),
                    _col("index_date", "i"),
                    *(
                        exp.alias_(_col(c, "p"), c)
                        for c in ("kon", "lan", "fodelsear", "fodelsemanad")
                    ),
                )
                .from_(exp.alias_(exp.to_table(pop.id, quoted=True), "p", table=True))
                .join(
                    exp.alias_(exp.to_table("idx"), "i", table=True),
                    on=exp.EQ(this=_col(pop.person_key, "p"), expression=_col("lopnr", "i")),
                )
            )
        else:
            day = co.index.date
            born = exp.LTE(
                this=exp.Add(
                    this=exp.Mul(this=exp.Literal.number(12), expression=_col("fodelsear", "p")),
                    expression=_col("fodelsemanad", "p"),
                ),
                expression=exp.Literal.number(12 * day.year + day.month),
            )
            alive = exp.Not(this=exp.Exists(this=self.dead_before(day, _col(pop.person_key, "p"))))
            base_from = (
                exp.select(
                    exp.alias_(_col(pop.person_key, "p"), "lopnr"),
                    exp.alias_(_lit(day), "index_date"),
                    *(
                        exp.alias_(_col(c, "p"), c)
                        for c in ("kon", "lan", "fodelsear", "fodelsemanad")
                    ),
                )
                .from_(exp.alias_(exp.to_table(pop.id, quoted=True), "p", table=True))
                .where(_and(born, alive))
            )
        if self.optout:
            self.tables.add(self.optout)
            opted = (
                exp.select(_col("lopnr", "o"))
                .from_(exp.alias_(exp.to_table(self.optout, quoted=True), "o", table=True))
                .where(
                    _and(
                        exp.In(
                            this=_col("andamal", "o"),
                            expressions=[
                                exp.Literal.string(self.purpose),
                                exp.Literal.string("alla"),
                            ],
                        ),
                        exp.Not(this=exp.Is(this=_col("lopnr", "o"), expression=exp.null())),
                    )
                )
            )
            base_from = base_from.where(
                exp.Not(this=exp.In(this=_col(pop.person_key, "p"), query=opted.subquery()))
            )
        ctes.append(("base", base_from))

        site = None
        if hospital:
            assert idx_atom is not None
            site = self.agg(
                ("site",),
                exp.Min(
                    this=exp.Case(
                        ifs=[
                            exp.If(
                                this=_and(
                                    _col(idx_atom.name, "ev"),
                                    exp.EQ(
                                        this=_col("d", "ev"), expression=_col("index_date", "base")
                                    ),
                                ),
                                true=_col("site", "ev"),
                            )
                        ]
                    )
                ),
            )
        if self.aggs:
            agg = (
                exp.select(
                    _col("lopnr", "ev"), *(exp.alias_(e, name) for name, e in self.aggs.values())
                )
                .from_(exp.alias_(exp.to_table("ev"), "ev", table=True))
                .join(
                    exp.alias_(exp.to_table("base"), "base", table=True),
                    on=exp.EQ(this=_col("lopnr", "ev"), expression=_col("lopnr", "base")),
                )
                .group_by(_col("lopnr", "ev"))
            )
            ctes.append(("agg", agg))

        # persons: how far each got, and their breakdown values
        reached: exp.Expression = exp.Literal.number(len(steps))
        if steps:
            ifs = []
            for k, (s, st) in enumerate(zip(steps, co.steps, strict=True)):
                passed = s if st.action == "include" else exp.Not(this=exp.Paren(this=s))
                ifs.append(
                    exp.If(this=exp.Not(this=exp.Paren(this=passed)), true=exp.Literal.number(k))
                )
            reached = exp.Case(ifs=ifs, default=exp.Literal.number(len(steps)))
        dim_names: list[str] = []
        pcols: list[exp.Expression] = [exp.alias_(reached, "reached")]
        for dm in dims:
            name, e = self.dimension(dm, site)
            dim_names.append(name)
            pcols.append(exp.alias_(e, name))
        persons = exp.select(*pcols).from_(exp.alias_(exp.to_table("base"), "base", table=True))
        if self.aggs:
            persons = persons.join(
                exp.alias_(exp.to_table("agg"), "agg", table=True),
                on=exp.EQ(this=_col("lopnr", "base"), expression=_col("lopnr", "agg")),
                join_type="left",
            )
        ctes.append(("persons", persons))

        counts = [
            exp.alias_(
                _count_if(exp.GTE(this=_col("reached"), expression=exp.Literal.number(k))), f"n{k}"
            )
            for k in range(len(steps) + 1)
        ]
        final = exp.select(*counts).from_("persons")
        if dim_names:
            dcols = [_col(n) for n in dim_names]
            final = exp.select(
                *dcols,
                exp.alias_(
                    exp.Anonymous(this="GROUPING", expressions=[_col(n) for n in dim_names]), "grp"
                ),
                *counts,
            ).from_("persons")
            final.set(
                "group",
                exp.Group(
                    expressions=[
                        exp.GroupingSets(
                            expressions=[exp.Tuple(expressions=[]), exp.Tuple(expressions=dcols)]
                        )
                    ]
                ),
            )
        for name, body in ctes:
            final = final.with_(name, as_=body)

        labels = [_index_label(co.index)] + [
            s.label or f"{s.action} {i + 1}" for i, s in enumerate(co.steps)
        ]
        return Compiled(final, tuple(labels), tuple(dim_names), frozenset(self.tables))

    def dead_before(self, day, person: exp.Expression) -> exp.Select:
        (reg, src), *_ = self.catalog.sources_of("death") or [(None, None)]
        if reg is None:
            raise ValueError("an index date needs a register that provides `death`")
        self.tables.add(reg.id)
        return (
            exp.select(exp.Literal.number(1))
            .from_(exp.alias_(exp.to_table(reg.id, quoted=True), "x", table=True))
            .where(
                _and(
                    exp.EQ(this=_col(reg.person_key, "x"), expression=person),
                    exp.LT(this=_col(reg.event_date(src), "x"), expression=_lit(day)),
                )
            )
        )

    def dimension(self, d: ir.Dimension, site: exp.Expression | None) -> tuple[str, exp.Expression]:
        if isinstance(d, ir.AgeBand):
            band = exp.Floor(
                this=exp.Div(this=_months(), expression=exp.Literal.number(f"{12 * d.width}.0"))
            )
            return f"age_{d.width}", exp.Mul(
                this=exp.cast(band, exp.DataType.Type.INT), expression=exp.Literal.number(d.width)
            )
        if d.name == "region":
            return "region", _col("lan", "base")
        if d.name == "sex":
            return "sex", exp.Case(
                ifs=[
                    exp.If(
                        this=exp.EQ(this=_col("kon", "base"), expression=exp.Literal.number(1)),
                        true=exp.Literal.string("male"),
                    ),
                    exp.If(
                        this=exp.EQ(this=_col("kon", "base"), expression=exp.Literal.number(2)),
                        true=exp.Literal.string("female"),
                    ),
                ]
            )
        if d.name == "year":
            return "year", exp.Year(this=_col("index_date", "base"))
        assert site is not None
        return "hospital", site


def _months() -> exp.Expression:
    """Completed months of life at the index date (the day of birth is not in the extract)."""
    idx = _col("index_date", "base")
    now = exp.Add(
        this=exp.Mul(this=exp.Literal.number(12), expression=exp.Year(this=idx)),
        expression=exp.Month(this=idx),
    )
    born = exp.Add(
        this=exp.Mul(this=exp.Literal.number(12), expression=_col("fodelsear", "base")),
        expression=_col("fodelsemanad", "base"),
    )
    return exp.Paren(this=exp.Sub(this=exp.Paren(this=now), expression=exp.Paren(this=born)))


def _index_label(index: ir.IndexEvent | ir.IndexDate) -> str:
    if isinstance(index, ir.IndexDate):
        return f"Alive on {index.date.isoformat()}"
    return "Index event"


def compile_cohort(
    co: ir.Cohort, catalog: Catalog, purpose: str = "forskning", optout: str | None = None
) -> Compiled:
    """Compile a checked cohort. `optout` names the opt-out register if the installation holds one."""
    if purpose not in ("forskning", "kommersiell"):
        raise ValueError("purpose is 'forskning' or 'kommersiell'")
    return _Compiler(catalog, purpose, optout).compile(dataclasses.replace(co))
