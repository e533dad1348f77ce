"""Issue 22, item 7: the ledger cannot be rewritten unseen.

The audit log's hash chain has no key: anyone who can write the store can recompute it.
The attack that was found: refund ε 5 to a project (its spent total, and the charges,
answers and receipts of ten queries, so that the ledger still adds up), drop those
queries' 20 audit entries, renumber and re-chain the rest with the public algorithm;
`antal audit verify` said "intact, ledger consistent". Now every entry's head is signed
with the installation's key, the signature covers the ledger (each project's budget and
spent ε), and each signed head is also appended to an anchor file outside the database.

The store here is a real one: a service with real data (TestClient), real counts, a
refusal and an administrator's act from the command line, all signed by the key beside
the store. Each attack runs on a copy of it and is checked with the real command.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import write_extracts
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from antal.api.app import create_app
from antal.api.cli import app as cli
from antal.api.settings import Settings, default_audit_anchor, default_signing_key
from antal.privacy import SigningKeyError, open_store

runner = CliRunner()
EPS = 0.5  # ε per query in this installation: ten queries are ε 5
GENESIS = "0" * 64
FIELDS = ("seq", "ts", "actor", "project_id", "action", "query_hash", "query", "epsilon",
          "released")  # fmt: skip


def _cohort(i: int) -> str:
    # a different cohort each time: each is a fresh, charged query
    return f"index first diagnosis E11* between 2019-01-01 and 2021-12-{1 + i:02d}\n"


def _installation(root: Path) -> Path:
    pop = [{"lopnr": i, "kon": 1 + i % 2, "fodelsear": 1950 + i % 40, "fodelsemanad": 1,
            "lan": "18"} for i in range(1, 301)]  # fmt: skip
    npr = [{"lopnr": i, "indatum": dt.date(2020, 1, 1) + dt.timedelta(days=i % 200),
            "vardform": "O", "sjukhus": "18001", "hdia": "E119", "diagnos": "E119"}
           for i in range(1, 201)]  # fmt: skip
    data = write_extracts({"population": pop, "npr": npr}, root / "data")
    regs = "\n".join(f"  {r}: {{parquet: {data / f'{r}.parquet'}}}" for r in ("population", "npr", "optout"))  # fmt: skip
    cfg = root / "installation.yaml"
    cfg.write_text(f"release: r1\nregisters:\n{regs}\nprivacy: {{epsilon: {EPS}}}\n")
    return cfg


def _app(cfg: Path, store: Path) -> TestClient:
    return TestClient(create_app(Settings(installation=cfg, store=str(store),
                                          requests_per_minute=10_000, counts_per_minute=10_000)))  # fmt: skip


def _count(client: TestClient, token: str, pid: str, i: int) -> int:
    r = client.post(f"/v1/projects/{pid}/count", json={"cohort": _cohort(i)},
                    headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    return r.status_code


def _files(store: Path) -> list[Path]:
    """What an installation keeps beside a SQLite store: its signing key and its anchor."""
    return [default_signing_key(str(store)), default_audit_anchor(str(store))]


def _copy(src: Path, dst: Path) -> Path:
    """A consistent copy of a live store (SQLite's backup, WAL included) and its files."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    for f, g in zip(_files(src), _files(dst), strict=True):
        if f.exists():
            shutil.copy2(f, g)
    return dst


def _clear_env(mp: pytest.MonkeyPatch) -> None:
    # no ANTAL_* setting of the machine (a signing key, an anchor) may reach these stores
    for k in [k for k in os.environ if k.startswith("ANTAL_")]:
        mp.delenv(k)


@pytest.fixture(autouse=True)
def _no_antal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_env(monkeypatch)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A store written the ways an installation writes it: accounts, projects, counts of
    two projects, a refusal (through the service) and an admin's act (the command line)."""
    with pytest.MonkeyPatch.context() as mp:
        _clear_env(mp)
        yield _signed(tmp_path_factory.mktemp("ledger"))


def _signed(root: Path) -> dict[str, Any]:
    cfg = _installation(root)
    store = root / "live" / "store.sqlite"
    client = _app(cfg, store)
    st = client.app.state.antal  # type: ignore[attr-defined]
    st.accounts.create_user("res", "Researcher", "researcher")
    st.accounts.create_user("admin", "Admin", "admin")
    st.store.create_project("p", "victim of the refund", "forskning", 100.0, ("npr",))
    st.store.create_project("q", "another", "forskning", 100.0, ("npr",))
    st.store.create_project("tight", "one query", "forskning", EPS, ("npr",))
    for pid in ("p", "q", "tight"):
        st.accounts.add_member(pid, "res")
    token = st.accounts.issue_token("res")
    admin = st.accounts.issue_token("admin")
    assert [_count(client, token, "p", i) for i in range(14)] == [200] * 14
    assert [_count(client, token, "q", i) for i in range(3)] == [200] * 3
    assert [_count(client, token, "tight", i) for i in (20, 21)] == [200, 403]  # refused
    r = runner.invoke(cli, ["admin", "create-user", "bo", "--store", str(store)])
    assert r.exit_code == 0, r.output
    return {"root": root, "cfg": cfg, "store": store, "client": client, "token": token,
            "admin": admin}  # fmt: skip


def _verify(store: Path, *extra: str) -> Any:
    return runner.invoke(cli, ["audit", "verify", "--store", str(store), *extra])


# ---- the attacker's tools: the public algorithm ----------------------------------------------


def _entry_hash(prev: str, body: dict[str, Any]) -> str:
    """The chain's hash as docs/privacy.md describes it; checked against the store below."""
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev + blob).encode()).hexdigest()


