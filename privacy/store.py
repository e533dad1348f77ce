"""The transactional store: projects and their ε budgets, charges, stored answers and the
hash-chained audit log. SQLite by default, PostgreSQL in a real deployment.

Its tables (and those of the accounts and published catalog entries kept in the same
store, antal.api.accounts) are defined in one place, `antal.privacy.schema`, and created
when a store is opened.

A store given the installation's signing key (`open_store(url, signer=..., anchor=...)`)
signs the head of every audit entry it appends, with the ledger as the transaction leaves
it, in that transaction, and appends the signed heads to the anchor file once it commits
(antal.privacy.seal). One without a key (tests, tools) appends unsigned entries while its
log has never been signed, and refuses to append to a log that has been.

Every statement here is a fixed string with bound parameters; nothing a user typed is
ever part of SQL text.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from antal.catalog.vocabulary import PURPOSES
from antal.privacy.errors import (
    AlreadyExists,
    InvalidValue,
    SigningKeyError,
    StoreUnavailable,
    UnknownProject,
)
from antal.privacy.schema import GENESIS, MIGRATIONS, SCHEMA

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from antal.privacy.receipts import Signer
    from antal.privacy.seal import AuditCheck

__all__ = [
    "AuditEntry",
    "PostgresStore",
    "Project",
    "SQLiteStore",
    "Store",
    "open_store",
    "store_exists",
]

log = logging.getLogger("antal.privacy")


@dataclass(frozen=True)
class Project:
    id: str
    title: str
    purpose: str
    budget: float
    spent: float
    registers: tuple[str, ...]

    @property
    def left(self) -> float:
        return max(0.0, round(self.budget - self.spent, 12))


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: str
    actor: str
    project_id: str | None
    action: str
    query_hash: str | None
    query: str | None
    epsilon: float
    released: str | None
    prev: str
    hash: str

    def body(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "ts": self.ts, "actor": self.actor, "project_id": self.project_id,
            "action": self.action, "query_hash": self.query_hash, "query": self.query,
            "epsilon": self.epsilon, "released": self.released,
        }  # fmt: skip


_AUDIT_SQL = (
    "SELECT seq, ts, actor, project_id, action, query_hash, query, epsilon, released, prev, hash "
    "FROM audit ORDER BY seq"
)


def _entry_hash(prev: str, body: dict[str, Any]) -> str:
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev + blob).encode()).hexdigest()


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


class Store:
    """Shared logic; subclasses say how to connect and how to take the write lock."""

    param = "%s"
    # the installation's signing key and the anchor file of the audit log (`sign_with`);
    # the seal module (and with it cryptography) is imported only when they are used
    signer: Signer | None = None
    anchor: Path | None = None

    def sign_with(self, signer: Signer | None, anchor: str | Path | None = None) -> Store:
        """Sign the head of every audit entry appended from now on with `signer` and append
        each signed head to `anchor` (made 0600 now if missing, so that a file that cannot
        be written stops the store being opened, not a commit). `anchor` alone is where
        `verify_audit` looks. Returns the store."""
        self.signer = signer
        self.anchor = Path(anchor) if anchor is not None else None
        if signer is not None and self.anchor is not None:
            from antal.privacy.seal import touch_anchor

            touch_anchor(self.anchor)
        return self

    def _seal(self, tx: Tx) -> None:
        """Before a transaction commits: sign the head of each entry it appended, with the
        ledger it leaves. The one place audit entries are signed, whoever appended them."""
        if not tx.appended:
            return
        if self.signer is None:
            if tx.one("SELECT seq FROM audit_seals LIMIT 1") is not None:
                raise SigningKeyError(
                    "this store's audit log is signed: it is appended to only with the "
                    "installation's signing key (open the store through its settings)"
                )
            return
        from antal.privacy.seal import LEDGER_SQL, head_text, ledger_digest, sign_heads

        # a group's transactions that leave the projects as they found them sign the
        # ledger read once (`Tx.shared`): every statement that writes them forgets it
        ledger = tx.shared.get("ledger")
        if ledger is None:
            ledger = tx.shared["ledger"] = ledger_digest(tx.all(LEDGER_SQL))
        tx.sealed = sign_heads(self.signer, tx.appended, ledger)
        for head in tx.sealed:
            tx.execute("INSERT INTO audit_seals (seq, head) VALUES (%s, %s)",
                       (head["seq"], head_text(head)))  # fmt: skip

    def _anchor(self, *txs: Tx) -> None:
        """After transactions committed: their signed heads to the anchor file, in order."""
        heads = [head for tx in txs for head in tx.sealed]
        if heads and self.anchor is not None:
            from antal.privacy.seal import append_anchor

            append_anchor(self.anchor, heads)

    # ---- plumbing ----
    def _sql(self, q: str) -> str:
        return q if self.param == "%s" else q.replace("%s", self.param)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        raise NotImplementedError
        yield  # pragma: no cover

    def init(self) -> None:
        with self.transaction() as tx:
            for stmt in SCHEMA:
                tx.execute(stmt)
            if tx.one("SELECT seq FROM audit_head WHERE id = 1") is None:
                tx.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, %s)", (GENESIS,))
            _migrate(tx.execute, tx.one)

    # ---- projects ----
    def create_project(
        self,
        pid: str,
        title: str,
        purpose: str,
        budget: float,
        registers: tuple[str, ...] = (),
        actor: str = "admin",
    ) -> Project:
        if purpose not in PURPOSES:
            raise InvalidValue(f"purpose is one of {', '.join(PURPOSES)}, not {purpose!r}")
        if budget < 0:
            raise InvalidValue("budget must not be negative")
        with self.transaction() as tx:
            if tx.one("SELECT id FROM projects WHERE id = %s", (pid,)) is not None:
                raise AlreadyExists("project", pid)
            tx.execute(
                "INSERT INTO projects (id, title, purpose, budget, spent, registers, created) VALUES (%s, %s, %s, %s, 0, %s, %s)",
                (pid, title, purpose, float(budget), ",".join(sorted(registers)), now()),
            )
            tx.audit(
                actor,
                pid,
                "create_project",
                None,
                json.dumps({"title": title, "purpose": purpose, "budget": budget}),
                0.0,
                None,
                registers,
            )
        return self.project(pid)  # type: ignore[return-value]

    def set_budget(self, pid: str, budget: float, actor: str = "admin") -> Project:
        """Raise (or lower, never below what was spent) a project's total ε: an admin's
        decision, audited with the old and the new budget (the ledger's signed head covers
        budgets, so a change outside this leaves a trace)."""
        if not budget >= 0 or budget == float("inf"):
            raise InvalidValue("a budget is a finite ε of 0 or more")
        with self.transaction() as tx:
            row = tx.one("SELECT budget, spent FROM projects WHERE id = %s", (pid,))
            if row is None:
                raise UnknownProject(pid)
            old, spent = float(row[0]), float(row[1])
            if budget < spent - 1e-9:
                raise InvalidValue(
                    f"project {pid!r} has spent ε {spent:g}: its budget cannot be less"
                )
            tx.execute("UPDATE projects SET budget = %s WHERE id = %s", (float(budget), pid))
            tx.audit(actor, pid, "set_budget", None,
                     json.dumps({"budget": float(budget), "was": old}), 0.0, None)  # fmt: skip
        return self.project(pid)  # type: ignore[return-value]

    def set_registers(self, pid: str, registers: tuple[str, ...], actor: str = "admin") -> None:
        with self.transaction() as tx:
            row = tx.one("SELECT registers FROM projects WHERE id = %s", (pid,))
            if row is None:
                raise UnknownProject(pid)
            tx.execute(
                "UPDATE projects SET registers = %s WHERE id = %s",
                (",".join(sorted(registers)), pid),
            )
            # touched: those approved now and those no longer approved
            touched = set(registers) | {r for r in row[0].split(",") if r}
            tx.audit(actor, pid, "approve_registers", None, ",".join(sorted(registers)), 0.0, None,
                     touched)  # fmt: skip

    def change_registers(
        self,
        pid: str,
        add: tuple[str, ...] = (),
        remove: tuple[str, ...] = (),
        actor: str = "admin",
    ) -> Project | None:
        """Add and remove approved registers in one transaction (None: no such project).

        Audited as `approve_registers` / `revoke_registers` with the registers changed."""
        with self.transaction() as tx:
            row = tx.one("SELECT registers FROM projects WHERE id = %s", (pid,))
            if row is None:
                return None
            now_ = {r for r in row[0].split(",") if r}
            new = (now_ | set(add)) - set(remove)
            tx.execute(
                "UPDATE projects SET registers = %s WHERE id = %s", (",".join(sorted(new)), pid)
            )
            if add:
                tx.audit(actor, pid, "approve_registers", None, ",".join(sorted(add)), 0.0, None,
                         add)  # fmt: skip
            if remove:
                tx.audit(actor, pid, "revoke_registers", None, ",".join(sorted(remove)), 0.0,
                         None, remove)  # fmt: skip
        return self.project(pid)

    def project(self, pid: str) -> Project | None:
        with self.transaction(write=False) as tx:
            row = tx.one(
                "SELECT id, title, purpose, budget, spent, registers FROM projects WHERE id = %s",
                (pid,),
            )
        return _project(row) if row else None

    def projects(self) -> list[Project]:
        with self.transaction(write=False) as tx:
            rows = tx.all(
                "SELECT id, title, purpose, budget, spent, registers FROM projects ORDER BY id"
            )
        return [_project(r) for r in rows]

    # ---- answers ----

    def asked(self, pid: str, key: str) -> str | None:
        """The stored answer under `key` if project `pid` asked for it before."""
        with self.transaction(write=False) as tx:
            row = tx.one(
                "SELECT a.released FROM project_queries q JOIN answers a ON a.key = q.answer_key "
                "WHERE q.project_id = %s AND q.answer_key = %s",
                (pid, key),
            )
        return row[0] if row else None

    def project_queries(self, pid: str) -> list[tuple[str, str, str, str]]:
        """(answer key, canonical query, first asked, released JSON) of a project's queries."""
        with self.transaction(write=False) as tx:
            return [
                tuple(r)  # type: ignore[misc]
                for r in tx.all(
                    "SELECT q.answer_key, q.query, q.first_asked, a.released FROM project_queries q "
                    "JOIN answers a ON a.key = q.answer_key WHERE q.project_id = %s ORDER BY q.first_asked, q.answer_key",
                    (pid,),
                )
            ]

    def receipts(self, pid: str) -> dict[str, str]:
        """The signed receipts (JSON) of a project's answers, by answer key: the first one the
        project was given (an answer asked with other names has one receipt per naming),
        else the version 1 receipt an older version stored."""
        with self.transaction(write=False) as tx:
            old = tx.all("SELECT answer_key, receipt FROM receipts WHERE project_id = %s", (pid,))
            shown = tx.all(
                "SELECT answer_key, receipt FROM shown_receipts WHERE project_id = %s "
                "ORDER BY created DESC, shown DESC",
                (pid,),
            )
        return {k: r for k, r in [*old, *shown]}  # the last one of a key wins: the first made

    # ---- audit ----
    def audit_entries(self) -> list[AuditEntry]:
        with self.transaction(write=False) as tx:
            rows = tx.all(_AUDIT_SQL)
        return [AuditEntry(*r) for r in rows]

    def audit_touching(self, register_id: str) -> list[AuditEntry]:
        """The audit entries that touch a register (its queries, approvals and published
        versions; see `Tx.audit`), oldest first."""
        with self.transaction(write=False) as tx:
            rows = tx.all(
                "SELECT a.seq, a.ts, a.actor, a.project_id, a.action, a.query_hash, a.query, "
                "a.epsilon, a.released, a.prev, a.hash FROM audit a JOIN audit_registers r "
                "ON r.seq = a.seq WHERE r.register_id = %s ORDER BY a.seq",
                (register_id,),
            )
        return [AuditEntry(*r) for r in rows]

    def verify_audit(
        self, public: Ed25519PublicKey | None = None, anchor: str | Path | None = None
    ) -> list[str]:
        """Problems found in the audit chain and its signed heads (empty: intact); see
        `check_audit`."""
        return self.check_audit(public, anchor).problems

    def check_audit(
        self, public: Ed25519PublicKey | None = None, anchor: str | Path | None = None
    ) -> AuditCheck:
        """The audit chain, each entry's signed head under `public` (default: this store's
        signer's), the ledger against the newest head, and the log against the anchor file
        `anchor` (default: this store's, if it has one)."""
        from antal.privacy.seal import LEDGER_SQL, check, ledger_digest, read_anchor

        where = Path(anchor) if anchor is not None else self.anchor
        # everything read under the write lock, so that a count committing meanwhile (and
        # its anchor line, appended after the commit) is never taken for a rewrite
        with self.transaction() as tx:
            entries = [AuditEntry(*r) for r in tx.all(_AUDIT_SQL)]
            head = tx.one("SELECT seq, hash FROM audit_head WHERE id = 1")
            seals = {int(seq): text for seq, text in tx.all("SELECT seq, head FROM audit_seals")}
            ledger = ledger_digest(tx.all(LEDGER_SQL))
            lines = read_anchor(where) if where is not None else None
        problems: list[str] = []
        prev = GENESIS
        expected_seq = 1
        for e in entries:
            if e.seq != expected_seq:
                problems.append(f"entry {expected_seq} is missing (next is {e.seq})")
            if e.prev != prev:
                problems.append(f"entry {e.seq} does not follow the entry before it")
            if _entry_hash(e.prev, e.body()) != e.hash:
                problems.append(f"entry {e.seq} was altered")
            prev = e.hash
            expected_seq = e.seq + 1
        if head is None:
            problems.append("the audit head is missing")
        elif (head[0], head[1]) != (
            (entries[-1].seq, entries[-1].hash) if entries else (0, GENESIS)
        ):
            problems.append(
                f"the log ends at entry {entries[-1].seq if entries else 0} but entry {head[0]} was written"
            )
        if public is None and self.signer is not None:
            public = self.signer.public
        found = check([(e.seq, e.hash) for e in entries], seals, ledger, public, where, lines)
        found.problems[:0] = problems  # the chain's first: they say what was changed
        return found

    def ledger_problems(self) -> list[str]:
        """Consistency of budgets, charges and answers (for tests and `antal audit verify`)."""
        out = []
        with self.transaction(write=False) as tx:
            for pid, budget, spent in tx.all("SELECT id, budget, spent FROM projects"):
                total = tx.one(
                    "SELECT COALESCE(SUM(epsilon), 0) FROM charges WHERE project_id = %s", (pid,)
                )[0]
                if abs(float(total) - float(spent)) > 1e-9:
                    out.append(f"project {pid}: spent {spent} but charges sum to {total}")
                if float(spent) > float(budget) + 1e-9:
                    out.append(f"project {pid}: spent {spent} of a budget of {budget}")
            # a charge under an attempt id paid for a count that failed or never finished
            # (charged before computing: fail closed); any other must have its answer
            orphans = tx.one(
                "SELECT COUNT(*) FROM charges c LEFT JOIN answers a ON a.key = c.answer_key "
                "WHERE a.key IS NULL AND c.answer_key NOT LIKE %s",
                ("attempt:%",),
            )[0]
            if orphans:
                out.append(f"{orphans} charges without a stored answer")
            unpaid = tx.one(
                "SELECT COUNT(*) FROM answers a WHERE NOT EXISTS (SELECT 1 FROM charges c WHERE c.answer_key = a.key)"
            )[0]
            if unpaid:
                out.append(f"{unpaid} stored answers without a charge")
        return out


