"""The typed IR: the single meaning of a cohort.

The cohort language, the Python builder and the JSON form all produce these
frozen dataclasses; the checker, the compiler and the reference evaluator all
consume them. `pos` fields (line, column in the source) never take part in
equality, JSON or the hash.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from antal.catalog.vocabulary import AGE_BAND, DimensionName, SexName
from antal.engine import limits
from antal.engine.dispatch import Dispatch
from antal.engine.errors import InternalError, IRInvalid

__all__ = [
    "Age",
    "AgeBand",
    "AllOf",
    "AnyOf",
    "Cmp",
    "CodePattern",
    "Cohort",
    "Cond",
    "Count",
    "Death",
    "Diagnosis",
    "Dim",
    "Drug",
    "Event",
    "EventCond",
    "FAnd",
    "FIn",
    "FNot",
    "FOr",
    "Filter",
    "IndexDate",
    "IndexEvent",
    "Node",
    "Not",
    "Pos",
    "Procedure",
    "RegionIn",
    "RegisterEvent",
    "Report",
    "Sex",
    "Step",
    "Value",
    "Window",
    "canonical",
    "category_runs",
    "contribution",
    "expand_category_range",
    "from_json",
    "ir_hash",
    "to_json",
    "validate",
]

Value = str | int | float | dt.date


@dataclass(frozen=True)
class Pos:
    line: int
    column: int


def _pos() -> Any:
    return field(default=None, compare=False, hash=False, repr=False)


class Node:
    """Base of every IR node; subclasses are frozen dataclasses with a `kind` tag."""

    kind: ClassVar[str]
    pos: Pos | None


_NODES: dict[str, type[Node]] = {}
_N = TypeVar("_N", bound=Node)


def _node(cls: type[_N]) -> type[_N]:
    _NODES[cls.kind] = cls
    return cls


# --- codes ---------------------------------------------------------------------------


@_node
@dataclass(frozen=True, order=True)
class CodePattern(Node):
    """One code (`E119`) or a prefix (`E11*`). Ranges are expanded to prefixes."""

    kind: ClassVar[str] = "code"
    code: str
    prefix: bool = False
    pos: Pos | None = _pos()

    def matches(self, code: str) -> bool:
        return code.startswith(self.code) if self.prefix else code == self.code

    def __str__(self) -> str:
        return self.code + ("*" if self.prefix else "")


# --- windows ---------------------------------------------------------------------------


@_node
@dataclass(frozen=True)
class Window(Node):
    """Inclusive bounds on an event date d: `lo <= d - index <= hi` (days) and
    `start <= d <= end` (calendar). None means unbounded."""

    kind: ClassVar[str] = "window"
    lo: int | None = None
    hi: int | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    pos: Pos | None = _pos()

    @property
    def relative(self) -> bool:
        return self.lo is not None or self.hi is not None

    @property
    def empty(self) -> bool:
        return not self.relative and self.start is None and self.end is None


# --- register filters ----------------------------------------------------------------

CmpOp = Literal["=", "!=", "<", "<=", ">", ">="]


@_node
@dataclass(frozen=True)
class Cmp(Node):
    kind: ClassVar[str] = "cmp"
    var: str
    op: CmpOp
    value: Value
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class FIn(Node):
    kind: ClassVar[str] = "in"
    var: str
    values: tuple[Value, ...]
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class FAnd(Node):
    kind: ClassVar[str] = "fand"
    items: tuple[Filter, ...]
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class FOr(Node):
    kind: ClassVar[str] = "for"
    items: tuple[Filter, ...]
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class FNot(Node):
    kind: ClassVar[str] = "fnot"
    item: Filter
    pos: Pos | None = _pos()


Filter = Cmp | FIn | FAnd | FOr | FNot


_FILTER_VARS: Dispatch[Any] = Dispatch("filter_vars", Filter)


@_FILTER_VARS.on(Cmp, FIn)
def _leaf_vars(g: Cmp | FIn) -> list[str]:
    return [g.var]


@_FILTER_VARS.on(FAnd, FOr)
def _items_vars(g: FAnd | FOr) -> list[str]:
    return [v for i in g.items for v in _FILTER_VARS.of(i)(i)]


@_FILTER_VARS.on(FNot)
def _not_vars(g: FNot) -> list[str]:
    return _FILTER_VARS.of(g.item)(g.item)


def filter_vars(f: Filter) -> list[str]:
    """The variables a filter reads, in order of first use."""
    return list(dict.fromkeys(_FILTER_VARS.of(f)(f)))


# --- events ----------------------------------------------------------------------------


@_node
@dataclass(frozen=True)
class Diagnosis(Node):
    kind: ClassVar[str] = "diagnosis"
    codes: tuple[CodePattern, ...]
    main: bool = False
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class Procedure(Node):
    kind: ClassVar[str] = "procedure"
    codes: tuple[CodePattern, ...]
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class Drug(Node):
    """A drug event; `sources` empty means every register that provides drugs."""

    kind: ClassVar[str] = "drug"
    codes: tuple[CodePattern, ...]
    sources: tuple[str, ...] = ()
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class Death(Node):
    """A death; `codes` empty means any cause. Its codes are the underlying cause's, or,
    `mentioned`, any cause on the certificate (underlying or contributing)."""

    kind: ClassVar[str] = "death"
    codes: tuple[CodePattern, ...] = ()
    mentioned: bool = False
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class RegisterEvent(Node):
    """A record of any register with a person key and a date, optionally filtered."""

    kind: ClassVar[str] = "register"
    register: str
    filter: Filter | None = None
    pos: Pos | None = _pos()


Event = Diagnosis | Procedure | Drug | Death | RegisterEvent


# --- conditions --------------------------------------------------------------------------


@_node
@dataclass(frozen=True)
class Count(Node):
    """`at least N` (>=), `at most N` (<=), `exactly N` (=) distinct event dates."""

    kind: ClassVar[str] = "count"
    op: Literal[">=", "<=", "="]
    n: int
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class EventCond(Node):
    kind: ClassVar[str] = "event_cond"
    event: Event
    window: Window = Window()
    count: Count | None = None
    latest: bool = False
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class Age(Node):
    kind: ClassVar[str] = "age"
    lo: int
    hi: int
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class Sex(Node):
    kind: ClassVar[str] = "sex"
    sex: SexName
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class RegionIn(Node):
    kind: ClassVar[str] = "region"
    codes: tuple[str, ...]
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class AllOf(Node):
    kind: ClassVar[str] = "and"
    items: tuple[Cond, ...]
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class AnyOf(Node):
    kind: ClassVar[str] = "or"
    items: tuple[Cond, ...]
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class Not(Node):
    kind: ClassVar[str] = "not"
    item: Cond
    pos: Pos | None = _pos()


Cond = EventCond | Age | Sex | RegionIn | AllOf | AnyOf | Not


# --- cohort --------------------------------------------------------------------------------


@_node
@dataclass(frozen=True)
class IndexEvent(Node):
    """`index first|last EVENT [WINDOW]`: one index date per person. `index each EVENT
    between D1 and D2, washout N days`: every date in the window with a matching event and
    none in the N days before it (looked up before D1 too) is an index date of its own, an
    episode; the cohort's unit is then the episode (person, index date)."""

    kind: ClassVar[str] = "index_event"
    which: Literal["first", "last", "each"]
    event: Event
    window: Window = Window()
    washout: int | None = None  # days; `each` only
    pos: Pos | None = _pos()

    @property
    def episodes(self) -> bool:
        return self.which == "each"