def _rechain(con: sqlite3.Connection) -> int:
    """Renumber the entries 1..n, recompute every `prev` and `hash` and the head; n."""
    rows = con.execute(f"SELECT {', '.join(FIELDS)}, prev, hash FROM audit ORDER BY seq").fetchall()
    con.execute("DELETE FROM audit")
    prev, renumbered = GENESIS, {}
    for new, row in enumerate(rows, 1):
        body = dict(zip(FIELDS, (new, *row[1:9]), strict=True))
        h = _entry_hash(prev, body)
        con.execute(f"INSERT INTO audit ({', '.join(FIELDS)}, prev, hash) VALUES "
                    f"({', '.join('?' * 11)})", (*body.values(), prev, h))  # fmt: skip
        renumbered[row[0]] = new
        prev = h
    con.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (len(rows), prev))
    regs = con.execute("SELECT seq, register_id FROM audit_registers").fetchall()
    con.execute("DELETE FROM audit_registers")
    con.executemany("INSERT INTO audit_registers (seq, register_id) VALUES (?, ?)",
                    [(renumbered[s], r) for s, r in regs if s in renumbered])  # fmt: skip
    return len(rows)


def _refund(con: sqlite3.Connection, pid: str, n: int, log: bool = True) -> float:
    """Give project `pid` back the ε of its last `n` queries: their charges, answers,
    receipts and (with `log`) audit entries go, and its spent total drops to match (so
    that the ledger still adds up). The ε refunded."""
    keys = [k for (k,) in con.execute(
        "SELECT answer_key FROM project_queries WHERE project_id = ? "
        "ORDER BY first_asked DESC LIMIT ?", (pid, n))]  # fmt: skip
    hashes = [h for (h,) in con.execute(
        f"SELECT query_hash FROM answers WHERE key IN ({', '.join('?' * n)})", keys)]  # fmt: skip
    refund = con.execute(f"SELECT SUM(epsilon) FROM charges WHERE project_id = ? AND answer_key "
                         f"IN ({', '.join('?' * n)})", (pid, *keys)).fetchone()[0]  # fmt: skip
    for table, column in (("charges", "answer_key"), ("receipts", "answer_key"),
                          ("project_queries", "answer_key"), ("answers", "key")):  # fmt: skip
        con.execute(f"DELETE FROM {table} WHERE {column} IN ({', '.join('?' * n)})", keys)
    if log:
        dropped = con.execute(f"DELETE FROM audit WHERE project_id = ? AND query_hash IN "
                              f"({', '.join('?' * n)})", (pid, *hashes)).rowcount  # fmt: skip
        assert dropped == 2 * n  # each query's charge and answer
    con.execute("UPDATE projects SET spent = spent - ? WHERE id = ?", (refund, pid))
    return float(refund)


