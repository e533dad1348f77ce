"""Several `report by` tables, roll-up levels, the new dimensions' checks and names, and
how they are released: one charge, the K leaf tables at scale K/ε and the levels above them
sums of their leaves, every table consistent with the released
total, each level with the variance docs/privacy.md states."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest

from antal.catalog import load_catalog
from antal.engine import ir
from antal.engine.check import check
from antal.engine.domain import domain_size, released_tables, roll_up
from antal.engine.errors import CohortError
from antal.engine.hierarchy import band_name, value_name
from antal.engine.language.parser import parse
from antal.privacy import Gate, PrivacyParams, SQLiteStore, TrueCounts
from antal.privacy.mechanism import (
    ReleasedCount,
    TrueTable,
    dlap_variance,
    leaves,
    level_variances,
    measurement,
    release_tables,
)

CAT = load_catalog()
WINDOW = "index first diagnosis E11* between 2019-01-01 and 2020-12-31\n"


# ---- the language and the checker ------------------------------------------------------------


def _error(text: str) -> CohortError:
    with pytest.raises(CohortError) as e:
        check(parse(text), CAT)
    return e.value


def test_months_and_quarters_need_a_bounded_index_window() -> None:
    e = _error("index first diagnosis E11* after 2019-01-01\nreport by region\nreport by month\n")
    d = e.diagnostics[0]
    assert (d.line, d.column) == (3, 11) and "both ends" in d.message
    e = _error("index first diagnosis E11*\nreport by quarter, sex\n")
    assert (e.diagnostics[0].line, e.diagnostics[0].column) == (2, 11)
    check(parse("index 2020-06-15\nreport by month\n"), CAT)  # an index date is one month
    check(parse(WINDOW + "report by quarter\n"), CAT)


def test_clinic_needs_an_index_event_recorded_at_a_clinic() -> None:
    e = _error("index 2020-06-15\nreport by clinic\n")
    assert e.diagnostics[0].code == "clinic"
    e = _error("index first drug A10BA02 in lmr\nreport by clinic\n")
    assert "lmr records no clinic" in e.diagnostics[0].message
    check(parse("index first drug L01* in rekvisition\nreport by clinic\n"), CAT)


def test_rollup_needs_one_dimension_with_levels_and_tables_are_distinct() -> None:
    assert _error(WINDOW + "report by region with rollup\n").diagnostics[0].code == "rollup"
    e = _error(WINDOW + "report by month, hospital with rollup\n")
    assert e.diagnostics[0].code == "rollup" and e.diagnostics[0].column == 18
    e = _error(WINDOW + "report by region, sex\nreport by sex, region\n")
    assert e.diagnostics[0].code == "duplicate" and e.diagnostics[0].line == 3


def test_one_table_keeps_its_json_form_and_hash() -> None:
    """A cohort of one `report by` is written as before (`"report": [dims]`): its hash,
    and so its stored answers, stay; several tables or a roll-up use `"reports"`."""
    one = parse("index 2020-06-15\nreport by region, sex\n")
    j = ir.to_json(one)
    assert j["report"] == [{"kind": "dim", "name": "region"}, {"kind": "dim", "name": "sex"}]
    assert "reports" not in j and ir.from_json(j) == one
    two = parse(WINDOW + "report by region\nreport by hospital with rollup\n")
    j2 = ir.to_json(two)
    assert "report" not in j2 and j2["reports"][1]["rollup"] is True
    assert ir.from_json(j2) == two and ir.ir_hash(two) != ir.ir_hash(one)
    with pytest.raises(ir.IRInvalid, match="not both"):
        ir.from_json({**j2, "report": j["report"]})


# ---- domains, levels and names -------------------------------------------------------------


def test_rollup_levels_form_a_tree_over_the_public_domain() -> None:
    co = check(
        parse(WINDOW + "report by hospital, sex with rollup\nreport by month with rollup\n"), CAT
    )
    tables = released_tables(co, CAT)
    assert [t.dims for t in tables] == [
        ("hospital", "sex"), ("hospital_region", "sex"), ("hospital_sjukvardsregion", "sex"),
        ("sex",), ("month",), ("quarter",), ("year",),
    ]  # fmt: skip
    assert domain_size(co, CAT) == sum(len(t.domain) for t in tables)
    assert len(tables[4].domain) == 24 and len(tables[5].domain) == 8 and len(tables[6].domain) == 2
    for t in tables:  # every cell has exactly one parent cell, in the parent's domain
        if t.parent is not None:
            assert t.up is not None and set(t.up) <= set(tables[t.parent].domain)
    # Halland's two hospitals are in two healthcare regions: two nodes of the län level
    up = dict(zip(tables[0].domain, tables[0].up or (), strict=True))
    assert up[("13001", "male")] == ("13:syd", "male")
    assert up[("13002", "male")] == ("13:vast", "male")
    # the levels' counts are the sums of the table's
    asked = [{("13001", "male"): 3, ("13002", "male"): 2, ("01001", "female"): 4}, {(201903,): 5}]
    cells = roll_up(tables, asked)
    assert cells[1] == {("13:syd", "male"): 3, ("13:vast", "male"): 2, ("01", "female"): 4}
    assert cells[2] == {("syd", "male"): 3, ("vast", "male"): 2, ("stockholm-gotland", "female"): 4}
    assert cells[3] == {("male",): 5, ("female",): 4}
    assert cells[5] == {(20191,): 5} and cells[6] == {(2019,): 5}


def test_values_have_names() -> None:
    assert value_name(CAT, "region", "18") == "Örebro län"
    assert value_name(CAT, "sjukvardsregion", "mellersta").startswith("Mellersta")
    assert value_name(CAT, "hospital", "18001") == "Universitetssjukhuset Örebro"
    assert value_name(CAT, "clinic", "141") == "endokrinologi"
    assert value_name(CAT, "age_10", 60) == "60–69" == band_name(60, 10)
    assert value_name(CAT, "age_1", 7) == "7"
    assert value_name(CAT, "month", 202103) == "2021-03"
    assert value_name(CAT, "quarter", 20211) == "2021 Q1"
    assert value_name(CAT, "hospital_region", "13:syd") == "Hallands län (Södra sjukvårdsregionen)"
    assert value_name(CAT, "region", None) is None


# ---- the release: accounting, consistency, variance ------------------------------------------


def _chain() -> tuple[TrueTable, ...]:
    """A fixed true table of 6 months under 2 quarters under 1 year (all counts large, so
    that neither non-negativity nor suppression acts), and a second table of 3 cells."""
    months = [(m,) for m in range(1, 7)]
    return (
        TrueTable(("month",), {k: 400 + 10 * k[0] for k in months}, months, parent=1,
                  up=[((m - 1) // 3 + 1,) for (m,) in months], level=0),
        TrueTable(("quarter",), {(1,): 1260, (2,): 1350}, [(1,), (2,)], parent=2,
                  up=[(1,), (1,)], level=1),
        TrueTable(("year",), {(1,): 2610}, [(1,)], level=2),
        TrueTable(("sex",), {("f",): 1300, ("m",): 1310}, [("f",), ("m",)], report=1),
    )  # fmt: skip


def test_all_tables_cost_one_epsilon_at_scale_k_leaves_over_epsilon() -> None:
    """Only the leaves are measured (issue 23): the months and the sexes, K = 2; the
    quarters and the year are sums of months, so a roll-up adds no noise and no ε."""
    p = PrivacyParams(epsilon=0.5, threshold=0)
    tables = _chain()
    assert leaves(tables) == [0, 3]
    out, scale = release_tables(tables, ReleasedCount(2610, 2600, 2620, 0), 4.0, p)
    assert scale == 2 / 0.5
    # OpenDP's own privacy map: one person moves one cell of each of the K leaf tables
    assert measurement(scale).map(2) == pytest.approx(0.5)
    months, quarters, year = ([c.value for _, c in t.cells] for t in out[:3])
    assert quarters == [sum(months[:3]), sum(months[3:])] and year == [2610]
    # a chain measured at every level (before issue 23) had scale 4/ε: twice the noise


def test_releases_are_consistent_and_have_the_stated_variance() -> None:
    """Over many releases of a fixed true table: every release's cells sum to their parent
    and each table to the total; each cell's empirical variance is the stated one."""
    p = PrivacyParams(epsilon=1.0, threshold=0)
    tables = _chain()
    truth = [[t.cells[k] for k in t.domain] for t in tables]
    total_scale = 2.0
    runs = 6000
    sums = [[0.0] * len(t.domain) for t in tables]
    squares = [[0.0] * len(t.domain) for t in tables]
    covered = [0, 0]
    from antal.privacy.mechanism import noisy_vector

    for _ in range(runs):
        total = 2610 + noisy_vector([0], total_scale)[0]  # a released total, as the gate's
        out, scale = release_tables(tables, ReleasedCount(total, None, None, 0),
                                    dlap_variance(total_scale), p)  # fmt: skip
        vals = [[c.value for _, c in t.cells] for t in out]
        assert sum(vals[2]) == sum(vals[3]) == total  # every table sums to the total
        assert vals[1] == [sum(vals[0][0:3]), sum(vals[0][3:6])]  # months to their quarter
        assert vals[2] == [sum(vals[1])]  # quarters to their year
        for i, t in enumerate(out):
            for j, (_k, c) in enumerate(t.cells):
                err = c.value - truth[i][j]
                sums[i][j] += err
                squares[i][j] += err * err
                covered[0] += c.low <= truth[i][j] <= c.high
                covered[1] += 1
    stated = level_variances(tables, scale, dlap_variance(total_scale))
    for i in range(len(tables)):
        for j in range(len(tables[i].domain)):
            mean = sums[i][j] / runs
            var = squares[i][j] / runs - mean**2
            # the sample variance's relative standard error is at most sqrt(5/runs) (2.9%,
            # a Laplace's kurtosis; a mean of several is nearer normal); rounding adds at
            # most 1/4 to a variance of 20 or more. 12% is more than 4 standard errors
            assert abs(var / stated[i][j] - 1) < 0.12, (i, j, var, stated[i][j])
            assert abs(mean) < 5 * math.sqrt(stated[i][j] / runs)
    # the levels differ as stated: a month is noisier than its quarter's share would be
    assert stated[0][0] > stated[1][0] / 3
    assert covered[0] / covered[1] >= 0.94  # the 95% intervals cover the true counts


