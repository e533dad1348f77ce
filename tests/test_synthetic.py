"""The synthetic extract generator: layout, determinism, Sweden-likeness, consistency.

Figures are computed here independently, with SQL over the written files; only
the published figures themselves (`TARGETS`) come from the generator (`targets.py`).
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from antal import catalog
from antal.synthetic import REGISTERS, generate
from antal.synthetic.conditions import CONDITIONS, LINKS, RISK_FACTORS
from antal.synthetic.lmr import OAC_PREFIXES
from antal.synthetic.targets import EVENTS, TARGETS, targets_markdown

# the module itself (the package's `generate` attribute is the function)
gen = importlib.import_module("antal.synthetic.generate")

PERSONS, SEED = 20_000, 7
BIG = 200_000  # the links between conditions are rarer: checked on a larger extract

# The canonical layout of docs/extracts.md, written out here on purpose (not taken from REGISTERS).
I64, I16, DT, S, F = pa.int64(), pa.int16(), pa.date32(), pa.string(), pa.float64()
SPEC: dict[str, list[tuple[str, pa.DataType]]] = {
    "population": [("lopnr", I64), ("kon", I16), ("fodelsear", I16), ("fodelsemanad", I16),
                   ("lan", S), ("kommun", S)],
    "npr": [("lopnr", I64), ("indatum", DT), ("utdatum", DT), ("vardform", S), ("sjukhus", S),
            ("mvo", S), ("hdia", S), ("diagnos", S), ("op", S), ("ekod", S)],
    "lmr": [("lopnr", I64), ("edatum", DT), ("atc", S), ("antal", F), ("ddd", F),
            ("fdatum", DT), ("doser", S), ("ordinationsorsak", S), ("arbetsplats", S)],
    "rekvisition": [("lopnr", I64), ("adm_datum", DT), ("atc", S), ("sjukhus", S), ("mvo", S)],
    "dors": [("lopnr", I64), ("dodsdat", DT), ("dodsdag_okand", I16), ("ulorsak", S),
             ("morsak", S)],
    "ndr": [("lopnr", I64), ("regdat", DT), ("diabetestyp", I16), ("hba1c", F), ("bmi", F),
            ("systoliskt", F)],
    "nkbc": [("lopnr", I64), ("diagnosdatum", DT), ("er", S), ("her2", S), ("stadium", S)],
    "gms": [("lopnr", I64), ("provdatum", DT), ("gene", S), ("variant", S), ("klass", S)],
    "biobank": [("lopnr", I64), ("provdatum", DT), ("provtyp", S), ("biobank", S)],
    "optout": [("lopnr", I64), ("datum", DT), ("andamal", S)],
    "migration": [("lopnr", I64), ("datum", DT), ("riktning", S)],
}  # fmt: skip

# The date column of each event register, and the first day it may hold.
EVENT_DATES = {
    "npr": ("indatum", "2006-01-01"),
    "lmr": ("edatum", "2006-01-01"),
    "rekvisition": ("adm_datum", "2015-01-01"),
    "dors": ("dodsdat", "2006-01-01"),
    "ndr": ("regdat", "2006-01-01"),
    "nkbc": ("diagnosdatum", "2008-01-01"),
    "gms": ("provdatum", "2019-01-01"),
    "biobank": ("provdatum", "2006-01-01"),
    "optout": ("datum", "2020-01-01"),
    "migration": ("datum", "2006-01-01"),
}

# Age at the end of follow-up (death, or the end of the window), as the cohort language computes it.
AGE_END = """(12 * year(least(coalesce(d.dodsdat, DATE '2025-12-31'), DATE '2025-12-31'))
      + month(least(coalesce(d.dodsdat, DATE '2025-12-31'), DATE '2025-12-31'))
      - 12 * p.fodelsear - p.fodelsemanad) // 12"""

# Condition targets: the codes (regex on a code's start) and, for a point prevalence,
# the denominator among the persons alive on the day (an incidence counts everyone).
CONDITION_SQL = {
    "t2d": ("E11", "age_ref >= 18"),
    "t1d": ("E10", "true"),
    "ht": ("I10", "age_ref >= 18"),
    "hf": ("I50", "true"),
    "af": ("I48", "age_ref >= 18"),
    "mi": ("I2[12]", None),
    "stroke": ("I6[134]", None),
    "copd": ("J44", "age_ref >= 40"),
    "breast": ("C50", None),
    "ra": ("M0[56]", "age_ref >= 18"),
    "lung": ("C34", None),
}
# The published figures' day and years, and the population incidences are scaled to.
REF, Y0, Y1, SWEDEN = "2023-12-31", 2019, 2023, 10_550_000
TARGET = {t.key: t for t in TARGETS}


@pytest.fixture(scope="session")
def extract(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int], list[int]]:
    out = tmp_path_factory.mktemp("synthetic")
    seen: list[int] = []
    rows = generate(PERSONS, SEED, out, progress=seen.append)
    return out, rows, seen


@pytest.fixture(scope="session")
def db(extract: tuple[Path, dict[str, int], list[int]]) -> duckdb.DuckDBPyConnection:
    return connect(extract[0])


@pytest.fixture(scope="session")
def big(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    out = tmp_path_factory.mktemp("synthetic_big")
    generate(BIG, SEED, out)
    return connect(out)


def connect(out: Path) -> duckdb.DuckDBPyConnection:
    """Views of the ten files, and `person`: population with death and age at the end."""
    con = duckdb.connect()
    for rid in REGISTERS:
        con.execute(f"CREATE VIEW {rid} AS SELECT * FROM read_parquet('{out / rid}.parquet')")
    con.execute(
        f"""CREATE TABLE person AS
            SELECT p.*, d.dodsdat, {AGE_END} AS age_end,
                   (12 * 2023 + 12 - 12 * p.fodelsear - p.fodelsemanad) // 12 AS age_ref,
                   make_date(p.fodelsear, p.fodelsemanad, 1) AS born
            FROM population p LEFT JOIN dors d USING (lopnr)"""
    )
    return con


def one(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


def assert_share(key: str, hits: float, n: float) -> None:
    """Within the target's tolerance, or 4 binomial SDs when the denominator is small."""
    t = TARGET[key]
    assert n > 0, key
    share = hits / n
    allowed = max(t.tol, 4 * math.sqrt(t.figure * (1 - t.figure) / n))
    assert abs(share - t.figure) <= allowed, (
        f"{key}: {share:.4f} ({hits:.0f}/{n:.0f}), expected {t.figure} ± {allowed:.4f}"
    )


# --------------------------------------------------------------------------- layout


def test_registers_are_the_spec_layout() -> None:
    assert list(REGISTERS) == list(SPEC)
    for rid, cols in SPEC.items():
        assert [(f.name, f.type) for f in REGISTERS[rid]] == cols, rid


def test_files_have_exactly_the_spec_columns_and_types(extract) -> None:
    out, rows, _ = extract
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{r}.parquet" for r in SPEC] + ["release.yaml"]
    )
    for rid, cols in SPEC.items():
        schema = pq.read_schema(out / f"{rid}.parquet")
        assert [(f.name, f.type) for f in schema] == cols, rid
        assert pq.ParquetFile(out / f"{rid}.parquet").metadata.num_rows == rows[rid]


def test_every_register_has_rows_and_progress_reaches_the_total(extract) -> None:
    _, rows, seen = extract
    assert rows["population"] == PERSONS
    assert all(n > 0 for n in rows.values()), rows
    assert seen and seen[-1] == PERSONS and seen == sorted(seen)


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(3000, 11, a)
    generate(3000, 11, b)
    generate(3000, 12, c)
    for rid in SPEC:
        assert (a / f"{rid}.parquet").read_bytes() == (b / f"{rid}.parquet").read_bytes(), rid
    assert (a / "release.yaml").read_bytes() == (b / "release.yaml").read_bytes()
    assert (a / "npr.parquet").read_bytes() != (c / "npr.parquet").read_bytes()


def test_several_chunks_keep_lopnr_unique_and_sorted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gen, "CHUNK", 1000)
    seen: list[int] = []
    rows = generate(2500, 3, tmp_path, progress=seen.append)
    assert seen == [1000, 2000, 2500]
    con = duckdb.connect()
    lop = con.execute(
        f"SELECT lopnr FROM read_parquet('{tmp_path / 'population.parquet'}')"
    ).fetchnumpy()["lopnr"]
    assert len(lop) == rows["population"] == 2500
    assert (lop[1:] > lop[:-1]).all()
    for rid, (col, _) in EVENT_DATES.items():
        bad = con.execute(
            f"""SELECT count(*) FROM (
                  SELECT lopnr, {col}, lag(lopnr) OVER () AS pl, lag({col}) OVER () AS pd
                  FROM read_parquet('{tmp_path / rid}.parquet'))
                WHERE lopnr < pl OR (lopnr = pl AND {col} < pd)"""
        ).fetchone()
        assert bad == (0,), rid