def contribution(index: IndexEvent | IndexDate) -> int:
    """K: the most units one person can add to a cohort with this index, known from the
    cohort alone. 1 for a person index; for `index each`, the episodes of one person are
    more than `washout` days apart, so a window of W days (D2 - D1) holds at most
    floor(W / (washout + 1)) + 1 of them. The privacy layer scales its noise by K."""
    if not isinstance(index, IndexEvent) or not index.episodes:
        return 1
    w = index.window
    if w.start is None or w.end is None or index.washout is None or index.washout < 0:
        raise InternalError("`index each` needs a window with both ends and a washout")
    return (w.end - w.start).days // (index.washout + 1) + 1


@_node
@dataclass(frozen=True)
class IndexDate(Node):
    kind: ClassVar[str] = "index_date"
    date: dt.date
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class Step(Node):
    kind: ClassVar[str] = "step"
    action: Literal["include", "exclude"]
    cond: Cond
    label: str | None = None
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class Dim(Node):
    kind: ClassVar[str] = "dim"
    name: DimensionName
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class AgeBand(Node):
    kind: ClassVar[str] = "age_band"
    width: int
    pos: Pos | None = _pos()


Dimension = Dim | AgeBand


def dimension_key(d: Dimension) -> str:
    """The vocabulary's key of a `report by` dimension: its name, or `age` for a band."""
    if isinstance(d, AgeBand):
        return AGE_BAND
    if isinstance(d, Dim):
        return d.name
    raise InternalError(f"not a dimension: {type(d).__name__}")


