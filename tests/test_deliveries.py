"""Deliveries as they come (antal.engine.delivery): the same synthetic release written as the
patient register's reporting format, a SAS transport file with wide diagnosis columns and
a Latin-1 research extract with its own names, dates as YYYYMMDD, codes with dots and a
decimal comma, gives every example cohort exactly the counts the reference evaluator gives
on the canonical tables, read directly and through a prepared file; every kind of irregular
row is a finding with its count."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pyreadstat
import pytest
from typer.testing import CliRunner

from antal import engine
from antal.api.cli import app
from antal.catalog import Installation, load_catalog, load_installation
from antal.catalog.delivery import expand_names, load_delivery
from antal.engine.delivery import DeliveryError, convert, open_delivery
from antal.engine.ingest import prepare
from antal.engine.reference import evaluate
from antal.synthetic import generate
from antal.synthetic.reporting import write_reporting

CAT = load_catalog()
EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.cohort"))
runner = CliRunner()
WIDE = 30  # DIA1..DIA30, OP1..OP30

SAS_YAML = """
name: sas-research-extract
registers:
  npr:
    files: par.xpt
    format: sas
    columns: {lopnr: LOPNR, indatum: INDATUM, utdatum: UTDATUM, vardform: VARDFORM,
              sjukhus: SJUKHUS, mvo: MVO, hdia: HDIA}
    dates: {indatum: sas, utdatum: sas}
    gather: {diagnos: [DIA1..DIA30], op: [OP1..OP30], ekod: [EKOD1..EKOD5]}
    normalise: [hdia, diagnos, op, ekod]
"""

TEXT_YAML = """
name: wide-text-research-extract
registers:
  npr:
    files: par_*.csv
    format: text
    separator: ";"
    encoding: latin-1
    columns: {lopnr: LopNr, indatum: INDATUM, utdatum: UTDATUM, vardform: VÅRDFORM,
              sjukhus: SJUKHUS, mvo: MVO, hdia: HDIA}
    dates: {indatum: YYYYMMDD, utdatum: YYYYMMDD}
    gather: {diagnos: [DIA1..DIA30], op: [OP1..OP30], ekod: [EKOD1..EKOD5]}
    normalise: [hdia, diagnos, op, ekod]
  lmr:
    files: lmr.csv
    format: text
    separator: ";"
    encoding: latin-1
    decimal: ","
    columns: {lopnr: LopNr, edatum: EDATUM, fdatum: FDATUM, atc: ATC, antal: ANTAL,
              ddd: DDD, doser: DOSERING, ordinationsorsak: ORDORSAK, arbetsplats: ARBPLATS}
    dates: {edatum: YYYYMMDD, fdatum: YYYYMMDD}