def test_negative_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(-1, 1, tmp_path)
    with pytest.raises(ValueError):
        generate(10, -1, tmp_path)


def test_readme_lists_the_targets() -> None:
    readme = Path(gen.__file__).with_name("README.md").read_text(encoding="utf-8")
    assert targets_markdown() in readme


# --------------------------------------------------------------------------- Sweden-likeness


def test_regions_follow_the_published_populations(db) -> None:
    regions = catalog.load_regions()
    total = sum(r.population for r in regions)
    got = dict(db.execute("SELECT lan, count(*) FROM population GROUP BY lan").fetchall())
    assert set(got) == {r.code for r in regions}
    for r in regions:
        p = r.population / total
        share = got[r.code] / PERSONS
        assert abs(share - p) <= 4 * math.sqrt(p * (1 - p) / PERSONS) + 0.002, r.code
    assert abs(got["01"] / PERSONS - 0.233) < 0.02


def test_kommun_belongs_to_lan(db) -> None:
    assert one(db, "SELECT count(*) FROM population WHERE kommun[1:2] != lan") == 0
    assert (
        one(db, "SELECT count(*) FROM population WHERE NOT regexp_matches(kommun, '^[0-9]{4}$')")
        == 0
    )
    assert one(db, "SELECT count(DISTINCT kommun) FROM population") >= 40


def test_sex_ratio(db) -> None:
    assert_share("male", one(db, "SELECT count(*) FROM population WHERE kon = 1"), PERSONS)
    assert one(db, "SELECT count(*) FROM population WHERE kon NOT IN (1, 2)") == 0


@pytest.mark.parametrize(("key", "cond"), [("age65", ">= 65"), ("under18", "< 18")])
def test_age_pyramid_of_the_living_in_2023(db, key: str, cond: str) -> None:
    alive = "FROM person WHERE (dodsdat IS NULL OR dodsdat > DATE '2023-12-31')"
    n = one(db, f"SELECT count(*) {alive}")
    assert_share(key, one(db, f"SELECT count(*) {alive} AND 2023 - fodelsear {cond}"), n)


def test_birth_months_are_uniform_and_valid(db) -> None:
    counts = [
        c
        for _, c in db.execute(
            "SELECT fodelsemanad, count(*) FROM population GROUP BY ALL ORDER BY 1"
        ).fetchall()
    ]
    assert len(counts) == 12
    assert min(counts) > PERSONS / 12 * 0.85 and max(counts) < PERSONS / 12 * 1.15


def person_years(y0: int, y1: int, among: str = "true") -> str:
    """SQL: the person-years lived in years y0..y1 by the persons matching `among`."""
    return f"""SELECT sum(greatest(0, date_diff('day', greatest(born, DATE '{y0}-01-01'),
                   least(coalesce(dodsdat + 1, DATE '{y1 + 1}-01-01'), DATE '{y1 + 1}-01-01'))))
                   / 365.25 FROM person WHERE {among}"""


def test_deaths_a_year_are_level_and_near_the_national_rate(big) -> None:
    """Deaths per 1,000 person-years in each year 2007-2025 (SCB's crude death rate), and no
    step where the generator's way of drawing deaths changes (2023 → 2024)."""
    t = TARGET["deaths"]
    rates = {}
    for y in range(2007, 2026):
        deaths = one(big, f"SELECT count(*) FROM person WHERE year(dodsdat) = {y}")
        rates[y] = t.per * deaths / one(big, person_years(y, y))
    off = {y: round(r, 2) for y, r in rates.items() if abs(r - t.figure) > t.tol}
    assert not off, f"deaths per {t.per:,} person-years off {t.figure} ± {t.tol}: {off}"
    before = sum(rates[y] for y in (2021, 2022, 2023)) / 3
    after = (rates[2024] + rates[2025]) / 2
    assert abs(after / before - 1) < 0.08, (before, after)


def test_deaths(db) -> None:
    assert_share("dead", one(db, "SELECT count(*) FROM dors"), PERSONS)
    # mortality rises with age: the dead are old, and older than the living
    mean_age = one(db, "SELECT avg(age_end) FROM person WHERE dodsdat IS NOT NULL")
    assert 72 <= mean_age <= 84
    young = one(db, "SELECT avg((dodsdat IS NOT NULL)::INT) FROM person WHERE age_end < 50")
    old = one(db, "SELECT avg((dodsdat IS NOT NULL)::INT) FROM person WHERE age_end >= 80")
    assert old > 10 * young


def known(codes: str, until: str | None = None) -> str:
    """Persons with a contact in npr with one of codes among its diagnoses (by `until`)."""
    by = f" AND indatum <= DATE '{until}'" if until else ""
    return f"SELECT lopnr FROM npr WHERE regexp_matches(diagnos, '(^| ){codes}'){by}"


def diabetes2(until: str | None = None) -> str:
    """Persons with type 2 diabetes known from npr (E11) or ndr (any type but 1: the
    generator's type 2 includes those recorded as LADA, another type or unknown), by `until`."""
    by = f" AND regdat <= DATE '{until}'" if until else ""
    return f"{known('E11', until)} UNION SELECT lopnr FROM ndr WHERE diabetestyp <> 1{by}"


