"""A Python builder for notebooks: the same IR as the cohort language, written as code.

    from antal.engine.builder import Cohort, first, diagnosis, drug, register, var, age, sex

    t2d = (
        Cohort("T2D on metformin")
        .index(first(diagnosis("E11*")).between("2015-01-01", "2023-12-31"))
        .include(age(40, 75), "Age 40-75 at index")
        .include(drug("A10BA02").within(0, 365, "after"), "Metformin within a year")
        .include(register("ndr").where(var("hba1c") > 53).latest().within_days(365, "before"))
        .exclude(diagnosis("I21*", "I22*").before_index(), "Earlier MI")
        .report("region", "sex")
    )
    t2d.ir   # an engine.ir.Cohort, equal to what the text form parses to

Conditions combine with `&`, `|` and `~`; filters on a register's variables likewise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Literal

from antal.engine import ir

__all__ = [
    "Cohort",
    "age",
    "at_date",
    "death",
    "diagnosis",
    "drug",
    "each",
    "first",
    "last",
    "procedure",
    "region",
    "register",
    "sex",
    "var",
]

_CODE = re.compile(r"^[A-Z][A-Z0-9]*(\.[A-Z0-9]+)?\*?$")
_RANGE = re.compile(r"^([A-Z][0-9]{2})\.\.([A-Z][0-9]{2})$")


def _codes(items: tuple[str, ...]) -> tuple[ir.CodePattern, ...]:
    out: list[ir.CodePattern] = []
    for raw in items:
        for part in (p.strip() for p in raw.split(",")):
            m = _RANGE.match(part)
            if m:
                if m.group(1) > m.group(2):  # as the text language says, not an empty set
                    raise ValueError(f"{part!r}: a range runs from the lower category up")
                out += ir.expand_category_range(m.group(1), m.group(2))
            elif _CODE.match(part):
                out.append(ir.CodePattern(part.rstrip("*").replace(".", ""), part.endswith("*")))
            else:
                raise ValueError(
                    f"{part!r} is not a code (upper case, e.g. 'E11', 'E11.9', 'E11*', 'I20..I25')"
                )
    return tuple(out)


def _date(d: str | dt.date) -> dt.date:
    return d if isinstance(d, dt.date) else dt.date.fromisoformat(d)


# ---- filters ---------------------------------------------------------------------------


class F:
    """A register filter; combine with `&`, `|`, `~`."""

    def __init__(self, node: ir.Filter) -> None:
        self.node = node

    def __and__(self, other: F) -> F:
        return F(ir.FAnd((self.node, other.node)))

    def __or__(self, other: F) -> F:
        return F(ir.FOr((self.node, other.node)))

    def __invert__(self) -> F:
        return F(ir.FNot(self.node))


class var:
    """A register variable in a filter."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _cmp(self, op: str, v: ir.Value) -> F:
        return F(ir.Cmp(self.name, op, v))  # type: ignore[arg-type]

    def __eq__(self, v: object) -> F:  # type: ignore[override]
        return self._cmp("=", v)  # type: ignore[arg-type]

    def __ne__(self, v: object) -> F:  # type: ignore[override]
        return self._cmp("!=", v)  # type: ignore[arg-type]

    def __lt__(self, v: ir.Value) -> F:
        return self._cmp("<", v)

    def __le__(self, v: ir.Value) -> F:
        return self._cmp("<=", v)

    def __gt__(self, v: ir.Value) -> F:
        return self._cmp(">", v)

    def __ge__(self, v: ir.Value) -> F:
        return self._cmp(">=", v)

    def isin(self, *values: ir.Value) -> F:
        return F(ir.FIn(self.name, tuple(values)))

    __hash__ = None  # type: ignore[assignment]


# ---- conditions --------------------------------------------------------------------------


class C:
    """A condition; combine with `&`, `|`, `~`."""

    def __init__(self, node: ir.Cond) -> None:
        self.node = node

    def __and__(self, other: C) -> C:
        return C(ir.AllOf((self.node, _cond(other))))

    def __or__(self, other: C) -> C:
        return C(ir.AnyOf((self.node, _cond(other))))

    def __invert__(self) -> C:
        return C(ir.Not(self.node))


class E(C):
    """An event condition: an event, and optionally a window, a count or `latest`."""

    def __init__(self, node: ir.EventCond) -> None:
        super().__init__(node)
        self.ec = node

    def _with(self, **kw: object) -> E:
        return E(dataclasses.replace(self.ec, **kw))  # type: ignore[arg-type]

    def _window(self, **kw: object) -> E:
        return self._with(window=dataclasses.replace(self.ec.window, **kw))

    # windows
    def before_index(self) -> E:
        return self._window(hi=-1)

    def after_index(self) -> E:
        return self._window(lo=1)

    def on_or_before_index(self) -> E:
        return self._window(hi=0)

    def on_or_after_index(self) -> E:
        return self._window(lo=0)

    def within(self, a: int, b: int, side: Literal["before", "after"]) -> E:
        return self._window(lo=-b, hi=-a) if side == "before" else self._window(lo=a, hi=b)

    def within_days(self, n: int, side: Literal["before", "after", "of"] = "of") -> E:
        if side == "of":
            return self._window(lo=-n, hi=n)
        return self.within(0, n, side)

    def between(self, start: str | dt.date, end: str | dt.date) -> E:
        return self._window(start=_date(start), end=_date(end))

    def before(self, d: str | dt.date) -> E:
        return self._window(end=_date(d) - dt.timedelta(days=1))

    def after(self, d: str | dt.date) -> E:
        return self._window(start=_date(d) + dt.timedelta(days=1))

    # counts
    def at_least(self, n: int) -> E:
        return self._with(count=ir.Count(">=", n))

    def at_most(self, n: int) -> E:
        return self._with(count=ir.Count("<=", n))

    def exactly(self, n: int) -> E:
        return self._with(count=ir.Count("=", n))

    def latest(self) -> E:
        return self._with(latest=True)

    # registers
    def where(self, f: F) -> E:
        ev = self.ec.event
        if not isinstance(ev, ir.RegisterEvent):
            raise TypeError("`where` filters a register's records: register('ndr').where(...)")
        return self._with(event=dataclasses.replace(ev, filter=f.node))


