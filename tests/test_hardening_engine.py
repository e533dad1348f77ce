"""Issue 8, the engine's part: every number, size and nesting the language and the IR
accept is bounded (antal.engine.limits), hostile text gives a CohortError with line and
column (never another exception), tiny inputs cannot exhaust the parser, and code ranges
compile to comparisons that mean exactly what the reference evaluator says."""

from __future__ import annotations

import copy
import datetime as dt
import math
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import write_extracts

from antal import engine
from antal.catalog import Installation, load_catalog
from antal.engine import ir, limits
from antal.engine.builder import Cohort, diagnosis, first, sex
from antal.engine.codes import valid_code
from antal.engine.errors import CohortError, IRInvalid
from antal.engine.reference import evaluate

CAT = load_catalog()
HEAD = "index first diagnosis E11*\n"


def _run_text(text: str) -> str:
    """Parse, check and compile; the SQL."""
    return engine.compile_cohort(engine.check(engine.parse(text), CAT), CAT).sql()


def _cohort_error(text: str) -> CohortError:
    with pytest.raises(CohortError) as e:
        _run_text(text)
    d = e.value.diagnostics[0]
    assert d.line >= 1 and d.column >= 1, d
    return e.value


def _fast(fn: Any, seconds: float = 5.0) -> Any:
    """Run fn; a hostile input must be answered within `seconds` of this process's CPU
    time: a bound on the attack (a quadratic or exponential blow-up takes minutes), not a
    performance target. CPU time, not the wall clock, so that a busy machine does not fail
    it."""
    t = time.process_time()
    out = fn()
    assert time.process_time() - t < seconds
    return out


# ---- 1. bounds on every number in the text -------------------------------------------------

BAD_VALUES = [
    (HEAD + "include diagnosis I10* within 2147483647 days before index", 2, "window"),
    (
        HEAD + f"include diagnosis I10* within {limits.WINDOW_DAYS_MAX + 1} days after index",
        2,
        "window",
    ),
    (HEAD + "include diagnosis I10* within 5..99999999999999999999 days before index", 2, "window"),
    (HEAD + f"include at least {limits.COUNT_MAX + 1} diagnosis I10*", 2, "count"),
    (HEAD + "include exactly 1" + "0" * 5000 + " diagnosis I10*", 2, "count"),
    (HEAD + f"include age 18..{limits.AGE_MAX + 1}", 2, "age"),
    (HEAD + "report by age 0", 2, "age band"),
    (HEAD + f"report by age {limits.AGE_MAX + 1}", 2, "age band"),
    ("index first diagnosis E11* before 0001-01-01", 1, "dates"),
    ("index first diagnosis E11* after 9999-12-31", 1, "dates"),
    ("index 1899-12-31", 1, "dates"),
    (HEAD + "include diagnosis I10* between 2000-01-01 and 2101-01-01", 2, "dates"),
    (HEAD + "include ndr.hba1c > " + "9" * 5000, 2, "numbers"),
    (HEAD + "include ndr.hba1c > " + "9" * 400 + ".5", 2, "numbers"),  # float('inf')
    (HEAD + "include ndr.hba1c > 1000000000000.5", 2, "numbers"),
    (HEAD + "include ndr.regdat < 9999-12-31", 2, "dates"),
]


@pytest.mark.parametrize(("text", "line", "word"), BAD_VALUES)
def test_out_of_range_values_are_cohort_errors_at_their_place(
    text: str, line: int, word: str
) -> None:
    err = _cohort_error(text)
    assert err.diagnostics[0].line == line
    assert word in err.diagnostics[0].message


