"""The feasibility report (antal.api.report): `antal report`, the route, and the page itself
in a real browser (Debian's chromium, driven by Playwright; never a downloaded browser).

The report computes nothing: every number in it must be the released answer's, and its
forecast the one computed from the released monthly series. The oracle is therefore the
released answer itself, read independently (`antal count --json` and `antal forecast --json`
on the same project return the stored answers; the route's JSON count and forecast of the
same cohort), and the page is checked where a sponsor sees it: rendered by Chromium from a
file:// URL, with every request recorded and anything but file:// and data: refused. A
request that carries a number to draw (a forecast made elsewhere) is refused (issue 22).
"""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import sync_playwright
from typer.testing import CliRunner

from antal.api.answerview import forecast_view, number, steps_of, tables_of
from antal.api.app import create_app
from antal.api.cli import app
from antal.api.report import DATE_INDEX_NOTE, ReportError, render_report
from antal.api.settings import Settings
from antal.engine.limits import MAX_REPORT_MONTHS
from antal.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it)
runner = CliRunner()

# user text that would be markup if pasted: the title, a step label and the cohort text
TITLE = '<script>alert("title")</script> & <b>bold</b>'
LABEL = "<img src=x onerror=alert(2)> 18-80"
HOSTILE = f"""cohort "{TITLE.replace('"', "'")}"
# a comment with </pre><script>alert(3)</script>
index first diagnosis I* between 2015-01-01 and 2023-12-31
include "{LABEL}": age 18..80
report by region, sex
"""
TITLE_SHOWN = TITLE.replace('"', "'")
DATE_INDEXED = "index 2024-01-01\ninclude diagnosis E11* within 3650 days before index\n"


def forecast_json(months: int = 6, backtest: int = 12) -> dict[str, Any]:
    """A forecast in the shape of antal.privacy.forecast's `to_json()` (hand-made numbers:
    what a caller could make up; the report route refuses it)."""

    def month(y: int, m: int, mean: float) -> dict[str, Any]:
        return {"month": f"{y}-{m:02d}-01", "mean": mean,
                "interval50": [int(mean) - 3, int(mean) + 3],
                "interval90": [int(mean) - 7, int(mean) + 7]}  # fmt: skip

    back = [
        {**month(2023, m, 20.0 + m), "released": 20 + m + (8 if m == 5 else 1),
         "suppressed": False, "inside90": m != 5, "inside50": m % 2 == 0}
        for m in range(1, backtest + 1)
    ]  # fmt: skip
    return {
        "model": "negative binomial GLM, log link, trend and month of year",
        "history": {"first": "2015-01-01", "last": "2023-12-01", "months": 108, "suppressed": []},
        "forecast": [month(2024, m, 30.0 + m / 2) for m in range(1, months + 1)],
        "backtest": {"model": "negative binomial GLM", "months": back, "compared": backtest,
                     "suppressed": 0, "coverage90": (backtest - 1) / backtest,
                     "coverage50": 0.5} if backtest else None,
        "backtest_note": None if backtest else "a back-test needs 24 months of history", "bootstrap": {"draws": 4000, "seed": 1}, "epsilon": 0,
    }  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("report") / "data"
    generate(30_000, 1, d)  # enough persons that a monthly series of I* is mostly shown
    return d