def _cond(c: C | ir.Cond) -> ir.Cond:
    return c.node if isinstance(c, C) else c


def diagnosis(*codes: str, main: bool = False) -> E:
    return E(ir.EventCond(ir.Diagnosis(_codes(codes), main)))


def procedure(*codes: str) -> E:
    return E(ir.EventCond(ir.Procedure(_codes(codes))))


def drug(*codes: str, sources: tuple[str, ...] | list[str] = ()) -> E:
    return E(ir.EventCond(ir.Drug(_codes(codes), tuple(sources))))


def death(*codes: str, mentioned: bool = False) -> E:
    """A death; with codes, its underlying cause, or (`mentioned`) any cause on the
    certificate, underlying or contributing."""
    return E(ir.EventCond(ir.Death(_codes(codes), mentioned)))


def register(name: str) -> E:
    return E(ir.EventCond(ir.RegisterEvent(name)))


def age(lo: int, hi: int) -> C:
    return C(ir.Age(lo, hi))


def sex(which: Literal["female", "male"]) -> C:
    return C(ir.Sex(which))


def region(*codes: str) -> C:
    return C(ir.RegionIn(tuple(codes)))


# ---- index and cohort ------------------------------------------------------------------------


class _Index:
    def __init__(
        self, which: Literal["first", "last", "each"], event: E, washout: int | None = None
    ) -> None:
        self.which = which
        self.event = event
        self.washout = washout

    def between(self, start: str | dt.date, end: str | dt.date) -> _Index:
        return _Index(self.which, self.event.between(start, end), self.washout)

    def before(self, d: str | dt.date) -> _Index:
        return _Index(self.which, self.event.before(d), self.washout)

    def after(self, d: str | dt.date) -> _Index:
        return _Index(self.which, self.event.after(d), self.washout)

    @property
    def node(self) -> ir.IndexEvent:
        return ir.IndexEvent(self.which, self.event.ec.event, self.event.ec.window, self.washout)


def first(event: E) -> _Index:
    return _Index("first", event)


def last(event: E) -> _Index:
    return _Index("last", event)


def each(event: E, washout: int) -> _Index:
    """`index each EVENT between D1 and D2, washout N days`: give the window with
    `.between(D1, D2)`."""
    return _Index("each", event, washout)


def at_date(d: str | dt.date) -> ir.IndexDate:
    return ir.IndexDate(_date(d))


class Cohort:
    """A cohort under construction; every method returns a new one."""

    def __init__(self, title: str | None = None, _ir: ir.Cohort | None = None) -> None:
        self._ir = _ir
        self._title = title
        self._steps: tuple[ir.Step, ...] = _ir.steps if _ir else ()
        self._reports: tuple[ir.Report, ...] = _ir.reports if _ir else ()
        self._index: ir.IndexEvent | ir.IndexDate | None = _ir.index if _ir else None

    def _copy(self, **kw: object) -> Cohort:
        c = Cohort(self._title)
        c._steps, c._reports, c._index = self._steps, self._reports, self._index
        for k, v in kw.items():
            setattr(c, "_" + k, v)
        return c

    def index(self, index: _Index | ir.IndexDate | str | dt.date) -> Cohort:
        if isinstance(index, str | dt.date):
            index = at_date(index)
        return self._copy(index=index.node if isinstance(index, _Index) else index)

    def include(self, cond: C, label: str | None = None) -> Cohort:
        return self._copy(steps=(*self._steps, ir.Step("include", _cond(cond), label)))

    def exclude(self, cond: C, label: str | None = None) -> Cohort:
        return self._copy(steps=(*self._steps, ir.Step("exclude", _cond(cond), label)))

    def report(self, *dims: str | int, rollup: bool = False) -> Cohort:
        """`report("region", "sex", ("age", 10))` or `report("region", "age 10")`; each
        call adds a table (`report by`), `rollup=True` its roll-up levels."""
        out: list[ir.Dimension] = []
        for d in dims:
            if isinstance(d, tuple):
                out.append(ir.AgeBand(int(d[1])))
            elif isinstance(d, str) and d.startswith("age"):
                out.append(ir.AgeBand(int(d.split()[1]) if " " in d else 10))
            else:
                out.append(ir.Dim(d))  # type: ignore[arg-type]
        return self._copy(reports=(*self._reports, ir.Report(tuple(out), rollup)))

    @property
    def ir(self) -> ir.Cohort:
        if self._index is None:
            raise ValueError("a cohort needs an index: .index(first(diagnosis('E11*')))")
        return ir.Cohort(self._index, self._steps, self._reports, self._title)
