"""Extracts that break the engine's assumptions: `antal data check`, the start-up check of
`antal serve`, and counts that never count a person twice or show a data value."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_extracts
from typer.testing import CliRunner

from antal import engine
from antal.api.cli import app
from antal.catalog import Installation, load_catalog, load_installation
from antal.engine.reference import evaluate

CAT = load_catalog()
runner = CliRunner()
SECRET = 987654321  # a value planted in broken files: no message may show it

POP = [
    {"lopnr": 1, "kon": 1, "fodelsear": 1950, "fodelsemanad": 1, "lan": "18"},
    {"lopnr": 2, "kon": 2, "fodelsear": 1960, "fodelsemanad": 6, "lan": "18"},
    {"lopnr": 3, "kon": 2, "fodelsear": 1970, "fodelsemanad": 12, "lan": "01"},
]
NPR = [
    {"lopnr": p, "indatum": dt.date(2020, 1, p), "vardform": "O", "sjukhus": "18001",
     "hdia": "E119", "diagnos": "E119 I10"}
    for p in (1, 2, 3)
]  # fmt: skip
COHORT = "index first diagnosis E11*\nreport by sex\n"
LMR_COHORT = "index first diagnosis E11*\ninclude drug A10* in lmr after index\n"


def extract(tmp_path: Path, **tables: list[dict]) -> Path:
    return write_extracts({"population": POP, "npr": NPR, **tables}, tmp_path / "data")


def cohort_file(tmp_path: Path, text: str = COHORT) -> Path:
    f = tmp_path / "c.cohort"
    f.write_text(text)
    return f


def rewrite(path: Path, change) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def check(data: Path) -> list:
    from antal.engine.datacheck import check_data

    return check_data(Installation.from_data_dir(data), CAT)


def run_cli(*args: str):
    r = runner.invoke(app, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    return r


def refused(data: Path, tmp_path: Path, *needles: str, cohort: str = COHORT) -> None:
    """`antal data check` and `antal count` (exact and released) fail with a message naming
    the problem, exit 2, no traceback, no data value."""
    for args in (
        ("data", "check", "--data", str(data)),
        ("count", str(cohort_file(tmp_path, cohort)), "--data", str(data), "--exact"),
        ("count", str(cohort_file(tmp_path, cohort)), "--data", str(data),
         "--store", str(tmp_path / "s.sqlite")),
    ):  # fmt: skip
        r = run_cli(*args)
        assert r.exit_code == 2, (args, r.output)
        for n in needles:
            assert n in r.output, (args, r.output)
        assert str(SECRET) not in r.output


# ---- duplicated person rows -------------------------------------------------------------------


def test_duplicated_person_rows_are_counted_once_and_refused(tmp_path: Path) -> None:
    # person 1 twice (identical), person 2 twice with a different sex on the second row
    pop = [*POP, dict(POP[0]), dict(POP[1], kon=1)]
    data = extract(tmp_path, population=pop)
    # by hand: 3 persons have an E11 diagnosis; person 1 is male, person 3 female, and
    # person 2's rows disagree on sex, so it is unknown
    want_counts, want_cells = [3], {("male",): 1, ("female",): 1, (None,): 1}
    got = engine.count_exact(COHORT, Installation.from_data_dir(data), CAT)
    assert list(got.counts) == want_counts
    assert {tuple(k): n for k, n in got.cells} == want_cells
    rows = {"population": pop, "npr": NPR}
    ref = evaluate(engine.check(engine.parse(COHORT), CAT), rows, CAT)
    assert ref.counts() == want_counts and ref.breakdown == want_cells
    # an index date (the whole population, no join with the index events) as well
    on_date = "index 2021-01-01\nreport by region\n"
    got = engine.count_exact(on_date, Installation.from_data_dir(data), CAT)
    assert list(got.counts) == [3] == evaluate(engine.parse(on_date), rows, CAT).counts()
    findings = check(data)
    assert [(f.register, f.column, f.kind, f.count) for f in findings] == [
        ("population", "lopnr", "duplicate_key", 2)
    ]
    refused(data, tmp_path, "population.parquet", "lopnr", "several rows")


# ---- opt-outs -----------------------------------------------------------------------------------


def test_a_missing_optout_file_never_drops_optouts(tmp_path: Path) -> None:
    data = extract(tmp_path, optout=[{"lopnr": 1, "datum": dt.date(2024, 1, 1), "andamal": "alla"}])
    assert engine.count_exact(COHORT, Installation.from_data_dir(data), CAT).counts[0] == 2
    (data / "optout.parquet").unlink()
    with pytest.raises(engine.MissingRegisterError):  # not a count of 3 that includes person 1
        engine.count_exact(COHORT, Installation.from_data_dir(data), CAT)
    assert [(f.register, f.kind) for f in check(data)] == [("optout", "missing_file")]
    refused(data, tmp_path, "optout", "optout: none")
    # an installation that keeps no opt-outs says so, and then counts everyone
    cfg = tmp_path / "installation.yaml"
    cfg.write_text(
        "optout: none\nregisters:\n"
        + "".join(f"  {p.stem}: {{parquet: '{p}'}}\n" for p in sorted(data.glob("*.parquet")))
    )
    inst = load_installation(cfg)
    assert engine.count_exact(COHORT, inst, CAT).counts[0] == 3
    assert run_cli("data", "check", "--config", str(cfg)).exit_code == 0


# ---- types, codes, dates ------------------------------------------------------------------------


def test_an_id_stored_as_double_is_refused(tmp_path: Path) -> None:
    data = extract(tmp_path)
    rewrite(
        data / "npr.parquet", lambda t: t.set_column(0, "lopnr", t.column(0).cast(pa.float64()))
    )
    findings = check(data)
    assert [(f.register, f.column, f.kind) for f in findings] == [("npr", "lopnr", "wrong_type")]
    assert "npr.parquet" in findings[0].file
    refused(data, tmp_path, "npr.parquet", "'lopnr'", "DOUBLE", "bigint")


def test_lower_case_codes_are_refused(tmp_path: Path) -> None:
    npr = [dict(r, diagnos="e119 I10") for r in NPR[:2]] + NPR[2:]
    data = extract(
        tmp_path, npr=npr, lmr=[{"lopnr": 1, "edatum": dt.date(2020, 1, 1), "atc": "a10ba02"}]
    )
    got = {(f.register, f.column, f.kind, f.count) for f in check(data)}
    assert got == {("npr", "diagnos", "code_case", 2), ("lmr", "atc", "code_case", 1)}
    refused(data, tmp_path, "npr.parquet", "'diagnos'", "upper case", "2 rows")


def test_misshapen_codes_dates_out_of_range_and_values_outside_the_list(tmp_path: Path) -> None:
    npr = [dict(NPR[0], diagnos="E119  I10"), dict(NPR[1], indatum=dt.date(1899, 12, 31)), NPR[2]]
    optout = [{"lopnr": 3, "datum": dt.date(2024, 1, 1), "andamal": "FORSKNING"}]
    data = extract(tmp_path, npr=npr, optout=optout)
    got = {(f.register, f.column, f.kind, f.count) for f in check(data)}
    assert got == {
        ("npr", "diagnos", "code_shape", 1),
        ("npr", "indatum", "date_out_of_range", 1),
        ("optout", "andamal", "value_not_allowed", 1),
    }


def test_missing_ids_are_refused(tmp_path: Path) -> None:
    data = extract(tmp_path, npr=[*NPR, dict(NPR[0], lopnr=None)])
    got = [(f.register, f.column, f.kind, f.count) for f in check(data)]
    assert got == [("npr", "lopnr", "null_id", 1)]


# ---- unreadable files and schemas -------------------------------------------------------------


def test_an_empty_file_is_named(tmp_path: Path) -> None:
    data = extract(tmp_path)
    (data / "lmr.parquet").write_bytes(b"")
    assert [(f.register, f.kind) for f in check(data)] == [("lmr", "unreadable")]
    refused(data, tmp_path, "lmr.parquet", "empty or corrupt", cohort=LMR_COHORT)
    # a count that does not read lmr is not held up by it
    f = cohort_file(tmp_path)
    assert run_cli("count", str(f), "--data", str(data), "--exact").exit_code == 0


def test_a_corrupt_file_is_named_without_its_bytes(tmp_path: Path) -> None:
    data = extract(tmp_path)
    (data / "lmr.parquet").write_bytes(b"PAR1" + str(SECRET).encode() * 20 + b"PAR1")
    assert [(f.register, f.kind) for f in check(data)] == [("lmr", "unreadable")]
    refused(data, tmp_path, "lmr.parquet", "empty or corrupt", cohort=LMR_COHORT)


def test_a_missing_required_column_is_named(tmp_path: Path) -> None:
    # the date of npr is required (catalog Register.required_columns): no count runs
    data = extract(tmp_path)
    rewrite(data / "npr.parquet", lambda t: t.drop(["indatum"]))
    assert [(f.register, f.column, f.kind, f.note) for f in check(data)] == [
        ("npr", "indatum", "missing_column", False)
    ]
    refused(data, tmp_path, "npr.parquet", "'indatum'", "missing")


MAIN = "index first diagnosis E11* main\n"


def test_a_column_no_cohort_reads_may_be_missing(tmp_path: Path) -> None:
    from conftest import researcher_service

    full = extract(tmp_path)
    # by hand: all three have E11 (diagnos and hdia); person 1 is male, 2 and 3 female
    want = ([3], {("male",): 1, ("female",): 2})
    got = engine.count_exact(COHORT, Installation.from_data_dir(full), CAT)
    assert (list(got.counts), {tuple(k): n for k, n in got.cells}) == want
    ref = evaluate(engine.check(engine.parse(COHORT), CAT), {"population": POP, "npr": NPR}, CAT)
    assert (ref.counts(), ref.breakdown) == want
    short = write_extracts({"population": POP, "npr": NPR}, tmp_path / "short")
    rewrite(short / "npr.parquet", lambda t: t.drop(["hdia", "ekod", "op"]))
    # a note, not a failure, for each; the cohort that reads none of them counts the same
    assert [(f.column, f.kind, f.note) for f in check(short)] == [
        ("hdia", "absent_column", True), ("op", "absent_column", True),
        ("ekod", "absent_column", True),
    ]  # fmt: skip
    got = engine.count_exact(COHORT, Installation.from_data_dir(short), CAT)
    assert (list(got.counts), {tuple(k): n for k, n in got.cells}) == want
    r = run_cli("data", "check", "--data", str(short))
    assert r.exit_code == 0 and "note: npr" in r.output and "'ekod'" in r.output
    r = run_cli("count", str(cohort_file(tmp_path)), "--data", str(short), "--exact")
    assert r.exit_code == 0, r.output
    # the main diagnosis is read by `main`: refused, naming column, register and file
    with pytest.raises(engine.MissingColumnError) as e:
        engine.count_exact(MAIN, Installation.from_data_dir(short), CAT)
    assert e.value.columns == [("npr", "hdia", "npr.parquet")]
    assert engine.count_exact(MAIN, Installation.from_data_dir(full), CAT).counts[0] == 3
    for args in (("--exact",), ("--store", str(tmp_path / "s.sqlite"))):
        r = run_cli("count", str(cohort_file(tmp_path, MAIN)), "--data", str(short), *args)
        assert r.exit_code == 2, r.output
        assert "'hdia'" in r.output and "'npr'" in r.output and "npr.parquet" in r.output
    c, h, st = researcher_service(short, tmp_path / "h.sqlite", ("npr",))
    r = c.post("/v1/projects/p/count", json={"cohort": COHORT}, headers=h)
    assert r.status_code == 200, r.text
    spent = st.store.project("p").spent
    r = c.post("/v1/projects/p/count", json={"cohort": MAIN}, headers=h)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "column_missing"
    assert err["details"]["columns"] == [
        {"register": "npr", "column": "hdia", "file": "npr.parquet"}
    ]
    assert str(short) not in r.text  # the file's name, never the server's directory
    assert st.store.project("p").spent == spent > 0  # refused before anything is charged


def test_a_wrong_type_is_named_and_no_value_leaks(tmp_path: Path) -> None:
    # birth years as text, one of them a planted value that a cast error would quote
    pop = [dict(p, fodelsear=None) for p in POP]
    data = extract(tmp_path, population=pop)
    years = pa.array(["1950", "1960", f"x{SECRET}"], pa.string())
    rewrite(data / "population.parquet", lambda t: t.set_column(2, "fodelsear", years))
    assert [(f.register, f.column, f.kind) for f in check(data)] == [
        ("population", "fodelsear", "wrong_type")
    ]
    refused(data, tmp_path, "population.parquet", "'fodelsear'", "VARCHAR", "smallint")
    # even without the check, a count that fails on the data says so without the value
    with pytest.raises(engine.DataError) as e:
        engine.count_exact(
            "index 2021-01-01\ninclude age 18..100", Installation.from_data_dir(data), CAT
        )
    assert str(SECRET) not in str(e.value)


# ---- the server refuses to start; a clean synthetic extract passes --------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_refuses_to_start_on_a_failing_check(tmp_path: Path) -> None:
    data = extract(tmp_path, population=[*POP, dict(POP[0])])
    env = {**os.environ, "ANTAL_STORE": str(tmp_path / "server.sqlite")}
    p = subprocess.run(
        [str(Path(sys.executable).parent / "antal"), "serve", "--data", str(data), "--port", str(_free_port())],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "cannot start" in p.stderr and "data check" in p.stderr
    assert "population.parquet" in p.stderr and "lopnr" in p.stderr
    assert "Traceback" not in p.stderr


def test_the_synthetic_generator_passes_the_check(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    r = run_cli("synth", "--persons", "20000", "--seed", "3", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert check(out) == []
    r = run_cli("data", "check", "--data", str(out))
    assert r.exit_code == 0 and "data check passed" in r.output


# ---- checked once per release; tolerated malformed rows -----------------------------------


def _value_queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The registers whose row-level value query runs (the check's own function, wrapped)."""
    from antal.engine import datacheck

    ran: list[str] = []
    real = datacheck._Checker.values

    def counted(self, con, rid, src, *a, **k):  # type: ignore[no-untyped-def]
        ran.append(rid)
        return real(self, con, rid, src, *a, **k)

    monkeypatch.setattr(datacheck._Checker, "values", counted)
    return ran