def test_the_largest_accepted_values_check_and_compile() -> None:
    sql = _run_text(
        HEAD
        + f"include at least {limits.COUNT_MAX} diagnosis I10* within {limits.WINDOW_DAYS_MAX} days of index\n"
        + f"include age 0..{limits.AGE_MAX}\n"
        + "include ndr.hba1c > 1000000000000 and ndr.bmi < -999999999999.5\n"
        + f"include diagnosis I10* between {limits.DATE_MIN} and {limits.DATE_MAX}\n"
        + f"report by age {limits.AGE_MAX}"
    )
    assert "inf" not in sql.lower().replace("info", "")


@pytest.mark.parametrize(
    ("literal", "column"),
    [
        (r'"a\x41"', 3),
        (r'"\N{EM DASH}"', 2),
        (r'"\u12"', 2),
        ('"a\rb"', 3),
        ('"a\x00b"', 3),
        (r'"a\tb"', 3),
    ],
)
def test_strings_accept_only_the_documented_escapes(literal: str, column: int) -> None:
    err = _cohort_error(f"cohort {literal}\n{HEAD}")
    d = err.diagnostics[0]
    assert (d.line, d.column) == (1, 8 + column - 1)


def test_documented_escapes_and_unicode_still_work() -> None:
    co = engine.parse('cohort "Å \\"x\\" \\\\ y"\n' + HEAD + 'include "Ålder \\"40\\"": age 40..75')
    assert co.title == 'Å "x" \\ y'
    assert co.steps[0].label == 'Ålder "40"'


def test_a_long_string_is_refused() -> None:
    err = _cohort_error(f'cohort "{"x" * (limits.MAX_STRING_CHARS + 1)}"\n{HEAD}')
    assert "string" in str(err)


# ---- 1. bounds in the IR's JSON form ----------------------------------------------------------

BASE = ir.to_json(engine.parse(HEAD + "include diagnosis I10* within 30 days before index"))


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return d


COND = ["steps", 0, "cond"]
BAD_IR = [
    _with([*COND, "window"], {"kind": "window", "lo": -1e30, "hi": 0}),
    _with([*COND, "window"], {"kind": "window", "lo": -2147483647, "hi": 0}),
    _with([*COND, "window"], {"kind": "window", "lo": 5, "hi": 1}),
    _with([*COND, "window"], {"kind": "window", "lo": -(10**5000), "hi": 0}),
    _with([*COND, "window"], {"kind": "window", "start": {"date": "0001-01-01"}}),
    _with(
        [*COND, "window"],
        {"kind": "window", "start": {"date": "2020-01-02"}, "end": {"date": "2020-01-01"}},
    ),
    _with([*COND, "window"], {"kind": "window", "lo": "x"}),
    _with([*COND, "window"], {"kind": "window", "lo": True}),
    _with(["index", "event", "codes"], [{"kind": "code", "code": "E11\n", "prefix": True}]),
    _with(["index", "event", "codes"], [{"kind": "code", "code": "E11'; drop", "prefix": True}]),
    _with(["index", "event", "codes"], [{"kind": "code", "code": "E" * 17}]),
    _with(["index", "event", "codes"], "E11"),
    _with(["index", "event"], []),
    _with(["index"], {"kind": 5}),
    _with(
        COND,
        {
            "kind": "event_cond",
            "count": {"kind": "count", "op": ">=", "n": 10**9},
            "event": {"kind": "diagnosis", "codes": [{"kind": "code", "code": "I10"}]},
        },
    ),
    _with(COND, {"kind": "age", "lo": 0, "hi": 500}),
    _with(COND, {"kind": "age", "lo": 50, "hi": 40}),
    _with(["report"], [{"kind": "age_band", "width": 0}]),
    _with(["report"], [{"kind": "dim", "name": "sex"}] * (limits.MAX_REPORT_DIMS + 1)),
    _with(["title"], "x" * (limits.MAX_STRING_CHARS + 1)),
    _with(["steps"], [BASE["steps"][0]] * (limits.MAX_CRITERIA + 1)),
    _with(COND, {"kind": "region", "codes": ["01"] * (limits.MAX_VALUES_PER_LIST + 1)}),
]
for _value in (math.nan, math.inf, -math.inf, 1e13):
    BAD_IR.append(
        _with(COND, {"kind": "event_cond", "event": {"kind": "register", "register": "ndr",
              "filter": {"kind": "cmp", "var": "hba1c", "op": ">", "value": _value}}})
    )  # fmt: skip


