"""Each backend behind the privacy layer and the HTTP API, unchanged; where each backend
reads (placements); and the installation configs that point at them."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import write_extracts
from fastapi.testclient import TestClient

from antal.api.app import create_app
from antal.api.settings import Settings
from antal.catalog import CatalogError, Installation, load_catalog, load_installation
from antal.catalog.vocabulary import BACKENDS
from antal.engine import EngineError, parse
from antal.engine.backends import backend_for
from antal.engine.reference import evaluate

CAT = load_catalog()
COHORT = (
    "index first diagnosis E11* between 2020-01-01 and 2020-12-31\n"
    "include age 40..80\n"
    "include drug A10BA02 in lmr within 0..365 days after index\n"
    "exclude diagnosis I21* before index\n"
    "report by sex, year\n"
)
# ε so large that the noise is 0 but with negligible probability (discrete Laplace of scale
# 3/ε: P(noise ≠ 0) < 1e-100), no threshold, no rounding: the released counts must be the
# reference evaluator's, and any difference is the backend's
PRIVACY = {"epsilon": 1000.0, "threshold": 0, "rounding": 1, "default_budget": 1e6}


def _tables() -> dict[str, list[dict[str, Any]]]:
    day0 = dt.date(2020, 1, 1)
    pop = [{"lopnr": i, "kon": 1 + i % 2, "fodelsear": 1940 + i % 60, "fodelsemanad": 1 + i % 12,
            "lan": ["01", "18", "13"][i % 3], "kommun": None} for i in range(1, 241)]  # fmt: skip
    npr = [{"lopnr": i, "indatum": day0 + dt.timedelta(days=(7 * i) % 400), "vardform": "O",
            "sjukhus": "18001", "hdia": "E119", "diagnos": "E119" + (" I219" if i % 7 == 0 else "")}
           for i in range(1, 201)]  # fmt: skip
    lmr = [{"lopnr": i, "edatum": day0 + dt.timedelta(days=(11 * i) % 500), "atc": "A10BA02"}
           for i in range(1, 241, 2)]  # fmt: skip
    optout = [{"lopnr": 3, "datum": day0, "andamal": "forskning"}]
    return {"population": pop, "npr": npr, "lmr": lmr, "optout": optout}


def _config(backend: str, inst: Installation, root: Path) -> Path:
    """The installation file that points at where `place` put the extracts."""
    cfg: dict[str, Any] = {"release": f"test-{backend}", "privacy": PRIVACY}
    if inst.postgres is not None:
        cfg["postgres"] = {"dsn": inst.postgres.dsn, "schema": inst.postgres.schema_}
        cfg["registers"] = {rid: {"postgres": s.postgres} for rid, s in inst.sources.items()}
    else:
        cfg["registers"] = {rid: {"parquet": s.parquet} for rid, s in inst.sources.items()}
    path = root / "installation.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_api_counts_on_every_backend(backend: str, place, tmp_path: Path) -> None:
    tables = _tables()
    inst = place(backend, tables, tmp_path / "data")
    settings = Settings(
        installation=_config(backend, inst, tmp_path), backend=backend,
        store=str(tmp_path / "store.sqlite"), requests_per_minute=1000, counts_per_minute=1000,
        query_seconds=1200,  # a shared CI machine may run Spark slowly: not this test's point
    )  # fmt: skip
    app = create_app(settings)
    st = app.state.antal
    st.accounts.create_user("res", "Researcher", "researcher")
    st.store.create_project("p", "Feasibility", "forskning", 1e6, ("npr", "lmr"))
    st.accounts.add_member("p", "res")
    headers = {"Authorization": f"Bearer {st.accounts.issue_token('res')}"}
    try:
        _count_through_the_api(backend, TestClient(app), headers, tables)
    finally:
        st.backend.close()  # the server holds its backend for its lifetime


def _count_through_the_api(
    backend: str, client: TestClient, headers: dict[str, str], tables: dict[str, Any]
) -> None:
    r = client.post("/v1/projects/p/count", json={"cohort": COHORT}, headers=headers)
    assert r.status_code == 200, r.text
    a = r.json()
    ref = evaluate(parse(COHORT), tables, CAT, purpose="forskning")
    assert min(ref.counts()) > 0  # the cohort keeps persons to the end: a real comparison
    assert [s["count"] for s in a["attrition"]] == ref.counts()
    cells = {(b["sex"], b["year"]): b["count"] for b in a["breakdown"] if b["count"]}
    assert cells == {k: n for k, n in ref.breakdown.items() if n}
    assert a["receipt"]["data_release"] == f"test-{backend}"
    # the privacy layer unchanged: the same query again is the stored answer, free
    again = client.post("/v1/projects/p/count", json={"cohort": COHORT}, headers=headers).json()
    assert again["stored_answer"] and again["epsilon_charged"] == 0
    assert again["attrition"] == a["attrition"]


def test_the_backend_follows_the_placement(place, tmp_path: Path) -> None:
    files = place("duckdb", _tables(), tmp_path / "f")
    pg = place("postgres", _tables(), tmp_path / "p")
    assert backend_for(files) == "duckdb" and backend_for(pg) == "postgres"
    assert backend_for(files, "spark") == "spark"
    with pytest.raises(
        EngineError, match="postgres backend cannot read extracts placed in parquet"
    ):
        backend_for(files, "postgres")
    with pytest.raises(EngineError, match="spark backend cannot read extracts placed in postgres"):
        backend_for(pg, "spark")


def test_installation_configs_for_postgres(place, tmp_path: Path, pg_extracts: str) -> None:
    pg = place("postgres", _tables(), tmp_path / "p")
    assert pg.postgres is not None
    schema = pg.postgres.schema_
    # the schema alone: its tables and the release `antal load-postgres` recorded
    cfg = tmp_path / "a.yaml"
    cfg.write_text(f"postgres: {{dsn: '{pg_extracts}', schema: {schema}}}\n")
    inst = load_installation(cfg)
    assert set(inst.sources) == set(pg.sources) and inst.release == pg.release
    assert backend_for(inst) == "postgres"
    # the load vacuumed its tables after committing (hint bits set once, not by the counts)
    import psycopg

    with psycopg.connect(pg_extracts) as con:
        vacuumed = con.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = %s "
            "AND last_vacuum IS NOT NULL",
            (schema,),
        ).fetchall()
    assert {r for (r,) in vacuumed} >= set(pg.sources)
    # the backend's session plans without nested loops (quadratic in persons on these joins)
    from antal.engine.backends import get_backend

    be = get_backend("postgres", inst, CAT)
    try:
        assert be.con.execute("SHOW enable_nestloop").fetchone() == ("off",)  # type: ignore[attr-defined]
    finally:
        be.close()
    # mixing placements is refused with the reason, not half-supported
    cfg.write_text(
        f"postgres: {{dsn: '{pg_extracts}', schema: {schema}}}\nrelease: r\n"
        f"registers: {{population: {{postgres: population}}, npr: {{parquet: /x/npr.parquet}}}}\n"
    )
    with pytest.raises(CatalogError, match="cannot be mixed"):
        load_installation(cfg)
    # tables named by hand need a release id (stored answers are kept per release)
    cfg.write_text(
        f"postgres: {{dsn: '{pg_extracts}', schema: {schema}}}\n"
        "registers: {population: {postgres: population}}\n"
    )
    with pytest.raises(CatalogError, match="needs `release`"):
        load_installation(cfg)
    cfg.write_text("registers: {population: {postgres: population}}\nrelease: r\n")
    with pytest.raises(CatalogError, match="needs the file's `postgres` schema"):
        load_installation(cfg)
    # a schema antal did not fill
    cfg.write_text(f"postgres: {{dsn: '{pg_extracts}', schema: nosuch}}\n")
    with pytest.raises(CatalogError, match="no release table"):
        load_installation(cfg)


def test_a_count_over_its_time_budget_is_stopped_on_spark(tmp_path: Path) -> None:
    """A Spark count past its time budget (a Spark statement takes seconds, far more than
    the budget here) has its jobs cancelled and is a QueryTimeout, never an answer."""
    from antal.engine import QueryTimeout, count_exact
    from antal.engine.backends import get_backend

    inst = Installation.from_data_dir(write_extracts(_tables(), tmp_path))
    be = get_backend("spark", inst, CAT, query_seconds=0.05)
    try:
        with pytest.raises(QueryTimeout):
            count_exact(COHORT, inst, CAT, backend=be)
    finally:
        be.close()


def test_a_spark_count_prints_no_pandas_note(tmp_path: Path) -> None:
    """`antal count` on the Spark backend, a process of its own: PySpark's import-time note
    that it does not fully support pandas 3 is not shown (antal uses no pandas-on-Spark and
    no Arrow conversion; the pinned pair runs these tests), and the count is printed."""
    import os
    import subprocess
    import sys

    d = write_extracts(_tables(), tmp_path / "x")
    cohort = tmp_path / "c.cohort"
    cohort.write_text("index first diagnosis I48* between 2000-01-01 and 2030-12-31\n")
    env = {**os.environ, "ANTAL_BACKEND": "spark", "ANTAL_STORE": str(tmp_path / "s.sqlite")}
    r = subprocess.run(
        [sys.executable, "-c", "from antal.api.cli import app; app()", "count", str(cohort),
         "--data", str(d)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ε charged" in r.stdout
    assert "support pandas" not in r.stderr and "FutureWarning" not in r.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_read_names_its_kind_and_nothing_else(backend: str, place, tmp_path: Path) -> None:
    """An extract that disappears under a running installation: the count is a DataError
    naming the kind of failure as the driver fixes it (an exception class, SQLSTATE or
    Spark error condition), which tells an operator where to look, and never the driver's
    own message, which may quote the data."""
    from antal.engine import DataError, count_exact
    from antal.engine.backends import get_backend

    inst = place(backend, _tables(), tmp_path)
    be = get_backend(backend, inst, CAT, query_seconds=None)
    try:
        count_exact(COHORT, inst, CAT, backend=be)  # attached and answering
        if inst.postgres is not None:
            import psycopg

            lmr = ["lmr", *inst.sources["lmr"].code_tables.values()]  # and its code table
            with psycopg.connect(inst.postgres.dsn, autocommit=True) as con:
                for table in lmr:
                    con.execute(f'DROP TABLE "{inst.postgres.schema_}"."{table}" CASCADE')
        else:
            Path(inst.sources["lmr"].parquet or "").unlink()
        with pytest.raises(DataError) as caught:
            count_exact(COHORT, inst, CAT, backend=be)
    finally:
        be.close()
    message = str(caught.value)
    assert message.startswith("the extracts could not be read for this count ("), message
    kind = message.split("(", 1)[1].split(")", 1)[0]
    assert kind and "lmr" not in kind and "/" not in kind, message
    expected = {  # what each driver calls a table or file that is gone
        "duckdb": "IOException",
        "postgres": "SQLSTATE 42P01",  # undefined table: the view lost what it read
        "spark": "java.io.FileNotFoundException",
    }
    assert expected[backend] in kind, message


def test_every_duckdb_connection_of_the_engine_has_no_progress_bar(tmp_path: Path) -> None:
    """DuckDB's progress bar writes to standard output after two seconds: it would land in
    `antal count --json`. The engine opens DuckDB only through antal.engine.duckconn, which
    turns it off; the backend's connection says so."""
    import re

    from antal.engine.backends.duckdb import DuckDBBackend

    engine_dir = Path(__file__).resolve().parent.parent / "engine"
    opened = [p.relative_to(engine_dir).as_posix() for p in engine_dir.rglob("*.py")
              if re.search(r"\bduckdb\.connect\(", p.read_text(encoding="utf-8"))]  # fmt: skip
    assert opened == ["duckconn.py"]
    be = DuckDBBackend(Installation.from_data_dir(write_extracts(_tables(), tmp_path)), CAT)
    try:
        setting = be.con.execute("SELECT current_setting('enable_progress_bar')").fetchone()
    finally:
        be.close()
    assert setting == (False,)