def test_a_release_is_value_checked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTAL_CACHE_DIR", str(tmp_path / "cache"))
    ran = _value_queries(monkeypatch)
    data = extract(tmp_path)
    f = cohort_file(tmp_path)
    assert run_cli("count", str(f), "--data", str(data), "--exact").exit_code == 0
    assert sorted(ran) == ["npr", "optout", "population"]
    ran.clear()
    r = run_cli("count", str(f), "--data", str(data), "--exact")
    assert r.exit_code == 0 and ran == []  # the same files: no row read by the check
    # `antal data check` reads them again
    assert run_cli("data", "check", "--data", str(data)).exit_code == 0
    assert {"npr", "optout", "population"} <= set(ran)  # and every other register
    ran.clear()
    # a changed release (one npr row more): npr is checked again, the population is not
    rewrite(data / "npr.parquet", lambda t: pa.concat_tables([t, t.slice(0, 1)]))
    assert run_cli("count", str(f), "--data", str(data), "--exact").exit_code == 0
    assert ran == ["npr"]
    ran.clear()
    # a stored failure is a failure again, without reading the rows
    bad = [dict(NPR[0], diagnos="E11.9"), *NPR[1:]]
    write_extracts({"npr": bad}, data)
    refused(data, tmp_path, "npr.parquet", "'diagnos'", "(1 row)")
    ran.clear()
    r = run_cli("count", str(f), "--data", str(data), "--exact")
    assert r.exit_code == 2 and "(1 row)" in r.output and ran == []


