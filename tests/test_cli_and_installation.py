"""The command line and installation configs: real files, real DuckDB, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import write_extracts
from typer.testing import CliRunner

from antal import engine
from antal.api.cli import app
from antal.catalog import CatalogError, Installation, load_catalog, load_installation
from antal.engine import MissingRegisterError

CAT = load_catalog()
ROOT = Path(__file__).parent.parent
runner = CliRunner()


def tables() -> dict[str, list[dict]]:
    import datetime as dt

    return {
        "population": [
            {"lopnr": i, "kon": 1 + i % 2, "fodelsear": 1950, "fodelsemanad": 1, "lan": "18"}
            for i in range(1, 31)
        ],
        "npr": [
            {
                "lopnr": i,
                "indatum": dt.date(2020, 1, i % 28 + 1),
                "vardform": "O",
                "sjukhus": "18001",
                "hdia": "I489",
                "diagnos": "I489 I10",
            }
            for i in range(1, 21)
        ],
        "lmr": [
            {"lopnr": i, "edatum": dt.date(2020, 3, 1), "atc": "B01AF02"} for i in range(1, 11)
        ],
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_extracts(tables(), tmp_path_factory.mktemp("cli"))


COHORT = "index first diagnosis I48*\nexclude drug B01AF* in lmr after index\nreport by sex\n"


def test_installation_with_renamed_columns_and_a_duckdb_file(data: Path, tmp_path: Path) -> None:
    # npr arrives with other column names; population lives in a DuckDB database file
    renamed = pq.read_table(data / "npr.parquet").rename_columns(
        [
            "pnr",
            "in_datum",
            "ut_datum",
            "vardform",
            "sjukhus",
            "mvo",
            "hdia",
            "dia_alla",
            "op",
            "ekod",
        ]
    )
    pq.write_table(renamed, tmp_path / "par_2020.parquet")
    con = duckdb.connect(str(tmp_path / "rtb.duckdb"))
    con.execute(f"CREATE TABLE rtb AS SELECT * FROM read_parquet('{data / 'population.parquet'}')")
    con.close()
    cfg = tmp_path / "installation.yaml"
    cfg.write_text(
        "release: test-2026-11\n"
        "registers:\n"
        "  population: {duckdb: rtb.duckdb, table: rtb}\n"
        "  npr:\n"
        "    parquet: par_*.parquet\n"
        "    columns: {lopnr: pnr, indatum: in_datum, utdatum: ut_datum, diagnos: dia_alla}\n"
        f"  lmr: {{parquet: {data / 'lmr.parquet'}}}\n"
        f"  optout: {{parquet: {data / 'optout.parquet'}}}\n"
    )
    inst = load_installation(cfg)
    assert inst.release == "test-2026-11"
    from antal.engine.datacheck import check_data

    assert check_data(inst, CAT) == []  # renamed columns and a DuckDB table pass the check
    got = engine.count_exact(COHORT, inst, CAT)
    want = engine.count_exact(COHORT, Installation.from_data_dir(data), CAT)
    assert got.counts == want.counts == (20, 10)
    assert got.cells == want.cells


def test_a_missing_register_is_named(data: Path, tmp_path: Path) -> None:
    # a region's installation without the breast cancer register
    import shutil

    shutil.copytree(data, tmp_path / "d")
    (tmp_path / "d" / "nkbc.parquet").unlink()
    data = tmp_path / "d"
    inst = Installation.from_data_dir(data)
    with pytest.raises(MissingRegisterError) as e:
        engine.count_exact('index first diagnosis C50*\ninclude nkbc.her2 = "positiv"', inst, CAT)
    assert "'nkbc'" in str(e.value)
    f = data.parent / "m.cohort"
    f.write_text('index first diagnosis C50*\ninclude nkbc.her2 = "positiv"\n')
    r = runner.invoke(app, ["count", str(f), "--data", str(data), "--exact"])
    assert r.exit_code == 2 and "no data for register(s) 'nkbc'" in r.output
    assert "Traceback" not in r.output


def test_broken_installation_config(tmp_path: Path) -> None:
    cfg = tmp_path / "i.yaml"
    cfg.write_text("registers:\n  npr: {parket: x.parquet}\n")
    with pytest.raises(CatalogError) as e:
        load_installation(cfg)
    assert e.value.field == "registers.npr.parket"
    f = tmp_path / "c.cohort"
    f.write_text("index first diagnosis E11\n")
    r = runner.invoke(app, ["count", str(f), "--config", str(cfg), "--exact"])
    assert r.exit_code == 2 and "registers.npr.parket" in r.output and "Traceback" not in r.output


def test_cli_count_exact_json(data: Path, tmp_path: Path) -> None:
    f = tmp_path / "af.cohort"
    f.write_text(COHORT)
    r = runner.invoke(app, ["count", str(f), "--data", str(data), "--exact", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    # 20 persons with I48; persons 1-10 collected apixaban on 2020-03-01; the index dates
    # are in January, so all 10 are after index
    assert out["count"] == 10
    assert [s["count"] for s in out["attrition"]] == [20, 10]
    assert {(c["sex"], c["count"]) for c in out["breakdown"]} == {("male", 5), ("female", 5)}


def test_cli_check_prints_errors_like_a_compiler(tmp_path: Path) -> None:
    f = tmp_path / "bad.cohort"
    f.write_text("index first diagnosis E11\ninclude nrd.hba1c > 5\n")
    r = runner.invoke(app, ["check", str(f)])
    assert r.exit_code == 1
    assert f"{f}:2:9: unknown register 'nrd' - did you mean 'ndr'?" in r.output
    assert "          ^" in r.output
    ok = tmp_path / "ok.cohort"
    ok.write_text("index first diagnosis E11\n")
    r = runner.invoke(app, ["check", str(ok)])
    assert r.exit_code == 0 and "ok" in r.output


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "spark"])
def test_cli_sql_in_every_dialect(dialect: str) -> None:
    import sqlglot

    r = runner.invoke(
        app, ["sql", str(ROOT / "examples" / "t2d_metformin.cohort"), "--dialect", dialect]
    )
    assert r.exit_code == 0, r.output
    sqlglot.parse_one(r.output.rstrip().rstrip(";"), read=dialect)  # well-formed in its dialect
    assert "GROUPING SETS" in r.output


def test_cli_bad_input_exits_nonzero_without_traceback(tmp_path: Path, data: Path) -> None:
    cases = [
        ["check", str(tmp_path / "nope.cohort")],
        ["sql", str(ROOT / "examples" / "t2d_metformin.cohort"), "--dialect", "oracle"],
        ["count", str(ROOT / "examples" / "t2d_metformin.cohort"), "--exact"],
        [
            "count",
            str(ROOT / "examples" / "t2d_metformin.cohort"),
            "--data",
            str(tmp_path / "none"),
            "--exact",
        ],
        ["catalog", "show", "nrd"],
    ]
    for args in cases:
        r = runner.invoke(app, args)
        assert r.exit_code != 0, args
        assert "Traceback" not in r.output and r.output.strip(), args
    r = runner.invoke(app, ["catalog", "show", "nrd"])
    assert "did you mean 'ndr'?" in r.output


def test_cli_catalog_list_and_show() -> None:
    r = runner.invoke(app, ["catalog", "list"])
    assert r.exit_code == 0
    for rid in CAT.ids():
        assert rid in r.output
    r = runner.invoke(app, ["catalog", "show", "ndr"])
    assert r.exit_code == 0 and "hba1c" in r.output and "mmol/mol" in r.output


def test_synth_command_writes_the_ten_files(tmp_path: Path) -> None:
    r = runner.invoke(
        app, ["synth", "--persons", "2000", "--seed", "3", "--out", str(tmp_path / "s")]
    )
    assert r.exit_code == 0, r.output
    assert sorted(p.stem for p in (tmp_path / "s").glob("*.parquet")) == sorted(CAT.ids())
    assert pq.read_metadata(tmp_path / "s" / "population.parquet").num_rows == 2000


def test_service_settings_file_then_environment_then_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from antal.api.settings import load_settings

    cfg = tmp_path / "server.yaml"
    cfg.write_text("port: 9000\nhost: 0.0.0.0\nrequests_per_minute: 5\n")
    s = load_settings(cfg)
    assert (s.port, s.host, s.requests_per_minute) == (9000, "0.0.0.0", 5)
    monkeypatch.setenv("ANTAL_PORT", "9100")
    assert load_settings(cfg).port == 9100  # the environment wins over the file
    assert load_settings(cfg, port=9200).port == 9200  # an option wins over both
    monkeypatch.delenv("ANTAL_PORT")
    monkeypatch.setenv("ANTAL_CONFIG", str(cfg))
    assert load_settings().port == 9000
    cfg.write_text("prot: 1\n")
    with pytest.raises(ValueError):
        load_settings(cfg)