# ---- one release id on every placement (issue 28, item 5) ------------------------------------


def _cli(*args: str) -> str:
    from typer.testing import CliRunner

    from antal.api.cli import app

    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def _placed(data: Path, root: Path, dsn: str) -> dict[str, list[str]]:
    """The files in `data` on each placement, prepared and loaded with the CLI, and the
    options of `antal count` that read each (and each one's release id)."""
    import uuid

    root.mkdir()
    prepared = root / "release.duckdb"
    _cli("prepare", "--data", str(data), "--out", str(prepared))
    schema = "r_" + uuid.uuid4().hex[:12]
    _cli("load-postgres", "--data", str(data), "--dsn", dsn, "--schema", schema)
    cfg = root / "pg.yaml"
    cfg.write_text(f"postgres: {{dsn: '{dsn}', schema: {schema}}}\n", encoding="utf-8")
    return {
        "parquet": ["--data", str(data)],
        "prepared": ["--data", str(prepared)],
        "postgres": ["--config", str(cfg)],
    }


def test_one_release_id_and_stored_answers_on_every_placement(
    tmp_path: Path, pg_extracts: str
) -> None:
    """The same files read in place, prepared and loaded into PostgreSQL are one data
    release: one id, and a count asked on one placement is the stored answer on the
    others, charged once. A changed file is a new release on every placement."""
    import json

    import pyarrow.parquet as pq

    from antal.privacy import open_store
    from antal.synthetic import generate

    data = tmp_path / "data"
    generate(2000, 3, data)
    places = _placed(data, tmp_path / "one", pg_extracts)
    store = tmp_path / "store.sqlite"
    cohort = Path(__file__).resolve().parent.parent / "examples" / "t2d_metformin.cohort"

    def count(args: list[str]) -> dict[str, Any]:
        return json.loads(_cli("count", str(cohort), *args, "--store", str(store), "--json"))

    answers = {where: count(args) for where, args in places.items()}
    ids = {where: a["receipt"]["data_release"] for where, a in answers.items()}
    assert len(set(ids.values())) == 1, ids
    assert ids["parquet"] == Installation.from_data_dir(data).release
    first = answers["parquet"]
    assert first["stored_answer"] is False and first["epsilon_charged"] > 0
    for where in ("prepared", "postgres"):
        assert answers[where]["stored_answer"] is True, where
        assert answers[where]["epsilon_charged"] == 0, where
        assert answers[where]["attrition"] == first["attrition"], where
    st = open_store(str(store))
    project = st.project("local")
    assert project is not None and project.spent == first["epsilon_charged"]  # one charge
    assert st.ledger_problems() == []

    # one register with a row fewer: a new release on every placement, counted anew
    changed = tmp_path / "changed"
    shutil.copytree(data, changed)
    f = changed / "optout.parquet"
    pq.write_table(pq.read_table(f).slice(1), f)
    places = _placed(changed, tmp_path / "two", pg_extracts)
    answers = {where: count(args) for where, args in places.items()}
    new_ids = {a["receipt"]["data_release"] for a in answers.values()}
    assert len(new_ids) == 1 and new_ids.isdisjoint(ids.values()), new_ids
    assert answers["parquet"]["stored_answer"] is False
    assert answers["parquet"]["epsilon_charged"] == first["epsilon_charged"]