def _tolerating(tmp_path: Path, data: Path, n: int) -> Path:
    cfg = tmp_path / f"tolerate{n}.yaml"
    regs = "\n".join(f"  {p.stem}: {{parquet: {p}}}" for p in sorted(data.glob("*.parquet")))
    cfg.write_text(f"registers:\n{regs}\noptout: none\ntolerate: {{npr.diagnos: {n}}}\n")
    return cfg


def test_tolerated_malformed_rows_match_no_code(tmp_path: Path) -> None:
    # person 3's diagnoses written with a dot: `E11.9 I10` is not a list of ICD-10 codes
    npr = [*NPR[:2], dict(NPR[2], diagnos="E11.9 I10")]
    data = write_extracts({"population": POP, "npr": npr}, tmp_path / "data")
    cohort = "index first diagnosis E11*\nexclude diagnosis I10 before index\n"
    f = cohort_file(tmp_path, cohort)
    ok = _tolerating(tmp_path, data, 1)
    r = run_cli("data", "check", "--config", str(ok))
    assert r.exit_code == 0, r.output
    assert "note: npr" in r.output and "'diagnos'" in r.output and "(1 row)" in r.output
    assert "tolerated" in r.output
    # by hand: `diagnosis` reads the list (diagnos; hdia only with `main`): persons 1 and
    # 2 have E119 in it; person 3's list is read as missing, so matches no code; nobody
    # has I10 before their index date -> 2, 2
    inst = load_installation(ok)
    got = engine.count_exact(cohort, inst, CAT)
    assert list(got.counts) == [2, 2]
    ref_rows = {"population": POP, "npr": [*NPR[:2], dict(NPR[2], diagnos=None)]}
    assert evaluate(engine.check(engine.parse(cohort), CAT), ref_rows, CAT).counts() == [2, 2]
    r = run_cli("count", str(f), "--config", str(ok), "--exact")
    assert r.exit_code == 0, r.output
    # above the tolerance: refused with the count
    over = _tolerating(tmp_path, data, 0)
    for args in (("data", "check", "--config", str(over)),
                 ("count", str(f), "--config", str(over), "--exact")):  # fmt: skip
        r = run_cli(*args)
        assert r.exit_code == 2, r.output
        assert "(1 row)" in r.output and "more than the 0 tolerated" in r.output