def prevalence(con: duckdb.DuckDBPyConnection, key: str) -> tuple[int, int]:
    """(persons in the denominator alive on REF, those of them diagnosed by REF)."""
    codes, among = CONDITION_SQL[key]
    cases = diabetes2(REF) if key == "t2d" else known(codes, REF)
    row = con.execute(
        f"""SELECT count(*), count(*) FILTER (lopnr IN ({cases})) FROM person
            WHERE (dodsdat IS NULL OR dodsdat > DATE '{REF}') AND {among}"""
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def incidence(con: duckdb.DuckDBPyConnection, key: str) -> tuple[float, float]:
    """(new cases a year in Sweden, the expected number of cases in the extract at the
    target's rate): persons whose first contact since 2006 is in Y0-Y1, per person-year
    lived in Y0-Y1 by all persons, times Sweden's population."""
    codes, _ = CONDITION_SQL[key]
    first = f"""SELECT lopnr, min(indatum) AS d FROM npr
                WHERE regexp_matches(diagnos, '(^| ){codes}') GROUP BY lopnr"""
    cases = one(con, f"SELECT count(*) FROM ({first}) WHERE year(d) BETWEEN {Y0} AND {Y1}")
    py = one(con, person_years(Y0, Y1))
    return cases / py * SWEDEN, TARGET[key].figure / SWEDEN * py


def assert_incidence(key: str, rate: float, expected: float) -> None:
    """Within the tolerance, or 4 Poisson standard deviations of the expected count."""
    t = TARGET[key]
    allowed = max(t.tol, 4 * t.figure / math.sqrt(expected))
    assert abs(rate - t.figure) <= allowed, (
        f"{key}: {rate:,.0f} a year, expected {t.figure:,.0f} ± {allowed:,.0f}"
    )


# An acute myocardial infarction as Socialstyrelsen's statistics count one: I21-I22 among
# the diagnoses of an inpatient stay, or among the causes of death (underlying or
# contributing); the person and the day.
MI_EVENTS = """SELECT lopnr, indatum AS d FROM npr
               WHERE vardform = 'S' AND regexp_matches(diagnos, '(^| )I2[12]')
               UNION ALL
               SELECT lopnr, dodsdat FROM dors
               WHERE regexp_matches(ulorsak || ' ' || coalesce(morsak, ''), '(^| )I2[12]')"""


def events(con: duckdb.DuckDBPyConnection, key: str) -> tuple[float, float]:
    """(persons with an infarction a year in Sweden, the expected number in the extract):
    persons with an event in each year Y0-Y1, summed, per person-year lived then."""
    assert key == "mi", key  # the one EVENTS target
    persons = one(
        con,
        f"""SELECT sum(n) FROM (SELECT year(d) AS y, count(DISTINCT lopnr) AS n
            FROM ({MI_EVENTS}) WHERE year(d) BETWEEN {Y0} AND {Y1} GROUP BY 1)""",
    )
    py = one(con, person_years(Y0, Y1))
    return persons / py * SWEDEN, TARGET[key].figure / SWEDEN * py


@pytest.mark.parametrize("key", sorted(CONDITION_SQL))
def test_condition_figures_like_against_like(big, key: str) -> None:
    """Each condition as its published figure is defined: a point prevalence on REF among
    the persons alive then, new cases a year scaled to Sweden, or (infarction) persons with
    an event a year from the patient and cause of death registers, as Socialstyrelsen
    counts them."""
    t = TARGET[key]
    assert t.prevalence or t.incidence, key
    assert (CONDITION_SQL[key][1] is None) == t.incidence, key
    if t.kind == EVENTS:
        assert_incidence(key, *events(big, key))
    elif t.incidence:
        assert_incidence(key, *incidence(big, key))
    else:
        n, hits = prevalence(big, key)
        assert_share(key, hits, n)


def test_infarction_case_fatality_within_28_days(big) -> None:
    """Of the persons whose first infarction (npr inpatient or dors) is in Y0-Y1, the share
    dead within 28 days: those who die before reaching hospital (dors only) and those who
    die after admission."""
    n, dead = big.execute(
        f"""WITH f AS (SELECT lopnr, min(d) AS d FROM ({MI_EVENTS}) GROUP BY 1)
            SELECT count(*), count(*) FILTER (p.dodsdat <= f.d + 28)
            FROM f JOIN person p USING (lopnr) WHERE year(f.d) BETWEEN {Y0} AND {Y1}"""
    ).fetchone()
    assert_share("mi_fatal28", dead, n)
    # some are known from the cause of death register alone, as in the real registers
    only_dors = one(
        big,
        f"""SELECT count(*) FROM dors WHERE year(dodsdat) BETWEEN {Y0} AND {Y1}
            AND regexp_matches(ulorsak || ' ' || coalesce(morsak, ''), '(^| )I2[12]')
            AND lopnr NOT IN (SELECT lopnr FROM npr WHERE regexp_matches(diagnos, 'I2[12]'))""",
    )
    assert 0.05 * n < only_dors < 0.25 * n, (only_dors, n)


def test_an_old_infarction_is_not_certified_as_acute(big) -> None:
    """ICD-10 keeps I21 for 28 days: of the infarction patients who die later, few have
    I21 among their causes of death (a new fatal infarction), not the old one listed as
    acute; they have the old infarction or chronic ischaemic heart disease instead."""
    later, acute, old = big.execute(
        """WITH f AS (SELECT lopnr, min(indatum) AS d FROM npr
                      WHERE regexp_matches(diagnos, '(^| )I21') GROUP BY 1),
           c AS (SELECT ulorsak || ' ' || coalesce(morsak, '') AS causes
                 FROM dors JOIN f USING (lopnr) WHERE dodsdat > f.d + 28)
           SELECT count(*), count(*) FILTER (regexp_matches(causes, '(^| )I21')),
                  count(*) FILTER (regexp_matches(causes, '(^| )I25[29]'))
           FROM c"""
    ).fetchone()
    assert later > 200
    assert acute < 0.08 * later, (acute, later)
    assert old > 0.25 * later, (old, later)


def test_an_infarction_follow_up_carries_i21_for_28_days(big) -> None:
    follow = one(
        big,
        """WITH f AS (SELECT lopnr, min(indatum) AS d FROM npr
                      WHERE regexp_matches(diagnos, '(^| )I21') GROUP BY 1)
           SELECT count(*) FROM npr JOIN f USING (lopnr)
           WHERE indatum > f.d + 28 AND regexp_matches(diagnos, '(^| )I21')""",
    )
    assert follow == 0  # an I22 re-infarction is the later acute code


def test_first_heart_failure_admissions_near_the_published_rate(big) -> None:
    """First inpatient stays with heart failure as the main diagnosis at 45-84, per 100,000
    persons of that age a year, Y0-Y1 (as Schaufelberger et al. count them)."""
    t = TARGET["hf_admission"]
    rows = big.execute(
        f"""WITH f AS (SELECT lopnr, min(indatum) AS d FROM npr
                       WHERE vardform = 'S' AND hdia LIKE 'I50%' GROUP BY 1)
            SELECT y, (SELECT count(*) FROM f JOIN person p USING (lopnr)
                       WHERE year(f.d) = y AND y - p.fodelsear BETWEEN 45 AND 84),
                      (SELECT count(*) FROM person q
                       WHERE y - q.fodelsear BETWEEN 45 AND 84 AND q.born <= make_date(y, 7, 1)
                         AND (q.dodsdat IS NULL OR q.dodsdat >= make_date(y, 7, 1)))
            FROM range({Y0}, {Y1 + 1}) r(y)"""
    ).fetchall()
    first = sum(r[1] for r in rows)
    rate = t.per * first / sum(r[2] for r in rows)
    assert abs(rate - t.figure) <= max(t.tol, 4 * t.figure / math.sqrt(first)), rate


def test_every_condition_target_is_checked() -> None:
    conditions = {c.key for c in CONDITIONS}
    assert conditions == set(CONDITION_SQL)
    assert conditions <= set(TARGET)


def test_not_everyone_is_sick(db) -> None:
    share = one(db, "SELECT count(DISTINCT lopnr) FROM npr") / PERSONS
    assert 0.3 <= share <= 0.9


def test_anticoagulants_in_atrial_fibrillation(db) -> None:
    """A point share: of the persons alive on REF with AF diagnosed by then, those who
    collected an oral anticoagulant in the year before (dispensations are ~3-monthly)."""
    oac = " OR ".join(f"atc LIKE '{p}%'" for p in OAC_PREFIXES)
    af = f"""SELECT lopnr FROM person WHERE (dodsdat IS NULL OR dodsdat > DATE '{REF}')
             AND lopnr IN ({known("I48", REF)})"""
    n = one(db, f"SELECT count(*) FROM ({af})")
    hits = one(
        db,
        f"""SELECT count(*) FROM ({af}) WHERE lopnr IN (SELECT lopnr FROM lmr WHERE ({oac})
            AND edatum > DATE '{REF}' - INTERVAL 1 YEAR AND edatum <= DATE '{REF}')""",
    )
    assert_share("anticoag_af", hits, n)


@pytest.mark.parametrize(("key", "col"), [("er_pos", "er"), ("her2_pos", "her2")])
def test_breast_cancer_receptors(db, key: str, col: str) -> None:
    n = one(db, "SELECT count(*) FROM nkbc")
    assert_share(key, one(db, f"SELECT count(*) FROM nkbc WHERE {col} = 'positiv'"), n)
    assert one(db, f"SELECT count(*) FROM nkbc WHERE {col} NOT IN ('positiv', 'negativ')") == 0


def test_breast_cancer_stages(db) -> None:
    got = dict(db.execute("SELECT stadium, count(*) FROM nkbc GROUP BY 1").fetchall())
    assert set(got) <= {"0", "I", "II", "III", "IV"}
    n = sum(got.values())
    assert got.get("I", 0) > got.get("III", 0) > 0 and got.get("II", 0) > got.get("IV", 0)
    assert got.get("IV", 0) / n < 0.12


@pytest.mark.parametrize(("key", "gene"), [("egfr", "EGFR"), ("alk", "ALK"), ("kras", "KRAS")])
def test_lung_cancer_drivers(db, key: str, gene: str) -> None:
    tested = """SELECT DISTINCT lopnr FROM gms WHERE lopnr IN
                (SELECT lopnr FROM npr WHERE regexp_matches(diagnos, '(^| )C34'))"""
    n = one(db, f"SELECT count(*) FROM ({tested})")
    hits = one(
        db,
        f"""SELECT count(*) FROM ({tested}) WHERE lopnr IN
            (SELECT lopnr FROM gms WHERE gene = '{gene}' AND klass != 'VUS')""",
    )
    assert_share(key, hits, n)


def test_gms_values(db) -> None:
    assert (
        one(db, "SELECT count(*) FROM gms WHERE klass NOT IN ('patogen', 'trolig patogen', 'VUS')")
        == 0
    )
    bad = one(
        db,
        r"""SELECT count(*) FROM gms WHERE NOT (regexp_matches(variant, '^p\.[A-Z*0-9_a-z]+$')
                      OR variant = 'EML4-ALK')""",
    )
    assert bad == 0
    assert one(db, "SELECT count(*) FROM gms WHERE gene = 'EGFR' AND variant = 'p.L858R'") >= 0
    assert one(db, "SELECT count(*) FROM gms WHERE gene = 'ALK' AND variant != 'EML4-ALK'") == 0


def test_optout(db) -> None:
    assert_share("optout", one(db, "SELECT count(DISTINCT lopnr) FROM optout"), PERSONS)
    got = {r[0] for r in db.execute("SELECT DISTINCT andamal FROM optout").fetchall()}
    assert got <= {"forskning", "kommersiell", "alla"} and "forskning" in got


def test_ndr_values(db) -> None:
    assert one(db, "SELECT count(*) FROM ndr WHERE diabetestyp NOT IN (1, 2, 3, 4, 9)") == 0
    # other types exist: among persons not registered as type 1, ~5% LADA, ~1% other, ~1% unknown
    shares = dict(db.execute(
        "SELECT diabetestyp, count(DISTINCT lopnr) FROM ndr WHERE diabetestyp <> 1 GROUP BY 1"
    ).fetchall())  # fmt: skip
    n = sum(shares.values())
    assert 0.03 <= shares[3] / n <= 0.07 and 0.002 <= shares[4] / n <= 0.025
    assert 0.002 <= shares[9] / n <= 0.025
    mean, lo, hi = db.execute("SELECT avg(hba1c), min(hba1c), max(hba1c) FROM ndr").fetchone()
    assert 50 <= mean <= 60 and lo >= 30 and hi <= 130
    assert 27 <= one(db, "SELECT avg(bmi) FROM ndr") <= 32
    assert 125 <= one(db, "SELECT avg(systoliskt) FROM ndr") <= 145
    for col in ("hba1c", "bmi", "systoliskt"):
        nulls = one(db, f"SELECT avg(({col} IS NULL)::INT) FROM ndr")
        assert 0.08 <= nulls <= 0.22, col
    # roughly yearly: most diabetics have several registrations
    assert one(db, "SELECT avg(n) FROM (SELECT count(*) n FROM ndr GROUP BY lopnr)") >= 3


NDR2 = "SELECT lopnr, min(regdat) AS reg FROM ndr WHERE diabetestyp = 2 GROUP BY lopnr"


def test_ndr_type2_mostly_without_npr(big) -> None:
    """Type 2 diabetes is found and followed in primary care: many of NDR's type 2
    diabetics never have an E11 contact in npr."""
    n, hits = big.execute(
        f"SELECT count(*), count(*) FILTER (lopnr IN ({known('E11')})) FROM ({NDR2})"
    ).fetchone()
    assert_share("ndr_npr", hits, n)


def test_ndr_registration_precedes_the_first_e11(big) -> None:
    n, hits, median_years = big.execute(
        f"""WITH e AS (SELECT lopnr, min(indatum) AS e11 FROM npr
                       WHERE regexp_matches(diagnos, '(^| )E11') GROUP BY lopnr)
            SELECT count(*), count(*) FILTER (reg <= e11 - 365),
                   median(e11 - reg) / 365.25 FROM ({NDR2}) JOIN e USING (lopnr)"""
    ).fetchone()
    assert_share("ndr_first", hits, n)
    assert median_years >= 2, median_years


@pytest.mark.parametrize("which", ["db", "big"])
def test_no_children_in_ndr(request: pytest.FixtureRequest, which: str) -> None:
    """NDR registers adults; children with diabetes are in Swediabkids (and type 1 diabetes
    starts in childhood: some enter NDR at 18)."""
    con = request.getfixturevalue(which)
    ages = """SELECT (12 * year(regdat) + month(regdat) - 12 * fodelsear - fodelsemanad) // 12
              AS age FROM ndr JOIN population USING (lopnr)"""
    assert one(con, f"SELECT count(*) FROM ({ages}) WHERE age < 18") == 0
    assert one(con, f"SELECT count(*) FROM ({ages}) WHERE age = 18") > 0


# --------------------------------------------------------------------------- consistency


def test_every_lopnr_is_in_population(db) -> None:
    for rid in EVENT_DATES:
        orphans = one(
            db, f"SELECT count(*) FROM {rid} WHERE lopnr NOT IN (SELECT lopnr FROM population)"
        )
        assert orphans == 0, rid
    assert one(db, "SELECT count(*) - count(DISTINCT lopnr) FROM population") == 0


@pytest.mark.parametrize("rid", sorted(EVENT_DATES))
def test_no_event_before_birth_or_after_death_or_outside_the_window(db, rid: str) -> None:
    col, first = EVENT_DATES[rid]
    base = f"FROM {rid} e JOIN person p USING (lopnr)"
    assert one(db, f"SELECT count(*) {base} WHERE e.{col} < p.born") == 0
    assert one(db, f"SELECT count(*) {base} WHERE e.{col} > p.dodsdat") == 0
    assert one(db, f"SELECT count(*) FROM {rid} WHERE {col} < DATE '{first}'") == 0
    assert one(db, f"SELECT count(*) FROM {rid} WHERE {col} > DATE '2025-12-31'") == 0
    assert one(db, f"SELECT count(*) FROM {rid} WHERE {col} IS NULL") == 0


def test_discharge_is_within_life(db) -> None:
    bad = one(db, "SELECT count(*) FROM npr JOIN person USING (lopnr) WHERE utdatum > dodsdat")
    assert bad == 0
    assert one(db, "SELECT count(*) FROM npr WHERE utdatum < indatum") == 0


def test_death_is_once_per_person(db) -> None:
    assert one(db, "SELECT count(*) - count(DISTINCT lopnr) FROM dors") == 0
    assert one(db, "SELECT count(*) FROM dors WHERE ulorsak IS NULL") == 0


def test_utdatum_null_iff_outpatient(db) -> None:
    assert one(db, "SELECT count(*) FROM npr WHERE vardform NOT IN ('S', 'O')") == 0
    assert one(db, "SELECT count(*) FROM npr WHERE (utdatum IS NULL) != (vardform = 'O')") == 0
    share_s = one(db, "SELECT avg((vardform = 'S')::INT) FROM npr")
    assert 0.1 <= share_s <= 0.6


def test_diagnos_starts_with_hdia(db) -> None:
    assert one(db, "SELECT count(*) FROM npr WHERE split_part(diagnos, ' ', 1) != hdia") == 0
    n = db.execute(
        "SELECT min(len(string_split(diagnos, ' '))), max(len(string_split(diagnos, ' '))) FROM npr"
    ).fetchone()
    assert n == (1, 4)
    # secondary diagnoses exist, e.g. a type 2 diabetes code after the main diagnosis
    assert one(db, "SELECT count(*) FROM npr WHERE regexp_matches(diagnos, ' E11')") > 0
    assert one(db, "SELECT count(*) FROM npr WHERE regexp_matches(diagnos, ' E110( |$)')") > 0


def test_codes_are_upper_case_without_dots(db) -> None:
    icd = "'^[A-Z][0-9]{2}[0-9A-Z]{0,2}$'"
    code_lists = {
        "npr": ["hdia", "diagnos"],
        "dors": ["ulorsak"],
    }
    for rid, cols in code_lists.items():
        for col in cols:
            bad = one(
                db,
                f"""SELECT count(*) FROM (SELECT unnest(string_split({col}, ' ')) AS c FROM {rid})
                    WHERE NOT regexp_matches(c, {icd})""",
            )
            assert bad == 0, (rid, col)
    bad_op = one(
        db,
        r"""SELECT count(*) FROM npr WHERE op IS NOT NULL
                         AND NOT regexp_matches(op, '^[A-Z]{3}[0-9]{2}( [A-Z]{3}[0-9]{2})*$')""",
    )
    assert bad_op == 0
    assert 0 < one(db, "SELECT avg((op IS NULL)::INT) FROM npr") < 1
    for rid in ("lmr", "rekvisition"):
        bad = one(
            db,
            f"SELECT count(*) FROM {rid} "
            "WHERE NOT regexp_matches(atc, '^[A-Z][0-9]{2}[A-Z]{2}[0-9]{2}$')",
        )
        assert bad == 0, rid
    assert one(db, "SELECT count(*) FROM npr WHERE NOT regexp_matches(mvo, '^[0-9]{3}$')") == 0


def test_hospitals_belong_to_the_persons_region(db) -> None:
    sites = {s.code: s.region for s in catalog.load_sites()}
    db.execute(
        "CREATE OR REPLACE TEMP TABLE site AS SELECT * FROM (VALUES "
        + ", ".join(f"('{c}', '{r}')" for c, r in sites.items())
        + ") t(sjukhus, region)"
    )
    for rid in ("npr", "rekvisition"):
        assert (
            one(db, f"SELECT count(*) FROM {rid} WHERE sjukhus NOT IN (SELECT sjukhus FROM site)")
            == 0
        )
        own = one(
            db,
            f"""SELECT avg((s.region = p.lan)::INT) FROM {rid} e
                JOIN site s USING (sjukhus) JOIN population p USING (lopnr)""",
        )
        assert own >= 0.95, rid
    # most care happens at the region's main hospital, not all of it
    main = {s.region: s.code for s in reversed(catalog.load_sites())}
    share = one(
        db,
        "SELECT avg((sjukhus IN ("
        + ", ".join(f"'{c}'" for c in main.values())
        + "))::INT) FROM npr",
    )
    assert 0.5 <= share <= 0.9


def test_biobank_codes_are_the_region_of_residence(db) -> None:
    assert (
        one(
            db,
            "SELECT count(*) FROM biobank JOIN population USING (lopnr) "
            "WHERE biobank != 'BB' || lan",
        )
        == 0
    )
    kinds = {r[0] for r in db.execute("SELECT DISTINCT provtyp FROM biobank").fetchall()}
    assert kinds == {"helblod", "plasma", "serum", "vavnad_ffpe", "vavnad_frusen"}


@pytest.mark.parametrize(
    ("drug", "codes", "ndr"),
    [("A10BA02", "E11", True), ("L04AX03", "M0[56]", False), ("B01AF02", "I48", False),
     ("R03BB04", "J44", False), ("L02BA01", "C50", False), ("A10AE04", "E1[01]", True)],
)  # fmt: skip
def test_drugs_follow_diagnoses(db, drug: str, codes: str, ndr: bool) -> None:
    """Users of a drug were diagnosed before it in npr; for diabetes drugs, or registered in
    ndr, whose first registration follows the diagnosis by up to four months (type 2
    diabetes is found in primary care, which npr lacks)."""
    users = f"SELECT lopnr, min(edatum) AS first FROM lmr WHERE atc = '{drug}' GROUP BY lopnr"
    n = one(db, f"SELECT count(*) FROM ({users})")
    assert n > 0, drug
    in_ndr = (
        "OR EXISTS (SELECT 1 FROM ndr WHERE ndr.lopnr = u.lopnr AND ndr.regdat <= u.first + 120)"
        if ndr
        else ""
    )
    diagnosed_before = one(
        db,
        f"""SELECT count(*) FROM ({users}) u WHERE EXISTS (
              SELECT 1 FROM npr WHERE npr.lopnr = u.lopnr AND npr.indatum <= u.first
              AND regexp_matches(npr.diagnos, '(^| ){codes}')) {in_ndr}""",
    )
    # NDR registers ~90% of diabetics: a few on diabetes drugs are in neither register yet
    assert diagnosed_before / n >= (0.85 if ndr else 0.9), (drug, diagnosed_before, n)


def atc_alterations() -> list[dict[str, object]]:
    """The catalog's list of the WHO's ATC changes, read here on its own (not the generator's
    loader): old code, new code, year."""
    path = Path(catalog.__file__).parent / "codelists" / "atc-alterations.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))["changes"]


@pytest.mark.parametrize(("rid", "col"), [("lmr", "edatum"), ("rekvisition", "adm_datum")])
def test_atc_codes_follow_their_history(big, rid: str, col: str) -> None:
    """Each row holds the code valid on its day: a changed code's old one before the change
    (1 January of its year), the new one from then on (the old code of a split lives on
    for its other substances: formoterol and budesonide stay R03AK07)."""
    seen = 0
    for c in atc_alterations():
        first = f"DATE '{c['year']}-01-01'"
        new_early = one(
            big, f"SELECT count(*) FROM {rid} WHERE atc = '{c['new']}' AND {col} < {first}"
        )
        old_late = one(
            big, f"SELECT count(*) FROM {rid} WHERE atc = '{c['old']}' AND {col} >= {first}"
        )
        if c.get("split"):
            old_late = 0  # the split's old code still holds its other substances
        assert (new_early, old_late) == (0, 0), c
        seen += one(big, f"SELECT count(*) FROM {rid} WHERE atc = '{c['old']}'") > 0
    assert seen > 0, rid  # the history shows: some old codes are in the file


def test_atc_history_of_the_drugs_that_changed(big) -> None:
    """Trastuzumab (rekvisition), osimertinib and the JAK inhibitors (lmr) appear under both
    codes, each on its side of the change."""
    for rid, old, new in (
        ("rekvisition", "L01XC03", "L01FD01"),
        ("lmr", "L01XE35", "L01EB04"),
        ("lmr", "L04AA29", "L04AF01"),
    ):
        got = dict(
            big.execute(
                f"SELECT atc, count(*) FROM {rid} WHERE atc IN ('{old}', '{new}') GROUP BY 1"
            ).fetchall()
        )
        assert got.get(old, 0) > 0 and got.get(new, 0) > 0, (rid, got)


# The first day each drug the generator dispenses after 2006 could be dispensed: its
# marketing authorisation in the EU (a proxy for its introduction in Sweden), written out
# here from the sources on purpose (not taken from the generator's regimens). Where the
# source is a company's or a newspaper's announcement, its date is the day of the
# announcement (the Commission's decision was a few days before, so the bound is safe).
INTRODUCED: dict[str, str] = {
    # EMA EPAR Januvia, "date of issue of marketing authorisation valid throughout the EU"
    "A10BH01": "2007-03-20",  # sitagliptin
    "A10BH05": "2011-08-24",  # linagliptin, Trajenta (EMA, EMEA/H/C/002110)
    "A10BK01": "2012-11-12",  # dapagliflozin, Forxiga: Commission decision (2012)8378
    "A10BK03": "2014-05-21",  # empagliflozin, Jardiance (EMA, EMEA/H/C/002677)
    "A10BJ02": "2009-06-30",  # liraglutide, Victoza (Novo Nordisk, 16 February 2010)
    "A10BJ06": "2018-02-08",  # semaglutide, Ozempic (EMA)
    "A10AE06": "2013-01-21",  # insulin degludec, Tresiba (Novo Nordisk, announcement 6/2013)
    "B01AE07": "2008-03-18",  # dabigatran, Pradaxa (EPAR summary)
    # rivaroxaban, Xarelto: authorised after the CHMP's positive opinion of 25 July 2008
    # (Bayer, 28 July 2008); the Commission's date was not in the sources found
    "B01AF01": "2008-07-25",
    "B01AF02": "2011-05-18",  # apixaban, Eliquis (EU authorisation)
    "B01AF03": "2015-06-19",  # edoxaban, Lixiana (EMA authorisation date)
    "B01AC24": "2010-12-06",  # ticagrelor, Brilique (AstraZeneca, 6 December 2010)
    "C09DX04": "2015-11-19",  # sacubitril/valsartan, Entresto (EMA, EMEA/H/C/004062)
    "R03AL03": "2014-05-08",  # umeclidinium/vilanterol, Anoro (GSK, Reuters 8 May 2014)
    # olodaterol/tiotropium, Spiolto Respimat: national authorisations, the first European
    # ones announced by Boehringer Ingelheim on 2 July 2015
    "R03AL06": "2015-07-02",
    "L01ED03": "2017-02-21",  # alectinib, Alecensa (Roche, 21 February 2017)
    "L01XX73": "2022-01-09",  # sotorasib, Lumykras (Amgen, 9 January 2022)
    "L04AF01": "2017-03-27",  # tofacitinib, Xeljanz (Pfizer, 27 March 2017)
    "L04AF02": "2017-02-14",  # baricitinib, Olumiant (Lilly/Incyte, 14 February 2017)
    "L04AF03": "2019-12-18",  # upadacitinib, Rinvoq (AbbVie, 18 December 2019)
    "L01FF02": "2015-07-22",  # pembrolizumab, Keytruda (EC approval, reported 22 July 2015)
}


def test_no_drug_is_dispensed_before_it_existed(big) -> None:
    """No lmr or rekvisition row holds a drug (under today's code or the code it had before
    a WHO move) before its EU authorisation; each listed drug is dispensed."""
    older: dict[str, list[str]] = {}
    for c in atc_alterations():
        if not c.get("split"):  # a split's old code lives on for other substances
            older.setdefault(str(c["new"]), []).append(str(c["old"]))
    early, seen = {}, set()
    for rid, col in (("lmr", "edatum"), ("rekvisition", "adm_datum")):
        for code, first in INTRODUCED.items():
            codes = ", ".join(f"'{x}'" for x in (code, *older.get(code, [])))
            n, before = big.execute(
                f"""SELECT count(*), count(*) FILTER ({col} < DATE '{first}')
                    FROM {rid} WHERE atc IN ({codes})"""
            ).fetchone()
            if n:
                seen.add(code)
            if before:
                early[(rid, code)] = before
    assert early == {}
    assert seen == set(INTRODUCED)


def test_dispensations_repeat(db) -> None:
    gaps = one(
        db,
        """SELECT median(gap) FROM (
             SELECT edatum - lag(edatum) OVER (PARTITION BY lopnr ORDER BY edatum) AS gap
             FROM lmr WHERE atc = 'A10BA02') WHERE gap IS NOT NULL""",
    )
    assert 60 <= gaps <= 120
    assert one(db, "SELECT count(*) FROM lmr WHERE antal <= 0 OR ddd <= 0") == 0


def test_targeted_treatment_follows_findings(db) -> None:
    # osimertinib and trastuzumab: L01XE35 and L01XC03 until 2021 (see test_atc_history)
    osi = "SELECT DISTINCT lopnr FROM lmr WHERE atc IN ('L01EB04', 'L01XE35')"
    n = one(db, f"SELECT count(*) FROM ({osi})")
    egfr = one(
        db,
        f"SELECT count(*) FROM ({osi}) WHERE lopnr IN (SELECT lopnr FROM gms WHERE gene = 'EGFR')",
    )
    assert egfr == n
    tz = "SELECT DISTINCT lopnr FROM rekvisition WHERE atc IN ('L01FD01', 'L01XC03')"
    n, in_nkbc, her2 = db.execute(
        f"""SELECT count(*), count(k.lopnr), count(k.lopnr) FILTER (k.her2_any)
            FROM ({tz}) t LEFT JOIN (SELECT lopnr, bool_or(her2 = 'positiv') AS her2_any
                                     FROM nkbc GROUP BY lopnr) k USING (lopnr)"""
    ).fetchone()
    # nkbc misses a few tumours (as the real register does); those it has are HER2-positive
    assert n > 0 and n - in_nkbc <= max(2, 0.1 * n) and her2 == in_nkbc


def test_registries_follow_diagnoses(db) -> None:
    # type 1 diabetes is followed in hospital clinics: all in npr (type 2: see test_ndr_*)
    ndr = "SELECT DISTINCT lopnr FROM ndr WHERE diabetestyp = 1"
    n = one(db, f"SELECT count(*) FROM ({ndr})")
    dx = one(db, f"SELECT count(*) FROM ({ndr}) WHERE lopnr IN ({known('E10')})")
    assert n > 0 and dx == n
    assert (
        one(
            db,
            "SELECT count(*) FROM (SELECT lopnr FROM ndr GROUP BY lopnr "
            "HAVING count(DISTINCT diabetestyp) > 1)",
        )
        == 0
    )
    # nkbc: women with C50, diagnosed near their first breast-cancer contact
    near = one(
        db,
        """SELECT avg((abs(f.first - k.diagnosdatum) <= 60)::INT) FROM nkbc k JOIN (
             SELECT lopnr, min(indatum) AS first FROM npr
             WHERE regexp_matches(diagnos, '(^| )C50') GROUP BY lopnr) f USING (lopnr)""",
    )
    assert near >= 0.95
    assert one(db, "SELECT count(*) FROM nkbc JOIN population USING (lopnr) WHERE kon != 2") == 0
    # breast surgery (HAB/HAC) within three months of diagnosis for most tumours
    op = one(
        db,
        """SELECT avg((EXISTS (SELECT 1 FROM npr WHERE npr.lopnr = k.lopnr
                 AND regexp_matches(npr.op, 'HA[BC]') AND npr.indatum BETWEEN k.diagnosdatum
                 AND k.diagnosdatum + 90))::INT) FROM nkbc k WHERE stadium != 'IV'""",
    )
    assert op >= 0.7
    # lung genomics only after a lung or breast cancer diagnosis
    early = one(
        db,
        """SELECT count(*) FROM gms g WHERE NOT EXISTS (SELECT 1 FROM npr
                WHERE npr.lopnr = g.lopnr AND npr.indatum <= g.provdatum
                AND regexp_matches(npr.diagnos, '(^| )C(34|50)'))""",
    )
    assert early == 0


def test_copd_exacerbations_are_inpatient(db) -> None:
    n, inpatient = db.execute(
        "SELECT count(*), sum((vardform = 'S')::INT) FROM npr WHERE hdia = 'J441'"
    ).fetchone()
    assert n > 0 and inpatient == n


def test_chronic_diagnoses_recur(db) -> None:
    visits = one(
        db,
        """SELECT avg(n) FROM (SELECT lopnr, count(DISTINCT indatum) n FROM npr
           WHERE regexp_matches(diagnos, '(^| )E1[01]') GROUP BY lopnr)""",
    )
    assert visits >= 3


def test_causes_of_death_follow_disease(db) -> None:
    lung_dead = """SELECT lopnr FROM dors WHERE lopnr IN
                   (SELECT lopnr FROM npr WHERE regexp_matches(diagnos, '(^| )C34'))"""
    n = one(db, f"SELECT count(*) FROM ({lung_dead})")
    c34 = one(db, f"SELECT count(*) FROM dors WHERE lopnr IN ({lung_dead}) AND ulorsak LIKE 'C34%'")
    assert n > 0 and c34 / n >= 0.6
    assert (
        one(
            db,
            "SELECT count(*) FROM dors JOIN population USING (lopnr) "
            "WHERE kon = 2 AND ulorsak LIKE 'C61%'",
        )
        == 0
    )


# --------------------------------------------------------------------------- links


# Risk factors: (target, the persons with the factor, condition's codes), among adults.
RISK_SQL = {"t2d_mi": (diabetes2(), "I2[12]"), "af_stroke": (known("I48"), "I6[134]")}
# Links: (target, destination's codes, window in days after the first MI; None = open).
LINK_SQL = {"mi_stroke30": ("I6[34]", 1, 30), "mi_stroke1y": ("I6[34]", 1, 365),
            "mi_hf": ("I50", 0, None)}  # fmt: skip


def risk_ratio(con: duckdb.DuckDBPyConnection, factor: str, cond: str) -> float:
    """Mantel-Haenszel risk ratio of `cond` in npr with vs without `factor` (a query of the
    persons with it), among adults, by sex and five-year band of age at the end of
    follow-up."""
    return one(
        con,
        f"""WITH a AS (
              SELECT kon, age_end // 5 AS band,
                     lopnr IN ({factor}) AS x,
                     lopnr IN (SELECT lopnr FROM npr
                               WHERE regexp_matches(diagnos, '(^| ){cond}')) AS y
              FROM person WHERE age_end >= 18),
            s AS (
              SELECT count(*) AS n, count(*) FILTER (x) AS n1,
                     count(*) FILTER (x AND y) AS a, count(*) FILTER (NOT x AND y) AS c
              FROM a GROUP BY kon, band)
            SELECT sum(a * (n - n1) / n) / sum(c * n1 / n) FROM s""",
    )


def after_mi(
    con: duckdb.DuckDBPyConnection, codes: str, lo: int, hi: int | None
) -> tuple[int, int]:
    """Persons with a first I21/I22 contact and no `codes` contact before it, and how many
    of them have a `codes` contact lo..hi days after it (hi None: any time after)."""
    until = f"AND x.indatum <= r.first + {hi}" if hi is not None else ""
    row = con.execute(
        f"""WITH m AS (SELECT lopnr, min(indatum) AS first FROM npr
                       WHERE regexp_matches(diagnos, '(^| )I2[12]') GROUP BY lopnr),
                 x AS (SELECT lopnr, indatum FROM npr
                       WHERE regexp_matches(diagnos, '(^| ){codes}')),
                 r AS (SELECT * FROM m WHERE NOT EXISTS (
                         SELECT 1 FROM x WHERE x.lopnr = m.lopnr AND x.indatum < m.first))
            SELECT count(*), count(*) FILTER (EXISTS (
                     SELECT 1 FROM x WHERE x.lopnr = r.lopnr AND x.indatum >= r.first + {lo}
                     {until}))
            FROM r"""
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_every_link_target_is_checked() -> None:
    assert {k for k, _, _ in RISK_FACTORS} == set(RISK_SQL)
    assert {k.key for k in LINKS} == set(LINK_SQL)
    assert all(TARGET[k].ratio for k in RISK_SQL)
    assert (set(RISK_SQL) | set(LINK_SQL)) <= set(TARGET)


@pytest.mark.parametrize("key", sorted(RISK_SQL))
def test_risk_factors(big, key: str) -> None:
    factor, cond = RISK_SQL[key]
    rr, t = risk_ratio(big, factor, cond), TARGET[key]
    assert abs(rr - t.figure) <= t.tol, f"{key}: risk ratio {rr:.2f}, expected {t.figure}"


@pytest.mark.parametrize("key", sorted(LINK_SQL))
def test_links_after_myocardial_infarction(big, key: str) -> None:
    n, hits = after_mi(big, *LINK_SQL[key])
    assert hits > 0, key
    assert_share(key, hits, n)


def test_strokes_after_infarction_are_ischaemic(big) -> None:
    haemorrhagic = one(
        big,
        """WITH m AS (SELECT lopnr, min(indatum) AS first FROM npr
                      WHERE regexp_matches(diagnos, '(^| )I2[12]') GROUP BY lopnr)
           SELECT avg(regexp_matches(hdia, '^I61')::INT) FROM npr JOIN m USING (lopnr)
           WHERE regexp_matches(hdia, '^I6[134]') AND indatum BETWEEN first + 1 AND first + 30""",
    )
    assert haemorrhagic < 0.05


# --------------------------------------------------------------------------- issue 10: new columns


def test_external_causes_are_in_ekod_not_in_diagnos(db) -> None:
    # every ekod code is an external cause (ICD-10 chapter XX, V01-Y98), upper case, no dots
    bad = one(
        db,
        """SELECT count(*) FROM (SELECT unnest(string_split(ekod, ' ')) AS c FROM npr
           WHERE ekod IS NOT NULL) WHERE NOT regexp_matches(c, '^[V-Y][0-9]{2}[0-9A-Z]{0,2}$')""",
    )
    assert bad == 0
    assert one(db, "SELECT count(*) FROM npr WHERE regexp_matches(diagnos, '(^| )[V-Y]')") == 0
    # injuries (S/T main diagnoses) carry them, other contacts do not
    n, with_ekod = db.execute(
        "SELECT count(*), count(ekod) FROM npr WHERE regexp_matches(hdia, '^[ST]')"
    ).fetchone()
    assert n > 0 and 0.3 <= with_ekod / n <= 0.9
    assert one(db, "SELECT count(ekod) FROM npr WHERE NOT regexp_matches(hdia, '^[ST]')") == 0


def test_contributing_causes_of_death(db) -> None:
    icd = r"^[A-Z][0-9]{2}[0-9A-Z]{0,2}$"
    bad = one(
        db,
        f"""SELECT count(*) FROM (SELECT unnest(string_split(morsak, ' ')) AS c FROM dors
            WHERE morsak IS NOT NULL) WHERE NOT regexp_matches(c, '{icd}')""",
    )
    assert bad == 0
    assert one(db, "SELECT count(*) FROM dors WHERE morsak = '' OR morsak LIKE '% %  %'") == 0
    share = one(db, "SELECT avg((morsak IS NOT NULL)::INT) FROM dors")
    assert 0.2 <= share <= 0.8
    # a lung cancer patient who died of something else has it among the contributing causes
    lung = one(
        db,
        """SELECT avg(regexp_matches(morsak, '(^| )C34')::INT) FROM dors
           WHERE ulorsak NOT LIKE 'C34%' AND morsak IS NOT NULL AND lopnr IN (
             SELECT lopnr FROM npr WHERE regexp_matches(diagnos, '(^| )C34'))""",
    )
    assert lung is not None and lung > 0.2
    # an injury death: the external cause underlies, the injury contributes
    ext = one(
        db,
        """SELECT avg(regexp_matches(coalesce(morsak, ''), '(^| )[ST]')::INT) FROM dors
           WHERE regexp_matches(ulorsak, '^[V-Y]')""",
    )
    assert ext == 1.0


def test_unknown_day_of_death(db) -> None:
    n, unknown = db.execute("SELECT count(*), sum(dodsdag_okand) FROM dors").fetchone()
    assert one(db, "SELECT count(*) FROM dors WHERE dodsdag_okand NOT IN (0, 1)") == 0
    assert unknown < 0.02 * n
    # an unknown day is imputed as the month's last day (or the window's end)
    bad = one(
        db,
        """SELECT count(*) FROM dors WHERE dodsdag_okand = 1
           AND dodsdat != least(last_day(dodsdat), DATE '2025-12-31')""",
    )
    assert bad == 0


def test_prescription_columns(db) -> None:
    assert one(db, "SELECT count(*) FROM lmr WHERE fdatum > edatum OR fdatum IS NULL") == 0
    assert one(db, "SELECT count(*) FROM lmr WHERE edatum - fdatum > 366") == 0
    assert one(db, "SELECT count(*) FROM lmr WHERE doser IS NULL OR doser = ''") == 0
    # the reason for prescribing is registered from 2018 (SFS 2017:909), often missing
    assert one(db, "SELECT count(ordinationsorsak) FROM lmr WHERE edatum < DATE '2018-01-01'") == 0
    share = one(
        db,
        "SELECT avg((ordinationsorsak IS NOT NULL)::INT) FROM lmr WHERE edatum >= DATE '2018-01-01'",
    )
    assert 0.3 <= share <= 0.8
    bad = one(
        db, "SELECT count(*) FROM lmr WHERE NOT regexp_matches(ordinationsorsak, '^[A-Z][0-9]{2}$')"
    )
    assert bad == 0
    # metformin is prescribed for type 2 diabetes
    assert (
        one(db, "SELECT count(*) FROM lmr WHERE atc = 'A10BA02' AND ordinationsorsak != 'E11'") == 0
    )
    # the prescriber's workplace: the person's län code and five digits
    bad = one(
        db,
        """SELECT count(*) FROM lmr JOIN population USING (lopnr)
           WHERE NOT regexp_matches(arbetsplats, '^[0-9]{7}$') OR arbetsplats[1:2] != lan""",
    )
    assert bad == 0


def test_migrations(db) -> None:
    # directions alternate per person (in, ut, in, ... or ut, in, ...), dates increase
    bad = one(
        db,
        """SELECT count(*) FROM (
             SELECT riktning, datum, lag(riktning) OVER w AS pr, lag(datum) OVER w AS pd
             FROM migration WINDOW w AS (PARTITION BY lopnr ORDER BY datum))
           WHERE pr = riktning OR datum <= pd""",
    )
    assert bad == 0
    assert one(db, "SELECT count(*) FROM migration WHERE riktning NOT IN ('in', 'ut')") == 0
    # yearly rates per 1,000 persons near SCB's (about 9 immigrations and 7 emigrations in
    # 2023), with room for the assumption: person-years in the window from the population
    years = one(
        db,
        """SELECT sum((least(coalesce(dodsdat, DATE '2025-12-31'), DATE '2025-12-31')
                      - greatest(born, DATE '2006-01-01')) / 365.25) FROM person
           WHERE born <= DATE '2025-12-31'""",
    )
    rate = dict(db.execute("SELECT riktning, count(*) FROM migration GROUP BY 1").fetchall())
    per_1000 = {k: 1000 * v / years for k, v in rate.items()}
    assert 5 <= per_1000["in"] <= 13, per_1000
    assert 3 <= per_1000["ut"] <= 10, per_1000
    assert per_1000["in"] > per_1000["ut"]


def test_rekvisition_starts_with_the_catalog_and_is_thin_before_april_2025(db) -> None:
    start = catalog.load_catalog().registers["rekvisition"].coverage.from_year
    assert one(db, f"SELECT count(*) FROM rekvisition WHERE adm_datum < DATE '{start}-01-01'") == 0
    assert one(db, "SELECT min(year(adm_datum)) FROM rekvisition") == start
    # reporting became fuller from 2025-04-01: nine months then hold more than twice the
    # mean whole year before (a year's few dozen rows at this size vary by a third, so
    # the busiest single year is no steady yardstick)
    last = one(db, "SELECT count(*) FROM rekvisition WHERE adm_datum >= DATE '2025-04-01'")
    before = db.execute(
        """SELECT avg(n) FROM (SELECT year(adm_datum), count(*) AS n FROM rekvisition
           WHERE year(adm_datum) < 2025 GROUP BY 1)"""
    ).fetchone()[0]
    assert last > 2 * before


def test_manifest_describes_the_files(extract) -> None:
    import yaml

    from antal.catalog.installation import Installation, Manifest

    out, _, _ = extract
    m = Manifest.model_validate(yaml.safe_load((out / "release.yaml").read_text(encoding="utf-8")))
    assert m.release == f"synthetic-p{PERSONS}-s{SEED}"
    assert set(m.registers) == set(SPEC)
    con = duckdb.connect()
    last = None
    for rid, (col, first) in EVENT_DATES.items():
        lo, hi = con.execute(
            f"SELECT min({col}), max({col}) FROM read_parquet('{out / rid}.parquet')"
        ).fetchone()
        period = m.registers[rid]
        assert period.start == dt.date.fromisoformat(first), rid
        assert period.start <= lo and hi <= period.through, rid
        last = hi if last is None else max(last, hi)
    # extracted after everything in the files, six months after the window
    assert m.extracted is not None and last is not None and m.extracted > last
    assert str(m.extracted) == "2026-07-01"
    # a data directory reads it
    inst = Installation.from_data_dir(out)
    # the manifest names the release; the content hash follows (catalog/release.py)
    assert inst.release.startswith(f"{m.release}-") and inst.extracted == m.extracted
    assert inst.sources["rekvisition"].start == m.registers["rekvisition"].start