def _migrate(execute: Any, one: Any) -> None:
    """Apply the migrations this store has not had (antal.privacy.schema.MIGRATIONS), in
    the caller's transaction (which holds the store's write lock)."""
    for version, stmt in MIGRATIONS:
        if one("SELECT 1 FROM schema_migrations WHERE version = %s", (version,)) is None:
            execute(stmt)
            execute(
                "INSERT INTO schema_migrations (version, applied) VALUES (%s, %s)", (version, now())
            )


def _project(row: Any) -> Project:
    pid, title, purpose, budget, spent, registers = row
    return Project(
        pid,
        title,
        purpose,
        float(budget),
        float(spent),
        tuple(r for r in registers.split(",") if r),
    )


# a statement that may change the projects table, and with it the ledger a head signs
_CHANGES_PROJECTS = re.compile(r"^\s*(?!SELECT\b).*\bprojects\b", re.IGNORECASE | re.DOTALL)


class Tx:
    """One open transaction. `shared`: what it shares with the transactions committed with
    it (SQLiteStore's groups): the ledger's digest, as long as no statement wrote projects."""

    def __init__(self, cur: Any, store: Store, shared: dict[str, Any] | None = None) -> None:
        self.cur = cur
        self.store = store
        self.shared: dict[str, Any] = {} if shared is None else shared
        self.appended: list[tuple[int, str]] = []  # (seq, hash) of the entries appended
        self.sealed: list[dict[str, Any]] = []  # their signed heads (`Store._seal`)

    def _run(self, q: str, params: tuple[Any, ...]) -> None:
        if "ledger" in self.shared and _CHANGES_PROJECTS.match(q):
            del self.shared["ledger"]
        self.cur.execute(self.store._sql(q), params)

    def execute(self, q: str, params: tuple[Any, ...] = ()) -> None:
        self._run(q, params)

    def one(self, q: str, params: tuple[Any, ...] = ()) -> Any:
        self._run(q, params)
        return self.cur.fetchone()

    def all(self, q: str, params: tuple[Any, ...] = ()) -> list[Any]:
        self._run(q, params)
        return self.cur.fetchall()

    def audit(
        self, actor: str, project_id: str | None, action: str, query_hash: str | None,
        query: str | None, epsilon: float, released: str | None,
        registers: Iterable[str] = (),
    ) -> tuple[int, str]:  # fmt: skip
        """Append an entry; its sequence number and time (a receipt names them).

        `registers`: those the entry touches (a query's, an approval's, a published
        entry's), recorded beside the chained log for the registers' holders."""
        head = self.one("SELECT seq, hash FROM audit_head WHERE id = 1")
        seq, prev = int(head[0]) + 1, head[1]
        body = {
            "seq": seq, "ts": now(), "actor": actor, "project_id": project_id, "action": action,
            "query_hash": query_hash, "query": query, "epsilon": float(epsilon), "released": released,
        }  # fmt: skip
        h = _entry_hash(prev, body)
        self.execute(
            "INSERT INTO audit (seq, ts, actor, project_id, action, query_hash, query, epsilon, released, prev, hash) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                seq,
                body["ts"],
                actor,
                project_id,
                action,
                query_hash,
                query,
                float(epsilon),
                released,
                prev,
                h,
            ),
        )
        self.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (seq, h))
        self.appended.append((seq, h))  # signed when the transaction commits
        touched = sorted(set(registers))
        if touched:  # one statement: placeholders only, as many as the registers
            self.execute(
                "INSERT INTO audit_registers (seq, register_id) VALUES "
                + ", ".join(["(%s, %s)"] * len(touched)),
                tuple(v for rid in touched for v in (seq, rid)),
            )
        return seq, body["ts"]