def test_small_cells_are_non_negative_and_still_sum() -> None:
    p = PrivacyParams(epsilon=0.5, threshold=10, rounding=5)
    months = [(m,) for m in range(1, 13)]
    table = TrueTable(("month",), {(1,): 3, (7,): 40}, months)
    for _ in range(200):
        (out,), _ = release_tables((table,), ReleasedCount(45, 30, 60, 10), 9.0, p)
        shown = [c for _, c in out.cells if c.value is not None]
        assert all(c.value % 5 == 0 and c.value >= 10 for c in shown)
        assert sum(c.value for c in shown) <= 45
    hidden = ReleasedCount(None, None, None, 10)
    (out,), _ = release_tables((table,), hidden, 9.0, p)
    assert all(c.suppressed for _, c in out.cells)


# ---- the gate: one charge for all tables; a new breakdown reuses the attrition ----------------


def _true(n: int, tables: int) -> TrueCounts:
    return TrueCounts(
        ("i", "s"), (n, n - 10),
        tables=tuple(
            TrueTable((f"d{t}",), {("a",): (n - 10) // 2, ("b",): n - 10 - (n - 10) // 2},
                      [("a",), ("b",)], report=t)
            for t in range(tables)
        ),
    )  # fmt: skip


def test_a_new_breakdown_of_a_released_attrition_charges_only_the_breakdown() -> None:
    with tempfile.TemporaryDirectory() as d:
        store = SQLiteStore(Path(d) / "s.sqlite")
        store.create_project("p", "t", "forskning", 100.0)
        store.create_project("q", "t", "forskning", 100.0)
        gate = Gate(store, PrivacyParams(epsilon=0.5, threshold=0))
        attrition = ("h-alone", "q-alone")
        # three tables of a cohort at once: ε for the attrition, ε for all three tables
        a = gate.answer("p", "u", "h-3", "q3", "rel", ("i", "s"), ("d0",), lambda: _true(900, 3),
                        attrition=attrition)  # fmt: skip
        # the ask's 2ε split: 0.55 of it on the attrition (one bucket measurement), the
        # rest on the three leaf tables at once (scale 3 / 0.45)
        assert a.epsilon_charged == 1.0 and len(a.tables) == 3
        assert a.scales["attrition"] == pytest.approx(1 / 0.55)
        assert a.scales["breakdown"] == pytest.approx(3 / 0.45)
        total = a.steps[-1].value
        for t in a.tables:
            assert sum(c.value for _, c in t.cells) == total
        # another breakdown of the same cohort: only the breakdown is charged, the stored
        # attrition is returned and the new table agrees with its total
        b = gate.answer("p", "u", "h-1", "q1", "rel", ("i", "s"), ("d0",), lambda: _true(900, 1),
                        attrition=attrition)  # fmt: skip
        assert b.epsilon_charged == 0.5 and b.steps == a.steps
        assert sum(c.value for _, c in b.cells) == total and b.scales["breakdown"] == 2.0
        # the attrition alone, asked now: the stored one, free
        c = gate.answer(
            "p", "u", "h-alone", "q-alone", "rel", ("i", "s"), (), lambda: _true(900, 0)
        )
        assert c.stored and c.epsilon_charged == 0 and c.steps == a.steps
        # another project pays for both, but receives the same attrition (no averaging)
        e = gate.answer("q", "u", "h-1", "q1", "rel", ("i", "s"), ("d0",), lambda: _true(900, 1),
                        attrition=attrition)  # fmt: skip
        assert e.epsilon_charged == 1.0 and e.steps == a.steps
        assert store.project("p").spent == pytest.approx(1.5)
        assert store.ledger_problems() == [] and store.verify_audit() == []
        # the answer's JSON: the first table as before, and every table
        j = a.to_json()
        assert (
            j["dims"] == ["d0"]
            and len(j["tables"]) == 3
            and j["breakdown"] == j["tables"][0]["breakdown"]
        )
        # and the HTTP API's answer model keeps every table and the names
        from antal.api.schemas import CountOut

        currency = {"release": None, "extracted": None, "registers": []}
        shown = CountOut.model_validate({**j, "data_currency": currency}).model_dump()
        assert [t["breakdown"] for t in shown["tables"]] == [t["breakdown"] for t in j["tables"]]


def test_episode_tables_are_measured_at_k_times_the_scale_with_the_stated_variance() -> None:
    """`index each` (issue 24): a person is up to K episodes, all in one cell of each leaf
    table at worst: T leaf tables at T·K/ε. The stated variances follow the scale."""
    from antal.privacy.mechanism import noisy_vector

    p = PrivacyParams(epsilon=1.0, threshold=0)
    tables = _chain()
    k = 3
    out, scale = release_tables(tables, ReleasedCount(2610, 2600, 2620, 0), 4.0, p,
                                contribution=k)  # fmt: skip
    assert scale == 2 * k / 1.0
    assert measurement(scale).map(2 * k) == pytest.approx(1.0)
    truth = [tables[0].cells[key] for key in tables[0].domain]
    runs, total_scale = 6000, 2.0
    sq = [0.0] * len(truth)
    mean = [0.0] * len(truth)
    for _ in range(runs):
        total = 2610 + noisy_vector([0], total_scale)[0]
        out, scale = release_tables(tables, ReleasedCount(total, None, None, 0),
                                    dlap_variance(total_scale), p, contribution=k)  # fmt: skip
        for j, (_key, c) in enumerate(out[0].cells):
            e = c.value - truth[j]
            mean[j] += e / runs
            sq[j] += e * e / runs
    stated = level_variances(tables, scale, dlap_variance(total_scale))[0]
    for j in range(len(truth)):
        assert abs((sq[j] - mean[j] ** 2) / stated[j] - 1) < 0.12, (j, sq[j], stated[j])
