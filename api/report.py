"""The feasibility report: one self-contained HTML page a sponsor can send on.

    html = render_report(counted, cohort_text=text, title="...", project="t2d")

From a released answer (a `usecases.Counted`, or the JSON of one: the API's count answer, a
client result's `raw`) it shows the question, the cohort's text, the attrition as a funnel
chart and a table, each breakdown as a chart and a table with names, the recruitment
forecast (when given one: `antal.privacy.forecast`'s `to_json()`; when not, why not), the
enrolment plan (when one was asked: `antal.api.planning`'s `Planned`), the data's currency
and the cohort's warnings, the privacy parameters and the receipt.

The page says that every number on it was released: `antal report` and the report route
draw only what `usecases.report_count` gives, the stored answer, the forecast computed
from its released monthly series and the plan computed from its released site table, never
a number sent with the request.

Why SVG made here rather than Vega's JavaScript in the page: the charts are Vega-Lite
specifications (Altair) rendered to SVG by vl-convert when the report is made, so the page
has no script at all. It then shows the same in a mail client's preview, a document
system or a browser with scripts off, prints to PDF as it looks, weighs tens of kilobytes
instead of the megabyte of Vega's libraries inlined in every copy, and can forbid scripts
and every network request in its own Content-Security-Policy (`default-src 'none'`), so
that even a label that escaped escaping could not run or fetch anything.

Every user text (title, cohort, labels, names) is escaped by the template engine (Jinja2
with autoescape); the charts carry user text as data, which Vega's SVG renderer escapes.
Nothing here reads data: every number is already released.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from antal.api import charts
from antal.api.answerview import (
    forecast_view,
    number,
    privacy_of,
    signature_of,
    steps_of,
    tables_of,
)
from antal.privacy.noise import describe_noise

if TYPE_CHECKING:
    from antal.api.planning import Planned

__all__ = ["DATE_INDEX_NOTE", "NO_FORECAST_NOTE", "ReportError", "render_report"]

# why a report has no forecast, in the common cases
DATE_INDEX_NOTE = (
    "the cohort's index is a date, so it asks who is in the cohort on that day (a prevalence "
    "question), not how many become eligible month by month"
)
NO_FORECAST_NOTE = "none was asked for with this report"


_NOT_SHOWN = ("default_budget", "max_cells", "noise", "rho", "delta")


class ReportError(ValueError):
    """A report cannot be made from what was given (e.g. a forecast of another shape)."""


@cache
def _env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("antal.api", "templates"),
        autoescape=True,
        # an answer's JSON grows and older ones lack newer fields: a missing field is empty
        undefined=jinja2.Undefined,
    )


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "unknown"


def _svg(chart: Any) -> Markup:
    # vl-convert's own SVG: Vega's renderer escapes the text it draws
    return Markup(charts.svg(chart))


def _params(answer: Mapping[str, Any]) -> list[tuple[str, str]]:
    p = privacy_of(answer)
    rows: list[tuple[str, str]] = []
    if p.get("noise", "laplace") != "laplace":
        rows.append(("noise", describe_noise(p)))
    elif "epsilon" in p:
        rows.append(
            ("ε per release (attrition; each breakdown the same again)", f"{p['epsilon']:g}")
        )
    if "threshold" in p:
        rows.append(("counts below this are shown as <T", number(p["threshold"])))
    if p.get("rounding") not in (None, 0, 1):
        rows.append(("counts rounded to a multiple of", number(p["rounding"])))
    if isinstance(p.get("alpha"), int | float):
        rows.append(("intervals", f"{100 * (1 - p['alpha']):g}% (of the noise)"))
    # the installation's settings for new projects and tables say nothing about this answer
    for k in sorted(set(p) - {"epsilon", "threshold", "rounding", "alpha", *_NOT_SHOWN}):
        rows.append((k.replace("_", " "), str(p[k])))
    if "epsilon_charged" in answer:
        charged = float(answer["epsilon_charged"])
        rows.append(("ε charged for this answer",
                     "0 (a stored answer: asked before)" if answer.get("stored_answer")
                     else f"{charged:g}"))  # fmt: skip
    if "budget_left" in answer:
        rows.append(("project's budget left (ε)", f"{float(answer['budget_left']):g}"))
    return rows


def _plan(planned: Planned) -> dict[str, Any]:
    """The plan as the report shows it, from its JSON (the figures `antal plan --json`, the
    plan route and the workbench give): every figure a string, each date or "not within
    100 years" (`planning.NO_DATE`, the command line's words)."""
    from antal.api.planning import NO_DATE

    j = planned.to_json()
    tt, f = j["time_to_target"], j["fractions"]
    (lo, hi), (lo_day, hi_day) = tt["interval90_months"], tt["interval90"]

    def rate(x: float) -> str:
        return f"{x:.1f}"

    return {
        "target": number(j["target"]), "start": j["start"], "sites_n": len(j["sites"]),
        "median": tt["median"] or NO_DATE, "median_months": rate(tt["median_months"]),
        "low": lo_day or NO_DATE, "high": hi_day or NO_DATE,
        "low_months": rate(lo), "high_months": rate(hi),
        "by": j["by"], "p_by": None if j["p_by"] is None else f"{100 * j['p_by']:.0f}%",
        "window": f"{j['window'][0]} to {j['window'][1]}",
        "exposure": rate(j["exposure_months"]),
        "capture": f"{f['capture']:g}", "consent": f"{f['consent']:g}",
        "screen_fail": f"{f['screen_fail']:g}", "enrolled": f"{100 * f['enrolled']:.1f}%",
        "sites": [
            {"code": sp["site"], "name": sp["name"] or "",
             "released": sp["display"] if sp["released"] is None else number(sp["released"]),
             "eligible": rate(sp["eligible_per_month"]),
             "eligible90": "–".join(rate(x) for x in sp["eligible_per_month90"]),
             "enrolled": f"{sp['enrolled_per_month']:.2f}", "start": sp["start"]}
            for sp in j["sites"]
        ],
        "months": [
            {"month": m["month"], "from": m["from"], "expected": rate(m["expected"]),
             "cumulative": number(round(m["cumulative"])),
             "interval": "–".join(number(x) for x in m["cumulative90"]),
             "reached": f"{100 * m['p_reached']:.0f}%"}
            for m in j["months"]
        ],
        "notes": j["notes"],
        "draws": number(j["simulation"]["draws"]),
    }  # fmt: skip


