"""What makes the service answer at the speed of a lookup (issue 26, item 5) must not change
what it answers: write transactions committed in groups (every one still committed, audited
and signed before its writer returns), the store's connections kept, a cohort's preparation
kept (never across a catalog change, a purpose or an installation), the columns of a file
kept (never across a change of the file), and the service's error answers. Real SQLite,
real DuckDB, real HTTP; no timing thresholds (`python -m bench.service` measures)."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import write_extracts
from fastapi.testclient import TestClient

from antal import engine
from antal.api import usecases as uc
from antal.api.app import create_app
from antal.api.settings import Settings
from antal.catalog import DataSource, Installation, load_catalog
from antal.engine import datacheck, duckconn
from antal.privacy import Project, Signer, open_store
from antal.privacy.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.service import run_service  # noqa: E402

EPS = 0.5  # the default ε per query


# ---- extracts and a service -----------------------------------------------------------------

T2D = "index first diagnosis E11*\ninclude ndr where diabetestyp = 2 within 365 days of index\n"


def _tables() -> dict[str, list[dict[str, Any]]]:
    pop = [{"lopnr": i, "kon": 1 + i % 2, "fodelsear": 1950 + i % 40, "fodelsemanad": 1,
            "lan": "18"} for i in range(1, 301)]  # fmt: skip
    npr = [{"lopnr": i, "indatum": dt.date(2020, 1, 1) + dt.timedelta(days=i % 200),
            "vardform": "O", "sjukhus": "18001", "hdia": "E119", "diagnos": "E119 I10"}
           for i in range(1, 201)]  # fmt: skip
    ndr = [{"lopnr": i, "regdat": dt.date(2020, 6, 1), "diabetestyp": 2, "hba1c": 60.0}
           for i in range(1, 101)]  # fmt: skip
    return {"population": pop, "npr": npr, "ndr": ndr}


def _installation(root: Path, extracted: str) -> Installation:
    data = write_extracts(_tables(), root)
    (data / "release.yaml").write_text(f"extracted: {extracted}\n", encoding="utf-8")
    return Installation.from_data_dir(data)


@pytest.fixture
def svc(tmp_path: Path) -> dict[str, Any]:
    data = write_extracts(_tables(), tmp_path / "data")
    app = create_app(Settings(data=data, store=str(tmp_path / "s.sqlite"), requests_per_minute=10_000,
                              counts_per_minute=10_000, checks_per_minute=10_000))  # fmt: skip
    st = app.state.antal
    for uid, role in (("admin", "admin"), ("a", "researcher"), ("b", "researcher")):
        st.accounts.create_user(uid, uid, role)
    st.store.create_project("pa", "pa", "forskning", 10.0, ("npr", "ndr", "nkbc"))
    st.store.create_project("pb", "pb", "forskning", 10.0, ("npr",))
    st.accounts.add_member("pa", "a")
    st.accounts.add_member("pb", "b")
    tokens = {u: st.accounts.issue_token(u) for u in ("admin", "a", "b")}
    return {
        "c": TestClient(app), "st": st, "data": data,
        "h": {u: {"Authorization": f"Bearer {t}"} for u, t in tokens.items()},
    }  # fmt: skip


# ---- the store: write transactions committed in groups ------------------------------------------


def _signed_store(tmp_path: Path) -> SQLiteStore:
    store = open_store(tmp_path / "s.sqlite", signer=Signer.ephemeral(),
                       anchor=tmp_path / "anchor.jsonl")  # fmt: skip
    assert isinstance(store, SQLiteStore)
    return store


def _rows(path: Path, sql: str) -> list[Any]:
    """Read with a connection of its own: what is committed, whatever the store holds open."""
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_concurrent_writers_commit_together_and_each_returns_committed(tmp_path: Path) -> None:
    store = _signed_store(tmp_path)
    store.create_project("p", "P", "forskning", 10.0)
    before = store.commits
    writers = 12
    holding = threading.Event()
    seen: dict[int, bool] = {}

    def write(i: int) -> None:
        with store.transaction() as tx:
            if i == 0:  # the first body holds the lock until every other writer waits for it
                holding.set()
                time.sleep(0.5)
            tx.audit(f"writer{i}", "p", "answer_stored", f"q{i}", "{}", 0.0, None, ("npr",))
        # returned: committed, for any other connection to see
        seen[i] = bool(_rows(tmp_path / "s.sqlite",
                             f"SELECT 1 FROM audit WHERE actor = 'writer{i}'"))  # fmt: skip

    first = threading.Thread(target=write, args=(0,))
    first.start()
    assert holding.wait(10)
    others = [threading.Thread(target=write, args=(i,)) for i in range(1, writers)]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(60)
    assert seen == {i: True for i in range(writers)}
    # the writers that waited for the first body joined its group: fewer commits than
    # writers (one, when every one of them was waiting by the time it ended)
    assert 1 <= store.commits - before < writers
    entries = store.audit_entries()
    assert sorted(e.actor for e in entries if e.actor.startswith("writer")) == sorted(
        f"writer{i}" for i in range(writers)
    )
    # every entry signed, in order, and its head in the anchor: the log verifies
    assert store.verify_audit() == []
    heads = [
        json.loads(line)["seq"] for line in (tmp_path / "anchor.jsonl").read_text().splitlines()
    ]
    assert heads == [e.seq for e in entries]


def test_a_body_that_fails_in_a_group_is_rolled_back_alone(tmp_path: Path) -> None:
    store = _signed_store(tmp_path)
    store.create_project("p", "P", "forskning", 10.0)
    holding = threading.Event()
    errors: dict[int, str] = {}

    def write(i: int) -> None:
        try:
            with store.transaction() as tx:
                if i == 0:
                    holding.set()
                    time.sleep(0.5)
                tx.execute("UPDATE projects SET spent = spent + 1 WHERE id = 'p'")
                tx.audit(f"writer{i}", "p", "charge", f"q{i}", "{}", 1.0, None)
                if i == 2:
                    raise ValueError("this one changes its mind")
        except ValueError as e:
            errors[i] = str(e)

    first = threading.Thread(target=write, args=(0,))
    first.start()
    assert holding.wait(10)
    others = [threading.Thread(target=write, args=(i,)) for i in (1, 2, 3)]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(60)
    assert errors == {2: "this one changes its mind"}
    # writer 2's update and entry are gone; the others' stand
    assert store.project("p").spent == 3.0  # type: ignore[union-attr]
    assert sorted(e.actor for e in store.audit_entries() if e.action == "charge") == [
        "writer0", "writer1", "writer3"
    ]  # fmt: skip
    assert store.verify_audit() == []


def test_each_head_of_a_group_signs_the_ledger_its_transaction_leaves(tmp_path: Path) -> None:
    """A group's heads share the ledger read once, until a transaction writes the projects:
    stored answers (the ledger untouched) and charges (spent changed) in one group, and the
    newest head signs the ledger as it is."""
    from antal.privacy.seal import LEDGER_SQL, ledger_digest

    store = _signed_store(tmp_path)
    store.create_project("p", "P", "forskning", 100.0)
    holding = threading.Event()

    def write(i: int) -> None:
        with store.transaction() as tx:
            if i == 0:
                holding.set()
                time.sleep(0.5)
            if i % 2:  # a charge: the ledger changes
                tx.execute("UPDATE projects SET spent = spent + 1 WHERE id = 'p'")
                tx.execute("INSERT INTO charges (project_id, answer_key, epsilon, rho, created) "
                           "VALUES ('p', %s, 1.0, 0, '')", (f"attempt:{i}",))  # fmt: skip
            tx.audit(f"writer{i}", "p", "charge" if i % 2 else "answer_stored", f"q{i}", "{}",
                     float(i % 2), None)  # fmt: skip

    first = threading.Thread(target=write, args=(0,))
    first.start()
    assert holding.wait(10)
    others = []
    for i in range(1, 9):  # queued in turn: stored answers and charges alternating
        others.append(threading.Thread(target=write, args=(i,)))
        others[-1].start()
        time.sleep(0.02)
    for t in [first, *others]:
        t.join(60)
    assert store.project("p").spent == 4.0  # type: ignore[union-attr]
    assert store.verify_audit() == [] and store.ledger_problems() == []
    with store.transaction(write=False) as tx:
        newest = json.loads(tx.one("SELECT head FROM audit_seals ORDER BY seq DESC LIMIT 1")[0])
        assert newest["ledger"] == ledger_digest(tx.all(LEDGER_SQL))


def test_a_write_inside_a_write_of_the_same_thread_is_an_error_not_a_wait(
    tmp_path: Path,
) -> None:
    store = _signed_store(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="inside another"), store.transaction() as tx:
        tx.execute("UPDATE audit_head SET seq = seq WHERE id = 1")
        with store.transaction():
            pass
    assert time.monotonic() - t0 < 30  # it used to wait for SQLite's lock (60 s), then fail
    with store.transaction() as tx:  # and the store goes on
        tx.audit("admin", None, "create_user", None, "u researcher", 0.0, None)
    assert store.verify_audit() == []


def test_the_stores_connections_are_kept_between_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _signed_store(tmp_path)
    store.create_project("p", "P", "forskning", 10.0)
    opened: list[str] = []
    real = sqlite3.connect

    def spy(database: str, *a: Any, **kw: Any) -> sqlite3.Connection:
        opened.append(str(database))
        return real(database, *a, **kw)

    monkeypatch.setattr(sqlite3, "connect", spy)
    for _ in range(50):
        assert store.project("p") is not None
        with store.transaction() as tx:
            tx.audit("admin", "p", "set_budget", None, "{}", 0.0, None)
    assert len(opened) <= 2  # one for reads, one for writes: not one per transaction
    assert store.verify_audit() == []


def test_a_forked_process_never_uses_the_parents_connections(tmp_path: Path) -> None:
    """SQLite's connections must not cross a fork: a child of a process that holds idle
    connections (a server's worker made by fork) opens its own."""
    store = open_store(tmp_path / "s.sqlite", anchor=tmp_path / "anchor.jsonl")
    store.create_project("p", "P", "forskning", 10.0)  # leaves an idle connection
    ctx = multiprocessing.get_context("fork")

    def child() -> None:
        with store.transaction() as tx:  # the same store object, in the child
            tx.audit("child", "p", "set_budget", None, "{}", 0.0, None)

    p = ctx.Process(target=child)
    p.start()
    p.join(60)
    assert p.exitcode == 0
    with store.transaction() as tx:  # the parent's connections still work
        tx.audit("parent", "p", "set_budget", None, "{}", 0.0, None)
    assert [e.actor for e in store.audit_entries()][-2:] == ["child", "parent"]
    assert store.verify_audit() == []


# ---- the columns of a file, kept ---------------------------------------------------------------


def test_a_files_columns_are_read_once_and_again_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "x.parquet"
    duckdb.connect().execute(f"COPY (SELECT 1 AS a, 2 AS b) TO '{f}'")
    src = DataSource(parquet=str(f))
    opened: list[int] = []
    real = duckconn.connect

    def spy(*a: Any, **kw: Any) -> Any:
        opened.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(duckconn, "connect", spy)
    assert datacheck.present_columns(src) == {"a", "b"}
    assert datacheck.present_columns(src) == {"a", "b"}
    assert len(opened) == 1  # the second time from what the first read
    time.sleep(0.01)
    duckdb.connect().execute(f"COPY (SELECT 1 AS a) TO '{f}'")  # rewritten without b
    assert datacheck.present_columns(src) == {"a"}
    assert len(opened) == 2


def test_a_duckdb_views_columns_are_read_every_time(tmp_path: Path) -> None:
    """A view's columns are its sources': they change while its DuckDB file does not."""
    f, db = tmp_path / "x.parquet", tmp_path / "v.duckdb"
    duckdb.connect().execute(f"COPY (SELECT 1 AS a, 2 AS b) TO '{f}'")
    con = duckdb.connect(str(db))
    con.execute(f"CREATE VIEW v AS SELECT * FROM read_parquet('{f}')")
    con.close()
    src = DataSource(duckdb=str(db), table="v")
    assert datacheck.present_columns(src) == {"a", "b"}
    duckdb.connect().execute(f"COPY (SELECT 1 AS a) TO '{f}'")
    assert datacheck.present_columns(src) == {"a"}


def test_a_column_removed_while_serving_refuses_the_count(svc: dict[str, Any]) -> None:
    """The files are checked on every ask, kept preparation or not: an extract rewritten
    without a column the cohort reads is refused by name, before anything is charged."""
    c, h, data = svc["c"], svc["h"], svc["data"]
    q = {
        "cohort": "index first diagnosis E11*\ninclude latest ndr.hba1c > 53 within 365 days before index\n"
    }
    assert c.post("/v1/projects/pa/count", json=q, headers=h["a"]).status_code == 200
    ndr, new = data / "ndr.parquet", data / "ndr.new"
    duckdb.connect().execute(f"COPY (SELECT * EXCLUDE (hba1c) FROM read_parquet('{ndr}')) TO '{new}' "
               "(FORMAT parquet)")  # fmt: skip
    os.replace(new, ndr)  # the extract replaced by one without `hba1c`
    r = c.post("/v1/projects/pa/count", json=q, headers=h["a"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "column_missing", r.text
    assert {"register": "ndr", "column": "hba1c", "file": "ndr.parquet"} in (
        r.json()["error"]["details"]["columns"]
    )


# ---- a cohort's preparation, kept ---------------------------------------------------------------


def test_a_kept_preparation_is_never_another_purposes(tmp_path: Path) -> None:
    cat = load_catalog()
    inst = _installation(tmp_path / "data", "2024-01-01")
    research = Project("r", "", "forskning", 10.0, 0.0, ("npr", "ndr"))
    commercial = Project("c", "", "kommersiell", 10.0, 0.0, ("npr", "ndr"))
    first = uc.prepare_count(T2D, inst, cat, research, approved_only=True)
    assert uc.prepare_count(T2D, inst, cat, research, approved_only=True) is first  # kept
    other = uc.prepare_count(T2D, inst, cat, commercial, approved_only=True)
    # the opt-outs of each purpose are left out: 'kommersiell' and 'alla' here
    assert "'kommersiell'" in other.compiled.sql() and "'kommersiell'" not in first.compiled.sql()


def test_a_kept_preparation_is_never_another_installations(tmp_path: Path) -> None:
    cat = load_catalog()
    old = _installation(tmp_path / "old", "2021-01-01")
    new = _installation(tmp_path / "new", "2024-01-01")
    project = Project("p", "", "forskning", 10.0, 0.0, ("npr", "ndr"))
    a = uc.prepare_count(T2D, old, cat, project, approved_only=True)
    b = uc.prepare_count(T2D, new, cat, project, approved_only=True)
    assert a.currency is not None and b.currency is not None
    assert a.currency.to_json() != b.currency.to_json()  # each its own extraction date
    assert b.currency.to_json() == engine.prepare(T2D, cat, new).currency.to_json()
    va, vb = uc.validate(T2D, cat, old), uc.validate(T2D, cat, new)
    assert va.currency is not None and vb.currency is not None
    assert va.currency.to_json() != vb.currency.to_json()


def test_a_kept_preparation_is_never_used_after_a_catalog_change(tmp_path: Path) -> None:
    cat = load_catalog()
    inst = _installation(tmp_path / "data", "2024-01-01")
    project = Project("p", "", "forskning", 10.0, 0.0, ("npr", "ndr"))
    before = uc.prepare_count(T2D, inst, cat, project, approved_only=True)
    assert uc.validate(T2D, cat, inst).ok
    # the register's entry replaced (as a holder's published entry replaces it): without
    # `diabetestyp`, the cohort no longer checks
    ndr = cat.registers["ndr"]
    cat.registers["ndr"] = ndr.model_copy(
        update={"variables": [v for v in ndr.variables if v.name != "diabetestyp"]}
    )
    v = uc.validate(T2D, cat, inst)
    assert not v.ok and v.error is not None and "diabetestyp" in str(v.error)
    with pytest.raises(engine.CohortError):
        uc.prepare_count(T2D, inst, cat, project, approved_only=True)
    cat.registers["ndr"] = ndr  # put back: prepared again, equal to the first
    again = uc.prepare_count(T2D, inst, cat, project, approved_only=True)
    assert again is not before and again.query_hash == before.query_hash


def test_a_projects_approvals_are_checked_on_every_ask(svc: dict[str, Any]) -> None:
    """The preparation is kept, the approval is not: a project not approved for `ndr` is
    refused the cohort another project just counted, and again after."""
    c, h = svc["c"], svc["h"]
    q = {"cohort": T2D}
    assert c.post("/v1/projects/pa/count", json=q, headers=h["a"]).status_code == 200
    for _ in range(2):
        r = c.post("/v1/projects/pb/count", json=q, headers=h["b"])
        assert r.status_code == 403 and r.json()["error"]["code"] == "register_not_approved"
    assert c.get("/v1/projects/pb/budget", headers=h["b"]).json()["spent"] == 0


def test_a_stored_answer_is_audited_and_receipted_on_every_ask(svc: dict[str, Any]) -> None:
    c, h, st = svc["c"], svc["h"], svc["st"]
    q = {"cohort": T2D}
    first = c.post("/v1/projects/pa/count", json=q, headers=h["a"]).json()
    again = [c.post("/v1/projects/pa/count", json=q, headers=h["a"]).json() for _ in range(3)]
    assert all(a["stored_answer"] and a["epsilon_charged"] == 0 for a in again)
    assert all(a["receipt"] == first["receipt"] for a in again)  # the original receipt
    actions = [e.action for e in st.store.audit_entries() if e.project_id == "pa"]
    assert actions[-3:] == ["answer_stored"] * 3
    # a new spelling of its names: the stored answer, with a receipt of its own
    named = c.post("/v1/projects/pa/count", json={"cohort": 'cohort "named"\n' + T2D},
                   headers=h["a"]).json()  # fmt: skip
    assert named["stored_answer"] and named["receipt"]["title"] == "named"
    assert named["receipt"]["audit_seq"] == st.store.audit_entries()[-1].seq
    assert st.store.verify_audit() == [] and st.store.ledger_problems() == []


def test_a_stored_answers_response_is_made_of_what_it_shows_now(svc: dict[str, Any]) -> None:
    """The service keeps a stored answer's response by everything it is made of: the same
    ask gets the same bytes, another project its own receipt, and the budget left as it is."""
    c, h = svc["c"], svc["h"]
    q = {"cohort": "index first diagnosis E11*\nreport by sex\n"}
    c.post("/v1/projects/pa/count", json=q, headers=h["a"])
    a1 = c.post("/v1/projects/pa/count", json=q, headers=h["a"])
    a2 = c.post("/v1/projects/pa/count", json=q, headers=h["a"])
    assert a1.json()["stored_answer"] and a1.content == a2.content
    c.post("/v1/projects/pb/count", json=q, headers=h["b"])
    b = c.post("/v1/projects/pb/count", json=q, headers=h["b"]).json()
    assert b["stored_answer"] and b["receipt"]["project"] == "pb"
    assert b["breakdown"] == a1.json()["breakdown"]  # the one released value, for both
    # a fresh count charges pa: its stored answer now shows the budget left after it
    fresh = c.post("/v1/projects/pa/count", json={"cohort": "index first diagnosis I10*\n"},
                   headers=h["a"]).json()  # fmt: skip
    a3 = c.post("/v1/projects/pa/count", json=q, headers=h["a"]).json()
    assert a3["budget_left"] == fresh["budget_left"] == a1.json()["budget_left"] - EPS
    assert {**a3, "budget_left": None} == {**a1.json(), "budget_left": None}


def test_a_stored_answer_kept_as_shown_is_shown_with_the_names_asked(tmp_path: Path) -> None:
    """The gate keeps a stored answer as shown: never with another ask's step labels, and
    every ask gets a tree of its own (what one caller changes, the next never sees)."""
    from antal.privacy import Gate, PrivacyParams, TrueCounts

    store = _signed_store(tmp_path)
    store.create_project("p", "P", "forskning", 10.0)
    store.create_project("q", "Q", "forskning", 10.0)
    gate = Gate(store, PrivacyParams(epsilon=0.5))

    def ask(labels: tuple[str, ...], project: str = "p") -> Any:
        return gate.answer(project, "res", "qh", "{}", "rel", labels, (),
                           lambda: TrueCounts(("i", "s"), (1000, 600)))  # fmt: skip

    first = ask(("index", "step")).to_json()
    again = ask(("index", "step")).to_json()
    assert again["stored_answer"] and again["attrition"] == first["attrition"]
    again["attrition"][0]["count"] = -1  # a caller's own tree
    assert ask(("index", "step")).to_json()["attrition"] == first["attrition"]
    renamed = ask(("index", "renamed")).to_json()
    assert [s["label"] for s in renamed["attrition"]] == ["index", "renamed"]
    assert renamed["receipt"]["labels"] == ["index", "renamed"]
    assert [s["label"] for s in ask(("index", "step")).to_json()["attrition"]] == ["index", "step"]
    # the receipts kept are each project's own: another project's asks get its own
    mine = ask(("index", "step")).to_json()["receipt"]
    theirs = [ask(("index", "step"), "q").to_json() for _ in range(2)]
    assert not theirs[0]["stored_answer"] and theirs[1]["stored_answer"]
    assert theirs[1]["receipt"] == theirs[0]["receipt"] != mine
    assert theirs[1]["receipt"]["project"] == "q" and mine["project"] == "p"
    assert theirs[1]["budget_left"] == 10.0 - 0.5 and theirs[1]["epsilon_charged"] == 0
    assert store.verify_audit() == []


def test_a_published_entry_changes_what_a_kept_cohort_reads(svc: dict[str, Any]) -> None:
    """`nkbc` made to provide diagnoses: the same text now reads it, in validation and in
    the count (whose audit entries name the registers read)."""
    c, h, st = svc["c"], svc["h"], svc["st"]
    q = {"cohort": "index first diagnosis E11*\n"}
    assert "nkbc" not in c.post("/v1/cohorts/validate", json=q, headers=h["a"]).json()["registers"]
    assert c.post("/v1/projects/pa/count", json=q, headers=h["a"]).status_code == 200
    nkbc = c.get("/v1/catalog/registers/nkbc", headers=h["admin"]).json()
    prov = {**nkbc, "provides": [{"event": "diagnosis", "codes": "her2"}]}
    assert c.put("/v1/catalog/registers/nkbc", json=prov, headers=h["admin"]).status_code == 200
    assert "nkbc" in c.post("/v1/cohorts/validate", json=q, headers=h["a"]).json()["registers"]
    r = c.post("/v1/projects/pa/count", json=q, headers=h["a"])
    assert r.status_code == 200 and not r.json()["stored_answer"]
    assert {e.action for e in st.store.audit_touching("nkbc")} >= {"charge", "answer"}


# ---- the service's error answers ---------------------------------------------------------------


def test_an_unexpected_error_is_answered_in_the_one_error_shape(svc: dict[str, Any]) -> None:
    c = svc["c"]
    app = c.app

    def boom() -> None:
        raise KeyError("a value from the data")

    def deep() -> None:
        raise RecursionError

    app.add_api_route("/boom", boom)  # type: ignore[attr-defined]
    app.add_api_route("/deep", deep)  # type: ignore[attr-defined]
    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal", "details": None,
                                  "message": "the server could not answer this request"}}  # fmt: skip
    assert "a value from the data" not in r.text
    r = client.get("/deep")
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep"
    assert client.get("/healthz").status_code == 200


# ---- the measurement, short --------------------------------------------------------------------


@pytest.mark.slow
def test_the_throughput_run_finds_no_problem(tmp_path: Path) -> None:
    """`python -m bench.service`, short: every stored answer free and audited, every
    validation answered, the audit log verifies (correctness only: no timing threshold)."""
    from antal.synthetic import generate

    generate(3000, 7, tmp_path / "data")
    r = run_service(tmp_path / "data", tmp_path, clients=8, seconds=2.0, persons=3000,
                    cohort=ROOT / "examples" / "t2d_metformin.cohort")  # fmt: skip
    assert r.problems == []
    assert all(ph.seconds for ph in r.phases)