# ---- (a) the rewrite that was found ----------------------------------------------------------


def test_the_attackers_algorithm_is_the_stores(signed: dict[str, Any]) -> None:
    """The re-chaining below recomputes hashes exactly as the store does: on the untouched
    store it reproduces every entry's hash."""
    with sqlite3.connect(signed["store"]) as con:
        prev = GENESIS
        for row in con.execute(f"SELECT {', '.join(FIELDS)}, prev, hash FROM audit ORDER BY seq"):
            assert (
                row[9] == prev
                and _entry_hash(prev, dict(zip(FIELDS, row[:9], strict=True))) == row[10]
            )
            prev = row[10]


def test_an_untouched_store_verifies(signed: dict[str, Any], tmp_path: Path) -> None:
    """Every entry signed, whichever path wrote it (accounts, projects, counts, a refusal,
    the command line), and each signed head anchored, once, in a file only its owner reads."""
    store = _copy(signed["store"], tmp_path / "store.sqlite")
    n = len(open_store(store).audit_entries())
    r = _verify(store)
    assert r.exit_code == 0, r.output
    assert f"audit log intact: {n} entries, {n} signed; ledger consistent" in r.output
    assert "note" not in r.output
    anchor = _files(signed["store"])[1]
    assert stat.S_IMODE(anchor.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in anchor.read_text().splitlines()]
    assert sorted(h["seq"] for h in lines) == list(range(1, n + 1))
    with sqlite3.connect(signed["store"]) as con:
        assert dict(con.execute("SELECT seq, hash FROM audit")) == {
            h["seq"]: h["hash"] for h in lines
        }
    # and through the API, as an admin
    r = signed["client"].get("/v1/audit/verify",
                             headers={"Authorization": f"Bearer {signed['admin']}"})  # fmt: skip
    assert (
        r.status_code == 200
        and r.json()["ok"] is True
        and r.json()["signed"] == r.json()["entries"]
    )


def test_a_refund_rechained_is_reported(signed: dict[str, Any], tmp_path: Path) -> None:
    """The attack as found: ε 5 refunded, 20 entries dropped, the rest re-chained."""
    store = _copy(signed["store"], tmp_path / "store.sqlite")
    before = open_store(store).project("p")
    with sqlite3.connect(store) as con:
        assert _refund(con, "p", 10) == pytest.approx(5.0)
        _rechain(con)
    st = open_store(store)
    assert st.project("p").spent == pytest.approx(before.spent - 5.0)  # type: ignore[union-attr]
    # the public checks are fooled: the chain is whole and the ledger adds up
    assert st.ledger_problems() == []
    r = _verify(store)
    assert r.exit_code == 1, r.output
    assert "intact" not in r.output
    first = _first_dropped(signed["store"], "p", 10)
    assert f"do not match their signed heads: the log was rewritten from entry {first}" in r.output


def _first_dropped(store: Path, pid: str, n: int) -> int:
    """The first entry the refund of `pid`'s last `n` queries drops (on the untouched store)."""
    with sqlite3.connect(store) as con:
        return min(s for (s,) in con.execute(
            "SELECT a.seq FROM audit a JOIN answers q ON q.query_hash = a.query_hash "
            "JOIN project_queries pq ON pq.answer_key = q.key AND pq.project_id = a.project_id "
            "WHERE a.project_id = ? AND pq.answer_key IN (SELECT answer_key FROM project_queries "
            "WHERE project_id = ? ORDER BY first_asked DESC LIMIT ?)", (pid, pid, n)))  # fmt: skip


