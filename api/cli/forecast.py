"""`antal forecast FILE --months 18 [--by hospital]`: how many persons become eligible per
month, released as one query (`report by month`, and by month and group), and a forecast
of the coming months with prediction intervals that include the noise (post-processing:
nothing is charged beyond the series). The same local project as `antal count`."""

from __future__ import annotations

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
    from antal.api import usecases as uc

__all__ = ["forecast_cmd"]


def forecast_cmd(
    file: Annotated[Path, typer.Argument(help="A .cohort file with an index event.")],
    months: Annotated[int, typer.Option(help="How many months ahead to forecast.")] = 18,
    by: Annotated[
        str | None,
        typer.Option(help="Also per hospital, region (län) or sjukvardsregion."),
    ] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    purpose: PurposeOpt = None,
    store: StoreOpt = None,
    project: ProjectOpt = "local",
    budget: BudgetOpt = None,
) -> None:
    """Recruitment rate and forecast: newly eligible persons per month, and the months ahead."""
    from antal.api import usecases as uc

    if by is not None and by not in uc.FORECAST_BY:
        fail(f"--by is one of {', '.join(uc.FORECAST_BY)}, not {by!r}")
    s = settings(data, config, store=store)
    with failing():
        inst = uc.open_installation(s)
        cat = uc.catalog_for(s, inst)
    _text, v = checked(file, cat, inst, warn=not as_json)
    assert v.checked is not None
    title = v.checked.title or file.name
    with failing(project):
        uc.monthly_cohort(v.checked, cat, inst, by)  # its refusals, before anything is read
        uc.check_data(inst, cat, set(v.registers), before_count=True)
        with local_release(s, inst, cat, project, purpose, budget) as (gate, backend):
            res = uc.forecast_count(v.checked, inst, cat, gate, project, "cli", backend,
                                    months=months, by=by)  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(res.to_json(), ensure_ascii=False, default=str) + "\n")
        return
    _print(res, title, months)


def _print(res: uc.Forecasted, title: str, months: int) -> None:
    from antal.api import usecases as uc
    from antal.privacy.forecast import Forecast

    if res.quantity.get("note"):
        out.print(f"the series counts {res.quantity['note']}")
    for n in res.notes:
        out.print(f"note: {n}")
    total = res.forecasts[uc.TOTAL]
    if isinstance(total, Forecast):
        t = Table("month", "expected", "50% interval", "90% interval",
                  title=f"{title}: newly eligible {res.quantity.get('unit', 'persons')} per "
                        f"month, the next {months} months")  # fmt: skip
        for m in total.months:
            t.add_row(m.month.isoformat()[:7], f"{m.mean:.1f}", f"{m.low50}–{m.high50}",
                      f"{m.low90}–{m.high90}")  # fmt: skip
        out.print(t)
        out.print(f"trend: ×{total.fit.trend_per_year:.2f} a year")
        bt = total.backtest
        cov = bt.coverage(90) if bt else None
        if bt is not None and cov is not None:
            errors = (
                f"; the releases were {bt.bias:+.0%} off the forecast on average (bias), "
                f"{bt.mae:.0%} apart month by month (mean absolute error)"
                if bt.bias is not None and bt.mae is not None
                else ""
            )
            out.print(
                f"back-test (refit without the last 12 months, then predicted): {cov:.0%} of "
                f"the released months fell inside the 90% interval{errors}"
            )
    else:
        out.print(f"no forecast for the whole cohort: {total}")
    if res.by:
        g = Table(res.by, "per month (next months)", "90% interval per month", "back-test 90%",
                  title=f"By {res.by}")  # fmt: skip
        for key, f in res.forecasts.items():
            if key == uc.TOTAL:
                continue
            name = res.names.get(key) or ("unknown" if key == "None" else key)
            if isinstance(f, Forecast):
                n = len(f.months)
                mean = sum(m.mean for m in f.months) / n
                lo = sum(m.low90 for m in f.months) / n
                hi = sum(m.high90 for m in f.months) / n
                cov = f.backtest.coverage(90) if f.backtest else None
                g.add_row(f"{name} ({key})", f"{mean:.1f}", f"{lo:.0f}–{hi:.0f}",
                          "" if cov is None else f"{cov:.0%}")  # fmt: skip
            else:
                g.add_row(f"{name} ({key})", "", "", f"no forecast: {f}")
        out.print(g)
    a = res.counted.answer
    out.print(
        f"ε charged {a.epsilon_charged:g} for the monthly series (one release); the forecast "
        f"is computed from released values and costs nothing; budget left ε {a.budget_left:g}"
    )
