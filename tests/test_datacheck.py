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
    assert err["details"]["columns"] == [{"register": "npr", "column": "hdia", "file": "npr.parquet"}]
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