def _private_file(path: Path) -> None:
    """The store's file, made with mode 0600 before SQLite opens it: it holds token hashes,
    budgets, answers and the audit log. SQLite makes its -wal and -shm files with the
    database's mode, so they are private too. An existing store that others may read (made
    before issue 22) is tightened to its owner, or named in a warning if it cannot be."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    if os.name != "posix":
        return
    for f in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))):
        try:
            mode = f.stat().st_mode
            if stat.S_ISREG(mode) and mode & (stat.S_IRWXG | stat.S_IRWXO):
                os.chmod(f, stat.S_IMODE(mode) & ~(stat.S_IRWXG | stat.S_IRWXO))
                log.warning("%s could be read by others (mode %o): now %o", f,
                            stat.S_IMODE(mode), stat.S_IMODE(f.stat().st_mode))  # fmt: skip
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("%s may be read by others and cannot be made private: %s", f, e.strerror)


# Connections of a process that forked while they were open: never used by the child (a
# SQLite connection must not cross a fork), and never closed by it either (closing one
# could checkpoint the parent's write-ahead log under it), so kept referenced here.
_FORKED_AWAY: list[sqlite3.Connection] = []


class _Batch:
    """Write transactions committed together (`SQLiteStore.transaction`)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        self.txs: list[Tx] = []  # those whose bodies completed, in order
        self.shared: dict[str, Any] = {}  # what they share (`Tx.shared`)
        self.done = threading.Event()  # set once committed, or failed (`error`)
        self.error: BaseException | None = None