def _strip(con: sqlite3.Connection, which: str) -> None:
    """Remove the store's signed heads: those that no longer match their entry, or all."""
    if which == "all":
        con.execute("DELETE FROM audit_seals")
        return
    hashes = dict(con.execute("SELECT seq, hash FROM audit"))
    for seq, text in con.execute("SELECT seq, head FROM audit_seals").fetchall():
        if hashes.get(seq) != json.loads(text)["hash"]:
            con.execute("DELETE FROM audit_seals WHERE seq = ?", (seq,))


def _resign(con: sqlite3.Connection, signer: Any, anchor: Path) -> None:
    """Sign every entry's head again, with `signer`, and write the local anchor anew: what
    someone with a key can do (a key of their own, or the installation's, stolen)."""
    from antal.privacy.seal import LEDGER_SQL, head_text, ledger_digest, sign_heads

    heads = sign_heads(signer, con.execute("SELECT seq, hash FROM audit ORDER BY seq"),
                       ledger_digest(con.execute(LEDGER_SQL)))  # fmt: skip
    con.execute("DELETE FROM audit_seals")
    con.executemany("INSERT INTO audit_seals (seq, head) VALUES (?, ?)",
                    [(h["seq"], head_text(h)) for h in heads])  # fmt: skip
    anchor.write_text("".join(head_text(h) + "\n" for h in heads))


def _attack(name: str, store: Path) -> None:
    """One way to rewrite the ledger in a copy of the signed store (and its local files)."""
    anchor = _files(store)[1]
    with sqlite3.connect(store) as con:
        if name == "refund, the log untouched":  # the ledger alone, and it adds up
            _refund(con, "p", 10, log=False)
            return
        if name == "newest entries removed":  # `tight`'s count, its refusal, the admin's act
            k = con.execute("SELECT MIN(seq) - 1 FROM audit WHERE project_id = 'tight' "
                            "AND action = 'charge'").fetchone()[0]  # fmt: skip
            _refund(con, "tight", 1)  # back to the ledger entry k signed: nothing spent
            for table in ("audit", "audit_seals", "audit_registers"):
                con.execute(f"DELETE FROM {table} WHERE seq > ?", (k,))
            con.execute("UPDATE audit_head SET seq = ?, hash = (SELECT hash FROM audit WHERE "
                        "seq = ?) WHERE id = 1", (k, k))  # fmt: skip
            return
        _refund(con, "p", 10)
        _rechain(con)
        if name.startswith("re-chained, stale heads removed"):
            _strip(con, "stale")
        elif name.startswith("re-chained, all heads removed"):
            _strip(con, "all")
            if "local anchor deleted" in name:
                anchor.unlink()
        elif name.startswith("re-chained, re-signed with another key"):
            from antal.privacy import Signer

            _resign(con, Signer.ephemeral(), anchor)
        elif name.startswith("re-chained, re-signed with the installation's key"):
            from antal.privacy import Signer

            _resign(con, Signer.from_file(_files(store)[0]), anchor)


# name, and what the command says (checked against the local anchor unless `shipped`)
ATTACKS = [
    ("re-chained, heads kept", "do not match their signed heads", False),
    ("re-chained, stale heads removed", "are not signed, though entry 1 before them is", False),
    ("re-chained, all heads removed", "differ from their signed heads in the audit anchor", False),
    ("re-chained, all heads removed, local anchor deleted", "differ from their signed heads in "
     "the audit anchor", True),
    ("re-chained, re-signed with another key", "are not signatures of the installation's key",
     False),
    ("re-chained, re-signed with the installation's key", "differ from their signed heads in "
     "the audit anchor", True),
    ("refund, the log untouched", "it was changed outside the audit log (a refund?)", False),
    ("newest entries removed", "the audit anchor holds signed heads up to entry", False),
]  # fmt: skip


