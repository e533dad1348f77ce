"""The hub's store: nodes, queries and each node's task of a query, kept apart from the
tables of an installation (antal.privacy.schema) but in a store of the same kind (SQLite
by default, PostgreSQL in deployment) and through the same transactions, so that a hub
restart loses no query and no answer.

    hub_nodes    a node: its name, the SHA-256 hash of its token (the token is shown once),
                 the registers it last said it holds, when it was last seen
    hub_queries  a researcher's cohort: project, text, registers read, deadline, nodes asked
    hub_tasks    one node's part of a query: state, claim, and its released answer or refusal

The researchers of a hub are users of the same store (antal.api.accounts: `antal admin
create-user --store HUB_STORE`), members of the hub's projects. Every statement is a fixed
string with bound parameters.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from antal.privacy.store import Store, now, open_store

__all__ = [
    "FINAL",
    "HUB_SCHEMA",
    "NODE_NAME",
    "Conflict",
    "HubStore",
    "NoSuchTask",
    "NodeInfo",
    "Put",
    "QueryRow",
    "TaskRow",
]

NODE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
FINAL = ("succeeded", "refused", "failed")  # a node's answer: it does not change
State = Literal["pending", "running", "succeeded", "refused", "failed"]
Put = Literal["stored", "duplicate"]

HUB_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS hub_nodes (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        holds TEXT,
        created TEXT NOT NULL,
        last_seen DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS hub_queries (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        submitted_by TEXT NOT NULL,
        title TEXT NOT NULL,
        cohort TEXT NOT NULL,
        query_hash TEXT NOT NULL,
        registers TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        deadline DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS hub_tasks (
        query_id TEXT NOT NULL,
        node TEXT NOT NULL,
        state TEXT NOT NULL,
        claims INTEGER NOT NULL DEFAULT 0,
        claimed DOUBLE PRECISION,
        finished DOUBLE PRECISION,
        answer TEXT,
        error_code TEXT,
        error_message TEXT,
        PRIMARY KEY (query_id, node))""",
)


class Conflict(Exception):
    """A node put an answer that differs from the one it already gave (answers are final)."""