class SQLiteStore(Store):
    """A SQLite file (WAL, every commit synced to disk).

    Write transactions of one process are committed in groups: each body runs alone
    under the process's write lock, in a savepoint of the SQLite transaction it shares
    with the writers that were waiting for the lock meanwhile, and the last of them
    commits for all at once: one sync to disk (some 2 ms) for the group, where each paid
    its own before. Every writer returns only once its transaction is committed (or
    raises that it was not); a body that raises is rolled back alone. Between processes,
    SQLite's own lock orders the groups (`BEGIN IMMEDIATE`)."""

    param = "?"
    # idle connections kept for the next transaction: opening one (and closing the last
    # one, which checkpoints the write-ahead log) cost more than a whole stored answer
    IDLE_CONNECTIONS = 16
    GROUP_MAX = 64  # write transactions committed together at most: a bound on the wait

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._pid = -1
        self._forked()  # the connections, locks and group of this process
        self.commits = 0  # SQLite commits of write transactions (groups), for tests
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        _private_file(Path(self.path))
        with contextlib.closing(self._connect()) as con:
            con.execute("PRAGMA journal_mode=WAL")
        self.init()

    def _connect(self) -> sqlite3.Connection:
        # not bound to a thread: a connection goes back to the idle ones after each
        # transaction, and the next may run in another thread (never two at once)
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                              check_same_thread=False)  # fmt: skip
        con.execute("PRAGMA busy_timeout = 60000")
        con.execute("PRAGMA synchronous = FULL")
        return con

    def _forked(self) -> None:
        """Start afresh in a new process (a fork): nothing of the parent's is used, not its
        connections, nor its locks (held, maybe, by a thread the child does not have)."""
        if self._pid == os.getpid():
            return
        if self._pid != -1:
            _FORKED_AWAY.extend(self._idle)
            if self._group is not None:
                _FORKED_AWAY.append(self._group.con)
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one write body at a time in this process
        self._writer: int | None = None  # the thread running one
        self._waiting_lock = threading.Lock()
        self._waiting = 0  # writers waiting for the write lock: they join the open group
        self._group: _Batch | None = None  # the open group's SQLite transaction
        self._pid = os.getpid()

    def _borrow(self) -> sqlite3.Connection:
        """An idle connection of this process, or a new one."""
        self._forked()
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _give_back(self, con: sqlite3.Connection) -> None:
        """Keep a connection whose transaction ended for the next one (at most
        IDLE_CONNECTIONS; one left in a transaction, or of a parent process, is not kept)."""
        with self._idle_lock:
            if self._pid != os.getpid():
                _FORKED_AWAY.append(con)
                return
            if not con.in_transaction and len(self._idle) < self.IDLE_CONNECTIONS:
                self._idle.append(con)
                return
        con.close()

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[Tx]:
        if write:
            with self._write() as tx:
                yield tx
            return
        con = self._borrow()
        try:
            cur = con.cursor()
            cur.execute("BEGIN")
            try:
                yield Tx(cur, self)
            except BaseException:
                if con.in_transaction:
                    cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()
        except BaseException as e:
            if isinstance(e, sqlite3.Error):  # the database failed: this one is not used again
                con.close()
            else:  # the caller's error: the connection is as good as new
                self._give_back(con)
            raise
        self._give_back(con)

    @contextlib.contextmanager
    def _write(self) -> Iterator[Tx]:
        """A write transaction, committed with the group it joins (see the class)."""
        self._forked()
        if self._writer == threading.get_ident():
            # it would wait for itself: the group commits after the enclosing body
            raise RuntimeError("a write transaction inside another one of the same thread")
        with self._waiting_lock:
            self._waiting += 1
        with self._write_lock:
            self._writer = threading.get_ident()
            try:
                with self._waiting_lock:
                    self._waiting -= 1
                group = self._group or self._begin()
                cur = group.con.cursor()
                try:
                    self._group_step(group, cur, "SAVEPOINT tx")
                    tx = Tx(cur, self, group.shared)
                    try:
                        yield tx
                        self._seal(tx)
                    except BaseException:
                        # this body's writes only; if SQLite ended the whole transaction
                        # (an I/O error, a full disk), the group fails: nothing was kept
                        group.shared.clear()  # what it read may be undone with it
                        with contextlib.suppress(sqlite3.Error):
                            self._group_step(group, cur, "ROLLBACK TO tx")
                            self._group_step(group, cur, "RELEASE tx")
                        raise
                    self._group_step(group, cur, "RELEASE tx")
                    group.txs.append(tx)
                finally:
                    cur.close()
                    with self._waiting_lock:
                        last = self._waiting == 0
                    if last or group.error or len(group.txs) >= self.GROUP_MAX:
                        self._end(group)
            finally:
                self._writer = None
        group.done.wait()  # committed by the last body of the group (maybe this one)
        if group.error is not None:
            raise group.error

    @staticmethod
    def _group_step(group: _Batch, cur: sqlite3.Cursor, statement: str) -> None:
        """A statement of the group's own (not a body's): if it fails, the group does."""
        try:
            cur.execute(statement)
        except sqlite3.Error as e:
            group.error = e
            raise

    def _begin(self) -> _Batch:
        """A group's SQLite transaction; IMMEDIATE takes the database's write lock at once,
        so other processes' writers queue too and nobody overspends."""
        con = self._borrow()
        try:
            con.execute("BEGIN IMMEDIATE")
        except BaseException:
            con.close()
            raise
        self._group = _Batch(con)
        return self._group

    def _end(self, group: _Batch) -> None:
        """Commit a group (or, if it failed, roll it back) and wake its writers; the signed
        heads go to the anchor once committed, in order, before the next group begins."""
        self._group = None
        try:
            if group.error is not None:
                raise group.error
            group.con.execute("COMMIT")
        except BaseException as e:
            group.error = e
            with contextlib.suppress(sqlite3.Error):
                group.con.execute("ROLLBACK")
            group.con.close()
        else:
            self.commits += 1
            self._give_back(group.con)
            self._anchor(*group.txs)
        finally:
            group.done.set()


