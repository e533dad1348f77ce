"""`antal report FILE --data DIR --out report.html`: the feasibility report of a cohort, one
self-contained HTML page (antal.api.report). The count is released exactly as `antal count`
releases it (the same local project, budget and stored answers: a cohort counted before
costs nothing again), and with `--forecast-months` its forecast is computed from its
released monthly series, as the report route does (`usecases.report_count`), and with
`--target` and `--sites` (the options of `antal plan`) its enrolment plan from the released
site table, at no further charge: a report shows no number the installation did not
release, or did not compute from released numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
from antal.api.cli.plan import (
    SITES_HELP,
    TARGET_HELP,
    ByOpt,
    CaptureOpt,
    ConsentOpt,
    ScreenFailOpt,
    SiteStartOpt,
    StartOpt,
    plan_options,
)

__all__ = ["report_cmd"]


def report_cmd(
    file: Annotated[Path, typer.Argument(help="A .cohort file.")],
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write the report (an .html file).")
    ],
    data: DataOpt = None,
    config: ConfigOpt = None,
    forecast_months: Annotated[
        int | None,
        typer.Option(
            help="Also release the monthly series and forecast this many months ahead "
            "(as `antal forecast`: one more release, charged unless asked before)."
        ),
    ] = None,
    target: Annotated[
        int | None, typer.Option(help=f"{TARGET_HELP} With --sites: an enrolment plan.")
    ] = None,
    sites: Annotated[str | None, typer.Option(help=f"{SITES_HELP} With --target.")] = None,
    start: StartOpt = None,
    site_start: SiteStartOpt = None,
    capture: CaptureOpt = None,
    consent: ConsentOpt = None,
    screen_fail: ScreenFailOpt = None,
    by: ByOpt = None,
    purpose: PurposeOpt = None,
    store: StoreOpt = None,
    project: ProjectOpt = "local",
    budget: BudgetOpt = None,
) -> None:
    """Write the feasibility report of a cohort: released through the privacy layer, as `antal count`."""
    from antal.api import usecases as uc
    from antal.api.report import DATE_INDEX_NOTE, render_report
    from antal.engine import ir

    s = settings(data, config, store=store)
    with failing():
        inst = uc.open_installation(s)
        cat = uc.catalog_for(s, inst)
    text, v = checked(file, cat, inst)
    assert v.checked is not None
    date_index = isinstance(v.checked.index, ir.IndexDate)
    if forecast_months is not None and date_index:
        fail(f"{file} has a date index: {DATE_INDEX_NOTE}; it has no forecast")
    if out_path.is_dir() or not out_path.parent.is_dir():
        fail(f"cannot write {out_path}: give a file in an existing directory")
    plan = None
    if target is not None and sites is not None:
        plan = plan_options(
            cat, target, sites, start, site_start, capture, consent, screen_fail, by
        )
    elif (
        target is not None
        or sites is not None
        or any(x is not None for x in (start, site_start, capture, consent, screen_fail, by))
    ):
        fail("an enrolment plan in the report needs both --target and --sites")
    with failing():
        uc.check_data(inst, cat, set(v.registers), before_count=True)
    with failing(project), local_release(s, inst, cat, project, purpose, budget) as (gate, be):
        # the route's path: every number drawn is released and stored
        reported = uc.report_count(v.checked, inst, cat, gate, project, "cli", be,
                                   forecast_months=forecast_months, plan=plan)  # fmt: skip
    if reported.no_forecast:
        out.print(f"no forecast: {reported.no_forecast}")
    if reported.no_plan:
        out.print(f"no enrolment plan: {reported.no_plan}")
    counted = reported.counted
    html = render_report(
        counted, cohort_text=text, title=v.checked.title or file.name, project=project,
        forecast=reported.forecast,
        no_forecast=reported.no_forecast or (DATE_INDEX_NOTE if date_index else
                                             "none was asked for (--forecast-months N)"),
        plan=reported.plan, no_plan=reported.no_plan,
    )  # fmt: skip
    try:
        out_path.write_text(html, encoding="utf-8")
    except OSError as e:
        fail(f"cannot write {out_path}: {e.strerror or e}")
    a = counted.answer
    cost = "stored answer, nothing charged" if a.stored else f"ε charged {a.epsilon_charged:g}"
    out.print(
        f"wrote {out_path} ({len(html.encode()) // 1024} KiB): {a.count.shown()} persons; "
        f"{cost}; budget left ε {a.budget_left:g} (project {project})"
    )