@_node
@dataclass(frozen=True)
class Report(Node):
    """One `report by` statement: a table of the final cohort by its dimensions; with
    `rollup`, the table's hierarchical dimension is released at its ancestor levels too."""

    kind: ClassVar[str] = "report"
    dims: tuple[Dimension, ...]
    rollup: bool = False
    pos: Pos | None = _pos()


@_node
@dataclass(frozen=True)
class Cohort(Node):
    """A cohort. Its JSON form writes a single plain `report by` as `"report": [dims...]`
    (the form before several tables existed, so that such a cohort keeps its hash) and
    several, or a roll-up, as `"reports": [...]`; both forms are read."""

    kind: ClassVar[str] = "cohort"
    index: IndexEvent | IndexDate
    steps: tuple[Step, ...] = ()
    reports: tuple[Report, ...] = ()
    title: str | None = None
    pos: Pos | None = _pos()

    @property
    def report(self) -> tuple[Dimension, ...]:
        """The dimensions of the first `report by` (the only one, in most cohorts)."""
        return self.reports[0].dims if self.reports else ()


# --- JSON form, canonical form and hash -----------------------------------------------------


def _enc(v: Any) -> Any:
    if isinstance(v, Node):
        out: dict[str, Any] = {"kind": v.kind}
        for f in dataclasses.fields(v):  # type: ignore[arg-type]
            if f.name == "pos":
                continue
            x = getattr(v, f.name)
            if x is None or x == () or x is False:
                continue
            if isinstance(v, Cohort) and f.name == "reports" and len(x) == 1 and not x[0].rollup:
                out["report"] = _enc(x[0].dims)  # the one-table form (see Cohort)
                continue
            out[f.name] = _enc(x)
        return out
    if isinstance(v, tuple):
        return [_enc(x) for x in v]
    if isinstance(v, dt.date):
        return {"date": v.isoformat()}
    return v


def to_json(node: Node) -> dict[str, Any]:
    """The JSON form of an IR node (positions are not part of it)."""
    return _enc(node)


def _check_type(value: Any, hint: Any, where: str) -> None:
    """Is a decoded value of the field's declared type? (the JSON form comes from users)"""
    origin = typing.get_origin(hint)
    if hint is Any:
        return
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in typing.get_args(hint):
            try:
                _check_type(value, alt, where)
                return
            except IRInvalid as e:
                errors.append(str(e))
        raise IRInvalid(f"{where}: {_show_type(value)} is not {_hint_name(hint)}")
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise IRInvalid(f"{where}: {value!r} is not one of {list(typing.get_args(hint))}")
        return
    if origin is tuple:
        if not isinstance(value, tuple):
            raise IRInvalid(f"{where}: expected a list, got {_show_type(value)}")
        (item, _ellipsis) = typing.get_args(hint)
        for i, x in enumerate(value):
            _check_type(x, item, f"{where}[{i}]")
        return
    if hint is type(None):
        if value is not None:
            raise IRInvalid(f"{where}: expected nothing, got {_show_type(value)}")
        return
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(hint, type):
        ok = isinstance(value, hint) and not (hint is not bool and isinstance(value, bool))
    else:
        ok = True
    if not ok:
        raise IRInvalid(f"{where}: {_show_type(value)} is not {_hint_name(hint)}")