def render_report(
    answer: Any,
    *,
    cohort_text: str | None,
    title: str | None = None,
    project: str | None = None,
    cohort_json: Mapping[str, Any] | None = None,
    forecast: Mapping[str, Any] | None = None,
    no_forecast: str = NO_FORECAST_NOTE,
    plan: Planned | None = None,
    no_plan: str | None = None,
    generated: dt.datetime | None = None,
) -> str:
    """The report as one HTML page (a string, UTF-8 when written).

    `answer` is a `usecases.Counted` or the JSON of a released count. `cohort_text` is the
    cohort as the user wrote it (None when it was given as JSON IR: pass `cohort_json`).
    `forecast` is a forecast's JSON, computed from released values (`Reported.forecast`);
    without one, `no_forecast` says why there is none. `plan` is the enrolment plan computed
    from the answer's released site table (`Reported.plan`); `no_plan` says why a plan
    that was asked for could not be made (no plan and no reason: none was asked for, and
    the page has no plan section).
    `ReportError` when `forecast` is not a forecast's JSON."""
    a: Mapping[str, Any] = answer.to_json() if hasattr(answer, "to_json") else answer
    fc = None
    if forecast is not None:
        try:
            fc = forecast_view(forecast)
        except ValueError as e:
            raise ReportError(f"not a forecast: {e}") from None
    steps = steps_of(a)
    p = privacy_of(a)
    threshold = number(p["threshold"]) if "threshold" in p else "the threshold"
    tables = tables_of(a)
    receipt = a.get("receipt") or {}
    currency = a.get("data_currency")
    when = (generated or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    import altair as alt

    bars = [{"table": t, "svg": _svg(c) if (c := charts.breakdown_chart(t)) else None}
            for t in tables]  # fmt: skip
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            title=title or "Feasibility report",
            version=_version("antal"),
            generated=when.strftime("%Y-%m-%d %H:%M UTC"),
            project=project,
            release=receipt.get("data_release") or (currency or {}).get("release"),
            final=steps[-1].count if steps else None,
            threshold=threshold,
            # what the counts count (`index each`: episodes) and how often one person may
            unit=a.get("unit") or "persons",
            contribution=a.get("contribution") or 1,
            cohort_text=cohort_text,
            cohort_json=json.dumps(cohort_json or {}, indent=2, ensure_ascii=False),
            query_hash=receipt.get("query_hash"),
            steps=steps,
            funnel_svg=_svg(charts.funnel_chart(a)),
            tables=bars,
            forecast=fc,
            forecast_svg=_svg(charts.forecast_chart(fc)) if fc else "",
            no_forecast=no_forecast,
            plan=_plan(plan) if plan is not None else None,
            plan_svg=_svg(charts.plan_chart(plan.plan)) if plan is not None else "",
            no_plan=no_plan,
            warnings=a.get("warnings") or [],
            currency=currency,
            privacy=_params(a),
            signature=signature_of(a),
            receipt_json=json.dumps(receipt, indent=2, ensure_ascii=False, sort_keys=True),
            num=number,
            pct=lambda x: f"{100 * float(x):.0f}%",
            font=charts.FONT,
            altair_version=alt.__version__,
            vegalite_version=alt.SCHEMA_VERSION.lstrip("v"),
            vlconvert_version=_version("vl-convert-python"),
        )
    )