"""


def _dotted(code: str) -> str:
    """An ICD code as research extracts often write it (E11.9): a dot after the category."""
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 and code[0].isalpha() else code


def _wide(rows: list[dict], dotted: bool) -> pd.DataFrame:
    """The patient register as a research extract has it: one column per diagnosis."""
    code = _dotted if dotted else (lambda c: c)
    cols: dict[str, list] = {
        "LOPNR": [r["lopnr"] for r in rows], "INDATUM": [r["indatum"] for r in rows],
        "UTDATUM": [r["utdatum"] for r in rows], "VARDFORM": [r["vardform"] for r in rows],
        "SJUKHUS": [r["sjukhus"] for r in rows], "MVO": [r["mvo"] or "" for r in rows],
        "HDIA": [code(r["hdia"]) if r["hdia"] else "" for r in rows],
    }  # fmt: skip
    for col, prefix, n in (("diagnos", "DIA", WIDE), ("op", "OP", WIDE), ("ekod", "EKOD", 5)):
        lists = [(r[col] or "").split() for r in rows]
        assert max(map(len, lists)) <= n
        for i in range(n):
            cols[f"{prefix}{i + 1}"] = [code(x[i]) if i < len(x) else "" for x in lists]
    return pd.DataFrame(cols, dtype=object)


@pytest.fixture(scope="module")
def canonical(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("canonical")
    generate(2000, 3, d)
    return d


def _copy(canonical: Path, d: Path, without: tuple[str, ...] = ()) -> Path:
    for p in canonical.iterdir():
        if p.stem not in without:
            shutil.copyfile(p, d / p.name)
    return d


@pytest.fixture(scope="module")
def reporting(canonical: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = _copy(canonical, tmp_path_factory.mktemp("reporting"))
    write_reporting(d)
    (d / "delivery.yaml").write_text("delivery: reporting\n", encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def sas(canonical: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = _copy(canonical, tmp_path_factory.mktemp("sas"), without=("npr",))
    df = _wide(pq.read_table(canonical / "npr.parquet").to_pylist(), dotted=False)
    for c in ("INDATUM", "UTDATUM"):  # SAS dates: days since 1960-01-01, as a SAS file has them
        df[c] = [float("nan") if x is None else float((x - dt.date(1960, 1, 1)).days)
                 for x in df[c]]  # fmt: skip
    df["LOPNR"] = df["LOPNR"].astype(float)
    pyreadstat.write_xport(df, str(d / "par.xpt"), file_format_version=5, table_name="PAR")
    (d / "delivery.yaml").write_text(SAS_YAML, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def text(canonical: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = _copy(canonical, tmp_path_factory.mktemp("text"), without=("npr", "lmr"))
    df = _wide(pq.read_table(canonical / "npr.parquet").to_pylist(), dotted=True).rename(
        columns={"LOPNR": "LopNr", "VARDFORM": "VÅRDFORM"}
    )
    for c in ("INDATUM", "UTDATUM"):
        df[c] = [x.strftime("%Y%m%d") if isinstance(x, dt.date) else "" for x in df[c]]
    df["LopNr"] = [str(x) for x in df["LopNr"]]
    half = len(df) // 2  # two files of one glob
    for i, part in enumerate((df[:half], df[half:])):
        part.to_csv(d / f"par_{i}.csv", sep=";", index=False, encoding="latin-1")
    lmr = pq.read_table(canonical / "lmr.parquet").to_pylist()

    def num(x: float | None) -> str:  # a decimal comma
        return "" if x is None else repr(float(x)).replace(".", ",")

    def day(x: dt.date | None) -> str:
        return "" if x is None else x.strftime("%Y%m%d")

    out = pd.DataFrame(
        {"LopNr": [r["lopnr"] for r in lmr], "EDATUM": [day(r["edatum"]) for r in lmr],
         "FDATUM": [day(r["fdatum"]) for r in lmr], "ATC": [r["atc"] for r in lmr],
         "ANTAL": [num(r["antal"]) for r in lmr], "DDD": [num(r["ddd"]) for r in lmr],
         "DOSERING": [r["doser"] or "" for r in lmr],
         "ORDORSAK": [r["ordinationsorsak"] or "" for r in lmr],
         "ARBPLATS": [r["arbetsplats"] or "" for r in lmr]},
        dtype=object,
    )  # fmt: skip
    assert any("ö" in (s or "") for s in out["DOSERING"])  # Latin-1 text is exercised
    out.to_csv(d / "lmr.csv", sep=";", index=False, encoding="latin-1")
    (d / "delivery.yaml").write_text(TEXT_YAML, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def tables(canonical: Path) -> dict[str, list[dict]]:
    return {p.stem: pq.read_table(p).to_pylist() for p in canonical.glob("*.parquet")}


def _delivered(d: Path) -> Installation:
    return open_delivery(load_installation(d / "delivery.yaml", d), CAT)


@pytest.fixture(scope="module")
def installations(
    canonical: Path, reporting: Path, sas: Path, text: Path, tmp_path_factory
) -> dict[str, Installation]:
    out = {"parquet": Installation.from_data_dir(canonical)}
    for name, d in (("reporting", reporting), ("sas", sas), ("text", text)):
        out[name] = _delivered(d)
    for name in list(out):  # and the prepared file made from each
        src = Path(next(iter(out[name].sources.values())).parquet or "").parent
        f = tmp_path_factory.mktemp("prep") / f"{name}.duckdb"
        prepare(src, f, CAT, memory_limit="512MB", release=out[name].release)
        out[f"{name}-prepared"] = Installation.from_data_dir(f)
    return out


@pytest.mark.parametrize("fmt", ["reporting", "sas", "text"])
def test_converted_tables_equal_the_canonical_ones(
    fmt: str, canonical: Path, installations: dict[str, Installation]
) -> None:
    """Row for row (as multisets): the conversion loses, adds and changes nothing; the
    Latin-1 dose texts, the decimal commas, the dotted codes and the dates come back as
    the canonical files hold them."""
    inst = installations[fmt]
    for rid in ("npr", "lmr", "rekvisition", "population"):
        got = inst.sources[rid].parquet
        assert got is not None
        con = duckdb.connect()
        a, b = str(canonical / f"{rid}.parquet"), got
        diff = con.execute(
            "SELECT (SELECT count(*) FROM (SELECT * FROM read_parquet($1) EXCEPT ALL "
            "SELECT * FROM read_parquet($2))), (SELECT count(*) FROM (SELECT * FROM "
            "read_parquet($2) EXCEPT ALL SELECT * FROM read_parquet($1)))",
            [a, b],
        ).fetchall()[0]
        assert diff == (0, 0), (fmt, rid)
        assert pq.read_schema(b).names == pq.read_schema(a).names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_format_counts_as_the_reference(
    path: Path, installations: dict[str, Installation], tables: dict[str, list[dict]]
) -> None:
    checked = engine.check(engine.parse(path.read_text(encoding="utf-8")), CAT)
    ref = evaluate(checked, tables, CAT)
    # not vacuous: at 2,000 persons every example but the rare cancers reaches its index
    assert ref.counts()[0] > 0 or path.stem in {"egfr_lung_cancer", "her2_breast_cancer"}
    for name, inst in installations.items():
        got = engine.count_exact(checked, inst, CAT)
        assert list(got.counts) == ref.counts(), name
        assert {tuple(k): n for k, n in got.cells} == ref.breakdown, name


def test_release_id_is_the_delivery_content_and_rules(reporting: Path, tmp_path: Path) -> None:
    a = _delivered(reporting).release
    assert a == _delivered(reporting).release
    assert a.startswith("synthetic-p2000-s3-")  # the manifest's name in front
    d = _copy(reporting, tmp_path / "r") if (tmp_path / "r").mkdir() is None else None
    assert d is not None
    with open(d / "LT_18.txt", "a", encoding="utf-8") as f:
        f.write("1;18001;501;20240101;B01AB01\n")
    assert _delivered(d).release != a


def test_cli_counts_on_a_delivery_and_prepares_it(
    reporting: Path, canonical: Path, tmp_path
) -> None:
    cohort = str(EXAMPLES[0])
    want = runner.invoke(app, ["count", cohort, "--data", str(canonical), "--exact", "--json"])
    assert want.exit_code == 0, want.output
    args = ["--data", str(reporting), "--config", str(reporting / "delivery.yaml")]
    got = runner.invoke(app, ["count", cohort, *args, "--exact", "--json"])
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["attrition"] == json.loads(want.stdout)["attrition"]
    out = tmp_path / "r.duckdb"
    made = runner.invoke(app, ["prepare", *args, "--out", str(out)])
    assert made.exit_code == 0, made.output
    prep = runner.invoke(app, ["count", cohort, "--data", str(out), "--exact", "--json"])
    assert json.loads(prep.stdout)["attrition"] == json.loads(want.stdout)["attrition"]
    # --data beside a config without a delivery is refused, naming why
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"registers: {{population: {{parquet: {canonical}/population.parquet}}}}\n")
    bad = runner.invoke(app, ["count", cohort, "--data", str(reporting), "--config", str(plain)])
    assert bad.exit_code == 2 and "has no `delivery`" in bad.output


def test_synth_writes_the_reporting_format(tmp_path: Path) -> None:
    res = runner.invoke(app, ["synth", "--out", str(tmp_path), "--persons", "300",
                              "--format", "reporting"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "npr.parquet").exists()
    assert sorted(p.name for p in tmp_path.glob("SV_ADM_*.txt"))
    line = next(p for p in tmp_path.glob("SV_ADM_*.txt") if p.stat().st_size).read_text()
    first = line.splitlines()[0].split(";")
    assert len(first) == 6 and len(first[4]) == 8 and first[4].isdigit()  # YYYYMMDD


# ---- irregular rows ------------------------------------------------------------------------


def _findings(d: Path) -> list:
    with pytest.raises(DeliveryError) as e:
        convert(load_installation(d / "delivery.yaml", d).delivery, d, d / "out", CAT)  # type: ignore[arg-type]
    return e.value.findings or []


def test_reporting_irregular_rows_are_findings_with_counts(reporting: Path, tmp_path: Path) -> None:
    d = _copy(reporting, tmp_path)
    with open(d / "SV_ADM_18.txt", "a", encoding="utf-8") as f:
        f.write("900001;5;18001;501;20201340;\n")  # a bad date
        f.write("900002;5;18001;501;2020-01-05;\n")  # not YYYYMMDD
        f.write("900003;5;18001;501;20200105;;extra\n")  # a field too many
    with open(d / "SV_DIA_18.txt", "ab") as f:
        f.write(b"900004;I21\n")  # names no contact
        f.write("900003;Sm\xf6rj\n".encode("latin-1"))  # not UTF-8, as declared
    got = {(x.file, x.column, x.kind): x.count for x in _findings(d)}
    assert got[("SV_ADM_18.txt", "indatum", "unparsed value")] == 2
    assert got[("SV_ADM_18.txt", None, "unreadable line")] == 1
    assert got[("SV_DIA_18.txt", None, "unreadable line")] == 1
    assert got[("SV_DIA_18.txt", "diagnos", "orphan code row")] == 1


def test_tolerated_unreadable_values_are_missing_and_noted(reporting: Path, tmp_path) -> None:
    """The installation's `tolerate` (docs/configuration.md) accepts a stated number of
    unreadable values per column: within it they are notes and the value is missing (the
    contact has no admission date: no event), beyond it the delivery is refused saying so."""
    d = _copy(reporting, tmp_path)
    with open(d / "SV_ADM_18.txt", "a", encoding="utf-8") as f:
        f.write("900001;5;18001;501;20201340;\n900002;5;18001;501;2020-01-05;\n")
    made = convert(load_delivery("reporting"), d, d / "ok", CAT, tolerate={"npr.indatum": 2})
    notes = {(n.file, n.column): (n.kind, n.count) for n in made.notes}
    assert notes[("SV_ADM_18.txt", "indatum")] == ("unparsed value", 2)
    dates = duckdb.execute(
        "SELECT count(*), count(indatum) FROM read_parquet($1) WHERE lopnr = 5 AND sjukhus = '18001'"
        " AND utdatum IS NULL AND indatum IS NULL",
        [str(d / "ok" / "npr.parquet")],
    ).fetchone()
    assert dates == (2, 0)  # both rows kept, neither with a date
    with pytest.raises(DeliveryError, match="more than the 1 tolerated"):
        convert(load_delivery("reporting"), d, d / "no", CAT, tolerate={"npr.indatum": 1})


def test_dotted_codes_are_normalised_as_declared_and_counted(reporting: Path, tmp_path) -> None:
    d = _copy(reporting, tmp_path)
    with open(d / "SV_ADM_18.txt", "a", encoding="utf-8") as f:
        f.write("900001;5;18001;501;20200105;20200107\n")
    with open(d / "SV_DIA_18.txt", "a", encoding="utf-8") as f:
        f.write("900001;e11.9\n900001;I10\n")
    made = convert(load_delivery("reporting"), d, d / "out", CAT)
    notes = {(n.file, n.column, n.kind): n.count for n in made.notes}
    assert notes == {("SV_DIA_18.txt", "diagnos", "normalised"): 1}
    row = duckdb.execute(
        "SELECT hdia, diagnos FROM read_parquet($1) WHERE lopnr = 5 AND indatum = DATE '2020-01-05'",
        [str(d / "out" / "npr.parquet")],
    ).fetchall()
    assert row == [("E119", "E119 I10")]


def test_empty_required_field_is_the_data_checks_finding(reporting: Path, tmp_path) -> None:
    """An empty field is a missing value: where the catalog says never missing (the
    hospital), the data check refuses the count, naming file, column and count."""
    d = _copy(reporting, tmp_path)
    with open(d / "SV_ADM_18.txt", "a", encoding="utf-8") as f:
        f.write("900001;5;;501;20200105;20200107\n900002;6;;501;20200105;20200107\n")
    res = runner.invoke(
        app, ["data", "check", "--data", str(d), "--config", str(d / "delivery.yaml")]
    )
    assert res.exit_code != 0
    assert "sjukhus" in res.output and "(2 rows)" in res.output


def test_sas_and_wide_text_irregular_rows(sas: Path, text: Path, tmp_path: Path) -> None:
    d = _copy(text, tmp_path / "t") if (tmp_path / "t").mkdir() is None else text
    with open(d / "par_0.csv", "a", encoding="latin-1") as f:
        f.write("7;2020011;;S;18001;501;I21.9" + ";" * (2 * WIDE + 5) + "\n")
    with open(d / "lmr.csv", "a", encoding="latin-1") as f:
        f.write("7;20200105;;C09AA05;1,5,0;2;Smörjes;;\n")
    got = {(x.file, x.column, x.kind): x.count for x in _findings(d)}
    assert got[("par_0.csv", "indatum", "unparsed value")] == 1
    assert got[("lmr.csv", "antal", "unparsed value")] == 1
    # a SAS date that is not a whole day
    s = _copy(sas, tmp_path / "s") if (tmp_path / "s").mkdir() is None else sas
    df, _meta = pyreadstat.read_xport(str(s / "par.xpt"))
    df.loc[0, "INDATUM"] = 21915.5
    pyreadstat.write_xport(df, str(s / "par.xpt"), file_format_version=5, table_name="PAR")
    got = {(x.file, x.column, x.kind): x.count for x in _findings(s)}
    assert got == {("par.xpt", "indatum", "unparsed value"): 1}


def test_description_errors_name_the_field(tmp_path: Path) -> None:
    assert expand_names(["HDIA", "DIA1..DIA3"]) == ["HDIA", "DIA1", "DIA2", "DIA3"]
    (tmp_path / "d.yaml").write_text(
        "name: x\nregisters:\n  npr: {files: a.txt, format: csv}\n", encoding="utf-8"
    )
    res = runner.invoke(app, ["data", "check", "--data", str(tmp_path), "--config",
                              str(tmp_path / "d.yaml")])  # fmt: skip
    assert res.exit_code == 2 and "delivery.registers.npr.format" in res.output