def _show_type(v: Any) -> str:
    if isinstance(v, Node):
        return f"a {v.kind!r} node"
    return "nothing" if v is None else f"a {type(v).__name__}"


def _hint_name(hint: Any) -> str:
    names = []
    for alt in typing.get_args(hint) or (hint,):
        kind = getattr(alt, "kind", None)
        names.append(repr(kind) if isinstance(kind, str) else getattr(alt, "__name__", str(alt)))
    return " or ".join(names)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dec(v: Any, where: str = "$") -> Any:
    if isinstance(v, dict):
        if set(v) == {"date"}:
            try:
                return dt.date.fromisoformat(str(v["date"]))
            except ValueError:
                raise IRInvalid(f"{where}: {v['date']!r} is not a date (YYYY-MM-DD)") from None
        kind = v.get("kind")
        cls = _NODES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise IRInvalid(f"{where}: unknown IR node kind {kind!r}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "pos"}  # type: ignore[arg-type]
        if cls is Cohort and "report" in v:  # the one-table form (see Cohort)
            if "reports" in v:
                raise IRInvalid(f"{where}: give `report` or `reports`, not both")
            v = {**{k: x for k, x in v.items() if k != "report"},
                 "reports": [{"kind": "report", "dims": v["report"]}] if v["report"] else []}  # fmt: skip
        extra = set(v) - set(fields) - {"kind"}
        if extra:
            raise IRInvalid(f"{where}: unknown field(s) {sorted(extra)} for {kind!r}")
        hints = _hints(cls)
        args = {}
        for name, f in fields.items():
            if name not in v:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise IRInvalid(f"{where}.{name}: required for {kind!r}")
                continue
            value = _dec(v[name], f"{where}.{name}")
            _check_type(value, hints[name], f"{where}.{name}")
            args[name] = value
        return cls(**args)
    if isinstance(v, list):
        return tuple(_dec(x, f"{where}[{i}]") for i, x in enumerate(v))
    return v


def _measure_json(data: Any) -> None:
    """Refuse a JSON document that is too big or too deep before decoding it: an explicit
    stack, so neither a million codes nor a thousand levels of nesting cost more than the
    first few thousand values, and nothing recurses."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    values = 0
    while stack:
        v, depth = stack.pop()
        values += 1
        if values > 4 * limits.MAX_IR_NODES:
            raise IRInvalid(f"the IR is too large: at most {limits.MAX_IR_NODES} nodes")
        if depth > limits.MAX_IR_JSON_DEPTH:
            raise IRInvalid(
                f"the IR is nested too deeply: at most {limits.MAX_DEPTH} levels of conditions"
            )
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            if len(v) > 4 * limits.MAX_IR_NODES:  # refused before a million items are walked
                raise IRInvalid(f"the IR is too large: at most {limits.MAX_IR_NODES} nodes")
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, str) and len(v) > limits.MAX_STRING_CHARS:
            raise IRInvalid(
                f"a string of the IR is longer than {limits.MAX_STRING_CHARS} characters"
            )
        elif isinstance(v, float) and not math.isfinite(v):
            raise IRInvalid("numbers of the IR are finite (no NaN or Infinity)")
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > limits.NUMBER_ABS_MAX:
            raise IRInvalid(f"a number of the IR is larger than {limits.NUMBER_ABS_MAX:g}")


def from_json(data: dict[str, Any]) -> Node:
    """An IR node from its JSON form; IRInvalid (with the path) for anything malformed,
    too large, too deep or out of the documented bounds (antal.engine.limits)."""
    _measure_json(data)
    node = _dec(data)
    if not isinstance(node, Node):
        raise IRInvalid("not an IR node")
    problems = validate(node)
    if problems:
        raise IRInvalid("; ".join(msg for _node, msg in problems[:10]))
    return node


# --- bounds -----------------------------------------------------------------------------------

_EACH_FORM = "`index each EVENT between D1 and D2, washout N days`"

# a code as it may reach SQL (fullmatch: `$` would accept "E11\n"); the compiler checks again
SAFE_CODE = re.compile(f"[A-Z0-9]{{1,{limits.MAX_CODE_CHARS}}}")
_CATEGORY = re.compile(r"[A-Z][0-9]{2}")


def category_runs(
    codes: tuple[CodePattern, ...],
) -> tuple[list[tuple[str, str]], list[CodePattern]]:
    """Split code patterns into runs of consecutive three-character category prefixes
    (`I20*, I21*, ..., I25*` → ("I20", "I25"); a run stays within one letter) and the
    other patterns. A range like A00..Z99 is one run per letter, however it was written."""
    cats = sorted({c.code for c in codes if c.prefix and _CATEGORY.fullmatch(c.code)})
    others = [c for c in codes if not (c.prefix and _CATEGORY.fullmatch(c.code))]
    runs: list[tuple[str, str]] = []
    for c in cats:
        if runs:
            lo, hi = runs[-1]
            if hi[0] == c[0] and int(c[1:]) == int(hi[1:]) + 1:
                runs[-1] = (lo, c)
                continue
        runs.append((c, c))
    return runs, others


def _number_ok(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return True  # not a number: the type checks say what is wrong
    return math.isfinite(v) and abs(v) <= limits.NUMBER_ABS_MAX


def _date_ok(d: Any) -> bool:
    return not isinstance(d, dt.date) or limits.DATE_MIN <= d <= limits.DATE_MAX


def validate(root: Node) -> list[tuple[Node, str]]:
    """Every documented bound (antal.engine.limits) an IR breaks, as (node, message), in
    the order found. Walks with an explicit stack: a hostile IR (from JSON or the builder)
    may be nested far deeper than Python's recursion limit."""
    problems: list[tuple[Node, str]] = []
    nodes = 0
    stack: list[tuple[Node, int]] = [(root, 0)]
    dates = f"between {limits.DATE_MIN} and {limits.DATE_MAX}"
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > limits.MAX_IR_NODES:
            problems.append((root, f"the cohort is too large: at most {limits.MAX_IR_NODES} nodes"))
            break
        if depth > limits.MAX_DEPTH:
            problems.append(
                (node, f"conditions are nested too deeply: at most {limits.MAX_DEPTH} levels")
            )
            break

        def bad(msg: str, n: Node = node) -> None:
            problems.append((n, msg))

        nested = depth + 1 if isinstance(node, AllOf | AnyOf | Not | FAnd | FOr | FNot) else depth
        if isinstance(node, CodePattern):
            if not isinstance(node.code, str) or not SAFE_CODE.fullmatch(node.code):
                bad(f"{node.code!r} is not a code (upper-case letters and digits only)")
        elif isinstance(node, Window):
            for b in (node.lo, node.hi):
                if b is not None and abs(b) > limits.WINDOW_DAYS_MAX:
                    bad(f"a window reaches at most {limits.WINDOW_DAYS_MAX} days from the index")
            if node.lo is not None and node.hi is not None and node.lo > node.hi:
                bad(f"window {node.lo}..{node.hi} days is empty")
            for d in (node.start, node.end):
                if not _date_ok(d):
                    bad(f"dates lie {dates}")
            if node.start is not None and node.end is not None and node.start > node.end:
                bad(f"a window from {node.start} to {node.end} is empty")
        elif isinstance(node, Cmp | FIn):
            values = (node.value,) if isinstance(node, Cmp) else node.values
            if len(values) > limits.MAX_VALUES_PER_LIST:
                bad(f"at most {limits.MAX_VALUES_PER_LIST} values in one list")
            for v in values:
                if not _number_ok(v):
                    bad(f"numbers are finite and at most {limits.NUMBER_ABS_MAX:g} in size")
                elif not _date_ok(v):
                    bad(f"dates lie {dates}")
                elif isinstance(v, str) and len(v) > limits.MAX_STRING_CHARS:
                    bad(f"a string is at most {limits.MAX_STRING_CHARS} characters")
        elif isinstance(node, Count):
            if not 0 <= node.n <= limits.COUNT_MAX:
                bad(f"a count lies between 0 and {limits.COUNT_MAX}")
        elif isinstance(node, Age):
            if not (0 <= node.lo <= limits.AGE_MAX and 0 <= node.hi <= limits.AGE_MAX):
                bad(f"ages lie between 0 and {limits.AGE_MAX}")
            elif node.lo > node.hi:
                bad(f"age {node.lo}..{node.hi} is empty")
        elif isinstance(node, AgeBand):
            if not 1 <= node.width <= limits.AGE_MAX:
                bad(f"an age band is between 1 and {limits.AGE_MAX} years wide")
        elif isinstance(node, RegionIn):
            if len(node.codes) > limits.MAX_VALUES_PER_LIST:
                bad(f"at most {limits.MAX_VALUES_PER_LIST} values in one list")
        elif isinstance(node, IndexDate):
            if not _date_ok(node.date):
                bad(f"dates lie {dates}")
        elif isinstance(node, IndexEvent):
            if node.episodes:
                w = node.window
                if w.relative or w.start is None or w.end is None:
                    bad(f"`index each` needs a window with both ends: {_EACH_FORM}")
                if node.washout is None:
                    bad(f"`index each` needs a washout: {_EACH_FORM}")
                elif not 0 <= node.washout <= limits.WINDOW_DAYS_MAX:
                    bad(f"a washout lies between 0 and {limits.WINDOW_DAYS_MAX} days")
            elif node.washout is not None:
                bad(f"a washout belongs to `index each`, not `index {node.which}`")
        elif isinstance(node, Cohort):
            if len(node.steps) > limits.MAX_CRITERIA:
                bad(f"a cohort has at most {limits.MAX_CRITERIA} include/exclude steps")
            if len(node.reports) > limits.MAX_REPORTS:
                bad(f"a cohort has at most {limits.MAX_REPORTS} `report by` statements")
        elif isinstance(node, Report):
            if not node.dims:
                bad("`report by` lists at least one dimension")
            if len(node.dims) > limits.MAX_REPORT_DIMS:
                bad(f"`report by` lists at most {limits.MAX_REPORT_DIMS} dimensions")
        if isinstance(node, Diagnosis | Procedure | Drug | Death):
            runs, others = category_runs(node.codes)
            if len(runs) + len(others) > limits.MAX_CODES_PER_SET:
                bad(
                    f"an event lists at most {limits.MAX_CODES_PER_SET} codes (a range counts once)"
                )
        for f in dataclasses.fields(node):  # type: ignore[arg-type]
            if f.name == "pos":
                continue
            x = getattr(node, f.name)
            if isinstance(x, str) and len(x) > limits.MAX_STRING_CHARS:
                bad(f"a name or label is at most {limits.MAX_STRING_CHARS} characters")
            elif isinstance(x, Node):
                stack.append((x, nested))
            elif isinstance(x, tuple):
                for i in reversed(x):
                    if isinstance(i, Node):
                        stack.append((i, nested))
                    elif (
                        isinstance(i, str)
                        and len(i) > limits.MAX_STRING_CHARS
                        and f.name != "values"
                    ):
                        bad(f"a name is at most {limits.MAX_STRING_CHARS} characters")
    return problems


_CANONICAL: Dispatch[Any] = Dispatch("canonical form", tuple(_NODES.values()))  # every node


def canonical(node: Any) -> Any:
    """The canonical form: code lists sorted and de-duplicated (a code already covered
    by a prefix in the list is dropped), source lists sorted, single-item and/or
    flattened. Two spellings of the same cohort have the same canonical form."""
    return _CANONICAL.of(node)(node) if isinstance(node, Node) else node


@_CANONICAL.on(Diagnosis, Procedure, Drug, Death)
def _canonical_event(node: Diagnosis | Procedure | Drug | Death) -> Node:
    changes: dict[str, Any] = {"codes": canonical_codes(node.codes)}
    if isinstance(node, Drug):
        changes["sources"] = tuple(sorted(set(node.sources)))
    return dataclasses.replace(node, **changes)


@_CANONICAL.on(AllOf, AnyOf, FAnd, FOr)
def _canonical_items(node: AllOf | AnyOf | FAnd | FOr) -> Node:
    items: list[Any] = []
    for i in node.items:
        c = canonical(i)
        items.extend(c.items if type(c) is type(node) else [c])  # flatten
    return items[0] if len(items) == 1 else dataclasses.replace(node, items=tuple(items))


@_CANONICAL.on(FIn)
def _canonical_in(node: FIn) -> Node:
    return dataclasses.replace(node, values=tuple(sorted(set(node.values), key=repr)))


@_CANONICAL.on(RegionIn)
def _canonical_region(node: RegionIn) -> Node:
    return dataclasses.replace(node, codes=tuple(sorted(set(node.codes))))


@_CANONICAL.on(CodePattern, Window, Cmp, FNot, RegisterEvent, Count, EventCond, Age, Sex, Not,
               IndexEvent, IndexDate, Step, Dim, AgeBand, Report, Cohort)  # fmt: skip
def _canonical_fields(node: Node) -> Node:
    """Nodes with nothing of their own to order: their child nodes in canonical form."""
    changes = {}
    for f in dataclasses.fields(node):  # type: ignore[arg-type]
        if f.name == "pos":
            continue
        x = getattr(node, f.name)
        if isinstance(x, Node):
            changes[f.name] = canonical(x)
        elif isinstance(x, tuple) and x and isinstance(x[0], Node):
            changes[f.name] = tuple(canonical(i) for i in x)
    return dataclasses.replace(node, **changes) if changes else node


def expand_category_range(lo: str, hi: str, pos: Pos | None = None) -> list[CodePattern]:
    """`I20..I25`: every three-character category from lo to hi (inclusive), as prefixes.
    Both bounds are a letter and two digits; an empty range gives no codes."""
    out = []
    for letter in range(ord(lo[0]), ord(hi[0]) + 1):
        first = int(lo[1:]) if letter == ord(lo[0]) else 0
        last = int(hi[1:]) if letter == ord(hi[0]) else 99
        out += [CodePattern(f"{chr(letter)}{n:02d}", True, pos) for n in range(first, last + 1)]
    return out


def canonical_codes(codes: tuple[CodePattern, ...]) -> tuple[CodePattern, ...]:
    prefixes = {c.code for c in codes if c.prefix}
    kept: list[CodePattern] = []
    for c in sorted(set(codes)):
        # covered by a shorter prefix (or an exact code by its own prefix)? Looking up each
        # leading part keeps this linear in the codes: thousands of categories are common
        end = len(c.code) if c.prefix else len(c.code) + 1
        if any(c.code[:k] in prefixes for k in range(1, end)):
            continue
        kept.append(CodePattern(c.code, c.prefix))
    return tuple(kept)


def ir_hash(cohort: Cohort) -> str:
    """A stable hash of the canonical IR. Title and step labels are names, not meaning:
    renaming them gives the same hash (and the same stored answer)."""
    c = canonical(cohort)
    steps = tuple(dataclasses.replace(s, label=None) for s in c.steps)
    c = dataclasses.replace(c, title=None, steps=steps)
    blob = json.dumps(to_json(c), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()