@pytest.mark.parametrize("data", BAD_IR)
def test_hostile_ir_is_an_ir_invalid_error(data: dict[str, Any]) -> None:
    with pytest.raises(IRInvalid):
        _fast(lambda: ir.from_json(data))


def test_a_million_codes_and_deep_nesting_are_refused_fast() -> None:
    million = _with(["index", "event", "codes"], [{"kind": "code", "code": "E11"}] * 1_000_000)
    with pytest.raises(IRInvalid, match="too large"):
        _fast(lambda: ir.from_json(million), 1.0)
    for depth in (limits.MAX_DEPTH + 1, 999, 100_000):
        c: dict[str, Any] = {"kind": "sex", "sex": "male"}
        for _ in range(depth):
            c = {"kind": "not", "item": c}
        with pytest.raises(IRInvalid, match="deep"):
            _fast(lambda c=c: ir.from_json(_with(COND, c)))


def test_ir_within_the_bounds_round_trips() -> None:
    c: dict[str, Any] = {"kind": "sex", "sex": "male"}
    for _ in range(limits.MAX_DEPTH):
        c = {"kind": "not", "item": c}
    node = ir.from_json(_with(COND, c))
    assert isinstance(node, ir.Cohort)
    engine.compile_cohort(engine.check(node, CAT), CAT).sql()


def test_the_checker_bounds_builder_ir_too() -> None:
    deep = sex("male")
    for _ in range(999):
        deep = ~deep
    co = Cohort("deep").index(first(diagnosis("E11*"))).include(deep).ir
    with pytest.raises(CohortError, match="deep"):
        _fast(lambda: engine.check(co, CAT))
    wide = dataclasses_replace_window(co, -2147483647)
    with pytest.raises(CohortError, match="window"):
        engine.check(wide, CAT)


def dataclasses_replace_window(co: ir.Cohort, lo: int) -> ir.Cohort:
    import dataclasses

    cond = ir.EventCond(ir.Diagnosis((ir.CodePattern("I10", True),)), ir.Window(lo=lo, hi=0))
    return dataclasses.replace(co, steps=(ir.Step("include", cond),))


def test_codes_are_matched_whole() -> None:
    assert not valid_code("E11\n", True, "ICD-10-SE")
    assert not valid_code("E11\n", False, "ICD-10-SE")
    assert valid_code("E11", True, "ICD-10-SE")
    co = dataclasses_replace_window(engine.parse(HEAD), -1)
    bad = ir.Cohort(
        ir.IndexEvent("first", ir.Diagnosis((ir.CodePattern("E11\n", True),))), co.steps
    )
    with pytest.raises(CohortError):
        engine.check(bad, CAT)


def test_the_compiler_never_renders_a_non_finite_number() -> None:
    from antal.engine.compiler import _NUM

    for v in (math.inf, -math.inf, math.nan, True):
        with pytest.raises(ValueError):
            _NUM(v)
    assert _NUM(1e12).sql() == "1000000000000.0"


# ---- 2. denial of service ---------------------------------------------------------------------


def test_the_codeset_chain_bomb_is_fast() -> None:
    for levels in (8, 12):
        text = HEAD.replace("E11*", f"@a{levels}") + "codeset a0 = E11*, I21*\n"
        text += "".join(
            f"codeset a{i} = " + ", ".join([f"@a{i - 1}"] * 10) + "\n" for i in range(1, levels + 1)
        )
        co = _fast(lambda text=text: engine.parse(text))
        assert [str(c) for c in co.index.event.codes] == ["E11*", "I21*"]  # type: ignore[union-attr]