class PostgresStore(Store):
    param = "%s"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        with _pg_connect(self.dsn) as con, con.cursor() as cur:
            # one-time schema creation, serialised between processes that start together
            cur.execute("SELECT pg_advisory_xact_lock(7316)")
            for stmt in SCHEMA:
                cur.execute(stmt)
            cur.execute("SELECT seq FROM audit_head WHERE id = 1")
            if cur.fetchone() is None:
                cur.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, %s)", (GENESIS,))

            def one(q: str, params: tuple[Any, ...] = ()) -> Any:
                cur.execute(q, params)
                return cur.fetchone()

            _migrate(lambda q, params=(): cur.execute(q, params), one)

    def init(self) -> None:  # done in __init__
        pass

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[Tx]:
        # psycopg's connection context commits on success and rolls back on an exception
        with _pg_connect(self.dsn) as con, con.cursor() as cur:
            if write:
                # the audit head row is the single write lock: every audited change queues on it
                cur.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
            tx = Tx(cur, self)
            yield tx
            self._seal(tx)
        self._anchor(tx)  # after the connection's context committed


def _pg_connect(dsn: str) -> Any:
    """A connection to a PostgreSQL store; `StoreUnavailable` (a message, not a traceback)
    when the server cannot be reached or refuses the login."""
    import psycopg

    try:
        return psycopg.connect(dsn)
    except psycopg.OperationalError as e:
        # libpq's reason (host, port, what failed) never holds the password; the URL might
        reason = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise StoreUnavailable(_without_password(dsn), reason) from None