def test_an_explicit_release_name_wins_over_the_recorded_id(
    tmp_path: Path, pg_extracts: str
) -> None:
    """`release:` in the installation file is the id, whatever the schema recorded."""
    from antal.synthetic import generate

    data = tmp_path / "data"
    generate(500, 1, data)
    places = _placed(data, tmp_path / "p", pg_extracts)
    cfg = Path(places["postgres"][1])
    assert load_installation(cfg).release == Installation.from_data_dir(data).release
    cfg.write_text(cfg.read_text(encoding="utf-8") + "release: region-x-2026-10\n")
    assert load_installation(cfg).release == "region-x-2026-10"


def _docs_sql(page: str) -> str:
    """The one ```sql block of a page of docs/."""
    import re

    text = (Path(__file__).resolve().parent.parent / "docs" / page).read_text(encoding="utf-8")
    found = re.findall(r"^```sql\n(.*?)^```\s*$", text, re.S | re.M)
    assert len(found) == 1, f"{page}: {len(found)} sql blocks"
    return found[0]


def test_the_roles_of_placements_md_load_and_count(tmp_path: Path, pg_extracts: str) -> None:
    """docs/placements.md's roles, made by its SQL as written: `antal load-postgres` fills
    the schema as the loader (who may not create schemas in the database), and the service
    counts as the reader, who can neither write a table nor make one."""
    import uuid

    import psycopg

    tag = uuid.uuid4().hex[:8]
    loader, reader, schema = f"antal_loader_{tag}", f"antal_reader_{tag}", f"release_{tag}"
    script = (
        _docs_sql("placements.md")
        .replace("antal_loader", loader)
        .replace("antal_reader", reader)
        .replace("release_2026_10", schema)
    )
    with psycopg.connect(pg_extracts, autocommit=True) as con:
        con.execute(script)
        assert con.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CREATE')", (loader,)
        ).fetchone() == (False,)
    as_loader = pg_extracts.replace("postgres@", f"{loader}@")
    as_reader = pg_extracts.replace("postgres@", f"{reader}@")
    tables = _tables()
    data = write_extracts(tables, tmp_path / "data")
    _cli("load-postgres", "--data", str(data), "--dsn", as_loader, "--schema", schema)
    _cli("load-postgres", "--data", str(data), "--dsn", as_loader, "--schema", schema)  # again

    cfg = tmp_path / "installation.yaml"
    cfg.write_text(yaml.safe_dump({"postgres": {"dsn": as_reader, "schema": schema},
                                   "privacy": PRIVACY}), encoding="utf-8")  # fmt: skip
    settings = Settings(installation=cfg, store=str(tmp_path / "store.sqlite"))
    app = create_app(settings)
    st = app.state.antal
    assert st.installation.release == Installation.from_data_dir(data).release
    st.accounts.create_user("res", "Researcher", "researcher")
    st.store.create_project("p", "Feasibility", "forskning", 1e6, ("npr", "lmr"))
    st.accounts.add_member("p", "res")
    headers = {"Authorization": f"Bearer {st.accounts.issue_token('res')}"}
    try:
        r = TestClient(app).post("/v1/projects/p/count", json={"cohort": COHORT}, headers=headers)
    finally:
        st.backend.close()
    assert r.status_code == 200, r.text
    ref = evaluate(parse(COHORT), tables, CAT, purpose="forskning")
    assert [s["count"] for s in r.json()["attrition"]] == ref.counts()

    with psycopg.connect(as_reader, autocommit=True) as con:
        for statement in (
            f'INSERT INTO "{schema}".optout SELECT * FROM "{schema}".optout',
            f'CREATE TABLE "{schema}".mine (x integer)',
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(statement)


def test_load_postgres_makes_the_prepared_layout(tmp_path: Path, pg_extracts: str) -> None:
    """`antal load-postgres` makes the prepared file's person and code tables in the schema
    (engine/ingest.py's definitions): one row per person key, each value the one the
    person's rows agree on (missing values aside), else unknown; one code per item of each
    list. The installation reads them, and counts on them are the reference evaluator's
    and DuckDB's on the files. A code condition is an index range of its code table in
    whatever locale the database has."""
    import uuid

    import psycopg

    from antal import engine
    from antal.catalog import PostgresPlacement
    from antal.engine.backends.pgload import load_postgres

    pop = [
        {"lopnr": 1, "kon": 1, "fodelsear": 1950, "fodelsemanad": 3, "lan": "01"},
        {"lopnr": 1, "kon": 1, "fodelsear": 1950, "fodelsemanad": 3, "lan": "03"},  # moved?
        {"lopnr": 2, "kon": 2, "fodelsear": 1960, "fodelsemanad": None, "lan": "12"},
        {"lopnr": 2, "kon": 2, "fodelsear": 1960, "fodelsemanad": 7, "lan": "12"},
        {"lopnr": 3, "kon": None, "fodelsear": 2005, "fodelsemanad": 1, "lan": None},  # 15
        {"lopnr": 4, "kon": 2, "fodelsear": 1970, "fodelsemanad": 5, "lan": "18"},
        {"lopnr": 4, "kon": 1, "fodelsear": 1970, "fodelsemanad": 5, "lan": "18"},  # which?
        {"lopnr": None, "kon": 1, "fodelsear": 1940, "fodelsemanad": 1, "lan": "01"},
    ]
    d = dt.date(2020, 3, 1)
    npr = [  # E11 first, second, after two spaces, and not at all
        {"lopnr": 1, "indatum": d, "hdia": "E119", "diagnos": "E119 I219"},
        {"lopnr": 2, "indatum": d, "hdia": "I219", "diagnos": "I219 E110"},
        {"lopnr": 4, "indatum": d, "hdia": "J449", "diagnos": "J449  E112"},
        {"lopnr": 3, "indatum": d, "hdia": "J449", "diagnos": "J449"},
        {"lopnr": 2, "indatum": d, "hdia": None, "diagnos": None},
    ]
    tables = {"population": pop, "npr": npr}
    data = write_extracts(tables, tmp_path / "data")
    schema = "l_" + uuid.uuid4().hex[:12]
    loaded = load_postgres(data, pg_extracts, schema)
    assert {"population#person", "npr#diagnos", "npr#hdia"} <= set(loaded.layout)
    inst = Installation.from_postgres(PostgresPlacement(dsn=pg_extracts, schema=schema))
    assert inst.layout().person_tables == {"population": "population#person"}
    assert inst.layout().code_tables[("npr", "diagnos")] == "npr#diagnos"
    assert not [rid for rid in inst.sources if "#" in rid or rid.startswith("antal_")]

    with psycopg.connect(pg_extracts, autocommit=True) as con:
        persons = con.execute(
            f'SELECT lopnr, kon, fodelsear, fodelsemanad, lan FROM "{schema}"."population#person" '
            "ORDER BY lopnr"
        ).fetchall()
        assert persons == [(1, 1, 1950, 3, None), (2, 2, 1960, 7, "12"),
                           (3, None, 2005, 1, None), (4, None, 1970, 5, "18")]  # fmt: skip
        codes = con.execute(
            f'SELECT diagnos, lopnr FROM "{schema}"."npr#diagnos" ORDER BY diagnos, lopnr'
        ).fetchall()
        assert codes == sorted(
            (c, r["lopnr"]) for r in npr if r["diagnos"] for c in r["diagnos"].split(" ") if c
        )
        con.execute("SET enable_seqscan = off")  # as on a table too large to read whole
        plan = "\n".join(
            r[0]
            for r in con.execute(
                f'EXPLAIN SELECT lopnr FROM "{schema}"."npr#diagnos" WHERE diagnos LIKE \'E11%\''
            ).fetchall()
        )
        assert "diagnos >= 'E11'" in plan and "diagnos < 'E12'" in plan, plan

    files = Installation.from_data_dir(data)
    for text in (
        "index 2020-06-15\ninclude: age 18..80\nreport by region, sex\n",
        "index first diagnosis E11* between 2020-01-01 and 2020-12-31\nreport by sex\n",
    ):
        checked = engine.check(engine.parse(text), CAT)
        sql = engine.prepare(checked, CAT, inst).compiled.sql("postgres")
        assert '"population#person"' in sql
        ref = evaluate(checked, tables, CAT)
        got = engine.count_exact(checked, inst, CAT, backend="postgres")
        assert list(got.counts) == ref.counts(), text
        assert {tuple(k): n for k, n in got.cells} == ref.breakdown, text
        duck = engine.count_exact(checked, files, CAT)
        assert (got.counts, got.tables) == (duck.counts, duck.tables), text
    assert '"npr#diagnos"' in sql
    assert ref.counts() == [3]  # persons 1, 2 and 4: E11 in any place of the list
