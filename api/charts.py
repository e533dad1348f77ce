"""The charts of a released answer, as Altair (Vega-Lite) charts: the attrition funnel, a bar
chart per breakdown table, the recruitment forecast, the enrolment plan. The feasibility
report renders them to SVG (`svg`); a notebook shows them as they are (`plot`).

User text (step labels, codes, names) goes into the charts' *data*, never into a field
name or a Vega expression: a label is shown, never interpreted. Each chart's fields are
this module's own names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from antal.api.answerview import ForecastView, Table, steps_of, tables_of

if TYPE_CHECKING:
    import altair as alt

    from antal.privacy.plan import Plan

__all__ = [
    "BAR_CELLS",
    "FONT",
    "breakdown_chart",
    "forecast_chart",
    "funnel_chart",
    "plan_chart",
    "plot",
    "svg",
]

BAR_CELLS = 40  # a breakdown's chart shows at most this many cells (the table shows all)
WIDTH = 520
FONT = "DejaVu Sans, Verdana, sans-serif"
_BLUE, _GREY, _ORANGE = "#3366aa", "#777777", "#dd7722"


def _alt() -> Any:
    import altair as alt  # imported when a chart is drawn: the engine and server start without it

    return alt


def _bars(rows: list[dict[str, Any]], title: str, y_title: str) -> alt.LayerChart:
    """Horizontal bars in the rows' order: `label`, `value` (None: suppressed), `low`,
    `high`, `shown` (the text at the bar's end) and `order`."""
    alt = _alt()
    height = max(60, 22 * len(rows))
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("label:N", sort=alt.EncodingSortField("order"), title=y_title,
                axis=alt.Axis(labelLimit=340)),
    )  # fmt: skip
    tip = [alt.Tooltip("label:N", title="step"), alt.Tooltip("shown:N", title="released"),
           alt.Tooltip("interval:N", title="95% interval")]  # fmt: skip
    bars = base.mark_bar(color=_BLUE).encode(
        x=alt.X("value:Q", title="persons (released, with 95% interval)",
                axis=alt.Axis(format=",d", tickCount=6, labelOverlap=True, labelFlush=True)),
        tooltip=tip,
    )  # fmt: skip
    errors = base.mark_rule(color="black", strokeWidth=1.5).encode(x="low:Q", x2="high:Q")
    caps = base.mark_tick(color="black", thickness=1.5, size=10)
    text = base.mark_text(align="left", dx=4, color="#222222").encode(
        x=alt.X("end:Q"), text="shown:N"
    )
    chart = alt.layer(bars, errors, caps.encode(x="low:Q"), caps.encode(x="high:Q"), text)
    return chart.properties(width=WIDTH, height=height, title=title)


def funnel_chart(answer: Mapping[str, Any]) -> alt.LayerChart:
    """The attrition as a funnel: one bar per step, top to bottom, with its 95% interval as
    an error bar; a suppressed step has no bar, only its text (e.g. "<10")."""
    rows = []
    for s in steps_of(answer):
        c = s.count
        rows.append({
            "order": s.index, "label": f"{s.index}. {s.label}", "value": c.value,
            "low": c.low, "high": c.high, "shown": c.display, "interval": c.interval,
            "end": c.high if c.high is not None else (c.value or 0),
        })  # fmt: skip
    return _bars(rows, "Attrition: persons left after each step", "")


def breakdown_chart(table: Table) -> alt.LayerChart | None:
    """A breakdown table as bars, one per released cell in the table's order: at most
    `BAR_CELLS`, the largest, when there are more. Cells below the threshold have no bar
    (the report's table lists every cell); None when every cell is below it."""
    shown = [(i, c) for i, c in enumerate(table.cells) if not c.count.suppressed]
    if not shown:
        return None
    title = f"Final cohort {table.title}"
    if len(shown) > BAR_CELLS:
        shown = sorted(sorted(shown, key=lambda ic: -(ic[1].count.value or 0))[:BAR_CELLS])
    if len(shown) < len(table.cells):
        title += f" ({len(shown)} of {len(table.cells)} cells; the others in the table)"
    rows = [
        {"order": i, "label": c.label, "value": c.count.value, "low": c.count.low,
         "high": c.count.high, "shown": c.count.display, "interval": c.count.interval,
         "end": c.count.high if c.count.high is not None else (c.count.value or 0)}
        for i, c in shown
    ]  # fmt: skip
    return _bars(rows, title, "")