def _without_password(url: str) -> str:
    """The store's URL to show: a password (`user:PASSWORD@` or `?password=`) as ***."""
    import re
    from urllib.parse import urlsplit, urlunsplit

    url = re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        where = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{where}"))
    except ValueError:  # a URL that does not parse: say what it is, not what it holds
        return "(a postgresql:// URL)"


def store_exists(url: str | Path) -> bool:
    """Whether a store was made at `url` (read-only commands must not create one)."""
    s = str(url)
    if s.startswith(("postgresql://", "postgres://")):
        with _pg_connect(s) as con, con.cursor() as cur:
            cur.execute("SELECT to_regclass('audit_head') IS NOT NULL")
            return bool(cur.fetchone()[0])  # type: ignore[index]
    return Path(s.removeprefix("sqlite:///")).is_file()


def open_store(
    url: str | Path, *, signer: Signer | None = None, anchor: str | Path | None = None
) -> Store:
    """`postgresql://...` or a path to a SQLite file; with the installation's `signer`, a
    store that signs its audit log and appends the signed heads to `anchor` (`sign_with`)."""
    s = str(url)
    if s.startswith(("postgresql://", "postgres://")):
        return PostgresStore(s).sign_with(signer, anchor)
    if s.startswith("sqlite:///"):
        s = s[len("sqlite:///") :]
    return SQLiteStore(s).sign_with(signer, anchor)
