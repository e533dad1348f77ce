"""A released answer as the report and the charts read it: from its JSON (the API's
`count` answer, `Counted.to_json()`, a client result's `raw`), whichever form it has.

Readers, not a schema: the answer's JSON grows (names of codes, several breakdown tables,
signed receipts) and an older stored answer keeps its older form, so every reader here
accepts each form antal has given and ignores fields it does not know:

- a released count: `{"count": 1240, "interval": [lo, hi]}` or `{"count": "<10"}` (before
  issue 11), or `{"count": 1240 | null, "suppressed", "lower", "upper", "display"}`;
- breakdowns: one table (`dims` and `breakdown`, a list of cells), or several
  (`tables`/`breakdowns`: each with `dims` and `cells`); a cell holds each dimension's
  code and, when the catalog names it, `<dim>_name`;
- a forecast (`antal.privacy.forecast`'s `to_json()`): `forecast`, a list of months with
  `mean`, `interval50` and `interval90`, and `backtest` with its `months` and coverage.

Everything here is already released: nothing is computed from data.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from antal.engine.limits import MAX_REPORT_MONTHS

__all__ = [
    "Cell",
    "ForecastView",
    "Shown",
    "Step",
    "Table",
    "forecast_view",
    "number",
    "privacy_of",
    "released",
    "signature_of",
    "site_mark_words",
    "steps_of",
    "tables_of",
]


def number(n: int | float | None) -> str:
    """1240 -> '1 240' (Swedish thousands, as the command line prints them)."""
    if n is None:
        return ""
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.1f}".replace(",", " ")
    return f"{int(n):,}".replace(",", " ")


@dataclass(frozen=True)
class Shown:
    """One released count: its value and 95% interval, or suppressed (`display` "<10")."""

    value: int | None
    low: int | None
    high: int | None
    display: str

    @property
    def suppressed(self) -> bool:
        return self.value is None

    @property
    def interval(self) -> str:
        return (
            ""
            if self.low is None or self.high is None
            else f"{number(self.low)}–{number(self.high)}"
        )


def _int(x: Any) -> int | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def released(d: Mapping[str, Any]) -> Shown:
    """A released count from any of its JSON forms (see the module docstring)."""
    c = d.get("count")
    if isinstance(c, Mapping):  # a count nested as its own object
        return released(c)
    if isinstance(c, str) or d.get("suppressed") is True or (c is None and "display" in d):
        shown = d.get("display") if isinstance(d.get("display"), str) else c
        return Shown(None, None, None, str(shown if shown is not None else "suppressed"))
    value = _int(c)
    iv = d.get("interval")
    low, high = (
        (_int(iv[0]), _int(iv[1]))
        if isinstance(iv, Sequence) and not isinstance(iv, str) and len(iv) == 2
        else (_int(d.get("lower")), _int(d.get("upper")))
    )
    return Shown(value, low, high, number(value) if value is not None else "")


@dataclass(frozen=True)
class Step:
    index: int
    label: str
    count: Shown


def steps_of(answer: Mapping[str, Any]) -> list[Step]:
    """The attrition, step by step (step 0 is the index event)."""
    return [
        Step(i, str(s.get("label", f"step {i}")), released(s))
        for i, s in enumerate(answer.get("attrition") or [])
    ]


@dataclass(frozen=True)
class Cell:
    codes: tuple[Any, ...]  # each dimension's code (None: unknown)
    names: tuple[str | None, ...]  # each dimension's name, when the answer gives one
    count: Shown
    marks: tuple[str, ...] = ()  # a site's: why not to read it as exact or as ranked

    @property
    def label(self) -> str:
        """e.g. '18 Örebro län · female'."""
        parts = []
        for code, name in zip(self.codes, self.names, strict=True):
            text = "unknown" if code is None else str(code)
            if name and name != text:
                text = f"{text} {name}"
            parts.append(text)
        return " · ".join(parts)


@dataclass(frozen=True)
class Table:
    dims: tuple[str, ...]
    cells: tuple[Cell, ...]
    note: str | None = None

    @property
    def named(self) -> tuple[bool, ...]:
        """Per dimension: does any cell carry a name for it (a name column in the table)."""
        return tuple(any(c.names[i] for c in self.cells) for i in range(len(self.dims)))

    @property
    def title(self) -> str:
        return "by " + ", ".join(self.dims)

    @property
    def marked(self) -> bool:
        """A table of sites with a mark on any of them (a column for the marks)."""
        return any(c.marks for c in self.cells)


def site_mark_words(row: Mapping[str, Any], threshold: Any) -> tuple[str, ...]:
    """The words for a site's marks (antal.privacy.sites), the one place they are written:
    the command line, the report and the workbench's strings say the same."""
    from antal.api.web.strings import STRINGS

    out = []
    if row.get("near_threshold"):
        out.append(STRINGS["mark_threshold"][0].format(threshold=threshold))
    if row.get("rank_uncertain"):
        out.append(STRINGS["mark_rank"][0])
    return tuple(out)