def forecast_chart(fc: ForecastView) -> alt.LayerChart:
    """The forecast: expected newly eligible persons per month with 50% and 90% prediction
    intervals (bands), and the back-test's months: predicted bands and the released values."""
    alt = _alt()
    rows = []
    for kind, months in (("back-test", fc.backtest), ("forecast", fc.months)):
        for m in months:
            rows.append({
                "month": m.month.isoformat(), "kind": kind, "mean": round(m.mean, 1),
                "low50": m.low50, "high50": m.high50, "low90": m.low90, "high90": m.high90,
                "released": m.released,
            })  # fmt: skip
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("month:T", title="month", axis=alt.Axis(format="%Y-%m"))
    )
    color = alt.Color(
        "kind:N", title="",
        scale=alt.Scale(domain=["back-test", "forecast"], range=[_GREY, _ORANGE]),
    )  # fmt: skip
    band90 = base.mark_area(opacity=0.2).encode(
        y=alt.Y("low90:Q", title="persons newly eligible per month"), y2="high90:Q", color=color
    )
    band50 = base.mark_area(opacity=0.35).encode(y="low50:Q", y2="high50:Q", color=color)
    mean = base.mark_line(point=True).encode(
        y="mean:Q", color=color,
        tooltip=[alt.Tooltip("month:T", format="%Y-%m"), "mean:Q", "low90:Q", "high90:Q"],
    )  # fmt: skip
    layers = [band90, band50, mean]
    if any(r["released"] is not None for r in rows):
        layers.append(
            base.transform_filter("isValid(datum.released)")
            .mark_point(shape="diamond", filled=True, color="black", size=50)
            .encode(y="released:Q", tooltip=[alt.Tooltip("month:T", format="%Y-%m"),
                                              alt.Tooltip("released:Q", title="released")])
        )  # fmt: skip
    return alt.layer(*layers).properties(
        width=WIDTH, height=240, title="Persons newly eligible per month"
    )


def plan_chart(plan: Plan) -> alt.LayerChart:
    """The enrolment plan: the expected cumulative enrolment of all sites at each month's
    end (line) with its 90% interval (band), the target (dashed), and the time to reach it:
    its median (rule) and 90% interval (grey band), where they have a date."""
    from antal.privacy.plan import calendar_month

    alt = _alt()
    rows = [{"date": plan.start.isoformat(), "cumulative": 0.0, "low": 0, "high": 0}]
    for m in plan.months:
        lo, hi = m["cumulative90"]
        rows.append({"date": calendar_month(plan.start, m["month"]).isoformat(),
                     "cumulative": m["cumulative"], "low": lo, "high": hi})  # fmt: skip
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("date:T", title="month", axis=alt.Axis(format="%Y-%m"))
    )
    band = base.mark_area(opacity=0.25, color=_ORANGE).encode(
        y=alt.Y("low:Q", title="persons enrolled (cumulative)"), y2="high:Q"
    )
    line = base.mark_line(color=_ORANGE).encode(
        y="cumulative:Q",
        tooltip=[alt.Tooltip("date:T", format="%Y-%m-%d"),
                 alt.Tooltip("cumulative:Q", format=".0f", title="expected"),
                 alt.Tooltip("low:Q", title="90% low"), alt.Tooltip("high:Q", title="90% high")],
    )  # fmt: skip
    target = (
        alt.Chart(alt.Data(values=[{"target": plan.target}]))
        .mark_rule(color="black", strokeDash=[4, 4])
        .encode(y="target:Q")
    )
    layers: list[Any] = [band, line, target]
    # the time to the target where the months shown reach it (else only the text gives it)
    last = rows[-1]["date"]
    lo, hi = (plan.date_of(t) for t in plan.time90)
    median = plan.date_of(plan.time_median)
    if lo is not None and hi is not None and hi.isoformat() <= last:
        span = [{"from": lo.isoformat(), "to": hi.isoformat()}]
        layers.insert(0, alt.Chart(alt.Data(values=span)).mark_rect(color=_GREY, opacity=0.15)
                      .encode(x="from:T", x2="to:T"))  # fmt: skip
    if median is not None and median.isoformat() <= last:
        layers.append(
            alt.Chart(alt.Data(values=[{"median": median.isoformat()}]))
            .mark_rule(color=_GREY, strokeWidth=2)
            .encode(x="median:T")
        )
    return alt.layer(*layers).properties(
        width=WIDTH, height=240, title=f"Expected enrolment to {plan.target} (all sites)"
    )


def plot(answer: Mapping[str, Any]) -> alt.VConcatChart:
    """The funnel and every breakdown of an answer, one under another (for a notebook)."""
    alt = _alt()
    bars = [breakdown_chart(tb) for tb in tables_of(answer)]
    charts = [funnel_chart(answer), *(b for b in bars if b is not None)]
    return alt.vconcat(*charts).resolve_scale(x="independent")


def svg(chart: alt.TopLevelMixin) -> str:
    """The chart as an SVG document, rendered here by vl-convert (Vega's own renderer in an
    embedded engine): no browser and no network (it may load nothing: every chart carries
    its data). Numbers in Swedish form (1 240)."""
    import vl_convert as vlc

    # vl-convert sizes the axes by measuring text in the first of these fonts it finds: the
    # viewer's browser must draw it in a font no wider (DejaVu Sans, or Verdana of the same
    # metrics), or long labels are cut at the chart's edge
    return vlc.vegalite_to_svg(
        chart.to_dict(), config={"font": FONT}, allowed_base_urls=[], format_locale="sv-SE"
    )
