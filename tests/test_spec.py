"""The cohort language (docs/language.md, which cites these cases by name) as executable cases.

Each case is a handful of hand-made persons, a cohort text, and the persons expected after
every step, written by hand from the spec (never computed by an evaluator). Every case runs
against the pure-Python reference evaluator (`test_reference`) and against the real engine
on every backend (`test_engine`): DuckDB and Spark on Parquet extracts with the canonical
types, PostgreSQL on the same files loaded into a schema of a real server.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import write_extracts

from antal.catalog import load_catalog
from antal.catalog.vocabulary import BACKENDS
from antal.engine import ir
from antal.engine.language.parser import parse
from antal.engine.reference import evaluate

D = dt.date.fromisoformat
INDEX = D("2020-06-15")  # the index date of the cases with `index 2020-06-15`
DATE_INDEX = "index 2020-06-15\n"

Row = dict[str, Any]
Tables = dict[str, list[Row]]


def day(offset: int) -> dt.date:
    """A date relative to INDEX."""
    return INDEX + dt.timedelta(days=offset)


# --- row builders ----------------------------------------------------------------------


def person(
    lopnr: int,
    born: tuple[int | None, int | None] = (1960, 6),
    kon: int | None = 1,
    lan: str | None = "01",
) -> Row:
    return {
        "lopnr": lopnr,
        "kon": kon,
        "fodelsear": born[0],
        "fodelsemanad": born[1],
        "lan": lan,
        "kommun": None if lan is None else lan + "80",
    }


def pop(*lopnrs: int) -> list[Row]:
    """Default persons: men born June 1960, living in Stockholm (01)."""
    return [person(n) for n in lopnrs]


def npr(
    lopnr: int,
    date: dt.date | None,
    diagnos: str | None = None,
    *,
    hdia: str | None = "",
    op: str | None = None,
    sjukhus: str | None = None,
    mvo: str | None = None,
) -> Row:
    if hdia == "":  # default: the first diagnosis is the main one
        hdia = diagnos.split(" ")[0] if diagnos else None
    return {
        "lopnr": lopnr,
        "indatum": date,
        "vardform": "O",
        "sjukhus": sjukhus,
        "mvo": mvo,
        "hdia": hdia,
        "diagnos": diagnos,
        "op": op,
    }


def lmr(lopnr: int, date: dt.date | None, atc: str) -> Row:
    return {"lopnr": lopnr, "edatum": date, "atc": atc, "antal": 1.0, "ddd": 30.0}


def rek(lopnr: int, date: dt.date | None, atc: str, sjukhus: str | None = None) -> Row:
    return {"lopnr": lopnr, "adm_datum": date, "atc": atc, "sjukhus": sjukhus}


def dors(
    lopnr: int, date: dt.date | None, ulorsak: str | None = None, morsak: str | None = None
) -> Row:
    return {"lopnr": lopnr, "dodsdat": date, "ulorsak": ulorsak, "morsak": morsak}


def ndr(lopnr: int, date: dt.date | None, **values: Any) -> Row:
    return {"lopnr": lopnr, "regdat": date, **values}


def rec(date_column: str, lopnr: int, date: dt.date | None, **values: Any) -> Row:
    return {"lopnr": lopnr, date_column: date, **values}


# --- cases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    tables: Tables
    # persons after the index step, then after each include/exclude; for `index each`,
    # episodes (person, index date)
    steps: list[set[Any]]
    index: dict[Any, dt.date] | None = None  # expected index dates, when the case checks them
    breakdown: dict[tuple[Any, ...], int] | None = None
    purpose: str = "forskning"
    report_tables: list[dict[tuple[Any, ...], int]] | None = None  # every `report by`, in order


CASES: list[Case] = []


def case(name: str, text: str, tables: Tables, steps: list[set[Any]], **kw: Any) -> None:
    CASES.append(Case(name, text, tables, steps, **kw))


# ---- windows: every form, at each bound (day before / at / after) ----------------------


def window_case(name: str, window: str, dates: dict[int, dt.date], expected: set[int]) -> None:
    """Person n has one metformin dispensation on dates[n]; person 99 has none."""
    ids = [*dates, 99]
    tables: Tables = {
        "population": pop(*ids),
        "lmr": [lmr(n, d, "A10BA02") for n, d in dates.items()],
    }
    case(
        f"window {name}",
        DATE_INDEX + f"include drug A10BA02 in lmr {window}\n",
        tables,
        [set(ids), expected],
    )


window_case("none", "", {1: day(-1000), 2: day(0), 3: day(1000)}, {1, 2, 3})
window_case("before index", "before index", {1: day(-1), 2: day(0), 3: day(1)}, {1})
window_case("after index", "after index", {1: day(-1), 2: day(0), 3: day(1)}, {3})
window_case("on or before", "on or before index", {1: day(-1), 2: day(0), 3: day(1)}, {1, 2})
window_case("on or after", "on or after index", {1: day(-1), 2: day(0), 3: day(1)}, {2, 3})
window_case(
    "within A..B before",
    "within 30..90 days before index",
    {1: day(-91), 2: day(-90), 3: day(-89), 4: day(-31), 5: day(-30), 6: day(-29)},
    {2, 3, 4, 5},
)
window_case(
    "within A..B after",
    "within 30..90 days after index",
    {1: day(29), 2: day(30), 3: day(31), 4: day(89), 5: day(90), 6: day(91)},
    {2, 3, 4, 5},
)
window_case(
    "within 0..0 after", "within 0..0 days after index", {1: day(-1), 2: day(0), 3: day(1)}, {2}
)
window_case(
    "within 0..0 before", "within 0..0 days before index", {1: day(-1), 2: day(0), 3: day(1)}, {2}
)
window_case(
    "within N before",
    "within 30 days before index",
    {1: day(-31), 2: day(-30), 3: day(0), 4: day(1)},
    {2, 3},
)
window_case(
    "within N after",
    "within 30 days after index",
    {1: day(-1), 2: day(0), 3: day(30), 4: day(31)},
    {2, 3},
)
window_case(
    "within N of",
    "within 30 days of index",
    {1: day(-31), 2: day(-30), 3: day(0), 4: day(30), 5: day(31)},
    {2, 3, 4},
)
window_case(
    "between",
    "between 2020-01-01 and 2020-12-31",
    {1: D("2019-12-31"), 2: D("2020-01-01"), 3: D("2020-12-31"), 4: D("2021-01-01")},
    {2, 3},
)
window_case(
    "between one day",
    "between 2020-01-01 and 2020-01-01",
    {1: D("2019-12-31"), 2: D("2020-01-01"), 3: D("2020-01-02")},
    {2},
)
window_case(
    "before date",
    "before 2020-03-01",
    {1: D("2020-02-29"), 2: D("2020-03-01"), 3: D("2020-03-02")},
    {1},
)
window_case(
    "after date",
    "after 2020-03-01",
    {1: D("2020-02-29"), 2: D("2020-03-01"), 3: D("2020-03-02")},
    {3},
)

# a relative window counts from each person's own index (2020 is a leap year, 2019 not)
case(
    "window relative to each person's index",
    "index first diagnosis E11*\ninclude drug A10BA02 within 0..365 days after index\n",
    {
        "population": pop(1, 2, 3, 4),
        "npr": [
            npr(1, D("2019-01-01"), "E119"),
            npr(2, D("2020-01-01"), "E119"),
            npr(3, D("2020-01-01"), "E119"),
            npr(4, D("2020-01-01"), "E119"),
            npr(4, D("2021-01-01"), "E119"),
        ],
        "lmr": [
            lmr(1, D("2020-01-01"), "A10BA02"),  # +365 days: in
            lmr(2, D("2021-01-01"), "A10BA02"),  # +366 days: out
            lmr(3, D("2020-12-31"), "A10BA02"),  # +365 days: in
            lmr(4, D("2021-06-01"), "A10BA02"),  # the index is the first E11, not the last
        ],
    },
    [{1, 2, 3, 4}, {1, 3}],
    index={1: D("2019-01-01"), 2: D("2020-01-01"), 3: D("2020-01-01"), 4: D("2020-01-01")},
)

# ---- events: diagnosis ---------------------------------------------------------------

_DIAG_PREFIX: Tables = {
    "population": pop(1, 2, 3, 4, 5, 6, 7, 8, 9),
    "npr": [
        npr(1, day(-10), "I10 E119"),  # a secondary diagnosis counts
        npr(2, day(-10), "XE11"),  # E11 inside another code: no
        npr(3, day(-10), "I10E11"),  # E11 inside another code: no
        npr(4, day(-10), "E11"),  # the prefix itself
        npr(5, day(-10), "E1"),  # shorter than the prefix
        npr(6, day(-10), "I10 E11 N18"),
        npr(7, None, "E119"),  # no date: never matches
        npr(9, day(-10), "I10", op="E119"),  # in the procedure column: not a diagnosis
    ],
}
case("diagnosis prefix E11*", DATE_INDEX + "include diagnosis E11*\n", _DIAG_PREFIX,
     [set(range(1, 10)), {1, 4, 6}])  # fmt: skip

_DIAG_EXACT: Tables = {
    "population": pop(1, 2, 3, 4, 5, 6),
    "npr": [
        npr(1, day(-10), "E119"),
        npr(2, day(-10), "E1190"),
        npr(3, day(-10), "E11"),
        npr(4, day(-10), "I10 E119"),
        npr(5, day(-10), "E119X I10"),
        npr(6, day(-10), "XE119"),
    ],
}
case("diagnosis exact code", DATE_INDEX + "include diagnosis E119\n", _DIAG_EXACT,
     [set(range(1, 7)), {1, 4}])  # fmt: skip
case("diagnosis dotted code", DATE_INDEX + "include diagnosis E11.9\n", _DIAG_EXACT,
     [set(range(1, 7)), {1, 4}])  # fmt: skip

_DIAG_MAIN: Tables = {
    "population": pop(1, 2, 3, 4),
    "npr": [
        npr(1, day(-10), "E119 I10"),  # hdia E119
        npr(2, day(-10), "I10 E119"),  # hdia I10, E119 secondary
        npr(3, day(-10), "E119", hdia=None),  # main diagnosis missing
    ],
}
case("diagnosis main", DATE_INDEX + "include diagnosis E11* main\n", _DIAG_MAIN,
     [{1, 2, 3, 4}, {1}])  # fmt: skip
case("diagnosis not main", DATE_INDEX + "include diagnosis E11*\n", _DIAG_MAIN,
     [{1, 2, 3, 4}, {1, 2, 3}])  # fmt: skip

case(
    "diagnosis range I20..I25",
    DATE_INDEX + "include diagnosis I20..I25\n",
    {
        "population": pop(1, 2, 3, 4, 5, 6, 7, 8),
        "npr": [
            npr(1, day(-10), "I19"),
            npr(2, day(-10), "I20"),
            npr(3, day(-10), "I259"),
            npr(4, day(-10), "I26"),
            npr(5, day(-10), "I2"),
            npr(6, day(-10), "E119 I251"),
            npr(7, day(-10), "I199"),
            npr(8, day(-10), "J21"),
        ],
    },
    [set(range(1, 9)), {2, 3, 6}],
)
case(
    "diagnosis range across letters Y98..Z01",
    DATE_INDEX + "include diagnosis Y98..Z01\n",
    {
        "population": pop(1, 2, 3, 4, 5, 6),
        "npr": [
            npr(1, day(-10), "Y97"),
            npr(2, day(-10), "Y98"),
            npr(3, day(-10), "Y991"),
            npr(4, day(-10), "Z00"),
            npr(5, day(-10), "Z018"),
            npr(6, day(-10), "Z02"),
        ],
    },
    [set(range(1, 7)), {2, 3, 4, 5}],
)
case(
    "codeset nesting",
    "codeset diab = E10*, @t2\n"
    "codeset t2 = E11\n"  # defined after its use
    "codeset all = @diab, I21\n" + DATE_INDEX + "include diagnosis @all\n",
    {
        "population": pop(1, 2, 3, 4, 5, 6),
        "npr": [
            npr(1, day(-10), "E109"),  # E10*
            npr(2, day(-10), "E11"),  # E11 exactly
            npr(3, day(-10), "E119"),  # E11 is exact, not a prefix
            npr(4, day(-10), "I21"),
            npr(5, day(-10), "I219"),
            npr(6, day(-10), "E12"),
        ],
    },
    [set(range(1, 7)), {1, 2, 4}],
)

# ---- events: procedure, drug, death --------------------------------------------------

_PROC: Tables = {
    "population": pop(1, 2, 3, 4, 5),
    "npr": [
        npr(1, day(-10), "I10", op="AF021 FNG02"),
        npr(2, day(-10), "FNG02", op=None),  # a diagnosis column is not a procedure
        npr(3, day(-10), "I10", op="XFNG02"),
        npr(4, day(-10), "I10", op="FNG"),
    ],
}
case("procedure prefix", DATE_INDEX + "include procedure FNG*\n", _PROC,
     [set(range(1, 6)), {1, 4}])  # fmt: skip
case("procedure exact", DATE_INDEX + "include procedure FNG02\n", _PROC,
     [set(range(1, 6)), {1}])  # fmt: skip

_DRUGS: Tables = {
    "population": pop(1, 2, 3, 4, 5),
    "lmr": [
        lmr(1, day(-10), "A10BA02"),
        lmr(3, day(-10), "A10BB01"),
        lmr(4, day(-10), "A10BA02"),
    ],
    "rekvisition": [rek(2, day(-10), "A10BA02", "01001"), rek(4, day(-20), "A10BA02")],
}
for _text, _want in [
    ("drug A10BA02", {1, 2, 4}),
    ("drug A10BA02 in lmr", {1, 4}),
    ("drug A10BA02 in rekvisition", {2, 4}),
    ("drug A10BA02 in rekvisition, lmr", {1, 2, 4}),
    ("drug A10B*", {1, 2, 3, 4}),
    ("drug A10BA*", {1, 2, 4}),
]:
    case(_text, DATE_INDEX + f"include {_text}\n", _DRUGS, [set(range(1, 6)), _want])

_DEATHS: Tables = {
    "population": pop(1, 2, 3, 4),
    "dors": [
        dors(1, day(10), "I219"),
        dors(2, day(20), None),  # cause unknown
        dors(3, None, "I219"),  # no date: never matches (and does not end the index)
    ],
}
case("death any", DATE_INDEX + "include death after index\n", _DEATHS, [{1, 2, 3, 4}, {1, 2}])
case("death cause", DATE_INDEX + "include death I21*\n", _DEATHS, [{1, 2, 3, 4}, {1}])
case("death causes", DATE_INDEX + "include death I21*, C34*\n", _DEATHS, [{1, 2, 3, 4}, {1}])

# the underlying cause, or any cause on the certificate (`mentioned`): contributing causes
# are a space-separated list, in which I21 must be a whole code (not I210 inside C34 I210?)
_MENTIONS: Tables = {
    "population": pop(1, 2, 3, 4, 5),
    "dors": [
        dors(1, day(10), "I219"),  # the underlying cause
        dors(2, day(20), "C349", "J189 I219"),  # a contributing cause
        dors(3, day(30), "C349", "J189"),  # neither
        dors(4, day(40), "I10", "XI21"),  # no code of the list, only a longer word
        dors(5, None, "C349", "I219"),  # no date: never matches
    ],
}
case("death cause underlying", DATE_INDEX + "include death I21*\n", _MENTIONS,
     [{1, 2, 3, 4, 5}, {1}])  # fmt: skip
case("death cause mentioned", DATE_INDEX + "include death I21* mentioned\n", _MENTIONS,
     [{1, 2, 3, 4, 5}, {1, 2}])  # fmt: skip
case("death exact code mentioned", DATE_INDEX + "include death I219 mentioned\n", _MENTIONS,
     [{1, 2, 3, 4, 5}, {1, 2}])  # fmt: skip

# ---- events: registers and filters ----------------------------------------------------

_BIOBANK: Tables = {
    "population": pop(1, 2, 3, 4),
    "biobank": [
        rec("provdatum", 1, day(-5), provtyp="vavnad_ffpe", biobank="BB01"),
        rec("provdatum", 2, day(-5), provtyp="plasma", biobank="BB01"),
        rec("provdatum", 3, None, provtyp="vavnad_ffpe", biobank="BB01"),
        rec("provdatum", 4, day(5), provtyp="vavnad_ffpe", biobank="BB01"),
    ],
}
case("register any record", DATE_INDEX + "include biobank\n", _BIOBANK,
     [{1, 2, 3, 4}, {1, 2, 4}])  # fmt: skip
case(
    "register where with window",
    DATE_INDEX + 'include biobank where provtyp = "vavnad_ffpe" before index\n',
    _BIOBANK,
    [{1, 2, 3, 4}, {1}],
)
case(
    "register filter on one record (gms)",
    DATE_INDEX + 'include gms where gene = "EGFR" and variant = "p.L858R"\n',
    {
        "population": pop(1, 2, 3),
        "gms": [
            rec("provdatum", 1, day(-5), gene="EGFR", variant="p.L858R", klass="patogen"),
            rec("provdatum", 2, day(-5), gene="EGFR", variant="p.L861Q", klass="patogen"),
            rec("provdatum", 2, day(-5), gene="KRAS", variant="p.L858R", klass="VUS"),
            rec("provdatum", 3, day(-5), gene="EGFR", variant="p.L858R", klass="VUS"),
        ],
    },
    [{1, 2, 3}, {1, 3}],
)
case(
    "register filter with in (nkbc)",
    DATE_INDEX
    + 'include nkbc where er = "positiv" and her2 = "negativ" and stadium in ("II", "III")\n',
    {
        "population": pop(1, 2, 3, 4, 5),
        "nkbc": [
            rec("diagnosdatum", 1, day(-5), er="positiv", her2="negativ", stadium="II"),
            rec("diagnosdatum", 2, day(-5), er="positiv", her2="positiv", stadium="II"),
            rec("diagnosdatum", 3, day(-5), er="positiv", her2="negativ", stadium="IV"),
            rec("diagnosdatum", 4, day(-5), er="positiv", her2="negativ", stadium=None),
            rec("diagnosdatum", 5, day(-5), er="positiv", her2="negativ", stadium="III"),
        ],
    },
    [set(range(1, 6)), {1, 5}],
)
case(
    "register filter on a date and a string",
    DATE_INDEX + 'include ndr where regdat >= 2020-01-01\ninclude gms where klass != "VUS"\n',
    {
        "population": pop(1, 2, 3, 4),
        "ndr": [ndr(1, D("2019-12-31")), ndr(2, D("2020-01-01")), ndr(3, D("2020-02-01"))],
        "gms": [
            rec("provdatum", 2, day(-5), gene="EGFR", klass="VUS"),
            rec("provdatum", 3, day(-5), gene="EGFR", klass="patogen"),
        ],
    },
    [{1, 2, 3, 4}, {2, 3}, {3}],
)

_HBA1C: Tables = {
    "population": pop(1, 2, 3, 4),
    "ndr": [
        ndr(1, day(-5), hba1c=53.0),
        ndr(2, day(-5), hba1c=53.5),
        ndr(3, day(-5), hba1c=None),
        ndr(4, day(-50), hba1c=40.0),
        ndr(4, day(-5), hba1c=60.0),
    ],
}
case("shorthand >", DATE_INDEX + "include ndr.hba1c > 53\n", _HBA1C, [{1, 2, 3, 4}, {2, 4}])
case("shorthand >=", DATE_INDEX + "include ndr.hba1c >= 53\n", _HBA1C,
     [{1, 2, 3, 4}, {1, 2, 4}])  # fmt: skip
case("shorthand in", DATE_INDEX + "include ndr.hba1c in (53, 40)\n", _HBA1C,
     [{1, 2, 3, 4}, {1, 4}])  # fmt: skip
case(
    "shorthand smallint",
    DATE_INDEX + "include ndr.diabetestyp = 2\n",
    {
        "population": pop(1, 2, 3),
        "ndr": [ndr(1, day(-5), diabetestyp=1), ndr(2, day(-5), diabetestyp=2), ndr(3, day(-5))],
    },
    [{1, 2, 3}, {2}],
)

# SQL three-valued logic inside a filter: a record matches only when the filter is TRUE.
_NULLS: Tables = {
    "population": pop(1, 2, 3, 4, 5, 6),
    "ndr": [
        ndr(1, day(-5), hba1c=60.0, bmi=None),
        ndr(2, day(-5), hba1c=None, bmi=35.0),
        ndr(3, day(-5), hba1c=None, bmi=25.0),
        ndr(4, day(-5), hba1c=50.0, bmi=25.0),
        ndr(5, day(-5), hba1c=60.0, bmi=35.0),
        ndr(6, day(-5), hba1c=None, bmi=None),
    ],
}
_ALL6 = set(range(1, 7))
for _text, _want in [
    ("ndr where hba1c > 53 and bmi > 30", {5}),
    ("ndr where hba1c > 53 or bmi > 30", {1, 2, 5}),
    ("ndr where not hba1c > 53", {4}),
    ("ndr where not (hba1c > 53 and bmi > 30)", {3, 4}),
    ("ndr where not (hba1c > 53 or bmi > 30)", {4}),
    ("ndr where hba1c != 53", {1, 4, 5}),
    ("ndr where bmi in (25, 35)", {2, 3, 4, 5}),
    ("ndr where not bmi in (25)", {2, 5}),
    ("ndr where hba1c > 53 or hba1c < 55 and bmi > 30", {1, 5}),  # and binds tighter
    ("ndr where (hba1c > 53 or hba1c < 55) and bmi > 30", {5}),
    # `not` of a condition is two-valued: no matching record is simply FALSE
    ("not ndr where hba1c > 53", {2, 3, 4, 6}),
]:
    case(f"null logic: {_text}", DATE_INDEX + f"include {_text}\n", _NULLS, [_ALL6, _want])
case("null logic: exclude", DATE_INDEX + "exclude ndr where hba1c > 53\n", _NULLS,
     [_ALL6, {2, 3, 4, 6}])  # fmt: skip

# ---- counting distinct dates -----------------------------------------------------------

_COUNTS: Tables = {
    "population": pop(1, 2, 3, 4, 5, 6),
    "npr": [
        npr(1, day(-10), "E119 E118"),  # two codes on one contact: one date
        npr(2, day(-10), "E119"),  # two contacts on the same day: one date
        npr(2, day(-10), "E118"),
        npr(3, day(-10), "E119"),
        npr(3, day(-20), "E119"),
        npr(4, day(-10), "E119"),
        npr(4, day(-20), "I10"),
        npr(5, day(-10), "E119"),
        npr(5, day(-20), "E119"),
        npr(5, day(-30), "E119"),
    ],
}
for _text, _want in [
    ("at least 2 diagnosis E11*", {3, 5}),
    ("at least 1 diagnosis E11*", {1, 2, 3, 4, 5}),
    ("at most 1 diagnosis E11*", {1, 2, 4, 6}),
    ("exactly 1 diagnosis E11*", {1, 2, 4}),
    ("exactly 2 diagnosis E11*", {3}),
    ("at most 0 diagnosis E11*", {6}),
    ("exactly 2 diagnosis E11* within 25 days before index", {3, 5}),
    ("at most 0 diagnosis E11* within 15 days after index", _ALL6),
]:
    case(f"count: {_text}", DATE_INDEX + f"include {_text}\n", _COUNTS, [_ALL6, _want])

_DRUG_COUNTS: Tables = {
    "population": pop(1, 2, 3, 4, 5, 6),
    "lmr": [
        lmr(1, day(-5), "A10BA02"),
        lmr(2, day(-5), "A10BA02"),
        lmr(3, day(-5), "A10BA02"),
        lmr(3, day(-5), "A10BB01"),
        lmr(4, day(-5), "A10BA02"),
        lmr(4, day(-6), "C09AA01"),
    ],
    "rekvisition": [
        rek(1, day(-5), "A10AB01"),  # same day as the dispensation: one date in all
        rek(2, day(-6), "A10AB01"),
        rek(5, day(-6), "A10AB01"),
    ],
}
case("count across sources", DATE_INDEX + "include at least 2 drug A10*\n", _DRUG_COUNTS,
     [_ALL6, {2}])  # fmt: skip
case("count at most 0 in one source", DATE_INDEX + "include at most 0 drug A10* in lmr\n",
     _DRUG_COUNTS, [_ALL6, {5, 6}])  # fmt: skip

# ---- latest --------------------------------------------------------------------------

_LATEST: Tables = {
    "population": pop(*range(1, 11)),
    "ndr": [
        ndr(1, day(-100), hba1c=60.0),
        ndr(1, day(-10), hba1c=50.0),
        ndr(2, day(-100), hba1c=50.0),
        ndr(2, day(-10), hba1c=60.0),
        ndr(3, day(-100), hba1c=60.0),
        ndr(3, day(-10), hba1c=None, bmi=30.0),  # hba1c missing: skipped
        ndr(4, day(-10), hba1c=50.0),  # two records on the latest date: one is enough
        ndr(4, day(-10), hba1c=60.0),
        ndr(5, day(-366), hba1c=60.0),  # outside the window
        ndr(5, day(-10), hba1c=50.0),
        ndr(6, day(-10), hba1c=60.0),
        ndr(6, day(1), hba1c=50.0),  # after the window
        ndr(7, day(-10), hba1c=None),
        ndr(9, day(-365), hba1c=60.0),  # on the window's bound
        ndr(9, day(-5), hba1c=None),
        ndr(10, day(-20), hba1c=60.0),
        ndr(10, None, hba1c=50.0),  # no date: never counts
    ],
}
_ALL10 = set(range(1, 11))
case(
    "latest",
    DATE_INDEX + "include latest ndr.hba1c > 53 within 365 days before index\n",
    _LATEST,
    [_ALL10, {2, 3, 4, 6, 9, 10}],
)
case(
    "latest exclude",
    DATE_INDEX + "exclude latest ndr.hba1c > 53 within 365 days before index\n",
    _LATEST,
    [_ALL10, {1, 5, 7, 8}],
)
case("latest without window", DATE_INDEX + "include latest ndr.hba1c > 53\n", _LATEST,
     [_ALL10, {2, 3, 4, 9, 10}])  # fmt: skip
case(
    "latest skips records missing any filtered variable",
    DATE_INDEX + "include latest ndr where hba1c > 53 and bmi > 30 within 365 days before index\n",
    {
        "population": pop(1, 2, 3, 4, 5),
        "ndr": [
            ndr(1, day(-50), hba1c=60.0, bmi=35.0),
            ndr(1, day(-10), hba1c=50.0, bmi=None),
            ndr(2, day(-50), hba1c=60.0, bmi=35.0),
            ndr(2, day(-10), hba1c=50.0, bmi=25.0),
            ndr(3, day(-10), hba1c=60.0, bmi=None),
            ndr(4, day(-50), hba1c=60.0, bmi=35.0),
            ndr(4, day(-10), hba1c=None, bmi=25.0),
            ndr(5, day(-10), hba1c=60.0, bmi=35.0, systoliskt=None),  # not filtered on
        ],
    },
    [{1, 2, 3, 4, 5}, {1, 4, 5}],
)

# ---- demographics -----------------------------------------------------------------------

# born (year, month) for each person; the index is June 2020 (an event index so that
# persons with a missing birth year or month still have one)
_BORN = {
    1: (1980, 6),  # 40 (born in the index month)
    2: (1980, 7),  # 39
    3: (1980, 5),  # 40
    4: (1960, 6),  # 60
    5: (1960, 7),  # 59
    6: (1970, 1),  # 50
    7: (None, 6),
    8: (1970, None),
}
_AGES: Tables = {
    "population": [person(n, born=b) for n, b in _BORN.items()],
    "npr": [npr(n, INDEX, "E119") for n in _BORN],
}
_E11_INDEX = "index first diagnosis E11*\n"
case("age", _E11_INDEX + "include age 40..59\n", _AGES, [set(_BORN), {1, 3, 5, 6}])
case("not age (missing is false)", _E11_INDEX + "include not age 40..59\n", _AGES,
     [set(_BORN), {2, 4, 7, 8}])  # fmt: skip
case(
    "age at a year boundary",
    "index 2020-01-31\ninclude age 40..40\n",
    {"population": [person(1, (1980, 1)), person(2, (1980, 2)), person(3, (1979, 12))]},
    [{1, 2, 3}, {1, 3}],
)

_SEXES: Tables = {
    "population": [person(1, kon=1), person(2, kon=2), person(3, kon=None)],
    "npr": [npr(n, INDEX, "E119") for n in (1, 2, 3)],
}
case("sex female", _E11_INDEX + "include sex female\n", _SEXES, [{1, 2, 3}, {2}])
case("sex male", _E11_INDEX + "include sex male\n", _SEXES, [{1, 2, 3}, {1}])
case("not sex female", _E11_INDEX + "include not sex female\n", _SEXES, [{1, 2, 3}, {1, 3}])

_REGIONS: Tables = {
    "population": [person(1, lan="18"), person(2, lan="01"), person(3, lan="03"),
                   person(4, lan=None)],
    "npr": [npr(n, INDEX, "E119") for n in (1, 2, 3, 4)],
}  # fmt: skip
case("region list", _E11_INDEX + "include region 18, 01\n", _REGIONS, [{1, 2, 3, 4}, {1, 2}])
case("region one", _E11_INDEX + "include region 03\n", _REGIONS, [{1, 2, 3, 4}, {3}])
case("not region", _E11_INDEX + "include not region 03\n", _REGIONS, [{1, 2, 3, 4}, {1, 2, 4}])

_MIX: Tables = {
    "population": [
        person(1, (1990, 1), kon=2),  # female, 30
        person(2, (1970, 1), kon=1),  # male, 50
        person(3, (1990, 1), kon=1),  # male, 30
        person(4, (1950, 1), kon=2),  # female, 70
    ],
    "npr": [npr(4, day(-100), "I219")],
}
case("and binds tighter than or", DATE_INDEX + "include sex female or sex male and age 40..59\n",
     _MIX, [{1, 2, 3, 4}, {1, 2, 4}])  # fmt: skip
case("parentheses", DATE_INDEX + "include (sex female or sex male) and age 40..59\n", _MIX,
     [{1, 2, 3, 4}, {2}])  # fmt: skip
case("not over event or demographic",
     DATE_INDEX + "include not (diagnosis I21* before index or age 60..120)\n", _MIX,
     [{1, 2, 3, 4}, {1, 2, 3}])  # fmt: skip

# ---- index ------------------------------------------------------------------------------

case(
    "date index: born in or before the month, alive on the date",
    DATE_INDEX,
    {
        "population": [
            person(1, (2020, 6)),  # born in the index month
            person(2, (2020, 7)),  # born after it
            person(3, (2019, 12)),
            person(4),
            person(5),
            person(6),
            person(7),
            person(9, (None, None)),
        ],
        "dors": [
            dors(4, D("2020-06-14")),  # dead the day before: out
            dors(5, D("2020-06-15")),  # dies on the date: alive on it
            dors(6, D("2020-06-16")),
            dors(7, None),
            dors(8, D("2021-01-01")),  # not in the population register
        ],
        "npr": [npr(8, day(-5), "E119")],
    },
    [{1, 3, 5, 6, 7}],
    index={n: INDEX for n in (1, 3, 5, 6, 7)},
)

_FIRST_LAST: Tables = {
    "population": pop(1, 2, 4),
    "npr": [
        npr(1, D("2014-12-31"), "E119"),
        npr(1, D("2015-03-01"), "E119"),
        npr(1, D("2019-05-05"), "E119"),
        npr(1, D("2024-01-01"), "E119"),
        npr(1, D("2016-01-01"), "I10"),
        npr(2, D("2024-01-01"), "E119"),
        npr(3, D("2016-01-01"), "E119"),  # not in the population register
        npr(4, D("2015-01-01"), "E119"),
        npr(4, D("2023-12-31"), "E119"),
    ],
}
for _text, _want in [
    (
        "index first diagnosis E11* between 2015-01-01 and 2023-12-31",
        {1: D("2015-03-01"), 4: D("2015-01-01")},
    ),
    (
        "index last diagnosis E11* between 2015-01-01 and 2023-12-31",
        {1: D("2019-05-05"), 4: D("2023-12-31")},
    ),
    (
        "index first diagnosis E11*",
        {1: D("2014-12-31"), 2: D("2024-01-01"), 4: D("2015-01-01")},
    ),
    ("index last diagnosis E11* before 2024-01-01", {1: D("2019-05-05"), 4: D("2023-12-31")}),
    (
        "index last diagnosis E11* after 2015-01-01",
        {1: D("2024-01-01"), 2: D("2024-01-01"), 4: D("2023-12-31")},
    ),
]:
    case(_text, _text + "\n", _FIRST_LAST, [set(_want)], index=_want)

_DRUG_INDEX: Tables = {
    "population": pop(1, 2, 3),
    "lmr": [lmr(1, D("2018-01-01"), "A10BA02"), lmr(2, D("2019-01-01"), "A10BA02")],
    "rekvisition": [rek(1, D("2017-06-01"), "A10BA02", "01001")],
}
case("index first drug (both sources)", "index first drug A10BA02\n", _DRUG_INDEX,
     [{1, 2}], index={1: D("2017-06-01"), 2: D("2019-01-01")})  # fmt: skip
case("index first drug in lmr", "index first drug A10BA02 in lmr\n", _DRUG_INDEX,
     [{1, 2}], index={1: D("2018-01-01"), 2: D("2019-01-01")})  # fmt: skip
case(
    "index on a register event",
    'index first biobank where provtyp = "vavnad_ffpe"\n',
    {
        "population": pop(1, 2),
        "biobank": [
            rec("provdatum", 1, D("2018-01-01"), provtyp="plasma"),
            rec("provdatum", 1, D("2019-02-02"), provtyp="vavnad_ffpe"),
            rec("provdatum", 1, D("2020-02-02"), provtyp="vavnad_ffpe"),
            rec("provdatum", 2, D("2018-01-01"), provtyp="plasma"),
        ],
    },
    [{1}],
    index={1: D("2019-02-02")},
)
case(
    "index on death",
    "index last death\n",
    {"population": pop(1, 2, 3), "dors": [dors(1, D("2021-03-03"), "C349"), dors(2, None)]},
    [{1}],
    index={1: D("2021-03-03")},
)

# ---- opt-out ------------------------------------------------------------------------

_OPTOUT: Tables = {
    "population": pop(1, 2, 3, 4, 5, 6),
    "optout": [
        rec("datum", 1, D("2019-01-01"), andamal="forskning"),
        rec("datum", 2, D("2019-01-01"), andamal="kommersiell"),
        rec("datum", 3, D("2019-01-01"), andamal="alla"),
        rec("datum", 4, D("2019-01-01"), andamal=None),
        rec("datum", 6, D("2030-01-01"), andamal="forskning"),  # the date does not matter
    ],
    "npr": [npr(n, D("2018-01-01"), "E119") for n in range(1, 7)],
}
case("opt-out, research", DATE_INDEX, _OPTOUT, [{2, 4, 5}])
case("opt-out, commercial", DATE_INDEX, _OPTOUT, [{1, 4, 5, 6}], purpose="kommersiell")
case("opt-out before an event index", "index first diagnosis E11*\n", _OPTOUT, [{2, 4, 5}])

# ---- attrition order ---------------------------------------------------------------------

_ATTRITION: Tables = {
    "population": [
        person(1, kon=2),
        person(2, kon=2),
        person(3, kon=1),
        person(4, kon=2),
        person(5, kon=2),
        person(6, kon=1),
    ],
    "npr": [
        npr(1, day(-5), "E119"),
        npr(2, day(-5), "E119 I219"),
        npr(3, day(-5), "E119"),
        npr(5, day(-5), "I210"),
    ],
}
case(
    "attrition in file order",
    DATE_INDEX + 'include "Women": sex female\nexclude "MI": diagnosis I21*\n'
    'include "Diabetes": diagnosis E11*\n',
    _ATTRITION,
    [{1, 2, 3, 4, 5, 6}, {1, 2, 4, 5}, {1, 4}, {1}],
)
case(
    "attrition in another order",
    DATE_INDEX + 'exclude "MI": diagnosis I21*\ninclude "Women": sex female\n'
    'include "Diabetes": diagnosis E11*\n',
    _ATTRITION,
    [{1, 2, 3, 4, 5, 6}, {1, 3, 4, 6}, {1, 4}, {1}],
)

# ---- report by ---------------------------------------------------------------------------

_REPORT: Tables = {
    "population": [
        person(1, (1980, 6), kon=1, lan="01"),  # 40
        person(2, (1980, 7), kon=2, lan="01"),  # 39
        person(3, (2011, 1), kon=2, lan="01"),  # 9
        person(4, (2020, 6), kon=1, lan="18"),  # 0
        person(5, (1960, 6), kon=2, lan="18"),  # 60
        person(6, (1961, 1), kon=2, lan="18"),  # 59
    ],
}
_R6 = set(range(1, 7))
case("report by region", DATE_INDEX + "report by region\n", _REPORT, [_R6],
     breakdown={("01",): 3, ("18",): 3})  # fmt: skip
case("report by sex", DATE_INDEX + "report by sex\n", _REPORT, [_R6],
     breakdown={("male",): 2, ("female",): 4})  # fmt: skip
case(
    "report by sex, region",
    DATE_INDEX + "report by sex, region\n",
    _REPORT,
    [_R6],
    breakdown={("male", "01"): 1, ("female", "01"): 2, ("male", "18"): 1, ("female", "18"): 2},
)
case(
    "report by age 10",
    DATE_INDEX + "report by age 10\n",
    _REPORT,
    [_R6],
    breakdown={(40,): 1, (30,): 1, (0,): 2, (60,): 1, (50,): 1},
)
case(
    "report by age 5, region",
    DATE_INDEX + "report by age 5, region\n",
    _REPORT,
    [_R6],
    breakdown={(40, "01"): 1, (35, "01"): 1, (5, "01"): 1, (0, "18"): 1, (60, "18"): 1,
               (55, "18"): 1},
)  # fmt: skip
case(
    "report of the final cohort only",
    DATE_INDEX + "include sex female\nreport by region\n",
    _REPORT,
    [_R6, {2, 3, 5, 6}],
    breakdown={("01",): 2, ("18",): 2},
)
case(
    "report with missing demographics",
    DATE_INDEX + "report by region, sex\n",
    {"population": [person(1, kon=1, lan="01"), person(2, kon=None, lan=None)]},
    [{1, 2}],
    breakdown={("01", "male"): 1, (None, None): 1},
)
case(
    "report by year",
    "index first diagnosis E11*\ninclude sex female\nreport by year\n",
    {
        "population": [person(1, kon=2), person(2, kon=2), person(3, kon=1), person(4, kon=2)],
        "npr": [
            npr(1, D("2019-12-31"), "E119"),
            npr(2, D("2020-01-01"), "E119"),
            npr(3, D("2020-07-07"), "E119"),
            npr(4, D("2021-01-01"), "E119"),
            npr(4, D("2019-01-01"), "E119"),
        ],
    },
    [{1, 2, 3, 4}, {1, 2, 4}],
    breakdown={(2019,): 2, (2020,): 1},
)
case(
    "report by hospital",
    "index first diagnosis E11* between 2019-01-01 and 2021-12-31\nreport by hospital\n",
    {
        "population": pop(1, 2, 3, 4, 5, 6),
        "npr": [
            # two matching contacts on the index date: the smallest code
            npr(1, D("2020-02-02"), "E119", sjukhus="05001"),
            npr(1, D("2020-02-02"), "E118", sjukhus="01003"),
            # a contact without a hospital does not win
            npr(2, D("2020-02-02"), "E119", sjukhus=None),
            npr(2, D("2020-02-02"), "E119", sjukhus="12001"),
            # no hospital at all
            npr(3, D("2020-02-02"), "E119", sjukhus=None),
            # only the index date's contacts
            npr(4, D("2019-01-01"), "E119", sjukhus="05001"),
            npr(4, D("2019-02-01"), "E119", sjukhus="01001"),
            # only matching contacts
            npr(5, D("2020-02-02"), "E119", sjukhus="05002"),
            npr(5, D("2020-02-02"), "I10", sjukhus="01001"),
            # only contacts in the index window
            npr(6, D("2018-12-31"), "E119", sjukhus="01001"),
            npr(6, D("2019-03-03"), "E119", sjukhus="14001"),
        ],
    },
    [{1, 2, 3, 4, 5, 6}],
    breakdown={
        ("01003",): 1,
        ("12001",): 1,
        (None,): 1,
        ("05001",): 1,
        ("05002",): 1,
        ("14001",): 1,
    },
)
case(
    "report by hospital, sex on a rekvisition index",
    "index first drug L01* in rekvisition\nreport by hospital, sex\n",
    {
        "population": [person(1, kon=2), person(2, kon=1), person(3, kon=2)],
        "rekvisition": [
            rek(1, D("2021-01-01"), "L01XC02", "01002"),
            rek(1, D("2021-01-01"), "L01XC02", "01001"),
            rek(2, D("2021-05-05"), "L01BA01", "18001"),
            rek(3, D("2021-05-05"), "L01BA01", "18001"),
            rek(3, D("2021-01-01"), "A10AB01", "01001"),
        ],
    },
    [{1, 2, 3}],
    breakdown={("01001", "female"): 1, ("18001", "male"): 1, ("18001", "female"): 1},
)

# ---- new dimensions: healthcare region, month, quarter, clinic ------------------------------

_HALLAND: Tables = {
    "population": [
        person(1, lan="13") | {"kommun": "1380"},  # Halmstad: Södra
        person(2, lan="13") | {"kommun": "1383"},  # Varberg: Västra
        person(3, lan="13") | {"kommun": None},  # Halland, kommun unknown: unknown
        person(4, lan="14") | {"kommun": "1480"},  # Västra Götaland: Västra
        person(5, lan="25") | {"kommun": "2580"},  # Norrbotten: Norra
        person(6, lan="18") | {"kommun": "1880"},  # Örebro: Mellersta
        person(7, lan=None),  # unknown
        person(8, lan="09") | {"kommun": "0980"},  # Gotland: Stockholm–Gotland
    ],
}
case(
    "report by sjukvardsregion",
    DATE_INDEX + "report by sjukvardsregion\n",
    _HALLAND,
    [set(range(1, 9))],
    breakdown={("syd",): 1, ("vast",): 2, (None,): 2, ("norr",): 1, ("mellersta",): 1,
               ("stockholm-gotland",): 1},
)  # fmt: skip
_CALENDAR: Tables = {
    "population": pop(1, 2, 3, 4, 5),
    "npr": [
        npr(1, D("2019-12-31"), "E119"),  # 2019-12, 2019 Q4
        npr(2, D("2020-01-01"), "E119"),  # 2020-01, 2020 Q1
        npr(3, D("2020-03-31"), "E119"),  # 2020-03, 2020 Q1
        npr(4, D("2020-04-01"), "E119"),  # 2020-04, 2020 Q2
        npr(4, D("2019-11-01"), "E119"),  # before the window: not the index
        npr(5, D("2020-04-02"), "E119"),  # after the window: no index
    ],
}
_CAL_INDEX = "index first diagnosis E11* between 2019-12-01 and 2020-04-01\n"
case("report by month", _CAL_INDEX + "report by month\n", _CALENDAR, [{1, 2, 3, 4}],
     breakdown={(201912,): 1, (202001,): 1, (202003,): 1, (202004,): 1})  # fmt: skip
case("report by quarter", _CAL_INDEX + "report by quarter\n", _CALENDAR, [{1, 2, 3, 4}],
     breakdown={(20194,): 1, (20201,): 2, (20202,): 1})  # fmt: skip
case(
    "report by clinic",
    "index first diagnosis E11* between 2019-01-01 and 2021-12-31\nreport by clinic, hospital\n",
    {
        "population": pop(1, 2, 3, 4),
        "npr": [
            # two matching contacts on the index date: the smallest clinic and the smallest
            # hospital, each chosen on its own
            npr(1, D("2020-02-02"), "E119", sjukhus="05001", mvo="101"),
            npr(1, D("2020-02-02"), "E118", sjukhus="01003", mvo="141"),
            # no clinic recorded
            npr(2, D("2020-02-02"), "E119", sjukhus="12001", mvo=None),
            # only the index date's contact, only a matching one
            npr(3, D("2019-01-01"), "E119", sjukhus="05001", mvo="141"),
            npr(3, D("2019-02-01"), "E119", sjukhus="01001", mvo="101"),
            npr(3, D("2019-01-01"), "I10", sjukhus="01001", mvo="011"),
        ],
    },
    [{1, 2, 3}],
    breakdown={("101", "01003"): 1, (None, "12001"): 1, ("141", "05001"): 1},
)

# ---- index each: every qualifying event with a washout; the unit is the episode -----------

# I50 contacts; a washout of 30 days: a date is an episode when the person has no I50 contact
# in the 30 days before it (read before the window's start too). Men born 1950-01 unless said.
_EACH_TABLES: Tables = {
    "population": [person(n, (1950, 1)) for n in (1, 2, 3, 4, 5)] + [person(7, (1960, 9))],
    "npr": [
        npr(1, D("2020-01-10"), "I509", sjukhus="01001"),  # episode
        npr(1, D("2020-01-25"), "I509", sjukhus="05001"),  # 15 days after: the same episode
        npr(1, D("2020-03-01"), "I509", sjukhus="14001"),  # 36 days after the last: episode
        npr(1, D("2020-03-20"), "I509"),  # 19 days after: the same
        npr(1, D("2020-02-15"), "I219"),  # an infarction 15 days before the March episode
        npr(2, D("2019-12-20"), "I509"),  # before the window: no episode, but it washes out
        npr(2, D("2020-01-05"), "I509", sjukhus="05001"),  # 16 days after it: no episode
        npr(2, D("2020-02-10"), "I509", sjukhus="05001"),  # 36 days after: episode
        npr(3, D("2019-11-01"), "I509"),  # 61 days before the window
        npr(3, D("2020-01-01"), "I509", sjukhus="01001"),  # the first day: episode
        npr(3, D("2020-12-01"), "I219"),
        npr(3, D("2020-12-31"), "I509"),  # the last day: episode (then excluded: I21 before)
        npr(3, D("2021-01-05"), "I509"),  # after the window
        npr(4, D("2021-02-01"), "I509"),  # only after the window: none
        # contacts 24, 26 and 25 days apart: one episode, though the last is 75 days after it
        *[npr(5, D(d), "I509", sjukhus="12001") for d in ("2020-05-01", "2020-05-25")],
        *[npr(5, D(d), "I509") for d in ("2020-06-20", "2020-07-15")],
        npr(6, D("2020-06-01"), "I509"),  # not in the population register
        npr(7, D("2020-08-01"), "I509"),  # episode (at 59 years: not included)
        npr(7, D("2020-08-31"), "I509"),  # 30 days after: inside the washout
        npr(7, D("2020-10-01"), "I509"),  # 31 days after: episode
    ],
}
_EACH = "index each diagnosis I50* between 2020-01-01 and 2020-12-31, washout 30 days\n"
_EACH_ALL = {(1, D("2020-01-10")), (1, D("2020-03-01")), (2, D("2020-02-10")),
             (3, D("2020-01-01")), (3, D("2020-12-31")), (5, D("2020-05-01")),
             (7, D("2020-08-01")), (7, D("2020-10-01"))}  # fmt: skip
case("index each: episodes and the washout", _EACH, _EACH_TABLES, [_EACH_ALL],
     index={e: e[1] for e in _EACH_ALL})  # fmt: skip
_EACH_AGED = _EACH_ALL - {(7, D("2020-08-01"))}
_EACH_FINAL = _EACH_AGED - {(1, D("2020-03-01")), (3, D("2020-12-31"))}
case(
    "index each: criteria relative to each episode",
    _EACH + "include age 60..120\nexclude diagnosis I21* within 60 days before index\n"
    "report by month\nreport by hospital\n",
    _EACH_TABLES,
    [_EACH_ALL, _EACH_AGED, _EACH_FINAL],
    report_tables=[
        {(202001,): 2, (202002,): 1, (202005,): 1, (202010,): 1},
        # the site of an episode is that of its index event
        {("01001",): 2, ("05001",): 1, ("12001",): 1, (None,): 1},
    ],
)
# a window of 9 days and a washout of 2: episodes are at least 3 days apart, so a person has
# at most K = 9 // 3 + 1 = 4 of them; person 1 has 4, person 2 (daily contacts) one
case(
    "index each: at most K episodes a person",
    "index each diagnosis I50* between 2020-01-01 and 2020-01-10, washout 2 days\n",
    {
        "population": pop(1, 2),
        "npr": [npr(1, D(f"2020-01-{d:02d}"), "I509") for d in (1, 4, 7, 10)]
        + [npr(2, D(f"2020-01-{d:02d}"), "I509") for d in range(1, 11)],
    },
    [{(1, D("2020-01-01")), (1, D("2020-01-04")), (1, D("2020-01-07")), (1, D("2020-01-10")),
      (2, D("2020-01-01"))}],
)  # fmt: skip

# ---- several `report by`: each a table of the whole final cohort --------------------------

case(
    "several report by",
    DATE_INDEX + "include sex female\nreport by region\nreport by age 10, sex\nreport by sex\n",
    _REPORT,
    [_R6, {2, 3, 5, 6}],
    breakdown={("01",): 2, ("18",): 2},
    report_tables=[
        {("01",): 2, ("18",): 2},
        {(30, "female"): 1, (0, "female"): 1, (60, "female"): 1, (50, "female"): 1},
        {("female",): 4},
    ],
)
case(
    "several report by with a roll-up",
    _CAL_INDEX + "report by month with rollup\nreport by hospital, sex\n",
    _CALENDAR,
    [{1, 2, 3, 4}],
    # the roll-up's levels are released, not counted: the query returns the table as asked
    report_tables=[
        {(201912,): 1, (202001,): 1, (202003,): 1, (202004,): 1},
        {(None, "male"): 4},
    ],
)

# ---- the complete example of the spec ------------------------------------------------------

_EXAMPLE_TEXT = """\
# Type 2 diabetes, first diagnosed 2015-2023, on metformin, no prior infarction
cohort "T2D on metformin, 40-75, no prior MI"