def _cell(dims: Sequence[str], c: Mapping[str, Any], threshold: Any) -> Cell:
    names = tuple((str(c[f"{d}_name"]) if c.get(f"{d}_name") is not None else None) for d in dims)
    return Cell(tuple(c.get(d) for d in dims), names, released(c), site_mark_words(c, threshold))


def tables_of(answer: Mapping[str, Any]) -> list[Table]:
    """Every breakdown table of the answer (none without `report by`)."""
    threshold = privacy_of(answer).get("threshold", 10)
    many = answer.get("tables") or answer.get("breakdowns")
    if isinstance(many, list):
        out = []
        for t in many:
            if not isinstance(t, Mapping):
                continue
            dims = [str(d) for d in t.get("dims") or []]
            cells = t.get("cells", t.get("breakdown")) or []
            out.append(Table(tuple(dims), tuple(_cell(dims, c, threshold) for c in cells),
                             t.get("note")))  # fmt: skip
        return out
    dims = [str(d) for d in answer.get("dims") or []]
    if not dims:
        return []
    cells = tuple(_cell(dims, c, threshold) for c in answer.get("breakdown") or [])
    return [Table(tuple(dims), cells, answer.get("breakdown_note"))]


def privacy_of(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The privacy parameters the answer was released under."""
    receipt = answer.get("receipt") or {}
    p = answer.get("privacy") or receipt.get("privacy") or receipt.get("params") or {}
    return dict(p) if isinstance(p, Mapping) else {}


def signature_of(answer: Mapping[str, Any]) -> str | None:
    """The receipt's signature, when the installation signs receipts."""
    receipt = answer.get("receipt") or {}
    sig = receipt.get("signature") if isinstance(receipt, Mapping) else None
    sig = sig or answer.get("signature")
    if isinstance(sig, Mapping):  # e.g. {"algorithm": "ed25519", "value": "..."}
        sig = sig.get("value") or sig.get("signature")
    return str(sig) if sig else None


# ---- forecast ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastMonth:
    month: dt.date
    mean: float
    low50: float | None
    high50: float | None
    low90: float | None
    high90: float | None
    released: int | None = None  # back-test months: the value released for that month
    suppressed: bool = False
    inside90: bool | None = None


@dataclass(frozen=True)
class ForecastView:
    model: str | None
    months: tuple[ForecastMonth, ...]
    backtest: tuple[ForecastMonth, ...]
    coverage90: float | None
    coverage50: float | None
    note: str | None  # why there is no back-test, when there is none
    history: str | None  # e.g. "2015-01 to 2024-12, 120 months"


def _month(x: Any) -> dt.date:
    if isinstance(x, dt.date):
        return x
    return dt.date.fromisoformat(str(x)[:10] if len(str(x)) > 7 else f"{x}-01")


def _float(x: Any) -> float | None:
    """A finite number, or None (a forecast's JSON may come from a request)."""
    if x is None or isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _pair(x: Any) -> tuple[float | None, float | None]:
    if isinstance(x, Sequence) and not isinstance(x, str) and len(x) == 2:
        return _float(x[0]), _float(x[1])
    return None, None


def _fmonth(m: Any) -> ForecastMonth:
    if not isinstance(m, Mapping):
        raise ValueError("a month is an object")
    mean = _float(m.get("mean"))
    if mean is None:
        raise ValueError("`mean` is a finite number")
    lo50, hi50 = _pair(m.get("interval50"))
    lo90, hi90 = _pair(m.get("interval90"))
    rel = m.get("released")
    inside = m.get("inside90")
    return ForecastMonth(
        _month(m["month"]), mean, lo50, hi50, lo90, hi90,
        released=_int(rel.get("count") if isinstance(rel, Mapping) else rel),
        suppressed=m.get("suppressed") is True,
        inside90=inside if isinstance(inside, bool) else None,
    )  # fmt: skip


def _text(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def forecast_view(fc: Mapping[str, Any]) -> ForecastView:
    """A forecast's JSON read for the report; ValueError (saying what is wrong) when it is
    not one."""
    months = fc.get("forecast")
    if not isinstance(months, list) or not months:
        raise ValueError("a forecast has `forecast`: a list of months with `month` and `mean`")
    bt = fc.get("backtest")
    bt = bt if isinstance(bt, Mapping) else {}
    back_months = bt.get("months") if isinstance(bt.get("months"), list) else []
    if len(months) + len(back_months) > MAX_REPORT_MONTHS:
        raise ValueError(f"a report shows at most {MAX_REPORT_MONTHS} months of a forecast")
    try:
        ahead = tuple(_fmonth(m) for m in months)
        back = tuple(_fmonth(m) for m in back_months)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ValueError(
            "each month of a forecast has `month` (YYYY-MM-DD), `mean`, `interval50` and "
            f"`interval90` ({e})"
        ) from None
    h = fc.get("history")
    history = (
        f"{str(h.get('first'))[:7]} to {str(h.get('last'))[:7]}, {_int(h.get('months'))} months"
        if isinstance(h, Mapping) and h.get("first") and h.get("last")
        else None
    )
    return ForecastView(
        _text(fc.get("model")), ahead, back, _float(bt.get("coverage90")),
        _float(bt.get("coverage50")), _text(fc.get("backtest_note")), history,
    )  # fmt: skip
