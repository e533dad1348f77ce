"""The enrolment plan's use case, for every face (`antal plan`, `POST /v1/projects/{pid}/plan`,
`Client.plan`): the cohort is counted through the count use case (its stored answer when
the project asked it before: free), and the plan is computed from the released
`report by hospital` table (antal.privacy.plan: post-processing, no ε beyond the count).

Everything a plan can refuse (a cohort without a hospital table or an index window, an
unknown site, a target or a fraction out of range, dates out of order) is refused before
the count, so a wrong input never costs ε."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from antal.api.usecases import Counted, DateIndexed, Invalid, count_released
from antal.catalog import Catalog, Installation
from antal.engine import Backend, currency_of, ir, parse
from antal.engine.check import event_sources
from antal.privacy.plan import (
    DAYS_PER_MONTH,
    MAX_TARGET,
    Fractions,
    Plan,
    PlanError,
    SiteCount,
    Total,
    schedule,
)
from antal.privacy.plan import plan as _plan

if TYPE_CHECKING:
    from antal.privacy import Gate

__all__ = [
    "NO_DATE",
    "PlanRequest",
    "Planned",
    "check_cohort",
    "plan_count",
    "plan_released",
    "plan_request",
    "resolve_sites",
    "when",
]

SITE = "hospital"


@dataclass(frozen=True)
class PlanRequest:
    """What a sponsor asks of a plan, checked: site codes, dates and fractions."""

    target: int
    sites: tuple[str, ...]  # hospital codes, in the order asked
    start: dt.date
    site_starts: Mapping[str, dt.date]
    fractions: Fractions
    by: dt.date | None = None


@dataclass(frozen=True)
class Planned:
    """A plan and the released answer it was computed from (one charge, or none)."""

    counted: Counted
    plan: Plan
    window: tuple[dt.date, dt.date]
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.plan.to_json(),
            "window": [self.window[0].isoformat(), self.window[1].isoformat()],
            "notes": [*self.plan.notes, *self.notes],
            "answer": self.counted.to_json(),
        }


NO_DATE = "not within 100 years"


def when(plan: Plan, months: float) -> str:
    """The date `months` after the plan's start, as the command line and the report show
    it (beyond 100 years there is no date to give)."""
    d = plan.date_of(months)
    return NO_DATE if d is None else d.isoformat()


def _first_of_next_month(today: dt.date) -> dt.date:
    return (today.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def resolve_sites(names: Sequence[str], catalog: Catalog) -> tuple[str, ...]:
    """Hospital codes of the sites as a sponsor types them: a code, a name (case and
    spacing ignored), or a part of one name that matches no other. Anything else is
    `Invalid`, naming the site and the nearest known sites."""
    sites = list(catalog.sites)
    by_code = {s.code.casefold(): s.code for s in sites}
    norm = {" ".join(s.name.split()).casefold(): s.code for s in sites}
    out: list[str] = []
    for raw in names:
        key = " ".join(str(raw).split()).casefold()
        if not key:
            raise Invalid("an empty site name")
        code = by_code.get(key) or norm.get(key)
        if code is None:
            part = sorted({c for n, c in norm.items() if key in n})
            if len(part) == 1:
                code = part[0]
            elif part:
                raise Invalid(
                    f"site {raw!r} names several hospitals: "
                    + "; ".join(f"{c} {catalog.site(c).name}" for c in part)  # type: ignore[union-attr]
                    + ". Give one of their codes or full names",
                    {"site": raw, "candidates": part},
                )
            else:
                near = difflib.get_close_matches(key, list(norm), n=5, cutoff=0.5)
                hint = (f" Nearest: {'; '.join(f'{norm[n]} {catalog.site(norm[n]).name}' for n in near)}."  # type: ignore[union-attr]
                        if near else "")  # fmt: skip
                raise Invalid(
                    f"site {raw!r} is not a hospital of the site table.{hint} The hospitals: "
                    + "; ".join(f"{s.code} {s.name}" for s in sites),
                    {"site": raw, "known": [s.code for s in sites]},
                )
        if code in out:
            raise Invalid(f"site {raw!r} is named twice", {"site": raw})
        out.append(code)
    return tuple(out)


def plan_request(
    catalog: Catalog,
    *,
    target: int,
    sites: Sequence[str],
    start: dt.date | None = None,
    site_starts: Mapping[str, dt.date] | None = None,
    capture: float = 1.0,
    consent: float = 1.0,
    screen_fail: float = 0.0,
    by: dt.date | None = None,
    today: dt.date | None = None,
) -> PlanRequest:
    """A plan's inputs checked against the catalog (`Invalid` with the reason): site names
    to codes, the target, the fractions, and dates in order. `start` defaults to the first
    day of next month."""
    if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target <= MAX_TARGET:
        # the model's range, checked here: a target it refuses would be refused after the count
        raise Invalid(
            f"the target is a whole number of persons from 1 to {MAX_TARGET}, not {target!r}"
        )
    if not sites:
        raise Invalid("name at least one site (--sites)")
    codes = resolve_sites(sites, catalog)
    begin = start or _first_of_next_month(today or dt.date.today())
    later: dict[str, dt.date] = {}
    names: dict[str, str] = {}
    for name, day in (site_starts or {}).items():
        (code,) = resolve_sites([name], catalog)
        later[code], names[code] = day, name
    try:
        # checked here, before anything is counted or charged (the model checks the same)
        schedule(codes, begin, later, by, names)
        fr = Fractions(capture, consent, screen_fail)
    except PlanError as e:
        raise Invalid(str(e)) from None
    return PlanRequest(target, codes, begin, later, fr, by)


def _where(node: Any) -> str:
    pos = getattr(node, "pos", None)
    return f"line {pos.line}, column {pos.column}: " if pos is not None else ""


def _site_report(cohort: ir.Cohort) -> ir.Report:
    """The cohort's `report by hospital` (with or without its roll-up), else `Invalid`."""
    for r in cohort.reports:
        if len(r.dims) == 1 and isinstance(r.dims[0], ir.Dim) and r.dims[0].name == SITE:
            return r
    asked = ", ".join(
        f"`report by {', '.join(getattr(d, 'name', d.kind) for d in r.dims)}`"
        + (f" (line {r.pos.line}, column {r.pos.column})" if r.pos else "")
        for r in cohort.reports
    )
    raise Invalid(
        "a plan needs the cohort's site table: add `report by hospital` (or `report by "
        "hospital with rollup`) to the cohort"
        + (f"; it asks {asked}" if asked else "; it asks no table"),
        {"reports": len(cohort.reports)},
    )