@pytest.fixture(scope="module")
def made(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`antal report` on a hostile cohort with its forecast, and the same answers as JSON."""
    root = tmp_path_factory.mktemp("made")
    cohort = root / "hostile.cohort"
    cohort.write_text(HOSTILE, encoding="utf-8")
    store, out = root / "store.sqlite", root / "report.html"
    common = ["--data", str(data), "--store", str(store), "--project", "p", "--budget", "5"]
    r = runner.invoke(
        app, ["report", str(cohort), "--out", str(out), "--forecast-months", "6", *common]
    )
    assert r.exit_code == 0, r.output
    assert "charged" in r.output and "stored answer" not in r.output, r.output
    # the oracles: the project's stored answers, asked again through `antal count --json`
    # and `antal forecast --json` (nothing charged: both were released for the report)
    c = runner.invoke(app, ["count", str(cohort), "--json", *common])
    assert c.exit_code == 0, c.output
    answer = json.loads(c.stdout.splitlines()[-1])
    assert answer["stored_answer"] is True and answer["epsilon_charged"] == 0
    f = runner.invoke(app, ["forecast", str(cohort), "--months", "6", "--json", *common])
    assert f.exit_code == 0, f.output
    forecast = json.loads(f.stdout)
    assert (
        forecast["answer"]["stored_answer"] is True and forecast["answer"]["epsilon_charged"] == 0
    )
    return {"html": out.read_text(encoding="utf-8"), "path": out, "answer": answer,
            "forecast": forecast["total"]["forecast"]}  # fmt: skip


# ---- the page's content ---------------------------------------------------------------------


class _Page(HTMLParser):
    """Every element and attribute of the page, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


def _cells(html: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert body, table_id
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    cells = [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
             for r in rows]  # fmt: skip
    return [c for c in cells if c]  # not the header


def test_the_report_shows_the_released_answer(made: dict[str, Any]) -> None:
    html, answer = made["html"], made["answer"]
    # the attrition table: every step's label, released count and interval, as released
    rows = _cells(html, "attrition-table")
    steps = answer["attrition"]
    assert len(rows) == len(steps) >= 2
    for i, (row, s) in enumerate(zip(rows, steps, strict=True)):
        label = parse(row[1]).text
        assert "".join(label) == s["label"]
        assert row[0] == str(i)
        shown = steps_of({"attrition": [s]})[0].count
        assert row[2] == shown.display and row[3] == shown.interval
        if not shown.suppressed:
            assert row[2].replace(" ", "") == str(shown.value)
    # the breakdown: one row per released cell, in the answer's order, with region names
    table = tables_of(answer)[0]
    assert table.dims == ("region", "sex")
    assert html.count('class="breakdown-table"') == 1
    # the privacy parameters and the receipt, as released
    assert answer["receipt"]["query_hash"] in html
    receipt = re.search(r'<pre id="receipt-json">(.*?)</pre>', html, re.S)
    assert receipt
    assert json.loads(parse(receipt.group(1)).text[0]) == answer["receipt"]
    privacy = {row[0]: row[1] for row in re.findall(
        r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", html)}  # fmt: skip
    assert privacy["ε per release (attrition; each breakdown the same again)"] == (
        f"{answer['receipt']['privacy']['epsilon']:g}"
    )
    # data currency: every register the answer names
    regs = [r[0] for r in _cells(html, "currency-table")]
    assert regs == [r["id"] for r in answer["data_currency"]["registers"]]
    # the forecast: the one computed from the released monthly series, every month
    fc = made["forecast"]
    frows = _cells(html, "forecast-table")
    assert len(frows) == len(fc["forecast"]) == 6
    for row, m in zip(frows, fc["forecast"], strict=True):
        assert row[0] == m["month"][:7]
        assert row[1] == number(m["mean"])
        assert row[2:] == [f"{number(m[k][0])}–{number(m[k][1])}" for k in ("interval50", "interval90")]  # fmt: skip
    back = fc["backtest"]
    brows = _cells(html, "backtest-table")
    assert [r[3] for r in brows] == [
        "<10" if m["suppressed"] else number(m["released"]) for m in back["months"]
    ]
    assert f"{100 * back['coverage90']:.0f}% of the released months fell inside the 90%" in html


def test_user_text_is_escaped_and_the_page_loads_nothing(made: dict[str, Any]) -> None:
    page = parse(made["html"])
    # no script, no element the user's text asked for, no event handler
    assert "script" not in page.tags and "img" not in page.tags and "b" in page.tags
    assert not [a for a in page.attrs if a[1].startswith("on")]
    text = "".join(page.text)
    assert TITLE_SHOWN in text and LABEL in text and "</pre><script>alert(3)</script>" in text
    # nothing to fetch: no attribute names a resource outside the page
    for tag, k, v in page.attrs:
        if k in ("src", "href", "xlink:href", "action", "data", "poster"):
            assert v.startswith(("data:", "#")), (tag, k, v)
        assert "url(" not in v or "url(#" in v, (tag, k, v)
    assert "<link" not in made["html"] and "@import" not in made["html"]
    meta = [a for a in page.attrs if a[0] == "meta" and a[1] == "content" and "default-src" in a[2]]
    assert meta and meta[0][2].startswith("default-src 'none'")


# ---- in a real browser ------------------------------------------------------------------------


def _browse(url: str, shot: Path | None = None) -> dict[str, Any]:
    """Open `url` in Debian's chromium; record every request (and refuse all but file: and
    data:), console errors, page errors and dialogs; return what the page shows."""
    seen: dict[str, Any] = {"requests": [], "refused": [], "errors": [], "dialogs": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            context = browser.new_context(viewport={"width": 1100, "height": 900})
            page = context.new_page()

            def route(r: Any) -> None:
                if r.request.url.startswith(("file:", "data:")):
                    r.continue_()
                else:
                    seen["refused"].append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
            page.goto(url, wait_until="load")
            seen["title"] = page.title()
            seen["h1"] = page.locator("h1").inner_text()
            seen["funnel_texts"] = page.locator("#funnel svg text").all_text_contents()
            funnel = page.locator("#funnel svg")
            seen["funnel_box"] = funnel.bounding_box() if funnel.count() == 1 else None
            fc = page.locator("#forecast-chart svg")
            seen["forecast_svgs"] = fc.count()
            seen["forecast_box"] = fc.bounding_box() if fc.count() == 1 else None
            seen["forecast_rows"] = page.locator("#forecast-table tbody tr").count()
            seen["scripts"] = page.locator("script").count()
            if shot is not None:
                page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    return seen


def test_the_recorder_sees_and_refuses_network_requests(tmp_path: Path) -> None:
    """The control: a page that does ask the network is seen asking, and refused."""
    page = tmp_path / "control.html"
    page.write_text('<html><body><img src="http://198.51.100.7/x.png"><h1>c</h1></body></html>')
    seen = _browse(page.as_uri())
    assert seen["refused"] == ["http://198.51.100.7/x.png"], seen
    assert any(u.startswith("http:") for u in seen["requests"])


def test_the_report_renders_in_chromium_without_network(
    made: dict[str, Any], tmp_path: Path
) -> None:
    shot = tmp_path / "report.png"
    seen = _browse(made["path"].as_uri(), shot)
    # no request but the page itself; nothing refused; no console error; nothing ran
    assert seen["requests"] == [made["path"].as_uri()], seen["requests"]
    assert seen["refused"] == [] and seen["errors"] == [] and seen["dialogs"] == [], seen
    assert seen["scripts"] == 0
    # the title is the user's text, shown as text
    assert seen["h1"] == TITLE_SHOWN
    assert seen["title"].startswith(TITLE_SHOWN)
    # the funnel rendered: an SVG of real size whose texts hold each step's label and count
    box = seen["funnel_box"]
    assert box and box["width"] > 300 and box["height"] > 80, box
    texts = seen["funnel_texts"]
    for i, s in enumerate(made["answer"]["attrition"]):
        assert f"{i}. {s['label']}" in texts, (s["label"], texts)
    final = steps_of(made["answer"])[-1].count
    assert final.display.replace(" ", "\xa0") in [t.replace(" ", "\xa0") for t in texts]
    # the forecast: its chart and one row per month
    assert seen["forecast_svgs"] == 1 and seen["forecast_box"]["height"] > 100
    assert seen["forecast_rows"] == len(made["forecast"]["forecast"]) == 6
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


# ---- the command line ---------------------------------------------------------------------------


def test_a_date_index_says_why_there_is_no_forecast(data: Path, tmp_path: Path) -> None:
    cohort, out = tmp_path / "prev.cohort", tmp_path / "prev.html"
    cohort.write_text(DATE_INDEXED, encoding="utf-8")
    common = ["--data", str(data), "--store", str(tmp_path / "s.sqlite")]
    r = runner.invoke(app, ["report", str(cohort), "--out", str(out), *common])
    assert r.exit_code == 0, r.output
    html = out.read_text(encoding="utf-8")
    assert DATE_INDEX_NOTE in "".join(parse(html).text) and 'id="no-forecast"' in html
    assert 'id="forecast-chart"' not in html
    # a forecast for a date index is refused, before anything is charged
    r = runner.invoke(
        app, ["report", str(cohort), "--out", str(out), "--forecast-months", "6", *common]
    )
    assert r.exit_code == 2 and "date index" in r.output, r.output


def test_the_command_line_draws_no_forecast_made_elsewhere(data: Path, tmp_path: Path) -> None:
    """`--forecast FILE` (a forecast's JSON, shown as given) is gone: a report's forecast is
    the one antal computes from the released series (`--forecast-months`)."""
    cohort, fc, store = tmp_path / "c.cohort", tmp_path / "f.json", tmp_path / "s.sqlite"
    cohort.write_text("index first diagnosis E11*\n", encoding="utf-8")
    fc.write_text(json.dumps(forecast_json()), encoding="utf-8")
    r = runner.invoke(app, ["report", str(cohort), "--data", str(data), "--store", str(store),
                            "--out", str(tmp_path / "r.html"), "--forecast", str(fc)])  # fmt: skip
    assert r.exit_code == 2 and "No such option" in r.output, r.output
    assert not (tmp_path / "r.html").exists() and not store.exists()
    r = runner.invoke(app, ["report", str(cohort), "--data", str(data), "--store", str(store),
                            "--out", str(tmp_path / "r.html"), "--forecast-months", "61"])  # fmt: skip
    assert r.exit_code == 2 and "forecast 1 to 60 months ahead, not 61" in r.output, r.output
    assert not (tmp_path / "r.html").exists()


def test_an_unwritable_output_is_refused_before_the_charge(data: Path, tmp_path: Path) -> None:
    cohort = tmp_path / "c.cohort"
    cohort.write_text("index first diagnosis E11*\n", encoding="utf-8")
    r = runner.invoke(app, ["report", str(cohort), "--data", str(data), "--store",
                            str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "no" / "r.html")])  # fmt: skip
    assert r.exit_code == 2 and "existing directory" in r.output, r.output
    assert not (tmp_path / "s.sqlite").exists()


# ---- the answer's other shapes, and plot() ----------------------------------------------------


def _answer_of_later_shape() -> dict[str, Any]:
    """An answer as issue 11 shapes it: counts with `suppressed`/`lower`/`upper`/`display`,
    several tables with names, a signed receipt."""

    def c(n: int | None, lo: int | None = None, hi: int | None = None) -> dict[str, Any]:
        return {"count": n, "suppressed": n is None, "lower": lo, "upper": hi,
                "display": "<10" if n is None else str(n)}  # fmt: skip

    return {
        "count": c(1240, 1200, 1280),
        "attrition": [{"label": "Index", **c(5000, 4950, 5050)},
                      {"label": "Age 40–75", **c(1240, 1200, 1280)}],
        "tables": [
            {"dims": ["sjukvardsregion"], "cells": [
                {"sjukvardsregion": "4", "sjukvardsregion_name": "Västra sjukvårdsregionen",
                 **c(700, 690, 710)},
                {"sjukvardsregion": "6", "sjukvardsregion_name": "Norra sjukvårdsregionen", **c(None)},
            ]},
            {"dims": ["sex"], "cells": [{"sex": "female", **c(600, 590, 610)},
                                        {"sex": "male", **c(640, 630, 650)}]},
        ],
        "privacy": {"epsilon": 1.0, "threshold": 10, "rounding": 5},
        "receipt": {"query_hash": "ab" * 32, "data_release": "r1", "signature": "c2lnbmVk"},
        "epsilon_charged": 3.0, "budget_left": 7.0, "stored_answer": False,
    }  # fmt: skip


def test_later_answer_shapes_render_with_names() -> None:
    a = _answer_of_later_shape()
    html = render_report(a, cohort_text="index first diagnosis E11*", forecast=None)
    page = "".join(parse(html).text)
    assert "Västra sjukvårdsregionen" in page and "Norra sjukvårdsregionen" in page
    assert html.count('class="breakdown-table"') == 2
    assert "About 1 240 persons" in page and "95% interval 1 200–1 280" in page
    rows = _cells(html, "attrition-table")
    assert rows[1][2:] == ["1 240", "1 200–1 280"]
    assert "Signed by the installation" in page and "rounded to a multiple of" in page
    assert "none was asked for" in page  # no forecast, and why


def test_plot_draws_the_funnel_and_each_breakdown() -> None:
    import altair as alt

    from antal.api.charts import plot

    chart = plot(_answer_of_later_shape())
    assert isinstance(chart, alt.VConcatChart)
    spec = chart.to_dict()
    values = [layer["data"]["values"] for sub in spec["vconcat"] for layer in [sub]]
    labels = [[r["label"] for r in v] for v in values]
    # the funnel, then one chart per table with released cells (the suppressed cell has no bar)
    assert labels == [["0. Index", "1. Age 40–75"],
                      ["4 Västra sjukvårdsregionen"], ["female", "male"]]  # fmt: skip


def test_a_forecast_of_another_shape_is_a_report_error() -> None:
    a = _answer_of_later_shape()
    with pytest.raises(ReportError, match="not a forecast"):
        render_report(a, cohort_text="x", forecast={"forecast": "soon"})
    too_long = forecast_json(months=MAX_REPORT_MONTHS)
    with pytest.raises(ValueError, match="at most"):
        forecast_view(too_long)


# ---- the route ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("api")
    settings = Settings(data=data, store=str(root / "store.sqlite"), requests_per_minute=10_000,
                        counts_per_minute=10_000)  # fmt: skip
    application = create_app(settings)
    st = application.state.antal
    st.accounts.create_user("res", "Researcher", "researcher")
    st.accounts.create_user("other", "Other", "researcher")
    st.store.create_project("t2d", "T2D", "forskning", 10.0, ("npr", "dors"))
    st.accounts.add_member("t2d", "res")
    tokens = {u: st.accounts.issue_token(u) for u in ("res", "other")}
    return {"client": TestClient(application), "tokens": tokens}


def _h(api: dict[str, Any], user: str = "res") -> dict[str, str]:
    return {"Authorization": f"Bearer {api['tokens'][user]}"}


def _left(api: dict[str, Any]) -> float:
    return api["client"].get("/v1/projects/t2d/budget", headers=_h(api)).json()["left"]


def test_the_route_answers_html_charged_like_a_count(api: dict[str, Any]) -> None:
    c = api["client"]
    cohort = 'cohort "T2D <b>by</b> region"\nindex first diagnosis E11*\nreport by region\n'
    budget = c.get("/v1/projects/t2d/budget", headers=_h(api)).json()
    before, cost = budget["left"], budget["epsilon_per_query_with_breakdown"]
    r = c.post("/v1/projects/t2d/report", json={"cohort": cohort}, headers=_h(api))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert cost > 0 and _left(api) == pytest.approx(before - cost)
    html = r.text
    assert '<h1 id="question">T2D &lt;b&gt;by&lt;/b&gt; region</h1>' in html
    assert "none was asked for with the request" in html
    # the count of the same cohort is the stored answer, free, and the report shows it
    counted = c.post("/v1/projects/t2d/count", json={"cohort": cohort}, headers=_h(api)).json()
    assert counted["stored_answer"] is True and _left(api) == pytest.approx(before - cost)
    assert counted["receipt"]["answer_key"] in html
    rows = _cells(html, "attrition-table")
    assert [r_[2] for r_ in rows] == [s.count.display for s in steps_of(counted)]
    # asked again: the same answer, free
    again = c.post("/v1/projects/t2d/report", json={"cohort": cohort}, headers=_h(api))
    assert again.status_code == 200 and _left(api) == pytest.approx(before - cost)
    assert _cells(again.text, "attrition-table") == rows


def test_the_route_with_a_forecast_and_with_the_ir(api: dict[str, Any]) -> None:
    """`forecast_months`: the forecast computed from the cohort's released monthly series,
    exactly the one the forecast route gives of the same stored answer."""
    c = api["client"]
    from antal.engine import ir, parse

    text = "index first diagnosis I* between 2015-01-01 and 2023-12-31\ninclude age 40..75\n"
    tree = ir.to_json(parse(text))
    r = c.post("/v1/projects/t2d/report", json={"ir": tree, "forecast_months": 3},
               headers=_h(api))  # fmt: skip
    assert r.status_code == 200, r.text
    assert "The cohort was given as its JSON form" in r.text
    left = _left(api)
    oracle = c.post("/v1/projects/t2d/forecast", json={"cohort": text, "months": 3},
                    headers=_h(api)).json()  # fmt: skip
    assert oracle["answer"]["stored_answer"] is True and _left(api) == left  # released already
    fc = oracle["total"]["forecast"]
    rows = _cells(r.text, "forecast-table")
    assert [(r_[0], r_[1]) for r_ in rows] == [(m["month"][:7], number(m["mean"])) for m in fc["forecast"]]  # fmt: skip
    assert len(_cells(r.text, "backtest-table")) == len(fc["backtest"]["months"])


def test_the_route_draws_no_number_sent_with_the_request(api: dict[str, Any]) -> None:
    """Issue 22, 6: a caller's forecast (99,999 persons a month) beside a valid receipt and
    "Every number on this page was released". Refused, precisely, before anything is
    charged; a report asked properly shows the released values only."""
    c = api["client"]
    cohort = "index first diagnosis I* between 2016-01-01 and 2023-12-31\n"
    injected = forecast_json(3, 0)
    for m in injected["forecast"]:
        m.update(mean=99_999.0, interval50=[99_000, 100_999], interval90=[98_000, 101_999])
    before = _left(api)
    for extra in ({"forecast": injected}, {"forecast": None}, {"forecast": injected, "forecast_months": 3}):  # fmt: skip
        r = c.post("/v1/projects/t2d/report", json={"cohort": cohort, **extra}, headers=_h(api))
        assert r.status_code == 422, r.text
        e = r.json()["error"]
        assert e["code"] == "invalid_request" and "`forecast` is not accepted" in e["message"]
        assert "99999" not in r.text and "99 999" not in r.text  # nothing of it drawn
    assert _left(api) == before  # refused before the charge
    r = c.post("/v1/projects/t2d/report", json={"cohort": cohort, "forecast_months": 3},
               headers=_h(api))  # fmt: skip
    assert r.status_code == 200, r.text
    oracle = c.post("/v1/projects/t2d/forecast", json={"cohort": cohort, "months": 3},
                    headers=_h(api)).json()["total"]["forecast"]  # fmt: skip
    rows = _cells(r.text, "forecast-table")
    assert [r_[1] for r_ in rows] == [number(m["mean"]) for m in oracle["forecast"]]
    assert number(99_999) not in "".join(parse(r.text).text)  # no caller's number anywhere
    counted = c.post("/v1/projects/t2d/count", json={"cohort": cohort}, headers=_h(api)).json()
    assert counted["stored_answer"] is True
    assert [r_[2] for r_ in _cells(r.text, "attrition-table")] == [s.count.display for s in steps_of(counted)]  # fmt: skip
    receipt = re.search(r'<pre id="receipt-json">(.*?)</pre>', r.text, re.S)
    assert receipt and json.loads(parse(receipt.group(1)).text[0]) == counted["receipt"]


def test_the_route_refuses_before_charging(api: dict[str, Any]) -> None:
    c = api["client"]
    before = _left(api)
    for body, status, code in [
        ({"cohort": "index first diagnosis E11*\n", "forecast": {"forecast": 3}}, 422,
         "invalid_request"),
        ({"cohort": "index first diagnosis E11*\n", "forecast_months": 0}, 422, "invalid_request"),
        ({"cohort": DATE_INDEXED, "forecast_months": 6}, 400, "date_index_cohort"),
        ({"cohort": "index first diagnosis E11*\ninclude drug A10* in lmr\n"}, 403,
         "register_not_approved"),
        ({"cohort": "index first diagnosis E11*\nbad\n"}, 400, "cohort_invalid"),
    ]:  # fmt: skip
        r = c.post("/v1/projects/t2d/report", json=body, headers=_h(api))
        assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    r = c.post("/v1/projects/t2d/report", json={"cohort": "index first diagnosis E11*\n"},
               headers=_h(api, "other"))  # fmt: skip
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = c.post("/v1/projects/t2d/report", json={"cohort": "index first diagnosis E11*\n"})
    assert r.status_code == 401
    assert _left(api) == before


def test_a_cohort_with_its_own_month_table_is_forecast_from_it(data: Path, tmp_path: Path) -> None:
    """Issue 23, item 5: the report's forecast of a cohort that asks `report by month` is
    made from that released table (its whole months of complete data), not from a second
    release of the series: one ask charged (2ε), and the forecast's history is that table."""
    cohort = tmp_path / "monthly.cohort"
    cohort.write_text("index first diagnosis I* between 2015-01-01 and 2023-12-31\n"
                      'include "Adults": age 18..80\nreport by month\n', encoding="utf-8")  # fmt: skip
    store = tmp_path / "store.sqlite"
    common = ["--data", str(data), "--store", str(store), "--project", "p", "--budget", "5"]
    out = tmp_path / "r.html"
    r = runner.invoke(
        app, ["report", str(cohort), "--out", str(out), "--forecast-months", "6", *common]
    )
    assert r.exit_code == 0, r.output
    from antal.privacy import open_store

    assert open_store(str(store)).project("p").spent == pytest.approx(1.0)  # one ask, 2ε
    c = runner.invoke(app, ["count", str(cohort), "--json", *common])
    answer = json.loads(c.stdout.splitlines()[-1])
    assert answer["stored_answer"] is True
    released = {row["month"]: row["count"] for row in answer["breakdown"]}
    # the series the forecast read is the released table's: each back-tested month's
    # released value is that month's cell of the answer
    from antal.api import usecases as uc
    from antal.catalog import Installation
    from antal.engine.backends import get_backend
    from antal.privacy import Gate

    inst = Installation.from_data_dir(data)
    cat = uc.open_catalog(inst)
    st = uc.open_store(Settings(store=str(store)))
    gate = Gate(st, inst.privacy, uc.open_signer(Settings(store=str(store))))
    backend = get_backend(None, inst, cat)
    try:
        rep = uc.report_count(cohort.read_text(encoding="utf-8"), inst, cat, gate, "p", "t",
                              backend, forecast_months=6)  # fmt: skip
    finally:
        backend.close()
    assert rep.counted.answer.stored  # the same answer again, free
    assert rep.forecast is not None, rep.no_forecast
    history = rep.forecast["history"]
    assert (history["first"], history["last"], history["months"]) == (
        "2015-01-01",
        "2023-12-01",
        108,
    )
    for m in rep.forecast["backtest"]["months"]:
        ym = int(m["month"][:4]) * 100 + int(m["month"][5:7])
        assert m["released"] == released[ym], m


# ---- the enrolment plan ---------------------------------------------------------------------------

HF_SITES = (
    'cohort "HF sites"\n'
    "index first diagnosis I50* between 2019-01-01 and 2023-12-31\n"
    "report by hospital\n"
)
# `antal plan`'s options, the same in `antal report`
PLAN = ["--target", "40", "--sites", "01001,S:t Görans sjukhus,05001", "--start", "2026-01-01",
        "--site-start", "05001=2026-04-01", "--capture", "0.5", "--consent", "0.6",
        "--screen-fail", "0.2", "--by", "2030-12-31"]  # fmt: skip


def _charges(store: Path) -> list[tuple[str, float]]:
    """The project's ledger: each answer charged, and its ε."""
    from antal.privacy import open_store

    with open_store(str(store)).transaction(write=False) as tx:
        return sorted(tx.all("SELECT answer_key, epsilon FROM charges WHERE project_id = 'p'"))


def _headline(plan: dict[str, Any]) -> str:
    """The report's plan headline as the plan's JSON gives its figures."""
    tt = plan["time_to_target"]
    lo, hi = tt["interval90_months"]
    n = len(plan["sites"])
    return (
        f"{plan['target']} enrolled at the {n} sites below, from {plan['start']}: median "
        f"{tt['median']} ({tt['median_months']:.1f} months); 90% interval {tt['interval90'][0]} "
        f"to {tt['interval90'][1]} ({lo:.1f}–{hi:.1f} months). Chance of {plan['target']} "
        f"enrolled by {plan['by']}: {100 * plan['p_by']:.0f}%."
    )


def test_the_report_with_an_enrolment_plan(data: Path, tmp_path: Path) -> None:
    """`antal report` with `antal plan`'s options: an "Enrolment plan" section whose figures
    are those `antal plan --json` gives for the same stored answer, and the ledger of a
    report with a plan the same as that of the report without (the plan is free)."""
    cohort = tmp_path / "hf.cohort"
    cohort.write_text(HF_SITES, encoding="utf-8")
    stores = {"plan": tmp_path / "plan.sqlite", "none": tmp_path / "none.sqlite"}
    pages = {"plan": tmp_path / "plan.html", "none": tmp_path / "none.html"}
    for k in stores:
        common = ["--data", str(data), "--store", str(stores[k]), "--project", "p",
                  "--budget", "5"]  # fmt: skip
        r = runner.invoke(app, ["report", str(cohort), "--out", str(pages[k]), *common,
                                *(PLAN if k == "plan" else [])])  # fmt: skip
        assert r.exit_code == 0, r.output
    ledger = _charges(stores["plan"])
    assert ledger == _charges(stores["none"]) and sum(e for _, e in ledger) > 0
    html = pages["plan"].read_text(encoding="utf-8")
    assert 'id="plan"' not in pages["none"].read_text(encoding="utf-8")
    # the oracle: `antal plan --json` on the same project, its stored answer (free)
    common = ["--data", str(data), "--store", str(stores["plan"]), "--project", "p"]
    r = runner.invoke(app, ["plan", str(cohort), *PLAN, "--json", *common])
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["answer"]["stored_answer"] is True and plan["answer"]["epsilon_charged"] == 0
    assert _charges(stores["plan"]) == ledger
    page = parse(html)
    text = "".join(page.text)
    assert "Enrolment plan" in text and _headline(plan) in text
    rows = _cells(html, "plan-sites")
    assert [r_[0] for r_ in rows] == [s["site"] for s in plan["sites"]] == ["01001", "01005", "05001"]  # fmt: skip
    for row, s in zip(rows, plan["sites"], strict=True):
        lo, hi = s["eligible_per_month90"]
        shown = s["display"] if s["released"] is None else number(s["released"])
        # the cells as a reader sees them (`&lt;10` is "<10"; the released count is
        # suppressed or not as the noise falls)
        assert [unescape(c) for c in row[1:]] == [s["name"], shown, f"{s['eligible_per_month']:.1f}",
                           f"{lo:.1f}–{hi:.1f}", f"{s['enrolled_per_month']:.2f}", s["start"]]  # fmt: skip
    assert [r_[6] for r_ in rows] == ["2026-01-01", "2026-01-01", "2026-04-01"]
    months = _cells(html, "plan-months")
    assert len(months) == len(plan["months"]) >= 12
    for row, m in zip(months, plan["months"], strict=True):
        lo, hi = m["cumulative90"]
        assert row == [str(m["month"]), m["from"], f"{m['expected']:.1f}",
                       number(round(m["cumulative"])), f"{number(lo)}–{number(hi)}",
                       f"{100 * m['p_reached']:.0f}%"]  # fmt: skip
    # the assumptions stated as assumptions, and what the intervals hold
    assumptions = "".join(parse(re.search(r'<p id="plan-assumptions">(.*?)</p>', html, re.S)
                                .group(1)).text)  # type: ignore[union-attr]  # fmt: skip
    assert "assumptions, not data: capture 0.5" in assumptions and "24.0%" in assumptions
    assert "privacy noise of the released site counts" in text and "costs no privacy budget" in text
    assert re.search(r'<figure id="plan-chart"[^>]*><svg', html)
    section = re.search(r'<section id="plan">(.*?)</section>', html, re.S)
    assert section
    shown = "".join(parse(re.sub(r"<svg.*?</svg>", "", section.group(1), flags=re.S)).text)
    assert "None" not in shown and "null" not in shown and "nan" not in shown


def test_report_plan_options_are_checked_before_anything_is_charged(
    data: Path, tmp_path: Path
) -> None:
    cohort, store, out = tmp_path / "hf.cohort", tmp_path / "s.sqlite", tmp_path / "r.html"
    cohort.write_text(HF_SITES, encoding="utf-8")
    common = ["--data", str(data), "--store", str(store), "--out", str(out)]
    for extra, words in (
        (["--capture", "0.3"], "needs both --target and --sites"),
        (["--target", "40"], "needs both --target and --sites"),
        (["--target", "40", "--sites", "Nowhere"], "'Nowhere' is not a hospital"),
        (["--target", "40", "--sites", "01001", "--consent", "0"], "consent is a fraction"),
        (["--target", "40", "--sites", "01001", "--by", "soon"], "--by is a date"),
    ):
        r = runner.invoke(app, ["report", str(cohort), *common, *extra])
        assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
    no_table = tmp_path / "sex.cohort"
    no_table.write_text(HF_SITES.replace("hospital", "sex"), encoding="utf-8")
    r = runner.invoke(app, ["report", str(no_table), *common, *PLAN])
    assert r.exit_code == 2 and "add `report by hospital`" in r.output, r.output
    assert not out.exists()
    from antal.privacy import open_store

    assert not store.exists() or open_store(str(store)).project("local").spent == 0


def test_the_route_with_an_enrolment_plan(api: dict[str, Any]) -> None:
    """The report route's `plan` (the plan route's fields): the section, the same figures
    as the plan route gives of the stored answer, charged as a report without a plan."""
    c = api["client"]
    cohort = HF_SITES.replace("2019-01-01", "2018-01-01")  # an answer of its own: charged
    ask = {"target": 40, "sites": ["01001", "Universitetssjukhuset i Linköping"],
           "start": "2026-01-01", "site_starts": {"05001": "2026-04-01"}, "capture": 0.5,
           "consent": 0.6, "screen_fail": 0.2, "by": "2030-12-31"}  # fmt: skip
    budget = c.get("/v1/projects/t2d/budget", headers=_h(api)).json()
    before, cost = budget["left"], budget["epsilon_per_query_with_breakdown"]
    for bad, status in (({**ask, "sites": ["Nowhere"]}, 400), ({**ask, "target": 0}, 400),
                        ({**ask, "capture": 2}, 400), ({**ask, "colour": "red"}, 422),
                        ({**ask, "target": "many"}, 422)):  # fmt: skip
        r = c.post("/v1/projects/t2d/report", json={"cohort": cohort, "plan": bad}, headers=_h(api))
        assert r.status_code == status, r.text
        assert set(r.json()["error"]) >= {"code", "message"}
    r = c.post("/v1/projects/t2d/report", json={"cohort": "index first diagnosis I50* between "
               "2018-01-01 and 2023-12-31\nreport by sex\n", "plan": ask}, headers=_h(api))  # fmt: skip
    assert r.status_code == 400 and "report by hospital" in r.json()["error"]["message"]
    assert _left(api) == before  # every refusal before the charge
    r = c.post("/v1/projects/t2d/report", json={"cohort": cohort, "plan": ask}, headers=_h(api))
    assert r.status_code == 200, r.text
    assert cost > 0 and _left(api) == pytest.approx(before - cost)  # a count's charge, no more
    plan = c.post("/v1/projects/t2d/plan", json={"cohort": cohort, **ask}, headers=_h(api)).json()
    assert plan["answer"]["stored_answer"] is True
    assert _left(api) == pytest.approx(before - cost)
    assert _headline(plan) in "".join(parse(r.text).text)
    rows = _cells(r.text, "plan-sites")
    assert [(r_[0], r_[3], r_[6]) for r_ in rows] == [
        (s["site"], f"{s['eligible_per_month']:.1f}", s["start"]) for s in plan["sites"]
    ]
    assert len(_cells(r.text, "plan-months")) == len(plan["months"])


def test_a_plan_the_released_table_cannot_give_says_why(tmp_path: Path) -> None:
    """Every site below the threshold: the report is made, and says why it has no plan;
    a time to the target beyond 100 years is said so, never as an empty value."""
    from test_plan import AF, CAT, START, _data

    from antal.api import planning
    from antal.api import usecases as uc
    from antal.catalog import Installation
    from antal.engine.backends.duckdb import DuckDBBackend
    from antal.privacy import Gate, PrivacyParams, open_store

    inst = Installation.from_data_dir(_data(tmp_path))
    store = open_store(tmp_path / "s.sqlite")
    store.create_project("p", "P", "forskning", 1e9, ("npr",))
    request = planning.plan_request(CAT, target=1_000_000, sites=["01001"], start=START,
                                    capture=0.001)  # fmt: skip
    be = DuckDBBackend(inst, CAT)
    try:
        # no noise to speak of; every site (240 persons at most) below a threshold of 1000
        hidden = Gate(store, PrivacyParams(epsilon=1e6, threshold=1000))
        rep = uc.report_count(AF, inst, CAT, hidden, "p", "u", be, plan=request)
        open_gate = Gate(store, PrivacyParams(epsilon=1e6, threshold=0))
        far = uc.report_count(AF.replace("AF sites", "AF far"), inst, CAT, open_gate, "p", "u",
                              be, plan=request)  # fmt: skip
    finally:
        be.close()
    assert rep.plan is None and rep.no_plan and "below the threshold" in rep.no_plan
    html = render_report(rep.counted, cohort_text=AF, plan=rep.plan, no_plan=rep.no_plan)
    assert f"No enrolment plan: {rep.no_plan}" in "".join(parse(html).text)
    assert far.plan is not None and far.plan.plan.date_of(far.plan.plan.time_median) is None
    html = render_report(far.counted, cohort_text=AF, plan=far.plan)
    section = re.search(r'<section id="plan">(.*?)</section>', html, re.S)
    assert section
    text = "".join(parse(re.sub(r"<svg.*?</svg>", "", section.group(1), flags=re.S)).text)
    assert "median not within 100 years" in text and "None" not in text
