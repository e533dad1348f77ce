"""The cohort language: parsing, the IR's JSON form and hash, the builder, and errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from antal import engine
from antal.catalog import load_catalog
from antal.engine import CohortError, ir
from antal.engine.builder import Cohort, age, diagnosis, drug, first, register, var
from antal.engine.errors import IRInvalid

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.cohort"))
CAT = load_catalog()


def checked(text: str) -> ir.Cohort:
    return engine.check(engine.parse(text), CAT)


def test_there_are_enough_examples() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_check_and_round_trip_json(path: Path) -> None:
    co = engine.parse(path.read_text(encoding="utf-8"))
    assert ir.from_json(ir.to_json(co)) == co
    c = engine.check(co, CAT)
    assert ir.from_json(ir.to_json(c)) == c
    assert co.title and co.steps


def test_windows_mean_what_the_spec_table_says() -> None:
    def w(text: str) -> ir.Window:
        co = engine.parse(f"index first diagnosis E11\ninclude drug A10* {text}")
        return co.steps[0].cond.window  # type: ignore[union-attr]

    assert w("before index") == ir.Window(hi=-1)
    assert w("after index") == ir.Window(lo=1)
    assert w("on or before index") == ir.Window(hi=0)
    assert w("on or after index") == ir.Window(lo=0)
    assert w("within 7..30 days before index") == ir.Window(lo=-30, hi=-7)
    assert w("within 7..30 days after index") == ir.Window(lo=7, hi=30)
    assert w("within 14 days of index") == ir.Window(lo=-14, hi=14)
    assert w("within 365 days before index") == ir.Window(lo=-365, hi=0)
    assert w("between 2020-01-01 and 2020-12-31") == ir.Window(
        start=dt.date(2020, 1, 1), end=dt.date(2020, 12, 31)
    )
    assert w("before 2020-03-01") == ir.Window(end=dt.date(2020, 2, 29))
    assert w("after 2020-02-28") == ir.Window(start=dt.date(2020, 2, 29))
    assert w("") == ir.Window()


def test_codes_are_normalised_and_ranges_expand() -> None:
    co = engine.parse("codeset a = E11.9, I20..I22, @b\ncodeset b = Z99*\nindex first diagnosis @a")
    codes = co.index.event.codes  # type: ignore[union-attr]
    assert [str(c) for c in codes] == ["E119", "I20*", "I21*", "I22*", "Z99*"]


def test_spellings_of_one_cohort_hash_the_same() -> None:
    a = checked(
        "index first diagnosis E11*, E119 between 2015-01-01 and 2023-12-31\n"
        'include "x": drug A10BA02 within 0..365 days after index\n'
        "exclude diagnosis I22*, I21*\n"
    )
    b = checked(
        'cohort "another title"\n'
        "codeset d = E11*\n"
        "# comments and blank lines do not matter\n\n"
        "index first diagnosis @d between 2015-01-01 and 2023-12-31\n"
        'include "y": drug A10BA02 in rekvisition, lmr within 0..365 days after index\n'
        "exclude (diagnosis I21*, I22*)\n"
    )
    assert ir.ir_hash(a) == ir.ir_hash(b)
    c = checked("index first diagnosis E11* between 2015-01-01 and 2023-12-31\n"
                "include drug A10BA02 within 0..366 days after index\nexclude diagnosis I21*, I22*")  # fmt: skip
    assert ir.ir_hash(a) != ir.ir_hash(c)


def test_builder_produces_the_same_ir_as_the_text() -> None:
    text = (Path(__file__).parent.parent / "examples" / "t2d_metformin.cohort").read_text()
    metformin = (  # alone and in every fixed combination (the example's code sets, in order)
        "A10BA02",
        "A10BD02, A10BD03, A10BD05, A10BD14, A10BD17, A10BD26",
        "A10BD07, A10BD08, A10BD10, A10BD11, A10BD13, A10BD18, A10BD22",
        "A10BD15, A10BD16, A10BD20, A10BD23, A10BD25, A10BD27",
    )
    built = (
        Cohort("New metformin users with type 2 diabetes, uncontrolled on it, 40-75")
        .index(first(drug(*metformin, sources=["lmr"])).between("2015-01-01", "2023-12-31"))
        .include(age(40, 75), "Age 40-75 at the start")
        .exclude(
            drug("A10*", sources=["lmr"]).within(1, 1825, "before"),
            "Diabetes drug in the 5 years before",
        )
        .include(
            register("ndr").where(var("diabetestyp") == 2).within_days(365),
            "Type 2 diabetes in NDR within a year",
        )
        .include(
            register("ndr").where(var("hba1c") > 53).latest().within(180, 730, "after"),
            "HbA1c > 53 on metformin",
        )
        .exclude(diagnosis("E10*"), "Type 1 diabetes")
        .exclude(diagnosis("I21*", "I22*").before_index(), "Earlier MI")
        .exclude(
            drug("A10A*", sources=["lmr"]).within(0, 730, "after"), "Insulin in the 2 years after"
        )
        .report("region", "sex")
    )
    assert built.ir == engine.parse(text)


def test_filters_and_conditions_tell_their_and_apart() -> None:
    co = engine.parse(
        "index first diagnosis C34*\n"
        'include gms where gene = "EGFR" and variant = "p.L858R" and age 18..80 or sex female\n'
        "include ndr where not (hba1c > 53 or bmi < 20) and diagnosis E11*\n"
    )
    s1, s2 = (s.cond for s in co.steps)
    assert isinstance(s1, ir.AnyOf)
    left = s1.items[0]
    assert isinstance(left, ir.AllOf) and isinstance(left.items[1], ir.Age)
    assert isinstance(left.items[0].event.filter, ir.FAnd)  # type: ignore[union-attr]
    assert isinstance(s2, ir.AllOf) and isinstance(s2.items[0].event.filter, ir.FNot)  # type: ignore[union-attr]


def test_continuation_inside_parentheses() -> None:
    co = engine.parse("index first diagnosis E11\ninclude (age 40..75\n   and sex male)\n")
    assert isinstance(co.steps[0].cond, ir.AllOf)


def test_unlabelled_steps_are_named_by_their_text() -> None:
    co = engine.parse("index first diagnosis E11\nexclude   diagnosis I21*   before index  # why\n")
    assert co.steps[0].label == "diagnosis I21* before index"


@pytest.mark.parametrize("colon", [":", " :", ":  ", "\t: "])
def test_a_colon_without_a_label_is_the_unlabelled_form(colon: str) -> None:
    """`include: C` and `exclude: C` mean `include C` and `exclude C` (issue 9)."""
    plain = engine.parse("index first diagnosis E11\ninclude age 40..75\nexclude diagnosis I21*\n")
    text = f"index first diagnosis E11\ninclude{colon}age 40..75\nexclude{colon}diagnosis I21*\n"
    co = engine.parse(text)
    assert co == plain
    assert [(s.action, s.label) for s in co.steps] == [
        ("include", "age 40..75"),
        ("exclude", "diagnosis I21*"),
    ]
    assert ir.ir_hash(checked(text)) == ir.ir_hash(
        checked("index first diagnosis E11\ninclude age 40..75\nexclude diagnosis I21*\n")
    )


# ---- errors: the exact message and position ------------------------------------------------

_EACH_HINT = "e.g. `index each diagnosis I50* between 2023-01-01 and 2025-09-30, washout 365 days`"
ERRORS = [
    # (cohort, line, column, message start, hint or None)
    ("index first diagnosis e11", 1, 23, "unexpected 'e11'", "codes are written in upper case: 'E11'"),
    ("index first diagnosis A10BA02", 1, 23,
     "A10BA02 is not an ICD-10-SE code for `diagnosis`", "it looks like an ATC code: use `drug`"),
    ("index first drug E11*", 1, 18, "E11* is not an ATC code for `drug`",
     "it looks like an ICD-10-SE code: use `diagnosis`"),
    ("index first diagnosis E11\ninclude nrd.hba1c > 5", 2, 9,
     "unknown register 'nrd'", "did you mean 'ndr'?"),
    ("index first diagnosis E11\ninclude ndr.hbac1 > 5", 2, 13,
     "register 'ndr' has no variable 'hbac1'", "did you mean 'hba1c'?"),
    ('index first diagnosis E11\ninclude nkbc.her2 = "positve"', 2, 14,
     '"positve" is not a value of \'nkbc.her2\'', 'did you mean "positiv"?'),
    ('index first diagnosis E11\ninclude ndr.hba1c > "high"', 2, 13,
     "'ndr.hba1c' is a number; \"high\" is not", None),
    ("index first diagnosis E11\ninclude drug A10* in lrm", 2, 9,
     "'lrm' is not a source of drugs", "did you mean 'lmr'?"),
    ("index first diagnosis E11 after index", 1, 27,
     "the window of an index may only be a calendar window", None),
    ("index 2020-01-01\nreport by hospital", 2, 11,
     "`report by hospital` needs an index event at a hospital", None),
    ("index first drug A10* in lmr\nreport by hospital", 2, 11,
     "`report by hospital` needs an index event at a hospital; lmr records no hospital", None),
    ("include age 40..75", 1, 1, "a cohort needs an `index` statement", None),
    ("index first diagnosis E11\nindex last diagnosis E11", 2, 1,
     "a cohort has exactly one `index`", None),
    ("index first diagnosis @t2d", 1, 23, "unknown code set '@t2d'", None),
    ("codeset a = E11\nindex first diagnosis @aa", 2, 23, "unknown code set '@aa'", "did you mean '@a'?"),
    ("codeset a = @b\ncodeset b = @a\nindex first diagnosis @a", 2, 14,
     "code sets refer to each other in a cycle", None),
    ("index first diagnosis E11\ninclude age 75..40", 2, 13, "age 75..40 is empty", None),
    ("index first diagnosis E11\ninclude age 40..", 2, 17, "unexpected end of line", None),
    ("index first diagnosis E11 between 2020-02-30 and 2020-03-01", 1, 35,
     "2020-02-30 is not a valid date", None),
    ("index first diagnosis I25..I20", 1, 23, "range I25..I20 is empty", None),
    ("index first diagnosis E11\ninclude region 180", 2, 16,
     "region code 180 is not a two-digit län code", None),
    ("index first diagnosis E11\ninclude latest diagnosis I21*", 2, 9,
     "`latest` needs a register filter", None),
    ("index first diagnosis E11\nreport by region, region", 2, 19,
     "`region` is listed twice in `report by`", None),
    ('index first diagnosis E11\ninclude "x" age 1..2', 2, 13, "unexpected 'age'; expected ':'", None),
    ("index first diagnosis E11\ninclude :: age 1..2", 2, 10, "unexpected ':'", None),
    ("index first diagnosis E11\ninclude 'x': age 1..2", 2, 9, "unexpected character \"'\"",
     'strings use double quotes: "like this"'),
    ("index first diagnosis E11\ninclude population.kon = 1", 2, 9,
     "register 'population' has no date, so it has no events", None),
    ("index first diagnosis E11*\ninclude npr where hdia in (\"J441\", \"e11.9\")", 2, 19,
     '"e11.9" is not a stored ICD-10-SE code',
     'give the whole code as stored ("E119"), or match codes by prefix with an event '
     "(e.g. `diagnosis J44*`, `drug A10B*`)"),
    ("index first diagnosis E11*\ninclude npr where diagnos = \"E11\"", 2, 19,
     "'npr.diagnos' holds a list of codes separated by spaces",
     "match one of its codes with an event, e.g. `diagnosis E11*`"),
    # `index each`: a window with both ends and a washout bound the episodes of a person
    ("index each diagnosis I50*, washout 30 days", 1, 7,
     "`index each` needs a window with both ends", _EACH_HINT),
    ("index each diagnosis I50* after 2020-01-01, washout 30 days", 1, 27,
     "`index each` needs a window with both ends", _EACH_HINT),
    ("index each diagnosis I50* within 30 days of index, washout 30 days", 1, 27,
     "`index each` needs a window with both ends", _EACH_HINT),
    ("index each diagnosis I50* between 2020-01-01 and 2020-12-31", 1, 60,
     "`index each` needs a washout", _EACH_HINT),
    ("index each diagnosis I50* between 2020-01-01 and 2020-12-31, washout 99999 days", 1, 70,
     "a washout in days lies between 0 and 36525", None),
    ("index each diagnosis I50* between 2020-01-01 and 2020-12-31, washout days", 1, 70,
     "unexpected 'days'; expected a whole number", None),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "col", "message", "hint"), ERRORS)
def test_error_messages(text: str, line: int, col: int, message: str, hint: str | None) -> None:
    with pytest.raises(CohortError) as e:
        checked(text)
    d = e.value.diagnostics[0]
    assert (d.line, d.column) == (line, col), d
    assert d.message.startswith(message), d.message
    assert d.hint == hint or (hint is None and d.hint is None) or (hint is None), d.hint
    if hint is not None:
        assert d.hint == hint


def test_all_errors_of_a_cohort_are_reported_together() -> None:
    with pytest.raises(CohortError) as e:
        checked("index first diagnosis E11\ninclude nrd.x > 1\ninclude drug E11*\n")
    assert [(d.line, d.code) for d in e.value.diagnostics] == [
        (2, "unknown_register"),
        (3, "code_system"),
    ]


def test_error_format_shows_the_line_and_a_caret() -> None:
    text = "index first diagnosis E11\ninclude nrd.hba1c > 5\n"
    with pytest.raises(CohortError) as e:
        checked(text)
    assert e.value.format("a.cohort", text).splitlines() == [
        "a.cohort:2:9: unknown register 'nrd' - did you mean 'ndr'?",
        "  include nrd.hba1c > 5",
        "          ^",
    ]


def test_rendering_one_compiled_cohort_in_every_dialect() -> None:
    """A generator may rewrite the tree it renders: each dialect's text must not depend on
    which dialects were rendered before it."""
    from antal.engine.compiler import compile_cohort

    for path in EXAMPLES:
        co = checked(path.read_text(encoding="utf-8"))
        fresh = {d: compile_cohort(co, CAT).sql(d) for d in ("duckdb", "postgres", "spark")}
        one = compile_cohort(co, CAT)
        for d in ("spark", "postgres", "duckdb", "spark"):
            assert one.sql(d) == fresh[d], (path.stem, d)


def test_index_each_parses_to_episodes_with_their_bound() -> None:
    """`index each ..., washout N days`: the IR keeps the washout, a code list's comma is not
    the washout's, and K (ir.contribution) is known from the text alone."""
    co = checked(
        "index each diagnosis I50*, I110 between 2023-01-01 and 2025-09-30, washout 365 days\n"
    )
    assert isinstance(co.index, ir.IndexEvent) and co.index.which == "each"
    assert co.index.washout == 365
    assert [str(c) for c in co.index.event.codes] == ["I110", "I50*"]  # type: ignore[union-attr]
    # 2023-01-01..2025-09-30 is 1003 days: episodes at least 366 days apart, at most 3
    assert ir.contribution(co.index) == 1003 // 366 + 1 == 3
    assert ir.contribution(checked("index first diagnosis I50*\n").index) == 1
    # the washout is part of the question: another washout is another hash
    other = checked(
        "index each diagnosis I50*, I110 between 2023-01-01 and 2025-09-30, washout 30 days\n"
    )
    assert ir.ir_hash(co) != ir.ir_hash(other)
    first = checked("index first diagnosis I50*, I110 between 2023-01-01 and 2025-09-30\n")
    assert ir.ir_hash(co) != ir.ir_hash(first)
    # the JSON form round-trips, and a JSON `each` without a washout is refused
    assert ir.from_json(ir.to_json(co)) == co
    bad = ir.to_json(co)
    del bad["index"]["washout"]
    with pytest.raises(IRInvalid, match="`index each` needs a washout"):
        ir.from_json(bad)


def test_the_washout_of_index_each_is_reviewed_as_a_window() -> None:
    """`index each` reads its event back to the washout before the window: a washout that
    reaches before the register's first day says so (the first episodes may be recurrences)."""
    from antal.engine.review import review

    def reach(text: str) -> list[str]:
        return [d.code for d in review(checked(text), CAT)]

    window = "between 1987-03-01 and 1990-12-31"
    assert "before_data" in reach(f"index each diagnosis I50* {window}, washout 365 days\n")
    assert "before_data" not in reach(f"index each diagnosis I50* {window}, washout 30 days\n")
    assert "before_data" not in reach(f"index first diagnosis I50* {window}\n")
