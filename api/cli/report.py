"""`antal report FILE --data DIR --out report.html`: the feasibility report of a cohort, one
self-contained HTML page (antal.api.report). The count is released exactly as `antal count`
releases it (the same local project, budget and stored answers: a cohort counted before
costs nothing again)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from antal.api.cli.common import (
    BudgetOpt,
    ProjectOpt,
    PurposeOpt,
    StoreOpt,
    checked,
    fail,
    failing,
    out,
    settings,
)
from antal.api.cli.count import ConfigOpt, DataOpt

__all__ = ["report_cmd"]


def _forecast(path: Path) -> dict[str, Any]:
    """A forecast's JSON from a file, checked before anything is charged."""
    from antal.api.answerview import forecast_view

    try:
        fc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        fail(f"cannot read the forecast {path}: {e.strerror or e}")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(f"{path} is not JSON: {e}")
    if not isinstance(fc, dict):
        fail(f"{path} is not a forecast: a JSON object with `forecast`, a list of months")
    try:
        forecast_view(fc)
    except ValueError as e:
        fail(f"{path} is not a forecast: {e}")
    return fc


def report_cmd(
    file: Annotated[Path, typer.Argument(help="A .cohort file.")],
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write the report (an .html file).")
    ],
    data: DataOpt = None,
    config: ConfigOpt = None,
    forecast: Annotated[
        Path | None,
        typer.Option(
            help="A recruitment forecast of this cohort (its JSON) to show in the report."
        ),
    ] = None,
    forecast_months: Annotated[
        int | None,
        typer.Option(
            help="Also release the monthly series and forecast this many months ahead "
            "(as `antal forecast`: one more release, charged unless asked before)."
        ),
    ] = None,
    purpose: PurposeOpt = None,
    store: StoreOpt = None,
    project: ProjectOpt = "local",
    budget: BudgetOpt = None,
) -> None:
    """Write the feasibility report of a cohort: released through the privacy layer, as `antal count`."""
    from antal.api import usecases as uc
    from antal.api.report import DATE_INDEX_NOTE, render_report
    from antal.engine import ir
    from antal.privacy import Gate

    s = settings(data, config, store=store)
    with failing():
        inst = uc.open_installation(s)
        cat = uc.catalog_for(s, inst)
    text, v = checked(file, cat, inst)
    assert v.checked is not None
    date_index = isinstance(v.checked.index, ir.IndexDate)
    fc = _forecast(forecast) if forecast is not None else None
    if fc is not None and forecast_months is not None:
        fail("give --forecast FILE or --forecast-months N, not both")
    if (fc is not None or forecast_months is not None) and date_index:
        fail(f"{file} has a date index: {DATE_INDEX_NOTE}; it has no forecast")
    if out_path.is_dir() or not out_path.parent.is_dir():
        fail(f"cannot write {out_path}: give a file in an existing directory")
    with failing():
        uc.check_data(inst, cat, set(v.registers), before_count=True)
    with failing(project):
        st = uc.open_store(s)
        uc.local_project(st, project, inst.privacy, purpose, budget)
        if forecast_months is not None:
            uc.monthly_cohort(v.checked, cat, inst, None)  # its refusals before any charge
        backend = uc.open_backend(s, inst, cat)
        try:
            gate = Gate(st, inst.privacy, uc.open_signer(s))
            counted = uc.count_released(v.checked, inst, cat, gate, project, "cli", backend)
            if forecast_months is not None:
                res = uc.forecast_count(v.checked, inst, cat, gate, project, "cli", backend,
                                        months=forecast_months)  # fmt: skip
                total = res.forecasts[uc.TOTAL]
                if isinstance(total, str):
                    out.print(f"no forecast: {total}")
                else:
                    fc = total.to_json()
        finally:
            backend.close()
    html = render_report(
        counted, cohort_text=text, title=v.checked.title or file.name, project=project,
        forecast=fc,
        no_forecast=DATE_INDEX_NOTE if date_index else
        "none was given (--forecast FILE: a forecast's JSON)",
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