class NoSuchTask(Exception):
    """No task of this query for this node."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NodeInfo:
    name: str
    holds: tuple[str, ...] | None  # None: the node has not said yet (never connected)
    last_seen: float | None


@dataclass(frozen=True)
class TaskRow:
    query_id: str
    node: str
    state: State
    claims: int
    claimed: float | None
    finished: float | None
    answer: dict[str, Any] | None
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True)
class QueryRow:
    id: str
    project: str
    submitted_by: str
    title: str
    cohort: str
    query_hash: str
    registers: tuple[str, ...]
    created: float
    deadline: float


def _csv(xs: tuple[str, ...] | list[str]) -> str:
    return ",".join(sorted(xs))


def _uncsv(s: str | None) -> tuple[str, ...]:
    return tuple(x for x in (s or "").split(",") if x)


def _task(r: Any) -> TaskRow:
    return TaskRow(
        r[0], r[1], r[2], int(r[3]), r[4], r[5], json.loads(r[6]) if r[6] else None, r[7], r[8]
    )


def _query(r: Any) -> QueryRow:
    return QueryRow(r[0], r[1], r[2], r[3], r[4], r[5], _uncsv(r[6]), float(r[7]), float(r[8]))


_Q = "SELECT id, project, submitted_by, title, cohort, query_hash, registers, created, deadline FROM hub_queries"
_T = "SELECT query_id, node, state, claims, claimed, finished, answer, error_code, error_message FROM hub_tasks"


def _core(answer: dict[str, Any] | None) -> str:
    """What identifies a released answer: the values and how they were released, not
    whether the node served it from its store this time or what it charged then."""
    if answer is None:
        return ""
    volatile = {"stored", "epsilon_charged", "budget_left"}
    return json.dumps({k: v for k, v in answer.items() if k not in volatile}, sort_keys=True)


class HubStore:
    """The hub's tables in a store (`open_store`'s URL: a SQLite path or postgresql://)."""

    def __init__(self, url: str) -> None:
        self.store: Store = open_store(url)  # also makes the accounts' tables: researchers
        with self.store.transaction() as tx:
            for stmt in HUB_SCHEMA:
                tx.execute(stmt)

    # ---- nodes --------------------------------------------------------------------------

    def add_node(self, name: str) -> str:
        """Register a node; its token (shown once, only its hash is kept)."""
        if not NODE_NAME.match(name):
            raise ValueError("a node name is lower-case letters, digits, '_' and '-'")
        token = "antalnode_" + secrets.token_urlsafe(32)
        with self.store.transaction() as tx:
            if tx.one("SELECT name FROM hub_nodes WHERE name = %s", (name,)) is not None:
                raise ValueError(f"node {name!r} exists")
            tx.execute(
                "INSERT INTO hub_nodes (name, token_hash, holds, created) VALUES (%s, %s, NULL, %s)",
                (name, token_hash(token), now()),
            )
            tx.audit("hub", None, "add_node", None, name, 0.0, None)
        return token

    def node_of(self, token: str) -> str | None:
        with self.store.transaction(write=False) as tx:
            row = tx.one("SELECT name FROM hub_nodes WHERE token_hash = %s", (token_hash(token),))
        return row[0] if row else None

    def seen(self, node: str, holds: list[str]) -> None:
        with self.store.transaction() as tx:
            tx.execute(
                "UPDATE hub_nodes SET holds = %s, last_seen = %s WHERE name = %s",
                (_csv(holds), time.time(), node),
            )

    def nodes(self) -> list[NodeInfo]:
        with self.store.transaction(write=False) as tx:
            rows = tx.all("SELECT name, holds, last_seen FROM hub_nodes ORDER BY name")
        return [NodeInfo(n, None if h is None else _uncsv(h), s) for n, h, s in rows]

    # ---- queries ------------------------------------------------------------------------

    def submit(
        self,
        *,
        project: str,
        user: str,
        title: str,
        cohort: str,
        query_hash: str,
        registers: tuple[str, ...],
        nodes: list[str],
        deadline_seconds: float,
    ) -> str:
        """A new query with a pending task for each node; its id."""
        qid = "q" + secrets.token_hex(8)
        t = time.time()
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO hub_queries (id, project, submitted_by, title, cohort, query_hash, registers, created, deadline) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (qid, project, user, title, cohort, query_hash, _csv(registers), t, t + deadline_seconds),
            )  # fmt: skip
            for n in nodes:
                tx.execute(
                    "INSERT INTO hub_tasks (query_id, node, state) VALUES (%s, %s, 'pending')",
                    (qid, n),
                )
            tx.audit(user, project, "hub_submit", query_hash, cohort, 0.0, qid)
        return qid

    def query(self, qid: str) -> tuple[QueryRow, list[TaskRow]] | None:
        with self.store.transaction(write=False) as tx:
            q = tx.one(_Q + " WHERE id = %s", (qid,))
            if q is None:
                return None
            tasks = tx.all(_T + " WHERE query_id = %s ORDER BY node", (qid,))
        return _query(q), [_task(t) for t in tasks]

    def queries(self, user: str | None = None) -> list[QueryRow]:
        with self.store.transaction(write=False) as tx:
            if user is None:
                rows = tx.all(_Q + " ORDER BY created DESC")
            else:
                rows = tx.all(_Q + " WHERE submitted_by = %s ORDER BY created DESC", (user,))
        return [_query(r) for r in rows]

    # ---- the nodes' side ------------------------------------------------------------------

    def claim(self, node: str) -> tuple[QueryRow, TaskRow] | None:
        """The oldest unanswered task of this node, marked running. A task this node claimed
        before and never answered is offered again: a node agent works on one task at a
        time, so when it asks for work it holds none (it was restarted)."""
        oldest = (
            "SELECT t.query_id FROM hub_tasks t JOIN hub_queries q ON q.id = t.query_id "
            "WHERE t.node = %s AND t.state IN ('pending', 'running') "
            "ORDER BY q.created, q.id LIMIT 1"
        )
        with self.store.transaction(write=False) as tx:  # idle polls take no write lock
            if tx.one(oldest, (node,)) is None:
                return None
        with self.store.transaction() as tx:
            row = tx.one(oldest, (node,))
            if row is None:
                return None
            qid = row[0]
            tx.execute(
                "UPDATE hub_tasks SET state = 'running', claims = claims + 1, claimed = %s "
                "WHERE query_id = %s AND node = %s",
                (time.time(), qid, node),
            )
            q = tx.one(_Q + " WHERE id = %s", (qid,))
            t = tx.one(_T + " WHERE query_id = %s AND node = %s", (qid, node))
        return _query(q), _task(t)

    def put(
        self,
        node: str,
        qid: str,
        state: State,
        answer: dict[str, Any] | None,
        code: str | None,
        message: str | None,
    ) -> Put:
        """Store a node's answer (released values) or refusal. Idempotent: the same answer
        again is a `duplicate`; a different one after the first is a `Conflict`."""
        if state not in FINAL:
            raise ValueError(f"a node's answer is one of {', '.join(FINAL)}")
        body = json.dumps(answer, sort_keys=True) if answer is not None else None
        with self.store.transaction() as tx:
            row = tx.one(
                "SELECT state, answer, error_code FROM hub_tasks WHERE query_id = %s AND node = %s",
                (qid, node),
            )
            if row is None:
                raise NoSuchTask(qid)
            old_state, old_answer, old_code = row
            if old_state in FINAL:
                same = (old_state, _core(json.loads(old_answer) if old_answer else None),
                        old_code) == (state, _core(answer), code)  # fmt: skip
                if same:
                    return "duplicate"
                raise Conflict(
                    f"node {node!r} answered query {qid} already ({old_state}); answers are final"
                )
            tx.execute(
                "UPDATE hub_tasks SET state = %s, finished = %s, answer = %s, error_code = %s, "
                "error_message = %s WHERE query_id = %s AND node = %s",
                (state, time.time(), body, code, message, qid, node),
            )
            tx.audit(f"node:{node}", None, f"hub_{state}", None, qid, 0.0, body)
        return "stored"