def _window(
    cohort: ir.Cohort, catalog: Catalog, installation: Installation
) -> tuple[tuple[dt.date, dt.date], list[str]]:
    """The index window the site table's counts accrued over, bounded by the data (public
    facts: the cohort, the catalog and the installation's statements), with notes."""
    idx = cohort.index
    if isinstance(idx, ir.IndexDate):
        raise DateIndexed(
            f"{_where(idx)}the cohort's index is a date ({idx.date.isoformat()}): it counts who "
            "is eligible on that day, a prevalence question, and says nothing of how many "
            "become eligible a month. A plan needs an event index with a window "
            "(`index first EVENT between DATE and DATE`)"
        )
    w = idx.window
    if w.start is None or w.end is None:
        raise Invalid(
            f"{_where(idx)}the plan turns each site's count into a rate over the index window, "
            "and this index has no window with both ends: add `between DATE and DATE` to it",
            {"line": idx.pos.line, "column": idx.pos.column} if idx.pos else None,
        )
    regs = {r.id for r, _ in event_sources(idx.event, catalog)}
    cur = currency_of(catalog, installation, regs)
    notes: list[str] = []
    start, end = w.start, w.end
    firsts = [c.start for c in cur.registers.values()]
    if firsts and max(firsts) > start:
        start = max(firsts)
        notes.append(f"the rate is over {start} to {end}: the data start {start}")
    throughs = [c.through for c in cur.registers.values() if c.through is not None]
    if throughs and min(throughs) < end:
        end = min(throughs)
        notes.append(f"the rate is over {start} to {end}: the data end {end}")
    completes = [c.complete_through for c in cur.registers.values()]
    if completes and all(c is not None for c in completes):
        final = min(c for c in completes if c is not None)
        if final < end:
            notes.append(
                f"the registers' records after {final} are not yet complete (reporting lag): "
                "the rates may be low; end the index window there for a sharper plan"
            )
    if end < start:
        raise Invalid(f"{_where(w)}the index window {w.start} to {w.end} holds no data")
    return (start, end), notes


