"""Generative tests: random valid cohorts over random small extracts; the engine's counts
and breakdown must equal the pure-Python reference evaluator's, on every backend."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import hypothesis.strategies as st
import pytest
from conftest import write_extracts
from hypothesis import HealthCheck, given, settings

from antal import engine
from antal.catalog import Installation, load_catalog
from antal.catalog.vocabulary import BACKENDS
from antal.engine import ir
from antal.engine.domain import released_tables, roll_up
from antal.engine.reference import evaluate

CAT = load_catalog()
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # CI must be repeatable; widen locally with --hypothesis-seed
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DAY0 = dt.date(2020, 1, 1)
DAYS = 6  # a short calendar, so that events fall on window bounds and on each other often
ICD = ["E11", "E119", "E110", "I21", "I10"]  # few codes: conditions and index meet often
ATC = ["A10BA02", "A10AB01", "B01AF01"]
KVA = ["FNG02", "HAC20", "DT016"]
SITES = ["01001", "01002", "18001", "13001", "13002"]  # Halland's two: Södra and Västra
MVOS = ["101", "141", "999"]  # 999: a code the catalog does not list (in no released cell)

# the day before DAY0 is another year, quarter and month: the calendar dimensions differ
dates = st.integers(-1, DAYS - 1).map(lambda n: DAY0 + dt.timedelta(days=n))
maybe = lambda s: s | st.none()  # noqa: E731


# ---- data ----------------------------------------------------------------------------------


@st.composite
def extracts(draw: st.DrawFn) -> dict[str, list[dict]]:
    n = draw(st.integers(2, 8))
    persons = list(range(1, n + 1))
    person = st.sampled_from(persons)
    t: dict[str, list[dict]] = {}
    t["population"] = [
        {
            "lopnr": p,
            "kon": draw(maybe(st.sampled_from([1, 2]))),
            "fodelsear": draw(st.sampled_from([1950, 1960, 1979, 1980, 2019, 2020])),
            "fodelsemanad": draw(st.integers(1, 12)),
            "lan": draw(maybe(st.sampled_from(["01", "18", "25", "13"]))),
            # Halland's healthcare region is its kommun's: one of each, and unknown
            "kommun": draw(maybe(st.sampled_from(["1380", "1383"]))),
        }
        for p in persons
    ]
    # duplicated population rows (an extract the data check refuses), equal or disagreeing:
    # the engine must still count each person once, as the reference does
    for p in draw(st.lists(person, max_size=2)):
        row = dict(t["population"][p - 1])
        if draw(st.booleans()):
            row["kon"] = draw(maybe(st.sampled_from([1, 2])))
            row["fodelsear"] = draw(st.sampled_from([1950, 1979, 2020]))
        t["population"].append(row)

    def codes_list(pool: list[str], k: int) -> str:
        return " ".join(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=k)))

    t["npr"] = []
    for _ in range(draw(st.integers(4, 24))):
        diag = codes_list(ICD, 3)
        t["npr"].append(
            {
                "lopnr": draw(person),
                "indatum": draw(dates),
                "vardform": "O",
                "sjukhus": draw(maybe(st.sampled_from(SITES))),
                "mvo": draw(maybe(st.sampled_from(MVOS))),
                "hdia": diag.split()[0],
                "diagnos": diag,
                "op": draw(maybe(st.just(None) | st.builds(lambda: None) | st.sampled_from(KVA))),
            }
        )
    for rid, dcol, site in (("lmr", "edatum", False), ("rekvisition", "adm_datum", True)):
        t[rid] = []
        for _ in range(draw(st.integers(2, 10))):
            row = {"lopnr": draw(person), dcol: draw(dates), "atc": draw(st.sampled_from(ATC))}
            if site:
                row["sjukhus"] = draw(st.sampled_from(SITES))
                row["mvo"] = draw(maybe(st.sampled_from(MVOS)))
            t[rid].append(row)
    t["ndr"] = [
        {
            "lopnr": draw(person),
            "regdat": draw(dates),
            "diabetestyp": draw(maybe(st.sampled_from([1, 2]))),
            "hba1c": draw(maybe(st.sampled_from([40.0, 53.0, 53.5, 70.0]))),
            "bmi": draw(maybe(st.sampled_from([22.0, 30.0]))),
        }
        for _ in range(draw(st.integers(2, 10)))
    ]
    dead = draw(st.lists(person, max_size=2, unique=True))
    t["dors"] = [
        {"lopnr": p, "dodsdat": draw(dates), "ulorsak": draw(st.sampled_from(ICD))} for p in dead
    ]
    t["gms"] = [
        {
            "lopnr": draw(person),
            "provdatum": draw(dates),
            "gene": draw(st.sampled_from(["EGFR", "KRAS"])),
            "variant": draw(maybe(st.sampled_from(["p.L858R", "p.G12C"]))),
            "klass": "patogen",
        }
        for _ in range(draw(st.integers(0, 4)))
    ]
    t["optout"] = [
        {
            "lopnr": p,
            "datum": DAY0,
            "andamal": draw(st.sampled_from(["forskning", "kommersiell", "alla"])),
        }
        for p in draw(st.lists(person, max_size=2, unique=True))
    ]
    return t


# ---- cohorts -------------------------------------------------------------------------------


def code_patterns(pool: list[str]) -> st.SearchStrategy[tuple[ir.CodePattern, ...]]:
    pattern = st.builds(
        lambda c, cut, prefix: ir.CodePattern(c[: max(3, len(c) - cut)] if prefix else c, prefix),
        st.sampled_from(pool), st.integers(0, 2), st.booleans(),
    )  # fmt: skip
    return st.lists(pattern, min_size=1, max_size=3).map(tuple)


windows_rel = st.one_of(
    st.builds(lambda lo, span: ir.Window(lo, lo + span), st.integers(-6, 6), st.integers(0, 8)),
    st.builds(lambda lo: ir.Window(lo=lo), st.integers(-3, 3)),
    st.builds(lambda hi: ir.Window(hi=hi), st.integers(-3, 3)),
    st.sampled_from([ir.Window(hi=-1), ir.Window(lo=1), ir.Window(hi=0), ir.Window(lo=0)]),
)
windows_cal = st.builds(
    lambda a, b: ir.Window(start=min(a, b), end=max(a, b)), dates, dates
) | st.builds(lambda a: ir.Window(end=a), dates) | st.builds(lambda a: ir.Window(start=a), dates) | st.just(ir.Window())  # fmt: skip
windows = st.one_of(windows_rel, windows_rel, windows_cal, st.just(ir.Window()))

filters_leaf = st.one_of(
    st.builds(ir.Cmp, st.just("hba1c"), st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), st.sampled_from([53, 53.5, 40.0])),
    st.builds(ir.Cmp, st.just("diabetestyp"), st.sampled_from(["=", "!="]), st.sampled_from([1, 2])),
    st.builds(ir.FIn, st.just("bmi"), st.lists(st.sampled_from([22.0, 30.0]), min_size=1, max_size=2).map(tuple)),
    st.builds(ir.Cmp, st.just("regdat"), st.sampled_from(["<", ">="]), dates),
)  # fmt: skip
ndr_filters = st.recursive(
    filters_leaf,
    lambda f: st.one_of(
        st.lists(f, min_size=2, max_size=2).map(lambda x: ir.FAnd(tuple(x))),
        st.lists(f, min_size=2, max_size=2).map(lambda x: ir.FOr(tuple(x))),
        f.map(ir.FNot),
    ),
    max_leaves=3,
)
gms_filters = st.one_of(
    st.builds(ir.Cmp, st.just("gene"), st.sampled_from(["=", "!="]), st.sampled_from(["EGFR", "KRAS"])),
    st.builds(ir.FIn, st.just("variant"), st.just(("p.L858R",))),
)  # fmt: skip

events = st.one_of(
    st.builds(ir.Diagnosis, code_patterns(ICD), st.booleans()),
    st.builds(ir.Procedure, code_patterns(KVA)),
    st.builds(ir.Drug, code_patterns(ATC), st.sampled_from([(), ("lmr",), ("rekvisition",)])),
    st.builds(ir.Death, st.just(()) | code_patterns(ICD)),
    st.builds(ir.RegisterEvent, st.just("ndr"), maybe(ndr_filters)),
    st.builds(ir.RegisterEvent, st.just("gms"), maybe(gms_filters)),
)
counts = st.builds(ir.Count, st.sampled_from([">=", "<=", "="]), st.integers(0, 2))
event_conds = st.one_of(
    st.builds(ir.EventCond, events, windows, maybe(counts), st.just(False)),
    st.builds(
        lambda f, w: ir.EventCond(ir.RegisterEvent("ndr", f), w, None, True), ndr_filters, windows
    ),
)
demographics = st.one_of(
    st.builds(lambda a, s: ir.Age(a, a + s), st.integers(0, 70), st.integers(0, 40)),
    st.builds(ir.Sex, st.sampled_from(["female", "male"])),
    st.builds(ir.RegionIn, st.lists(st.sampled_from(["01", "18", "25"]), min_size=1, max_size=2).map(tuple)),
)  # fmt: skip
conditions = st.recursive(
    event_conds | demographics,
    lambda c: st.one_of(
        st.lists(c, min_size=2, max_size=3).map(lambda x: ir.AllOf(tuple(x))),
        st.lists(c, min_size=2, max_size=3).map(lambda x: ir.AnyOf(tuple(x))),
        c.map(ir.Not),
    ),
    max_leaves=4,
)
index_events = st.one_of(
    st.builds(ir.Diagnosis, code_patterns(ICD), st.booleans()),
    st.builds(ir.Drug, code_patterns(ATC), st.sampled_from([(), ("rekvisition",)])),
    st.builds(ir.RegisterEvent, st.just("ndr"), maybe(ndr_filters)),
)
indexes = st.one_of(
    st.builds(
        ir.IndexEvent,
        st.sampled_from(["first", "last"]),
        index_events,
        st.just(ir.Window()) | windows_cal,
    ),
    st.builds(ir.IndexDate, dates),
    # every qualifying event with a washout: episodes (person, index date) are the unit
    st.builds(
        lambda ev, a, b, n: ir.IndexEvent("each", ev, ir.Window(start=min(a, b), end=max(a, b)), n),
        index_events, dates, dates, st.integers(0, 2),
    ),
)  # fmt: skip
# plain event conditions carry most of the semantics: draw them most often
step_conditions = st.one_of(event_conds, event_conds, event_conds, demographics, conditions)
steps = st.builds(ir.Step, st.sampled_from(["include", "exclude"]), step_conditions, st.just(None))
DIMS = [ir.Dim("region"), ir.Dim("sex"), ir.Dim("year"), ir.Dim("hospital"), ir.AgeBand(10),
        ir.AgeBand(25), ir.Dim("sjukvardsregion"), ir.Dim("month"), ir.Dim("quarter"),
        ir.Dim("clinic")]  # fmt: skip
dims = st.lists(st.sampled_from(DIMS), min_size=1, max_size=2,
                unique_by=lambda d: getattr(d, "name", "age"))  # fmt: skip
ROLLS = ("hospital", "month", "quarter")  # the dimensions with levels (engine/hierarchy.py)


@st.composite
def cohorts(draw: st.DrawFn) -> ir.Cohort:
    """A cohort with up to three `report by` tables (some rolled up) that check: hospital
    and clinic on an index at a hospital, months and quarters on a bounded index window."""
    index = draw(indexes)
    hospital_ok = isinstance(index, ir.IndexEvent) and (
        isinstance(index.event, ir.Diagnosis)
        or (isinstance(index.event, ir.Drug) and index.event.sources == ("rekvisition",))
    )
    calendar_ok = isinstance(index, ir.IndexDate) or (
        index.window.start is not None and index.window.end is not None
    )
    reports: list[ir.Report] = []
    for table in draw(st.lists(dims, max_size=3)):
        names = {getattr(d, "name", "age") for d in table}
        if not hospital_ok:
            table = [d for d in table if getattr(d, "name", "") not in ("hospital", "clinic")]
        if not calendar_ok:
            table = [d for d in table if getattr(d, "name", "") not in ("month", "quarter")]
        names = frozenset(getattr(d, "name", "age") for d in table)
        if not table or names in {frozenset(getattr(d, "name", "age") for d in r.dims)
                                  for r in reports}:  # fmt: skip
            continue
        rollup = len(names & set(ROLLS)) == 1 and draw(st.booleans())
        reports.append(ir.Report(tuple(table), rollup))
    return ir.Cohort(index, tuple(draw(st.lists(steps, min_size=1, max_size=4))), tuple(reports))


# ---- the property ----------------------------------------------------------------------------


def run_both(
    co: ir.Cohort,
    tables: dict[str, list[dict]],
    purpose: str,
    backend: str = "duckdb",
    place: Callable[..., Installation] | None = None,
) -> None:
    checked = engine.check(co, CAT)
    ref = evaluate(checked, tables, CAT, purpose=purpose)
    with tempfile.TemporaryDirectory() as d:
        if place is None:
            inst = Installation.from_data_dir(write_extracts(tables, Path(d)))
        else:
            inst = place(backend, tables, Path(d))
        got = engine.count_exact(checked, inst, CAT, purpose=purpose, backend=backend)
    assert list(got.counts) == ref.counts(), (got.counts, ref.counts())
    assert len(got.tables) == len(ref.tables) == len(co.reports)
    for table, want in zip(got.tables, ref.tables, strict=True):
        assert {tuple(k): n for k, n in table.cells} == want
    # and what is released: every table's cells within its public domain, its roll-up
    # levels the sums of the reference's cells (engine/domain.py, from the oracle's counts)
    released = released_tables(checked, CAT)
    for t, cells in zip(released, roll_up(released, list(ref.tables)), strict=True):
        assert set(cells) <= set(t.domain)
        if t.parent is not None and t.up is not None:
            assert sum(cells.values()) <= ref.counts()[-1]
    for r in range(len(co.reports)):
        tops = [
            sum(c.values())
            for t, c in zip(released, roll_up(released, list(ref.tables)), strict=True)
            if t.report == r
        ]
        assert len(set(tops)) == 1, tops  # every level of a table counts the same persons


# Examples per backend. Spark answers a statement in seconds, not milliseconds: few by
# default, more with ANTAL_SPARK_EXAMPLES (e.g. 150 for a nightly run).
EXAMPLES: dict[str, int] = {
    "duckdb": 150,
    "postgres": 100,
    "spark": int(os.environ.get("ANTAL_SPARK_EXAMPLES", "8")),
}
assert set(EXAMPLES) == set(BACKENDS), "every backend is a test parameter"


@pytest.mark.parametrize("backend", BACKENDS)
def test_engine_equals_reference(backend: str, place: Callable[..., Installation]) -> None:
    """Random cohorts over random extracts: every backend's counts and tables are the
    reference evaluator's."""

    @settings(SETTINGS, max_examples=EXAMPLES[backend])
    @given(co=cohorts(), tables=extracts(), purpose=st.sampled_from(["forskning", "kommersiell"]))
    def same(co: ir.Cohort, tables: dict, purpose: str) -> None:
        run_both(co, tables, purpose, backend, place)

    same()


def _kinds(node: object, out: set[str]) -> None:
    if isinstance(node, ir.Node):
        out.add(node.kind)
        for f in dataclasses.fields(node):  # type: ignore[arg-type]
            _kinds(getattr(node, f.name), out)
    elif isinstance(node, tuple):
        for x in node:
            _kinds(x, out)


def test_every_ir_node_kind_is_generated() -> None:
    """If the IR grows a node the generators never produce, the property above is blind to it."""
    seen: set[str] = set()

    @settings(max_examples=300, derandomize=True, deadline=None, database=None)
    @given(co=cohorts())
    def collect(co: ir.Cohort) -> None:
        _kinds(co, seen)
        _kinds(co.steps, seen)

    collect()
    missing = set(ir._NODES) - seen
    assert not missing, f"never generated: {sorted(missing)}"