COLUMN_COHORTS = [
    COHORT,
    MAIN,
    LMR_COHORT,
    "index 2021-01-01\ninclude age 18..100\nreport by sjukvardsregion\n",
    "index first diagnosis E11*\nreport by hospital\n",
    "index first diagnosis W19*\ninclude death I21* mentioned within 28 days after index\n",
    'index first npr where vardform = "S"\ninclude latest ndr where hba1c > 50 before index\n',
    *(
        p.read_text(encoding="utf-8")
        for p in sorted((Path(__file__).parent.parent / "examples").glob("*.cohort"))
    ),
]


@pytest.mark.parametrize("text", COLUMN_COHORTS)
def test_columns_read_is_what_the_statement_reads(text: str) -> None:
    """The statement runs on tables holding exactly `columns_read` (nothing missing from
    it) and fails to bind without any one of them (nothing in it that is not read)."""
    import duckdb
    from conftest import EXTRACT_SCHEMAS

    from antal.engine.compiler import compile_cohort

    compiled = compile_cohort(engine.check(engine.parse(text), CAT), CAT, optout="optout")
    read = compiled.columns
    assert {r for r, _ in read} == set(compiled.registers)
    sql = compiled.sql("duckdb")

    def runs(cols: frozenset[tuple[str, str]]) -> bool:
        con = duckdb.connect()
        for rid in compiled.registers:
            schema = EXTRACT_SCHEMAS[rid]
            names = [n for n in schema.names if (rid, n) in cols]
            empty = pa.schema([schema.field(n) for n in names]).empty_table()
            con.register(f"_{rid}", empty)
            con.execute(f'CREATE VIEW "{rid}" AS SELECT * FROM "_{rid}"')
        try:
            con.execute(sql).fetchall()
            return True
        except duckdb.BinderException:
            return False
        finally:
            con.close()

    assert runs(read)
    for pair in sorted(read):
        assert not runs(read - {pair}), pair