def test_a_wide_codeset_fan_out_hits_the_expansion_limit() -> None:
    # 200 sets of 2,600 categories, each used by many lists: real work, refused early
    text = HEAD + "codeset big = A00..Z99\n"
    text += "".join(f"include diagnosis @big, I{i % 100:02d}\n" for i in range(90))
    err = _fast(lambda: _cohort_error(text))
    assert "expand" in str(err)


def test_a_range_list_bomb_is_fast() -> None:
    # 100k characters: refused by size; the most ranges a list may hold: merged, fast
    _fast(lambda: _cohort_error("index first diagnosis " + "A00..Z99, " * 10_000 + "E11"))
    items = ", ".join(["A00..Z99"] * limits.MAX_CODES_PER_SET)
    sql = _fast(lambda: _run_text("index first diagnosis " + items))
    # one regular expression per column read: npr's diagnoses and its external causes
    diagnosis_columns = len(CAT.sources_of("diagnosis"))
    assert sql.count("REGEXP_MATCHES") == diagnosis_columns and "LIKE" not in sql
    err = _fast(lambda: _cohort_error("index first diagnosis " + items + ", E11"))
    assert "at most" in str(err)


@pytest.mark.parametrize(
    "text",
    [
        HEAD + "include " + "not " * 5000 + "sex male",
        HEAD + "include " + "(" * 9000 + "sex male" + ")" * 9000,
        HEAD + "include " + "(not " * 3000 + "sex male" + ")" * 3000,
        HEAD + "include " + "sex male and (" * 500 + "sex male" + ")" * 500,
        HEAD + "include ndr where " + "not " * 5000 + "hba1c > 1",
        HEAD + "include ndr where " + "(" * 5000 + "hba1c > 1" + ")" * 5000,
        HEAD + "include " + " or ".join(["not " * 32 + "(sex male)"] * 300),
        HEAD + "include " + "not " * 30 + "(" + "not " * 30 + "(sex male))",
    ],
    ids=["not", "paren", "not-paren", "and-paren", "fnot", "fparen", "wide-or", "not-not"],
)
def test_deep_nesting_is_a_cohort_error(text: str) -> None:
    err = _fast(lambda: _cohort_error(text))
    assert "deep" in str(err)


def test_nesting_at_the_limit_is_accepted() -> None:
    _run_text(HEAD + "include " + "not " * limits.MAX_DEPTH + "sex male")
    _run_text(HEAD + "include " + "(" * limits.MAX_DEPTH + "sex male" + ")" * limits.MAX_DEPTH)


def test_sizes_are_bounded() -> None:
    _cohort_error(HEAD + "# " + "x" * limits.MAX_TEXT_BYTES)
    _cohort_error(
        HEAD + "".join(f"include age {i % 90}..99\n" for i in range(limits.MAX_CRITERIA + 1))
    )
    _cohort_error(HEAD + "".join(f"codeset c{i} = E11\n" for i in range(limits.MAX_CODESETS + 1)))
    _cohort_error(HEAD + "include region " + ", ".join(["01"] * (limits.MAX_VALUES_PER_LIST + 1)))
    _cohort_error(
        HEAD
        + "include npr.sjukhus in ("
        + ", ".join(['"a"'] * (limits.MAX_VALUES_PER_LIST + 1))
        + ")"
    )
    _cohort_error(HEAD + "report by region, sex, year, hospital, age 10")
    _cohort_error(HEAD + "include diagnosis E" + "1" * 40)


# ---- 2. ranges compile to comparisons that mean what the reference says -----------------------

# codes chosen to sit at every edge of a comparison: short, between decades, past '9'
EDGE_CODES = ["I2", "I", "I19", "I199", "I20", "I209", "I25X", "I26", "I2:", "I2A", "I3A", "I30",
              "I31", "I3", "J00", "A00", "Z99", "Z999", "I10", "i21", "", "I20 I99", "E11"]  # fmt: skip


