"""The IR against the catalog: every name, code and value must mean something there.

A cohort that does not check never reaches a database. All problems found are
reported together, each with its position and, where possible, what was meant.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator

from antal.catalog import Catalog, EventSource, Register, suggest
from antal.catalog.models import Variable
from antal.catalog.vocabulary import CODE_EXAMPLES, CODE_SHAPES, CODE_SYSTEMS, DIMENSION_KEYS
from antal.engine import ir
from antal.engine.codes import SYSTEM_OF_EVENT, guess_system, system_of_code, valid_code
from antal.engine.dispatch import Dispatch
from antal.engine.errors import CohortError, Diagnostic, InternalError
from antal.engine.hierarchy import HIERARCHIES

__all__ = ["check", "check_with_warnings", "event_sources", "registers_used", "source_name"]

_TYPE_WORDS = {
    "bigint": "a whole number",
    "integer": "a whole number",
    "smallint": "a whole number",
    "double": "a number",
    "varchar": 'a "string"',
    "date": "a date",
}


# One handler per node of each kind (engine/dispatch.py): a node without one is an
# InternalError naming it, never checked as if it were another node.
_EVENT: Dispatch[Callable[..., ir.Event]] = Dispatch("checker: event", ir.Event)
_FILTER: Dispatch[Callable[..., None]] = Dispatch("checker: filter", ir.Filter)
_COND: Dispatch[Callable[..., ir.Cond]] = Dispatch("checker: condition", ir.Cond)
_DIMENSION: Dispatch[Callable[..., None]] = Dispatch("checker: dimension", DIMENSION_KEYS)
_USES: Dispatch[Callable[..., None]] = Dispatch("registers used: condition", ir.Cond)


class _Checker:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.diags: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    def warn(self, node: ir.Node | None, message: str, hint: str | None, code: str) -> None:
        pos = getattr(node, "pos", None)
        line, col = (pos.line, pos.column) if pos else (0, 0)
        d = Diagnostic(line, col, message, hint, code, severity="warning")
        if d not in self.warnings:  # a code set used twice warns once
            self.warnings.append(d)

    def error(
        self,
        node: ir.Node | ir.Pos | None,
        message: str,
        hint: str | None = None,
        code: str = "check",
    ) -> None:
        pos = node if isinstance(node, ir.Pos) else getattr(node, "pos", None)
        line, col = (pos.line, pos.column) if pos else (0, 0)
        self.diags.append(Diagnostic(line, col, message, hint, code))

    # ---- events ----
    def event(self, ev: ir.Event, where: ir.Node) -> ir.Event:
        return _EVENT.of(ev)(self, ev, where)

    @_EVENT.on(ir.Diagnosis, ir.Procedure, ir.Death)
    def coded_event(self, ev: ir.Diagnosis | ir.Procedure | ir.Death, where: ir.Node) -> ir.Event:
        self.codes(ev, ev.codes)
        sources = self.catalog.sources_of(ev.kind)
        if not sources:
            self.error(
                ev, f"no register in the catalog provides `{ev.kind}` events", code="no_provider"
            )
        if isinstance(ev, ir.Death) and ev.mentioned:
            if not ev.codes:
                self.error(ev, "`death mentioned` needs the causes to look for",
                           "e.g. `death I21* mentioned`", "code")  # fmt: skip
            elif sources and not all(src.mentioned for _reg, src in sources):
                self.error(ev, "a register of deaths here records no contributing causes",
                           "use `death CODES` (the underlying cause)", "no_provider")  # fmt: skip
        return ev

    @_EVENT.on(ir.Drug)
    def drug_event(self, ev: ir.Drug, where: ir.Node) -> ir.Event:
        self.codes(ev, ev.codes)
        providers = [source_name(r, p) for r, p in self.catalog.sources_of("drug")]
        for s in ev.sources:
            if s not in providers:
                hint = suggest(s, providers)
                self.error(
                    ev,
                    f"'{s}' is not a source of drugs",
                    f"did you mean '{hint}'?" if hint else f"sources: {', '.join(providers)}",
                    "unknown_source",
                )
        if not ev.sources:
            return dataclasses.replace(ev, sources=tuple(sorted(providers)))
        return ev

    def codes(self, ev: ir.Event, codes: tuple[ir.CodePattern, ...]) -> None:
        system = SYSTEM_OF_EVENT[ev.kind]
        if not codes and not isinstance(ev, ir.Death):
            self.error(ev, f"`{ev.kind}` needs at least one code", code="code")
        given = {c.code for c in codes if not c.prefix}
        # a range (`I20..I25`, `Y98..Z01`) names every category between its ends, some of
        # which no classification has: the range is checked by its ends, not each category
        in_range = {
            f"{lo[0]}{n:02d}"
            for lo, hi in ir.category_runs(codes)[0]
            if lo != hi
            for n in range(int(lo[1:]), int(hi[1:]) + 1)
        }
        for c in codes:
            its = system_of_code(c.code, c.prefix, ev.kind)
            if its is None:
                other = guess_system(c.code, c.prefix)
                hint = (
                    f"it looks like an {other[0]} code: use `{other[1]}`"
                    if other
                    else f"{system} codes look like {CODE_EXAMPLES[system]}"
                )
                self.error(
                    c if c.pos else ev,
                    f"{c} is not a{'n' if system[0] in 'AI' else ''} {system} code for `{ev.kind}`",
                    hint,
                    "code_system",
                )
                continue
            if not (c.prefix and c.code in in_range):
                self.code_exists(c, its, ev, given)

    def code_exists(self, c: ir.CodePattern, system: str, ev: ir.Event, given: set[str]) -> None:
        """Against the code lists (catalog/code_lists.py): a code no list has is an error
        (it would count a silent zero); a retired or unverifiable one, a warning."""
        if system == "ICD-9":
            return  # no list: the shape is all antal knows of ICD-9
        j = self.catalog.code_lists.judge(c.code, c.prefix, system)
        at = c if c.pos else ev
        near = ", ".join(j.nearest)
        if j.status == "unknown":
            self.error(
                at,
                f"{c} is not {'the start of ' if c.prefix else ''}a code in {system}",
                (f"nearest codes: {near}" if near else None),
                "unknown_code",
            )
        elif j.status == "unverified":
            lists = (
                "; ".join(self.catalog.code_lists.lists[system].sources)
                if (system in self.catalog.code_lists.lists)
                else "none"
            )
            self.warn(
                at,
                f"{c} is not in the {system} code lists antal has, which are partial: "
                "it cannot be verified and may match nothing",
                (f"nearest listed: {near}; " if near else "")
                + f"lists: {lists}; an installation adds its own (docs/codes.md)",
                "unverified_code",
            )
        if j.retired is not None and j.retired.new not in given:
            r = j.retired
            self.warn(
                at,
                f"{c} ({r.substance}) was replaced by {r.new} in the {r.year} ATC revision",
                f"registers that keep the code valid at the time hold {r.new} from {r.year}: "
                f"give both (`{r.old}, {r.new}`)",
                "retired_code",
            )

    def filter_code(
        self, reg: Register, var: Variable, code: str, f: ir.Node, given: set[str]
    ) -> None:
        """A filter's code value on a code column (`npr where hdia = "I50X"`): of a shape of
        the column's systems, and known to its lists (`code_exists`'s errors and warnings)."""
        shaped = [s for s in var.systems if s in CODE_SHAPES and valid_code(code, False, s)]
        if not shaped:
            other = guess_system(code, False)
            system = var.code_system or "?"
            hint = (
                f"it looks like an {other[0]} code, which '{reg.id}.{var.name}' does not hold"
                if other
                else f"{system} codes look like {CODE_EXAMPLES.get(system, '?')}"
            )
            self.error(
                f,
                f"{_show(code)} is not a{'n' if system[0] in 'AI' else ''} {system} code, "
                f"which '{reg.id}.{var.name}' holds",
                hint,
                "code_system",
            )
            return
        pattern = ir.CodePattern(code, False, getattr(f, "pos", None))
        self.code_exists(pattern, shaped[-1], f, given)

    def register(self, name: str, node: ir.Node) -> Register | None:
        reg = self.catalog.register(name)
        if reg is None:
            hint = suggest(name, self.catalog.ids())
            self.error(
                node,
                f"unknown register '{name}'",
                f"did you mean '{hint}'?"
                if hint
                else f"registers: {', '.join(self.catalog.ids())}",
                "unknown_register",
            )
        return reg

    @_EVENT.on(ir.RegisterEvent)
    def register_event(self, ev: ir.RegisterEvent, where: ir.Node) -> ir.Event:
        reg = self.register(ev.register, ev)
        if reg is None:
            return ev
        if reg.is_internal:
            # the opt-outs are applied to every count; read as events they would tell who
            # opted out (of any purpose), which nobody approved
            self.error(
                ev,
                f"register '{reg.id}' is internal to the installation: no cohort may read it",
                code="internal_register",
            )
            return ev
        if not reg.date_column:
            self.error(
                ev,
                f"register '{reg.id}' has no date, so it has no events",
                "use its variables through demographics (age, sex, region)",
                "no_date",
            )
        if ev.filter is not None:
            self.filter(reg, ev.filter)
        return ev

    def filter(self, reg: Register, f: ir.Filter) -> None:
        _FILTER.of(f)(self, reg, f)

    @_FILTER.on(ir.FAnd, ir.FOr)
    def _filter_items(self, reg: Register, f: ir.FAnd | ir.FOr) -> None:
        for i in f.items:
            self.filter(reg, i)

    @_FILTER.on(ir.FNot)
    def _filter_not(self, reg: Register, f: ir.FNot) -> None:
        self.filter(reg, f.item)

    @_FILTER.on(ir.Cmp, ir.FIn)
    def _filter_leaf(self, reg: Register, f: ir.Cmp | ir.FIn) -> None:
        var = reg.variable(f.var)
        if var is None:
            hint = suggest(f.var, [v.name for v in reg.variables])
            self.error(
                f,
                f"register '{reg.id}' has no variable '{f.var}'",
                f"did you mean '{hint}'?"
                if hint
                else f"variables: {', '.join(v.name for v in reg.variables)}",
                "unknown_variable",
            )
            return
        values = (f.value,) if isinstance(f, ir.Cmp) else f.values
        event_codes = var.code_system in CODE_SYSTEMS  # stored upper case without dots
        for v in values:
            if event_codes and var.multi and isinstance(v, str):
                # `diagnos = "E11"` matches only contacts whose one code is E11: a silent
                # undercount, since the column holds all of a contact's codes
                self.error(
                    f,
                    f"'{reg.id}.{var.name}' holds a list of codes separated by spaces; a filter "
                    "would compare the whole list",
                    _list_hint(reg, var.name),
                    "code_in_filter",
                )
            elif event_codes and isinstance(v, str) and v != v.strip("*").upper().replace(".", ""):
                # a filter compares whole stored values: `hdia = "J44*"` would match no row
                # (stored codes have no `*` or `.` and are upper case), a silent zero
                self.error(
                    f,
                    f"{_show(v)} is not a stored {var.code_system} code: a register filter "
                    "compares whole values, with no `*`, no `.` and in upper case",
                    f"give the whole code as stored ({_show(v.strip('*').upper().replace('.', ''))}), "
                    "or match codes by prefix with an event (e.g. `diagnosis J44*`, `drug A10B*`)",
                    "code_in_filter",
                )
            elif not _fits(v, var.type):
                self.error(
                    f,
                    f"'{reg.id}.{var.name}' is {_TYPE_WORDS[var.type]}; {_show(v)} is not",
                    code="value_type",
                )
            elif event_codes and isinstance(v, str):
                # a code compared to a code column is looked up like an event's codes: a
                # code of another system, or one no list has, would count a silent zero
                self.filter_code(reg, var, v, f, {x for x in values if isinstance(x, str)})
            elif (
                var.values is not None
                and isinstance(f, ir.FIn | ir.Cmp)
                and (not isinstance(f, ir.Cmp) or f.op in ("=", "!="))
            ):
                allowed = [str(a) for a in var.values]
                if str(v) not in allowed:
                    hint = suggest(str(v), allowed)
                    self.error(
                        f,
                        f"{_show(v)} is not a value of '{reg.id}.{var.name}'",
                        f"did you mean {_show(hint if isinstance(v, str) else v)}?"
                        if hint
                        else f"values: {', '.join(allowed)}",
                        "unknown_value",
                    )
        if (
            isinstance(f, ir.Cmp)
            and f.op not in ("=", "!=")
            and var.type == "varchar"
            and var.values
        ):
            self.error(f, f"'{reg.id}.{var.name}' has no order; use = or !=", code="value_type")

    # ---- conditions ----
    def cond(self, c: ir.Cond) -> ir.Cond:
        return _COND.of(c)(self, c)

    @_COND.on(ir.EventCond)
    def _event_cond(self, c: ir.EventCond) -> ir.Cond:
        ev = self.event(c.event, c)
        if c.latest:
            if not (isinstance(ev, ir.RegisterEvent) and ev.filter is not None):
                self.error(
                    c,
                    "`latest` needs a register filter",
                    "e.g. `latest ndr.hba1c > 53 within 365 days before index`",
                    "latest",
                )
            if c.count is not None:
                self.error(c, "`latest` cannot be combined with a count", code="latest")
        return dataclasses.replace(c, event=ev)

    @_COND.on(ir.AllOf, ir.AnyOf)
    def _items_cond(self, c: ir.AllOf | ir.AnyOf) -> ir.Cond:
        return dataclasses.replace(c, items=tuple(self.cond(i) for i in c.items))

    @_COND.on(ir.Not)
    def _not_cond(self, c: ir.Not) -> ir.Cond:
        return dataclasses.replace(c, item=self.cond(c.item))

    @_COND.on(ir.RegionIn)
    def _region_cond(self, c: ir.RegionIn) -> ir.Cond:
        known = [r.code for r in self.catalog.regions]
        for code in c.codes:
            if known and code not in known:
                self.error(
                    c,
                    f"{code} is not a län code",
                    f"codes: {', '.join(known)}",
                    "unknown_value",
                )
        return self._demographic(c)

    @_COND.on(ir.Age, ir.Sex)
    def _demographic(self, c: ir.Age | ir.Sex | ir.RegionIn) -> ir.Cond:
        if self.catalog.population is None:
            self.error(
                c, "demographics need a population register in the catalog", code="no_provider"
            )
        return c

    # ---- cohort ----
    def cohort(self, co: ir.Cohort) -> ir.Cohort:
        index = co.index
        if isinstance(index, ir.IndexEvent):
            if index.window.relative:
                self.error(
                    index.window,
                    "the window of an index may only be a calendar window",
                    "use `between D1 and D2`, `before D` or `after D`",
                    "index_window",
                )
            elif index.episodes and (index.window.start is None or index.window.end is None):
                self.error(
                    index,
                    "`index each` needs a window with both ends",
                    "e.g. `index each diagnosis I50* between 2023-01-01 and 2025-09-30, "
                    "washout 365 days`",
                    "index_window",
                )
            if index.episodes and index.washout is None:
                self.error(index, "`index each` needs a washout", code="washout")
            ev = self.event(index.event, index)
            index = dataclasses.replace(index, event=ev)
        elif not isinstance(index, ir.IndexDate):
            raise InternalError(f"checker: no handler for index {type(index).__name__}")
        elif self.catalog.population is None:
            self.error(
                index,
                "an index date needs a population register in the catalog",
                code="no_provider",
            )
        elif not self.catalog.sources_of("death"):
            # who was alive on the date: without a register of deaths the count would be
            # silently too high (and the compiler has nothing to read)
            self.error(
                index,
                "an index date needs a register that provides `death` in the catalog",
                code="no_provider",
            )
        steps = tuple(dataclasses.replace(s, cond=self.cond(s.cond)) for s in co.steps)
        seen_tables: set[frozenset[str]] = set()
        for rep in co.reports:
            seen: set[str] = set()
            for d in rep.dims:
                name = ir.dimension_key(d)
                if name in seen:
                    self.error(d, f"`{name}` is listed twice in `report by`", code="duplicate")
                seen.add(name)
                _DIMENSION(name)(self, index, d)
            if frozenset(seen) in seen_tables:
                self.error(rep, "the same `report by` table is asked twice", code="duplicate")
            seen_tables.add(frozenset(seen))
            if rep.rollup:
                self._rollup(rep)
        return dataclasses.replace(co, index=index, steps=steps)

    def _rollup(self, rep: ir.Report) -> None:
        """`with rollup` rolls up one hierarchical dimension (engine/domain.py HIERARCHIES)."""
        hier = [d for d in rep.dims if ir.dimension_key(d) in HIERARCHIES]
        names = ", ".join(HIERARCHIES)
        if not hier:
            self.error(rep, "`with rollup` needs a dimension with levels above it",
                       f"one of: {names}", "rollup")  # fmt: skip
        elif len(hier) > 1:
            self.error(hier[1], "`with rollup` rolls up one dimension of a table",
                       "list the other in a `report by` of its own", "rollup")  # fmt: skip

    @_DIMENSION.on("age")
    def _age_band(self, index: ir.IndexEvent | ir.IndexDate, d: ir.AgeBand) -> None:
        if d.width < 1:
            self.error(d, "an age band is at least 1 year wide", code="value")

    @_DIMENSION.on("region", "sex", "year", "sjukvardsregion")
    def _any_index(self, index: ir.IndexEvent | ir.IndexDate, d: ir.Dim) -> None:
        """Known for every person in every cohort: nothing to check."""

    @_DIMENSION.on("month", "quarter")
    def _calendar(self, index: ir.IndexEvent | ir.IndexDate, d: ir.Dim) -> None:
        """Months and quarters are released over the index's calendar window (their public
        domain, never read from the data): the window must be bounded at both ends."""
        if isinstance(index, ir.IndexEvent) and (
            index.window.start is None or index.window.end is None
        ):
            self.error(
                d,
                f"`report by {d.name}` needs an index window with both ends",
                "e.g. `index first diagnosis E11* between 2019-01-01 and 2021-12-31`",
                "calendar",
            )

    @_DIMENSION.on("hospital", "clinic")
    def hospital(self, index: ir.IndexEvent | ir.IndexDate, d: ir.Dim) -> None:
        where = "at a hospital" if d.name == "hospital" else "recorded at a clinic"
        hint = "index on a diagnosis, procedure or drug given in care (`in rekvisition`)"
        if not isinstance(index, ir.IndexEvent):
            self.error(d, f"`report by {d.name}` needs an index event {where}", hint, d.name)
            return
        regs = list(_registers_of(index.event, self.catalog))
        if d.name == "hospital":
            without = [r.id for r in regs if not r.site_column]
        else:
            without = [r.id for r in regs if not r.clinic_column]
        if without:
            what = "hospital" if d.name == "hospital" else "clinic"
            self.error(
                d,
                f"`report by {d.name}` needs an index event {where}; {', '.join(without)} records no {what}",
                hint,
                d.name,
            )


def _fits(v: ir.Value, typ: str) -> bool:
    if typ in ("bigint", "integer", "smallint"):
        return isinstance(v, int) and not isinstance(v, bool)
    if typ == "double":
        return isinstance(v, int | float) and not isinstance(v, bool)
    if typ == "date":
        return isinstance(v, dt.date)
    return isinstance(v, str)


def _show(v: object) -> str:
    return f'"{v}"' if isinstance(v, str) else str(v)


def source_name(reg: Register, src: EventSource) -> str:
    """The name an event source has in `drug ... in NAME` (its register's id by default)."""
    return src.source or reg.id


def event_sources(ev: ir.Event, catalog: Catalog) -> list[tuple[Register, EventSource | None]]:
    """The (register, source) pairs whose records an event reads: one definition for the
    checker (registers used, hospital check) and the compiler (what to scan)."""
    if isinstance(ev, ir.RegisterEvent):
        reg = catalog.register(ev.register)
        return [(reg, None)] if reg else []
    return [
        (reg, src)
        for reg, src in catalog.sources_of(ev.kind)
        if not isinstance(ev, ir.Drug) or not ev.sources or source_name(reg, src) in ev.sources
        # `main` reads only sources with a main code (external causes are never one)
        if not (isinstance(ev, ir.Diagnosis) and ev.main and src.main is None)
        if _may_hold(src, ev)
    ]


def _may_hold(src: EventSource, ev: ir.Event) -> bool:
    """Whether a code of the event can be in the source's column (`holds`: the starts of
    the codes it holds). `diagnosis E11*` does not read the external causes (V01-Y98)."""
    codes = getattr(ev, "codes", ())
    if src.holds is None or not codes:
        return True
    return any(
        c.code.startswith(h) or (c.prefix and h.startswith(c.code))
        for c in codes
        for h in src.holds
    )


def _registers_of(ev: ir.Event, catalog: Catalog) -> Iterator[Register]:
    for reg, _src in event_sources(ev, catalog):
        yield reg


def registers_used(co: ir.Cohort, catalog: Catalog) -> set[str]:
    """Every register a (checked) cohort reads."""
    used: set[str] = set()
    if catalog.population:
        used.add(catalog.population.id)
    if isinstance(co.index, ir.IndexEvent):
        used |= {r.id for r in _registers_of(co.index.event, catalog)}
    else:
        used |= {r.id for r in _registers_of(ir.Death(), catalog)}

    for s in co.steps:
        _USES.of(s.cond)(s.cond, catalog, used)
    return used


@_USES.on(ir.EventCond)
def _uses_event(c: ir.EventCond, catalog: Catalog, used: set[str]) -> None:
    used.update(r.id for r in _registers_of(c.event, catalog))


@_USES.on(ir.AllOf, ir.AnyOf)
def _uses_items(c: ir.AllOf | ir.AnyOf, catalog: Catalog, used: set[str]) -> None:
    for i in c.items:
        _USES.of(i)(i, catalog, used)


@_USES.on(ir.Not)
def _uses_not(c: ir.Not, catalog: Catalog, used: set[str]) -> None:
    _USES.of(c.item)(c.item, catalog, used)


@_USES.on(ir.Age, ir.Sex, ir.RegionIn)
def _uses_population(c: ir.Age | ir.Sex | ir.RegionIn, catalog: Catalog, used: set[str]) -> None:
    """Demographics read the population register, which every cohort reads already."""


def check(co: ir.Cohort, catalog: Catalog) -> ir.Cohort:
    """Check a cohort against the catalog; return its canonical, resolved form.

    Drug events without `in` get their sources spelled out, so that the compiler
    and the reference evaluator see the same explicit meaning.
    """
    return check_with_warnings(co, catalog)[0]


def check_with_warnings(
    co: ir.Cohort, catalog: Catalog, review: Callable[[ir.Cohort], list[Diagnostic]] | None = None
) -> tuple[ir.Cohort, list[Diagnostic]]:
    """`check`, and the warnings of a cohort that checks (retired or unverifiable codes,
    and those of `review`, called with the resolved cohort while it still has positions).
    Raises CohortError with the errors; warnings never stop a count."""
    ch = _Checker(catalog)
    bounds = ir.validate(co)  # sizes, depth and values first: nothing below walks a bomb
    if bounds:
        for node, message in bounds:
            ch.error(node, message, code="limit")
        raise CohortError(ch.diags)
    resolved = ch.cohort(co)
    if ch.diags:
        ch.diags.sort(key=lambda d: (d.line, d.column))
        raise CohortError(ch.diags)
    warnings = ch.warnings + [
        w for w in (review(resolved) if review else []) if w not in ch.warnings
    ]
    warnings.sort(key=lambda d: (d.line, d.column, d.code))
    return ir.canonical(resolved), warnings


def _list_hint(reg: Register, column: str) -> str:
    """How to match one code of a space-separated code column: the event that reads it
    (from the register's `provides`), or, where none does (the cause-of-death register's
    contributing causes), what can be asked instead, never another register's event."""
    for src in reg.provides:
        if src.codes == column:
            return f"match one of its codes with an event, e.g. `{src.event} E11*`"
        if src.mentioned == column:  # the other causes: read with the event's first column
            return f"match one of its codes, or the {src.codes} code, with `{src.event} I21* mentioned`"
    reads = [src for src in reg.provides if src.event]
    if reads:
        other = ", ".join(f"`{src.event} CODES` ({reg.id}.{src.codes})" for src in reads)
        return (
            f"no event reads '{reg.id}.{column}' yet, so its codes cannot be matched one by one; "
            f"{reg.id} is read by {other}"
        )
    return "no event reads this column, so its codes cannot be matched one by one"