codeset t2d  = E11*
codeset mi   = I21*, I22*
codeset metf = A10BA02

index first diagnosis @t2d between 2015-01-01 and 2023-12-31

include "Age 40-75 at index":       age 40..75
include "Metformin within a year":  drug @metf within 0..365 days after index
include "Poorly controlled":        latest ndr.hba1c > 53 within 365 days before index
exclude "Earlier MI":               diagnosis @mi before index
exclude "Treated with insulin":     drug A10A* in rekvisition, lmr before index

report by region, sex
"""
_T2D_2019 = [npr(n, D("2019-01-01"), "E119") for n in (4, 5, 6, 7, 8)]
case(
    "the complete example",
    _EXAMPLE_TEXT,
    {
        "population": [
            person(1, (1960, 3), kon=2, lan="18"),  # survives
            person(2, (1990, 1)),  # 28 at index: too young
            person(3, (1950, 1), kon=1, lan="01"),  # survives, index the first E11 in 2015-23
            person(4, (1970, 1)),  # metformin 366 days after index
            person(5, (1970, 1)),  # HbA1c 50
            person(6, (1970, 1)),  # earlier MI
            person(7, (1970, 1)),  # insulin the day before index
            person(8, (1970, 1), kon=2, lan="01"),  # survives: MI and insulin on the index date
            person(9, (1970, 1)),  # no diabetes
        ],
        "npr": [
            npr(1, D("2018-05-10"), "E119"),
            npr(2, D("2018-05-10"), "E119"),
            npr(3, D("2014-06-01"), "E119"),
            npr(3, D("2016-01-01"), "E119"),
            *_T2D_2019,
            npr(6, D("2017-05-05"), "I219"),
            npr(7, D("2019-01-01"), "I220"),
            npr(8, D("2019-01-01"), "I219"),
        ],
        "lmr": [
            lmr(1, D("2018-06-01"), "A10BA02"),
            lmr(2, D("2018-06-01"), "A10BA02"),
            lmr(3, D("2016-12-31"), "A10BA02"),  # 365 days after 2016-01-01 (a leap year)
            lmr(4, D("2020-01-02"), "A10BA02"),  # 366 days after 2019-01-01
            *[lmr(n, D("2019-02-01"), "A10BA02") for n in (5, 6, 7, 8)],
            lmr(8, D("2019-01-01"), "A10AE04"),
        ],
        "rekvisition": [rek(7, D("2018-12-31"), "A10AB01", "01001")],
        "ndr": [
            ndr(1, D("2018-04-01"), hba1c=60.0),
            ndr(2, D("2018-04-01"), hba1c=60.0),
            ndr(3, D("2015-06-01"), hba1c=55.0),
            ndr(4, D("2018-12-01"), hba1c=60.0),
            ndr(5, D("2018-12-01"), hba1c=50.0),
            *[ndr(n, D("2018-12-01"), hba1c=60.0) for n in (6, 7, 8)],
        ],
    },
    [
        {1, 2, 3, 4, 5, 6, 7, 8},
        {1, 3, 4, 5, 6, 7, 8},
        {1, 3, 5, 6, 7, 8},
        {1, 3, 6, 7, 8},
        {1, 3, 7, 8},
        {1, 3, 8},
    ],
    index={
        1: D("2018-05-10"),
        2: D("2018-05-10"),
        3: D("2016-01-01"),
        **{n: D("2019-01-01") for n in (4, 5, 6, 7, 8)},
    },
    breakdown={("18", "female"): 1, ("01", "male"): 1, ("01", "female"): 1},
)

_names = [c.name for c in CASES]
assert len(_names) == len(set(_names)), "case names must be unique"


# --- the tests -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
def test_reference(c: Case, catalog) -> None:
    res = evaluate(parse(c.text), c.tables, catalog, purpose=c.purpose)
    assert [set(s) for s in res.steps] == c.steps
    assert res.counts() == [len(s) for s in c.steps]
    if c.index is not None:
        assert res.index == c.index
    assert res.breakdown == (c.breakdown or (c.report_tables[0] if c.report_tables else {}))
    if c.report_tables is not None:
        assert list(res.tables) == c.report_tables


def _norm(v: Any) -> Any:
    if v is None:
        return None
    if hasattr(v, "item"):  # numpy scalars
        v = v.item()
    if isinstance(v, float):
        return None if v != v else int(v) if v.is_integer() else v
    return v


def _breakdown_key(dims: tuple[ir.Dim | ir.AgeBand, ...], row: dict[str, Any]) -> tuple:
    values = []
    for d in dims:
        # the engine's name for an age band column is its own; any `age...` column will do
        name = next(k for k in row if k.startswith("age")) if isinstance(d, ir.AgeBand) else d.name
        values.append(_norm(row[name]))
    return tuple(values)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
def test_engine(c: Case, backend: str, catalog, tmp_path: Path, place) -> None:
    """Every case on every backend (the same expected persons, written by hand)."""
    from antal.engine import count_exact  # type: ignore[attr-defined]

    inst = place(backend, c.tables, tmp_path)
    cohort = parse(c.text)
    res = count_exact(c.text, inst, catalog, purpose=c.purpose, backend=backend)
    assert [int(n) for _label, n in res.attrition] == [len(s) for s in c.steps]
    if c.breakdown is not None:
        got = {_breakdown_key(cohort.report, row): int(row["count"]) for row in res.breakdown}
        assert got == c.breakdown
    if c.report_tables is not None:
        names = res.names
        got_tables = [
            {_breakdown_key(rep.dims, row): int(row["count"]) for row in t.rows(names)}
            for rep, t in zip(cohort.reports, res.tables, strict=True)
        ]
        assert got_tables == c.report_tables


_ARROW = {
    "bigint": "int64",
    "smallint": "int16",
    "varchar": "string",
    "double": "double",
    "date": "date32[day]",
}


def test_extract_schemas_match_catalog(catalog) -> None:
    """The hand-written Arrow schemas of conftest agree with the bundled catalog."""
    from conftest import EXTRACT_SCHEMAS

    assert set(EXTRACT_SCHEMAS) == set(catalog.registers)
    for rid, schema in EXTRACT_SCHEMAS.items():
        want = [(v.name, _ARROW[v.type]) for v in catalog.registers[rid].variables]
        assert [(f.name, str(f.type)) for f in schema] == want, rid


def test_write_extracts_round_trip(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from conftest import EXTRACT_SCHEMAS

    write_extracts({"population": pop(1, 2), "npr": [npr(1, day(-1), "E119")]}, tmp_path)
    assert sorted(p.stem for p in tmp_path.glob("*.parquet")) == sorted(EXTRACT_SCHEMAS)
    t = pq.read_table(tmp_path / "npr.parquet")
    assert t.schema == EXTRACT_SCHEMAS["npr"]
    assert t.to_pylist()[0]["indatum"] == day(-1)
    assert pq.read_table(tmp_path / "dors.parquet").num_rows == 0
    with pytest.raises(KeyError):
        write_extracts({"npr": [{"lopnr": 1, "indatun": day(0)}]}, tmp_path)
