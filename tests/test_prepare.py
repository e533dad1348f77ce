"""`antal prepare`: the prepared DuckDB file gives every example cohort the same exact
counts and cells as the raw Parquet files, checked against the pure-Python reference
evaluator (an independent oracle); its release id is the files' own (so an answer stored
on the files is reused on it); it is written atomically."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from antal import engine
from antal.api.cli import app
from antal.catalog import CatalogError, Installation, load_catalog, load_installation
from antal.catalog.installation import data_dir_release
from antal.engine.errors import DataError
from antal.engine.ingest import code_table_specs, prepare, sort_keys
from antal.engine.reference import evaluate
from antal.privacy import open_store
from antal.synthetic import generate

CAT = load_catalog()
EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.cohort"))
runner = CliRunner()


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("raw")
    generate(20_000, 11, d)
    return d


@pytest.fixture(scope="module")
def prepared(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prep") / "release.duckdb"
    seen: dict[str, float] = {}
    made = prepare(raw_dir, out, CAT, memory_limit="512MB", progress=seen.__setitem__)
    # every register and every code table reported, and reported done
    want = [p.stem for p in raw_dir.glob("*.parquet")]
    want += [s.name for r in want for s in code_table_specs(CAT.register(r))]
    want.append("population#person")
    assert sorted(seen) == sorted(want)
    assert set(seen.values()) == {1.0}
    assert made.path == out
    return out


@pytest.fixture(scope="module")
def tables(raw_dir: Path) -> dict[str, list[dict]]:
    return {p.stem: pq.read_table(p).to_pylist() for p in raw_dir.glob("*.parquet")}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_on_prepared_equals_reference_and_raw(
    path: Path, raw_dir: Path, prepared: Path, tables: dict[str, list[dict]]
) -> None:
    checked = engine.check(engine.parse(path.read_text(encoding="utf-8")), CAT)
    got = engine.count_exact(checked, Installation.from_data_dir(prepared), CAT)
    ref = evaluate(checked, tables, CAT)
    assert list(got.counts) == ref.counts()
    assert {tuple(k): n for k, n in got.cells} == ref.breakdown
    raw = engine.count_exact(checked, Installation.from_data_dir(raw_dir), CAT)
    assert got.counts == raw.counts
    assert got.tables == raw.tables  # every `report by` table, every cell
    assert got.counts[0] > 0


def test_prepared_tables_have_the_raw_shape(raw_dir: Path, prepared: Path) -> None:
    with duckdb.connect(str(prepared), read_only=True) as con:
        for p in sorted(raw_dir.glob("*.parquet")):
            raw = pq.read_table(p)
            cols = con.execute(f'SELECT * FROM "{p.stem}" LIMIT 0').description
            assert [c[0] for c in cols] == raw.column_names
            assert CAT.register(p.stem) is not None  # every register of the release is known
            keys = sort_keys(CAT.register(p.stem))
            rows = con.execute(f'SELECT * FROM "{p.stem}" ORDER BY rowid').fetchall()
            assert sorted(map(repr, rows)) == sorted(map(repr, map(tuple, (
                r.values() for r in raw.to_pylist()))))  # fmt: skip
            if keys:  # the population and the opt-outs: stored in person order
                ix = [raw.column_names.index(k) for k in keys]
                got = [tuple(r[i] for i in ix) for r in rows]
                assert got == sorted(got, key=lambda r: tuple((v is None, v or 0) for v in r))
    assert sort_keys(CAT.register("population")) == ["lopnr"]
    assert sort_keys(CAT.register("npr")) == []


def test_code_tables_hold_one_code_per_row_in_code_order(raw_dir: Path, prepared: Path) -> None:
    """Each code table holds exactly the items of its column (split at spaces, as the raw
    layout's LIKE patterns read them), with the kept columns of their record, sorted by
    code then person; computed here from the Parquet rows in plain Python."""
    specs = {s.name: s for r in ("npr", "lmr", "rekvisition", "dors")
             for s in code_table_specs(CAT.register(r))}  # fmt: skip
    assert {"npr#diagnos", "npr#ekod", "npr#op", "npr#hdia", "lmr#atc", "dors#ulorsak"} <= set(
        specs
    )
    assert specs["npr#diagnos"].keep == ("lopnr", "indatum", "sjukhus", "mvo")
    inst = Installation.from_data_dir(prepared)
    assert inst.code_tables()[("npr", "diagnos")] == "npr#diagnos"
    with duckdb.connect(str(prepared), read_only=True) as con:
        for name, spec in specs.items():
            raw = pq.read_table(raw_dir / f"{spec.register}.parquet").to_pylist()
            want = []
            for r in raw:
                codes = r[spec.column]
                if codes is None:
                    continue
                for item in codes.split(" ") if spec.multi else [codes]:
                    if item:
                        want.append((item, *(r[k] for k in spec.keep)))
            cols = ", ".join(f'"{c}"' for c in (spec.column, *spec.keep))
            got = con.execute(f'SELECT {cols} FROM "{name}" ORDER BY rowid').fetchall()
            assert sorted(got, key=repr) == sorted(want, key=repr), name
            order = [(r[0], r[1]) for r in got]
            assert order == sorted(order), name
            assert got, name


def test_release_id_follows_content_not_paths_or_times(raw_dir: Path, prepared: Path,
                                                       tmp_path: Path) -> None:  # fmt: skip
    first = Installation.from_data_dir(prepared).release
    # the id of the files it was made from, as they have it read in place (issue 28, item 5)
    assert first == Installation.from_data_dir(raw_dir).release
    assert first == data_dir_release(raw_dir, "synthetic-p20000-s11")
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    for p in raw_dir.iterdir():
        shutil.copyfile(p, copy / p.name)  # new path, new modification times
        os.utime(copy / p.name, (1_000_000_000, 1_000_000_000))
    assert data_dir_release(copy, "synthetic-p20000-s11") == first
    out = prepare(copy, tmp_path / "copy.duckdb", CAT)
    assert out.release == first
    # one register changed (a row fewer): another release, on the files and the prepared file
    f = copy / "rekvisition.parquet"
    pq.write_table(pq.read_table(f).slice(1), f)
    changed = Installation.from_data_dir(copy).release
    assert changed != first
    assert prepare(copy, tmp_path / "changed.duckdb", CAT).release == changed
    assert Installation.from_data_dir(tmp_path / "changed.duckdb").release == changed


def test_a_failed_prepare_leaves_the_previous_file(raw_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.duckdb"
    before = prepare(raw_dir, out, CAT)
    cohort = (EXAMPLES[0]).read_text(encoding="utf-8")
    want = engine.count_exact(cohort, Installation.from_data_dir(out), CAT).counts
    broken = tmp_path / "broken"
    shutil.copytree(raw_dir, broken)
    lmr = broken / "lmr.parquet"
    lmr.write_bytes(lmr.read_bytes()[: lmr.stat().st_size // 2])  # cut in the middle
    with pytest.raises(DataError, match=r"lmr\.parquet"):
        prepare(broken, out, CAT)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["broken", "p.duckdb"]  # no leftovers
    inst = Installation.from_data_dir(out)
    assert inst.release == before.release
    assert engine.count_exact(cohort, inst, CAT).counts == want


def test_cli_prepare_then_count(raw_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.duckdb"
    r = runner.invoke(app, ["prepare", "--data", str(raw_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    release = Installation.from_data_dir(out).release
    assert release in r.output.replace("\n", "")
    cohort = next(p for p in EXAMPLES if p.stem == "t2d_metformin")
    on_raw = runner.invoke(app, ["count", str(cohort), "--data", str(raw_dir), "--exact", "--json"])
    on_prep = runner.invoke(app, ["count", str(cohort), "--data", str(out), "--exact", "--json"])
    assert on_raw.exit_code == on_prep.exit_code == 0, on_prep.output
    # the same answer, release id and all
    assert release == Installation.from_data_dir(raw_dir).release
    assert json.loads(on_prep.output) == json.loads(on_raw.output)


def test_an_answer_stored_on_the_files_is_reused_on_the_prepared_file(
    raw_dir: Path, prepared: Path, tmp_path: Path
) -> None:
    """Issue 28, item 5: a region that moves its extracts from Parquet files to a prepared
    file keeps its stored answers: the same count on the file is the stored answer, free."""
    store = tmp_path / "store.sqlite"
    cohort = next(p for p in EXAMPLES if p.stem == "t2d_metformin")
    answers = []
    for data in (raw_dir, prepared):
        r = runner.invoke(
            app, ["count", str(cohort), "--data", str(data), "--store", str(store), "--json"]
        )
        assert r.exit_code == 0, r.output
        answers.append(json.loads(r.stdout))
    on_files, on_prepared = answers
    assert on_files["stored_answer"] is False and on_files["epsilon_charged"] > 0
    assert on_prepared["stored_answer"] is True and on_prepared["epsilon_charged"] == 0
    assert on_prepared["attrition"] == on_files["attrition"]
    assert on_prepared["receipt"]["data_release"] == on_files["receipt"]["data_release"]
    st = open_store(str(store))
    project = st.project("local")
    assert project is not None and project.spent == on_files["epsilon_charged"]  # one charge
    assert st.ledger_problems() == []


def test_cli_refusals(raw_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["prepare", "--data", str(tmp_path / "nope"), "--out",
                            str(tmp_path / "p.duckdb")])  # fmt: skip
    assert r.exit_code == 2 and "nope" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["prepare", "--data", str(raw_dir), "--out", str(tmp_path / "p.db")])
    assert r.exit_code == 2 and ".duckdb" in r.output
    # a DuckDB file antal did not write is refused by name, not read as a release
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE npr AS SELECT 1 AS lopnr")
    with pytest.raises(CatalogError, match="antal prepare"):
        Installation.from_data_dir(other)


def test_raw_release_id_follows_content(raw_dir: Path, tmp_path: Path) -> None:
    """A raw data directory's release id: copied or touched files keep it, one changed byte
    changes it; the digest cache never hides a change (its key has the change time, which
    a write sets and nobody can set back)."""
    first = Installation.from_data_dir(raw_dir).release
    assert first.startswith("synthetic-p20000-s11-")
    copy = tmp_path / "copy"
    shutil.copytree(raw_dir, copy)
    for p in copy.iterdir():
        os.utime(p, (1_000_000_000, 1_000_000_000))
    assert Installation.from_data_dir(copy).release == first
    assert Installation.from_data_dir(copy).release == first  # from the cache this time
    f = copy / "npr.parquet"
    data = bytearray(f.read_bytes())
    data[len(data) // 3] ^= 0x01
    f.write_bytes(bytes(data))
    # same size, same inode, modification time set back: the change time still differs
    os.utime(f, (1_000_000_000, 1_000_000_000))
    assert Installation.from_data_dir(copy).release != first


def test_installation_config_names_a_prepared_file(prepared: Path, raw_dir: Path,
                                                   tmp_path: Path) -> None:  # fmt: skip
    cfg = tmp_path / "installation.yaml"
    cfg.write_text(f"prepared: {prepared}\n", encoding="utf-8")
    inst = load_installation(cfg)
    assert inst.release == Installation.from_data_dir(prepared).release
    assert inst.code_tables()[("lmr", "atc")] == "lmr#atc"
    cohort = next(p for p in EXAMPLES if p.stem == "t2d_metformin").read_text(encoding="utf-8")
    raw = engine.count_exact(cohort, Installation.from_data_dir(raw_dir), CAT)
    assert engine.count_exact(cohort, inst, CAT).counts == raw.counts
    # a register placed elsewhere by the config is read from there
    cfg.write_text(
        f"prepared: {prepared}\nregisters:\n  ndr: {{parquet: {raw_dir / 'ndr.parquet'}}}\n",
        encoding="utf-8",
    )
    mixed = load_installation(cfg)
    assert mixed.sources["ndr"].parquet == str(raw_dir / "ndr.parquet")
    assert mixed.release != inst.release
    assert engine.count_exact(cohort, mixed, CAT).counts == raw.counts
    cfg.write_text("registers: {}\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="prepared"):
        load_installation(cfg)


def test_person_table_resolves_each_person_as_the_compiler_does(tmp_path: Path) -> None:
    """`population#person`: one row per person key, each value the one the person's rows
    agree on (missing values aside), else unknown; computed here by hand from rows with
    duplicates, and a date-indexed count on it equals the reference evaluator's."""
    from conftest import write_extracts

    rows = [
        {"lopnr": 1, "kon": 1, "fodelsear": 1950, "fodelsemanad": 3, "lan": "01"},
        {"lopnr": 1, "kon": 1, "fodelsear": 1950, "fodelsemanad": 3, "lan": "03"},  # moved?
        {"lopnr": 2, "kon": 2, "fodelsear": 1960, "fodelsemanad": None, "lan": "12"},
        {"lopnr": 2, "kon": 2, "fodelsear": 1960, "fodelsemanad": 7, "lan": "12"},
        {"lopnr": 3, "kon": None, "fodelsear": 2005, "fodelsemanad": 1, "lan": None},  # 15
        {"lopnr": None, "kon": 1, "fodelsear": 1940, "fodelsemanad": 1, "lan": "01"},
    ]
    raw = write_extracts({"population": rows}, tmp_path / "raw")
    made = prepare(raw, tmp_path / "p.duckdb", CAT)
    with duckdb.connect(str(made.path), read_only=True) as con:
        got = con.execute(
            'SELECT lopnr, kon, fodelsear, fodelsemanad, lan FROM "population#person" '
            "ORDER BY rowid"
        ).fetchall()
    assert got == [(1, 1, 1950, 3, None), (2, 2, 1960, 7, "12"), (3, None, 2005, 1, None)]
    inst = Installation.from_data_dir(made.path)
    assert inst.layout().person_tables == {"population": "population#person"}
    text = "index 2020-06-15\ninclude: age 18..80\nreport by region, sex\n"
    checked = engine.check(engine.parse(text), CAT)
    sql = engine.prepare(checked, CAT, inst).compiled.sql()
    assert '"population#person"' in sql and "GROUP BY p." not in sql
    tables = {p.stem: pq.read_table(p).to_pylist() for p in raw.glob("*.parquet")}
    ref = evaluate(checked, tables, CAT)
    got_counts = engine.count_exact(checked, inst, CAT)
    assert list(got_counts.counts) == ref.counts() == [3, 2]
    assert {tuple(k): n for k, n in got_counts.cells} == ref.breakdown


def test_a_count_trusts_the_values_of_a_checked_prepared_file(raw_dir: Path,
                                                               tmp_path: Path) -> None:  # fmt: skip
    """`antal prepare` checks first and records it; the check a count makes first then
    reads only the tables' shape, while `antal data check` still reads every value. Shown
    with a value the check refuses, written into the prepared file after the fact."""
    from antal.api import usecases as uc

    out = tmp_path / "p.duckdb"
    uc.prepare_data(raw_dir, out, CAT)
    assert Installation.from_data_dir(out).sources["population"].values_checked
    unchecked = prepare(raw_dir, tmp_path / "u.duckdb", CAT)  # the library call: no check
    assert not Installation.from_data_dir(unchecked.path).sources["population"].values_checked
    with duckdb.connect(str(out)) as con:
        con.execute(
            "UPDATE population SET fodelsemanad = 13 WHERE lopnr = (SELECT min(lopnr) FROM population)"
        )
    inst = Installation.from_data_dir(out)
    uc.check_data(inst, CAT, {"npr"}, before_count=True)  # shape only: passes
    with pytest.raises(DataError, match="fodelsemanad"):
        uc.check_data(inst, CAT)


def test_a_release_without_a_column_no_cohort_reads_prepares_and_counts(
    raw_dir: Path, tables: dict[str, list[dict]], tmp_path: Path
) -> None:
    """A release without `npr.ekod` (an optional column) is prepared, with no code table
    for it; the examples count on it as the reference evaluator counts the full release
    (none reads external causes), and a cohort that reads the column is refused by name."""
    d = tmp_path / "noekod"
    shutil.copytree(raw_dir, d)
    pq.write_table(pq.read_table(d / "npr.parquet").drop(["ekod"]), d / "npr.parquet")
    out = prepare(d, tmp_path / "noekod.duckdb", CAT, memory_limit="512MB")
    con = duckdb.connect(str(out.path), read_only=True)
    names = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    con.close()
    assert "npr#ekod" not in names and "npr#hdia" in names
    inst = Installation.from_data_dir(out.path)
    for path in EXAMPLES:
        checked = engine.check(engine.parse(path.read_text(encoding="utf-8")), CAT)
        got = engine.count_exact(checked, inst, CAT)
        assert list(got.counts) == evaluate(checked, tables, CAT).counts(), path.stem
    external = engine.check(engine.parse("index first diagnosis W19*"), CAT)
    with pytest.raises(engine.MissingColumnError, match="ekod"):
        engine.count_exact(external, inst, CAT)