def check_cohort(
    cohort: ir.Cohort, catalog: Catalog, installation: Installation
) -> tuple[tuple[dt.date, dt.date], list[str]]:
    """A plan's refusals of a cohort (no `report by hospital`, a date index, an index
    without a window), before anything is read or charged; its window and notes."""
    _site_report(cohort)
    return _window(cohort, catalog, installation)


def _table(counted: Counted) -> tuple[list[SiteCount], Total | None]:
    """The released hospital table's cells, with the noise variance of the release, and the
    released total of its hospitals: the cohort's final count (its own release, with its own
    noise: evidence the cells do not repeat), less the cell of index rows with no hospital."""
    from antal.privacy.noise import noise_kind

    a = counted.answer
    threshold, rounding = int(a.params["threshold"]), int(a.params.get("rounding", 1))
    kind = noise_kind(a.noise)
    variance = kind.variance(float(a.scales.get("breakdown", 0.0)))
    names = a.names.get(SITE, {})
    for t in a.tables or ():
        if t.dims == (SITE,) and t.level == 0:
            cells = [SiteCount(str(k[0]), names.get(k[0]), c.value, variance, threshold, rounding)
                     for k, c in t.cells if k[0] is not None]  # fmt: skip
            if a.count.value is None:
                return cells, None
            # the final count's noise: one bucket of the attrition's (a partition release)
            total_var = kind.variance(float(a.scales.get("attrition", 0.0)))
            none = [c for k, c in t.cells if k[0] is None]
            value = float(a.count.value)
            for c in none:  # rows without a hospital: a shown cell, or 0..T-1 when <T
                value -= c.value if c.value is not None else (threshold - 1) / 2
                total_var += variance if c.value is not None else threshold**2 / 12
            return cells, Total(max(value, 0.0), total_var)
    raise Invalid("the answer holds no hospital table")  # the cohort asked one: not reached


def plan_count(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog,
    gate: Gate,
    project_id: str,
    actor: str,
    backend: Backend,
    request: PlanRequest,
    *,
    approved_only: bool = False,
) -> Planned:
    """Count the cohort (its stored answer when the project asked it before) and plan the
    enrolment of `request` from its released site table. Refusals come before the count."""
    co = parse(cohort) if isinstance(cohort, str) else cohort
    window, notes = check_cohort(co, catalog, installation)
    counted = count_released(co, installation, catalog, gate, project_id, actor, backend,
                             approved_only=approved_only)  # fmt: skip
    return plan_released(counted, window, notes, request)


def plan_released(
    counted: Counted,
    window: tuple[dt.date, dt.date],
    notes: Sequence[str],
    request: PlanRequest,
) -> Planned:
    """The plan of `request` from a released answer of a cohort that `check_cohort` passed
    (its `window` and `notes`): post-processing of the answer's site table, nothing read or
    charged. `plan_count` and the report (`usecases.report_count`) plan through it."""
    start, end = window
    exposure = (end - start).days + 1
    try:
        cells, total = _table(counted)
        p = _plan(cells, exposure / DAYS_PER_MONTH, list(request.sites), request.target,
                  request.start, request.fractions, request.site_starts, request.by,
                  counted.answer.noise, total=total)  # fmt: skip
    except PlanError as e:
        raise Invalid(str(e)) from None
    said = list(notes)
    if counted.answer.count.value is None:
        said.append("the cohort is below the threshold: every site's rate is a guess")
    return Planned(counted, p, window, tuple(said))
