"""`antal plan COHORT --target N --sites S1,S2 ...`: an enrolment plan at the sites a sponsor
picks, from the cohort's released `report by hospital` table (docs/sponsor.md): expected
enrolment per site and month, the time to reach N with its 90% interval, and the chance of
reaching N by a date. The cohort is counted as `antal count` counts it (its stored answer
is free); the plan is post-processing and costs nothing more."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from antal.api.cli.common import (
    BudgetOpt,
    ConfigOpt,
    DataOpt,
    ProjectOpt,
    PurposeOpt,
    StoreOpt,
    checked,
    fail,
    failing,
    local_release,
    out,
    settings,
)

if TYPE_CHECKING:
    from antal.api.planning import Planned, PlanRequest
    from antal.catalog import Catalog

__all__ = [
    "SITES_HELP",
    "TARGET_HELP",
    "ByOpt",
    "CaptureOpt",
    "ConsentOpt",
    "ScreenFailOpt",
    "SiteStartOpt",
    "StartOpt",
    "plan_cmd",
    "plan_options",
]

TARGET_HELP = "How many persons to enrol."
SITES_HELP = "The sites, comma-separated: hospital names or codes."
# the plan's options after --target and --sites, the same in `antal plan` and `antal report`
StartOpt = Annotated[
    str | None, typer.Option(help="When the sites start (default: next month's first day).")
]
SiteStartOpt = Annotated[
    list[str] | None,
    typer.Option("--site-start", help="A site starting later: SITE=YYYY-MM-DD (repeat)."),
]
# None: not given (the plan's default; `antal report` refuses one without --target)
CaptureOpt = Annotated[
    float | None, typer.Option(help="Share of eligible persons screened (default 1).")
]
ConsentOpt = Annotated[
    float | None, typer.Option(help="Share of those screened who consent (default 1).")
]
ScreenFailOpt = Annotated[
    float | None,
    typer.Option(
        "--screen-fail", help="Share of those who consent who fail screening (default 0)."
    ),
]
ByOpt = Annotated[str | None, typer.Option(help="The chance of reaching the target by this date.")]


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        fail(f"{what} is a date YYYY-MM-DD, not {text!r}")


def _site_starts(values: list[str]) -> dict[str, dt.date]:
    starts: dict[str, dt.date] = {}
    for v in values:
        site, sep, day = v.rpartition("=")
        if not sep or not site.strip():
            fail(f"--site-start is SITE=YYYY-MM-DD, not {v!r}")
        starts[site.strip()] = _date(day, f"the start of {site.strip()!r}")
    return starts


def plan_options(
    cat: Catalog,
    target: int,
    sites: str,
    start: str | None,
    site_start: list[str] | None,
    capture: float | None,
    consent: float | None,
    screen_fail: float | None,
    by: str | None,
) -> PlanRequest:
    """The plan the options ask, checked (`antal plan` and `antal report --target ...`):
    a message and exit 2 for a bad date or site, a fraction out of range, ..."""
    from antal.api import planning
    from antal.privacy.plan import Fractions

    names = [s for s in (x.strip() for x in sites.split(",")) if s]
    first = _date(start, "--start") if start is not None else None
    until = _date(by, "--by") if by is not None else None
    d = Fractions()  # a fraction not given is the model's default
    with failing():
        return planning.plan_request(
            cat, target=target, sites=names, start=first, site_starts=_site_starts(site_start or []),
            capture=d.capture if capture is None else capture,
            consent=d.consent if consent is None else consent,
            screen_fail=d.screen_fail if screen_fail is None else screen_fail, by=until,
        )  # fmt: skip


def plan_cmd(
    file: Annotated[Path, typer.Argument(help="A .cohort file with `report by hospital`.")],
    target: Annotated[int, typer.Option(help=TARGET_HELP)],
    sites: Annotated[str, typer.Option(help=SITES_HELP)],
    start: StartOpt = None,
    site_start: SiteStartOpt = None,
    capture: CaptureOpt = None,
    consent: ConsentOpt = None,
    screen_fail: ScreenFailOpt = None,
    by: ByOpt = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    purpose: PurposeOpt = None,
    store: StoreOpt = None,
    project: ProjectOpt = "local",
    budget: BudgetOpt = None,
) -> None:
    """An enrolment plan: per site and month, the time to reach the target, its chance by a date."""
    from antal.api import planning
    from antal.api import usecases as uc

    s = settings(data, config, store=store)
    with failing():
        inst = uc.open_installation(s)
        cat = uc.catalog_for(s, inst)
    request = plan_options(cat, target, sites, start, site_start, capture, consent, screen_fail, by)
    _text, v = checked(file, cat, inst, warn=not as_json)
    assert v.checked is not None
    title = v.checked.title or file.name
    with failing(project):
        planning.check_cohort(v.checked, cat, inst)  # its refusals, before anything is read
        uc.check_data(inst, cat, set(v.registers), before_count=True)
        with local_release(s, inst, cat, project, purpose, budget) as (gate, backend):
            res = planning.plan_count(v.checked, inst, cat, gate, project, "cli", backend, request)
    if as_json:
        sys.stdout.write(json.dumps(res.to_json(), ensure_ascii=False, default=str) + "\n")
        return
    _print(res, title)


SHOWN_MONTHS = 36  # the command line's table; --json has every month


def _print(res: Planned, title: str) -> None:
    from antal.api.planning import when

    p = res.plan
    for n in res.to_json()["notes"]:
        out.print(f"note: {n}")
    f = p.fractions
    t = Table("site", "released (window)", "eligible a month (90%)", "enrolled a month", "starts",
              title=f"{title}: enrolment plan")  # fmt: skip
    for sp in p.sites:
        shown = f"<{sp.threshold}" if sp.released is None else str(sp.released)
        lo, hi = sp.eligible_per_month90
        t.add_row(f"{sp.name or sp.code} ({sp.code})", shown,
                  f"{sp.eligible_per_month:.1f} ({lo:.1f}–{hi:.1f})",
                  f"{sp.enrolled_per_month:.2f}", sp.start.isoformat())  # fmt: skip
    out.print(t)
    m = Table("month", "from", "expected", "cumulative", "90% interval", "P(target reached)",
              title="Expected enrolment per month (all sites)")  # fmt: skip
    shown = [r for r in p.months if r["month"] <= SHOWN_MONTHS]
    for row in shown:
        lo, hi = row["cumulative90"]
        m.add_row(str(row["month"]), row["from"], f"{row['expected']:.1f}",
                  f"{row['cumulative']:.0f}", f"{lo}–{hi}", f"{row['p_reached']:.0%}")  # fmt: skip
    out.print(m)
    if len(p.months) > len(shown):
        out.print(f"(the first {len(shown)} of {len(p.months)} months; all of them with --json)")
    lo, hi = p.time90
    out.print(
        f"{p.target} enrolled: median {when(p, p.time_median)} ({p.time_median:.1f} months "
        f"from {p.start}); 90% interval {when(p, lo)} to {when(p, hi)} "
        f"({lo:.1f}–{hi:.1f} months)"
    )
    if p.by is not None and p.p_by is not None:
        out.print(f"chance of {p.target} enrolled by {p.by}: {p.p_by:.0%}")
    out.print(
        f"from eligible persons a month over {res.window[0]} to {res.window[1]} "
        f"({p.exposure_months:.1f} months), enrolling {f.enrolled:.1%} of them (capture "
        f"{f.capture:g} × consent {f.consent:g} × (1 − screen failure {f.screen_fail:g})); the "
        "intervals include the site counts' privacy noise"
    )
    a = res.counted.answer
    out.print(
        f"ε charged {a.epsilon_charged:g} for the count (0: its stored answer); the plan is "
        f"computed from released values and costs nothing; budget left ε {a.budget_left:g}"
    )