@pytest.mark.parametrize(("name", "says", "shipped"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_every_rewrite_tried_is_reported(
    signed: dict[str, Any], tmp_path: Path, name: str, says: str, shipped: bool
) -> None:
    """Undetected rewrites: 0 of these. `shipped`: the attacker also rewrote or deleted the
    anchor beside the store, and the rewrite is found against the copy the operator
    shipped elsewhere (docs/security.md): the local anchor alone cannot show it."""
    store = _copy(signed["store"], tmp_path / "store.sqlite")
    copy = tmp_path / "shipped" / "audit-anchor.jsonl"  # the operator's copy, elsewhere
    copy.parent.mkdir()
    shutil.copy2(_files(store)[1], copy)
    _attack(name, store)
    r = _verify(store, "--anchor", str(copy)) if shipped else _verify(store)
    assert r.exit_code == 1, r.output
    assert says in " ".join(r.output.split()), r.output
    if shipped:
        # the limit docs/security.md states: whoever can rewrite the anchor beside the store
        # too (and strip every signature, or sign with the stolen key) passes a check against
        # the local files alone; only the copy kept elsewhere shows the rewrite
        assert _verify(store).exit_code == 0


# ---- (b) a store rolled back to an earlier copy --------------------------------------------


def test_a_store_rolled_back_to_an_older_copy_is_reported(
    signed: dict[str, Any], tmp_path: Path
) -> None:
    """A backup taken before ε was spent, put back: internally consistent (every entry and
    signature as they were), but the anchor holds the heads written since."""
    store = _copy(signed["store"], tmp_path / "store.sqlite")
    old = _copy(store, tmp_path / "old" / "store.sqlite")
    client = _app(signed["cfg"], store)
    assert [_count(client, signed["token"], "p", i) for i in range(14, 18)] == [200] * 4
    assert _verify(store).exit_code == 0
    with sqlite3.connect(old) as a, sqlite3.connect(store) as b:
        a.backup(b)  # the database alone: the anchor beside it is left as it is
    assert open_store(store).project("p").spent == pytest.approx(14 * EPS)  # type: ignore[union-attr]
    r = _verify(store)
    assert r.exit_code == 1, r.output
    assert "intact" not in r.output
    last = len(open_store(store).audit_entries())
    assert (
        f"the audit anchor holds signed heads up to entry {last + 8}, but the log ends at "
        f"entry {last}: the store was put back to an older copy" in " ".join(r.output.split())
    )
    # and the service goes on writing on the old copy: the anchor holds two heads per entry
    client = _app(signed["cfg"], store)
    assert _count(client, signed["token"], "q", 30) == 200
    r = _verify(store)
    assert r.exit_code == 1, r.output
    assert (
        f"two different signed heads for entries {last + 1}–{last + 2}: the store was put "
        f"back to an older copy and written again from entry {last + 1}"
        in " ".join(r.output.split())
    )
    r = client.get("/v1/audit/verify", headers={"Authorization": f"Bearer {signed['admin']}"})
    assert r.status_code == 200 and r.json()["ok"] is False
    assert any("two different signed heads" in p for p in r.json()["problems"])


# ---- stores from before signing, and stores opened without the key ------------------------


def test_an_older_store_keeps_working_and_its_unsigned_entries_are_named(
    signed: dict[str, Any], tmp_path: Path
) -> None:
    """A store written before this change (no `audit_seals` table, no anchor): opened by
    the service, its new entries are signed; verify names the older ones and passes, and
    the first signed head covers them, so that editing one of them is still found."""
    from antal.privacy import Gate, SQLiteStore, TrueCounts

    store = tmp_path / "old.sqlite"
    old = SQLiteStore(store)
    old.create_project("p", "before", "forskning", 100.0, ("npr",))
    Gate(old).answer("p", "u", "h", "q", "r1", ("i",), (), lambda: TrueCounts(("i",), (100,)))
    with sqlite3.connect(store) as con:
        con.execute("DROP TABLE audit_seals")  # as it was before
    before = len(old.audit_entries())
    r = _verify(store)
    assert r.exit_code == 0, r.output
    assert f"entries 1–{before} are not signed" in " ".join(r.output.split())
    client = _app(signed["cfg"], store)  # the service opens it: the table is made, idempotently
    st = client.app.state.antal  # type: ignore[attr-defined]
    st.accounts.create_user("res", "Researcher", "researcher")
    st.accounts.add_member("p", "res")
    assert _count(client, st.accounts.issue_token("res"), "p", 1) == 200
    n = len(open_store(store).audit_entries())
    r = _verify(store)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert (
        f"entries 1–{before} were written before the audit log's head was signed: the "
        f"signed head of entry {before + 1} covers them" in text
    )
    assert f"intact: {n} entries, {n - before} signed" in text
    with sqlite3.connect(store) as con:  # an older entry edited, and everything re-chained
        con.execute("UPDATE audit SET epsilon = 0 WHERE seq = 2")
        _rechain(con)
    r = _verify(store)
    assert r.exit_code == 1 and "the log was rewritten from entry" in r.output, r.output


def test_a_store_opened_without_the_key_cannot_append_to_a_signed_log(
    signed: dict[str, Any], tmp_path: Path
) -> None:
    """An unsigned entry after signed ones would be reported as a rewrite: refused when
    it is written, and nothing of that transaction is kept."""
    store = _copy(signed["store"], tmp_path / "store.sqlite")
    bare = open_store(store)
    with pytest.raises(SigningKeyError, match="audit log is signed"):
        bare.create_project("new", "unsigned", "forskning", 1.0)
    assert bare.project("new") is None
    assert _verify(store).exit_code == 0


def test_a_postgresql_store_signs_and_anchors_too(pg_dsn: str, tmp_path: Path) -> None:
    from antal.privacy import Gate, Signer, TrueCounts

    signer, anchor = Signer.ephemeral(), tmp_path / "anchor.jsonl"
    st = open_store(pg_dsn, signer=signer, anchor=anchor)
    st.create_project("p", "on PostgreSQL", "forskning", 10.0)
    gate = Gate(st, signer=signer)
    for i in range(3):
        gate.answer("p", "u", f"h{i}", "q", "r1", ("i",), (), lambda: TrueCounts(("i",), (100,)))
    found = st.check_audit()
    assert (found.problems, found.signed, found.entries) == ([], 7, 7)
    assert [json.loads(line)["seq"] for line in anchor.read_text().splitlines()] == list(
        range(1, 8)
    )
    with st.transaction() as tx:
        tx.execute("UPDATE projects SET spent = spent - 1 WHERE id = %s", ("p",))
    assert any("changed outside the audit log" in p for p in st.verify_audit())
    with pytest.raises(SigningKeyError):  # and no unsigned entry after signed ones
        open_store(pg_dsn).create_project("q", "unsigned", "forskning", 1.0)


def test_an_anchor_line_cut_short_by_a_crash_is_no_alarm(
    signed: dict[str, Any], tmp_path: Path
) -> None:
    """A crash while a line is written leaves half a line: the next append starts a new
    line, and verify passes it over with a note (it takes no head away from the others)."""
    store = _copy(signed["store"], tmp_path / "store.sqlite")
    anchor = _files(store)[1]
    with anchor.open("a") as f:
        f.write('{"hash":"0af')  # no newline: the process died here
    client = _app(signed["cfg"], store)
    assert _count(client, signed["token"], "q", 25) == 200
    r = _verify(store)
    assert r.exit_code == 0, r.output
    n = len(anchor.read_text().splitlines())
    assert f"line {n - 2} of the audit anchor" in r.output and "cut short" in r.output
    assert json.loads(anchor.read_text().splitlines()[-1])["seq"] == len(
        open_store(store).audit_entries()
    )


def test_an_anchor_that_cannot_be_written_stops_the_store_being_opened(
    signed: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _copy(signed["store"], tmp_path / "store.sqlite")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("ANTAL_AUDIT_ANCHOR", str(tmp_path / "a-file" / "anchor.jsonl"))
    before = len(open_store(store).audit_entries())
    r = runner.invoke(cli, ["admin", "create-user", "bo2", "--store", str(store)])
    assert r.exit_code == 2 and "cannot write the audit anchor" in r.output, r.output
    assert "Traceback" not in r.output
    assert len(open_store(store).audit_entries()) == before