def _edge_tables() -> dict[str, list[dict[str, Any]]]:
    day = dt.date(2020, 1, 1)
    pop, npr, dors = [], [], []
    for i, code in enumerate(EDGE_CODES, start=1):
        pop.append(
            {"lopnr": i, "kon": 1 + i % 2, "fodelsear": 1960, "fodelsemanad": 1, "lan": "01"}
        )
        npr.append({"lopnr": i, "indatum": day, "hdia": code, "diagnos": f"X99 {code}"})
        dors.append({"lopnr": i, "dodsdat": day, "ulorsak": code})
    return {"population": pop, "npr": npr, "dors": dors}


@pytest.mark.parametrize(
    "codes", ["I20..I25", "I20..I29", "I19..I31", "A00..Z99", "I20..I29, I30", "I25..J00"]
)
@pytest.mark.parametrize("event", ["diagnosis {} main", "diagnosis {}", "death {}"])
def test_ranges_on_duckdb_equal_the_reference(tmp_path: Path, codes: str, event: str) -> None:
    tables = _edge_tables()
    co = engine.check(engine.parse(f"index first {event.format(codes)}"), CAT)
    inst = Installation.from_data_dir(write_extracts(tables, tmp_path))
    got = engine.count_exact(co, inst, CAT)
    ref = evaluate(co, tables, CAT)
    assert list(got.counts) == ref.counts()
    assert ref.counts()[0] > 0  # the edge rows do reach the comparison


def test_the_largest_window_runs_on_rows_that_reach_it(tmp_path: Path) -> None:
    day = dt.date(2000, 1, 1)
    n = limits.WINDOW_DAYS_MAX
    pop = [
        {"lopnr": i, "kon": 1, "fodelsear": 1950, "fodelsemanad": 1, "lan": "01"} for i in (1, 2, 3)
    ]
    npr = [{"lopnr": i, "indatum": day, "hdia": "E11"} for i in (1, 2, 3)]
    npr += [
        {"lopnr": 1, "indatum": day - dt.timedelta(days=n), "hdia": "I10"},
        {"lopnr": 2, "indatum": day - dt.timedelta(days=n + 1), "hdia": "I10"},
        {"lopnr": 3, "indatum": day + dt.timedelta(days=n), "hdia": "I10"},
    ]
    tables = {"population": pop, "npr": npr}
    inst = Installation.from_data_dir(write_extracts(tables, tmp_path))
    for text in (
        f"index first diagnosis E11* main\ninclude diagnosis I10* main within {n} days before index",
        f"index first diagnosis E11* main\ninclude diagnosis I10* main within {n} days of index",
        f"index first diagnosis E11* main\ninclude diagnosis I10* main within {n}..{n} days after index",
    ):
        co = engine.check(engine.parse(text), CAT)
        got = engine.count_exact(co, inst, CAT)
        assert list(got.counts) == evaluate(co, tables, CAT).counts()


def test_an_index_date_without_a_register_of_deaths_is_a_cohort_error() -> None:
    """Who was alive on the date needs deaths; a catalog without them (an admin's change)
    made `validate` and `compile` a 500 (a ValueError in the compiler)."""
    import dataclasses

    no_deaths = dataclasses.replace(
        CAT, registers={k: r for k, r in CAT.registers.items() if k != "dors"}
    )
    assert no_deaths.sources_of("death") == []
    with pytest.raises(CohortError) as e:
        engine.check(engine.parse("index 2024-01-01\ninclude age 18..80\n"), no_deaths)
    (d,) = e.value.diagnostics
    assert (d.line, d.column, d.code) == (1, 1, "no_provider") and "death" in d.message


def test_a_builder_range_that_runs_backwards_is_an_error() -> None:
    with pytest.raises(ValueError, match="runs from the lower category up"):
        diagnosis("I25..I20")
