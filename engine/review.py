"""Warnings about when a cohort's windows reach: periods the data cannot answer for.

A cohort can check and still count something other than it says: a look-back into the
years a register coded in ICD-9 finds no `I21*` there, a window past the extract's last
day or into a register's reporting lag misses records that will exist, and a register
known to be thin for a period (person-level hospital drugs before April 2025) undercounts
there. None of these is an error (the count is right for the data), but the answer must
say so. The review works out which dates each event's window can reach, from the index's
calendar window and the step's days, and compares them with the catalog's code systems by
period and incomplete periods and the installation's currency (engine/currency.py).

Only bounds the cohort writes are compared with the extract's ends: `before index` reaches
back to whatever the extract holds, by design, and says nothing about its first day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from antal.catalog import Catalog, EventSource, Register
from antal.engine import ir
from antal.engine.check import event_sources
from antal.engine.codes import system_of_code
from antal.engine.currency import Currency, RegisterCurrency, currency_of
from antal.engine.dispatch import Dispatch
from antal.engine.errors import Diagnostic

__all__ = ["review"]

_FAR_PAST, _FAR_FUTURE = dt.date(1, 1, 1), dt.date(9999, 12, 31)
# code systems whose codes the same cohort codes match (WHO ICD-10 and ICD-10-SE share
# their codes but Swedish additions)
_FAMILY = {"ICD-10": "ICD-10-SE"}
_CAN_GIVE = {"ICD-9": "`410*` for I21*, `250*` for E11*"}


@dataclass(frozen=True)
class Reach:
    """The dates a window can reach; None where the cohort sets no bound."""

    lo: dt.date | None
    hi: dt.date | None


def _shift(d: dt.date | None, days: int | None) -> dt.date | None:
    if d is None or days is None:
        return None
    try:
        return d + dt.timedelta(days=days)
    except OverflowError:
        return _FAR_PAST if days < 0 else _FAR_FUTURE


def _reach(index: Reach, w: ir.Window) -> Reach:
    lo, hi = (_shift(index.lo, w.lo), _shift(index.hi, w.hi)) if w.relative else (None, None)
    if w.start is not None:
        lo = max(lo, w.start) if lo else w.start
    if w.end is not None:
        hi = min(hi, w.end) if hi else w.end
    return Reach(lo, hi)


def _day(d: dt.date) -> str:
    return d.isoformat()


class _Review:
    def __init__(self, catalog: Catalog, currency: Currency) -> None:
        self.catalog = catalog
        self.currency = currency
        self.out: list[Diagnostic] = []
        # (node, register, system, period) already warned: a register read through two
        # columns (npr's diagnoses and external causes) warns of a period once
        self._periods: set[tuple[int, str, str, object, object]] = set()

    def _where(self, regions: list[str] | None) -> str:
        """ "in Skåne (län 12) " for a coding period of some län only; "" for everywhere."""
        if not regions:
            return ""
        names = {r.code: r.name for r in self.catalog.regions}
        return "in " + ", ".join(f"{names.get(c, c)} (län {c})" for c in regions) + " "

    def warn(self, node: ir.Node, message: str, hint: str | None, code: str) -> None:
        pos = getattr(node, "pos", None)
        line, col = (pos.line, pos.column) if pos else (0, 0)
        d = Diagnostic(line, col, message, hint, code, severity="warning")
        if d not in self.out:
            self.out.append(d)

    def event(self, ev: ir.Event, reach: Reach, node: ir.Node) -> None:
        for reg, src in event_sources(ev, self.catalog):
            rc = self.currency.registers.get(reg.id)
            if rc is None:
                continue
            self.data_period(reg, rc, reach, node)
            span = (
                max(reach.lo or _FAR_PAST, rc.start),
                min(reach.hi or _FAR_FUTURE, rc.through or _FAR_FUTURE),
            )
            if span[0] > span[1]:
                continue
            for p in reg.coverage.incomplete:
                if p.overlaps(*span):
                    self.warn(
                        node,
                        f"'{reg.id}' is incomplete {_period(p.start, p.until)} and this window "
                        "reaches that period" + (f": {p.note}" if p.note else ""),
                        "counts there are too low; narrow the window or read them as a lower bound",
                        "incomplete_period",
                    )
            if src is not None and isinstance(ev, ir.Diagnosis | ir.Procedure | ir.Drug | ir.Death):
                self.coding(ev, reg, src, span, node)

    def data_period(self, reg: Register, rc: RegisterCurrency, reach: Reach, node: ir.Node) -> None:
        if reach.lo is not None and reach.lo < rc.start:
            self.warn(
                node,
                f"this window reaches back to {_day(reach.lo)}, before '{reg.id}' begins "
                f"({_day(rc.start)}): earlier records are not in the data",
                "start the window (or the index) later, or read the count as a lower bound",
                "before_data",
            )
        if reach.hi is None:
            return
        if rc.through is not None and reach.hi > rc.through:
            self.warn(
                node,
                f"this window reaches {_day(reach.hi)}, past the last day of '{reg.id}' in "
                f"this data release ({_day(rc.through)})",
                "end the window (or the index) earlier; later records do not exist yet",
                "after_data",
            )
        elif rc.complete_through is not None and reach.hi > rc.complete_through:
            after = "its year's end" if rc.finalised == "yearly" else "the event"
            self.warn(
                node,
                f"this window reaches {_day(reach.hi)}, into the reporting lag of '{reg.id}': "
                f"its records are complete about {rc.lag_months} months after {after}, so "
                f"only through {_day(rc.complete_through)} in this release",
                "end the window (or the index) earlier, or read the count as a lower bound",
                "reporting_lag",
            )

    def coding(
        self,
        ev: ir.Diagnosis | ir.Procedure | ir.Drug | ir.Death,
        reg: Register,
        src: EventSource,
        span: tuple[dt.date, dt.date],
        node: ir.Node,
    ) -> None:
        var = reg.variable(src.codes)
        if var is None or not var.coding:
            return
        systems = {system_of_code(c.code, c.prefix, ev.kind) for c in ev.codes}
        families = {_FAMILY.get(s or "", s) for s in systems}
        for p in var.coding:
            if not p.overlaps(*span) or not ev.codes:
                continue
            key = (id(node), reg.id, _FAMILY.get(p.system, p.system), p.start, p.until)
            if key in self._periods:
                continue
            self._periods.add(key)
            if _FAMILY.get(p.system, p.system) not in families:
                where = self._where(p.regions)
                can = _CAN_GIVE.get(p.system)
                later = f"start the window on {_day(p.until)}" if p.until else None
                hint = (
                    f"add its {p.system} codes (e.g. {can})" + (f", or {later}" if later else "")
                    if can
                    else (later or "") + (f" (antal cannot match {p.system} codes)")
                )
                self.warn(
                    node,
                    f"'{reg.id}.{var.name}' holds {p.system} codes {where}{_period(p.start, p.until)}"
                    + (f" ({p.note})" if p.note else "")
                    + f"; this window reaches that period, where "
                    f"{', '.join(map(str, ev.codes[:3]))}{'...' if len(ev.codes) > 3 else ''} "
                    "cannot match",
                    hint.strip(),
                    "code_system_period",
                )
            if p.historical:
                self.older_codes(ev, span, node, p.system)

    def older_codes(self, ev: ir.Event, span: tuple[dt.date, dt.date], node: ir.Node,
                    system: str) -> None:  # fmt: skip
        codes: tuple[ir.CodePattern, ...] = getattr(ev, "codes", ())
        for c in codes:
            j = self.catalog.code_lists.judge(c.code, c.prefix, system)
            missed = [r for r in j.replaces
                      if not any(g.matches(r.old) for g in codes)
                      and span[0] < dt.date(r.year, 1, 1)]  # fmt: skip
            if len(missed) == 1:
                r = missed[0]
                self.warn(
                    node,
                    f"records before {r.year} hold {r.substance} as {r.old} (replaced by "
                    f"{r.new} in the {r.year} ATC revision); this window reaches them",
                    f"add {r.old}",
                    "older_code",
                )
            elif missed:  # a prefix: one warning naming every older code it leaves out
                years = "/".join(str(y) for y in sorted({r.year for r in missed}))
                olds = ", ".join(r.old for r in missed)
                named = ", ".join(f"{r.substance} {r.old}" for r in missed)
                self.warn(
                    node,
                    f"records before the {years} ATC revision hold what {c} now holds under "
                    f"older codes ({named}); this window reaches them",
                    f"add {olds}",
                    "older_code",
                )


def _period(start: dt.date | None, until: dt.date | None) -> str:
    if start and until:
        return f"from {_day(start)} until {_day(until)}"
    if until:
        return f"until {_day(until)}"
    return f"from {_day(start)}" if start else "throughout"


_COND: Dispatch[Callable[..., None]] = Dispatch("review: condition", ir.Cond)


@_COND.on(ir.EventCond)
def _event_cond(r: _Review, c: ir.EventCond, index: Reach) -> None:
    r.event(c.event, _reach(index, c.window), c)


@_COND.on(ir.AllOf, ir.AnyOf)
def _items(r: _Review, c: ir.AllOf | ir.AnyOf, index: Reach) -> None:
    for i in c.items:
        _COND.of(i)(r, i, index)


@_COND.on(ir.Not)
def _not(r: _Review, c: ir.Not, index: Reach) -> None:
    _COND.of(c.item)(r, c.item, index)


@_COND.on(ir.Age, ir.Sex, ir.RegionIn)
def _demographic(r: _Review, c: ir.Cond, index: Reach) -> None:
    """Read at the index date: nothing reaches elsewhere."""


def review(co: ir.Cohort, catalog: Catalog, currency: Currency | None = None) -> list[Diagnostic]:
    """Warnings about the periods a checked (resolved, not canonical: positions kept)
    cohort's windows reach. Without a currency, the catalog's coverage alone."""
    if currency is None:
        currency = currency_of(catalog, None, catalog.registers)
    r = _Review(catalog, currency)
    if isinstance(co.index, ir.IndexDate):
        index = Reach(co.index.date, co.index.date)
    else:
        index = _reach(Reach(None, None), co.index.window)
        # `index each` reads its event back to the washout before the window
        back = -co.index.washout if co.index.episodes and co.index.washout else None
        r.event(co.index.event, Reach(_shift(index.lo, back) or index.lo, index.hi), co.index)
    for s in co.steps:
        _COND.of(s.cond)(r, s.cond, index)
    return r.out
