"""The hub's store: nodes, queries and each node's task of a query, kept apart from the
tables of an installation (antal.privacy.schema) but in a store of the same kind (SQLite
by default, PostgreSQL in deployment) and through the same transactions, so that a hub
restart loses no query and no answer.

    hub_nodes    a node: its name, the SHA-256 hash of its token (the token is shown once),
                 the registers it last said it holds, when it was last seen
    hub_queries  a researcher's cohort: project, text, registers read, deadline, nodes asked
    hub_tasks    one node's part of a query: state, claim, and its released answer or refusal
                 (`pending` → `offered` when its node's poll takes it → `running` when the
                 node acknowledges it → `succeeded`, `refused` or `failed`)
    hub_node_facts  what an admin said of a node (its population, the most any count of
                 it may be), what it reported holding when that differed from what the hub
                 accepted, and how many of its answers the hub refused as invalid
    hub_shown    the sets of nodes whose combined total each researcher was shown, per
                 cohort: the hub's rule on per-node secrecy reads them (results.py)

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
    "ACK_SECONDS",
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
State = Literal["pending", "offered", "running", "succeeded", "refused", "failed"]
# A task handed to a node's poll is `offered` until the node acknowledges it (a poll held
# open for a node that died hands its task to nobody); unacknowledged this long, it is shown
# `pending` again, and the node's next poll is offered it again.
ACK_SECONDS = 10.0
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
    # added later: tables of their own, so that a hub store made before them still opens
    """CREATE TABLE IF NOT EXISTS hub_node_facts (
        name TEXT PRIMARY KEY,
        persons BIGINT,
        reported TEXT,
        invalid_answers INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS hub_shown (
        viewer TEXT NOT NULL,
        query_hash TEXT NOT NULL,
        nodes TEXT NOT NULL,
        PRIMARY KEY (viewer, query_hash, nodes))""",
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
    # what the hub takes the node to hold (the linkage check): set by an admin, or the first
    # non-empty list the node reported; None: not known yet
    holds: tuple[str, ...] | None
    last_seen: float | None
    persons: int | None = None  # an admin's bound on the node's population
    reported: tuple[str, ...] | None = None  # what it last reported, where that differs
    invalid_answers: int = 0


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

    def add_node(self, name: str, persons: int | None = None) -> str:
        """Register a node (`persons`: the most persons its extract can hold, the bound on
        every count it sends); its token (shown once, only its hash is kept)."""
        if not NODE_NAME.match(name):
            raise ValueError("a node name is lower-case letters, digits, '_' and '-'")
        if persons is not None and persons < 1:
            raise ValueError("a node's population is at least 1 person")
        token = "antalnode_" + secrets.token_urlsafe(32)
        with self.store.transaction() as tx:
            if tx.one("SELECT name FROM hub_nodes WHERE name = %s", (name,)) is not None:
                raise ValueError(f"node {name!r} exists")
            tx.execute(
                "INSERT INTO hub_nodes (name, token_hash, holds, created) VALUES (%s, %s, NULL, %s)",
                (name, token_hash(token), now()),
            )
            tx.execute(
                "INSERT INTO hub_node_facts (name, persons, invalid_answers) VALUES (%s, %s, 0)",
                (name, persons),
            )
            tx.audit("hub", None, "add_node", None, name, 0.0, None)
        return token

    def set_holds(self, name: str, holds: list[str], actor: str = "hub") -> None:
        """An admin says which registers a node holds (what the linkage check uses)."""
        with self.store.transaction() as tx:
            if tx.one("SELECT name FROM hub_nodes WHERE name = %s", (name,)) is None:
                raise ValueError(f"no node {name!r}")
            tx.execute("UPDATE hub_nodes SET holds = %s WHERE name = %s", (_csv(holds), name))
            self._facts(tx, name)
            tx.execute("UPDATE hub_node_facts SET reported = NULL WHERE name = %s", (name,))
            tx.audit(actor, None, "set_node_holds", None, f"{name}: {_csv(holds)}", 0.0, None)

    @staticmethod
    def _facts(tx: Any, name: str) -> None:
        """The node's facts row (nodes added before the table existed have none)."""
        if tx.one("SELECT name FROM hub_node_facts WHERE name = %s", (name,)) is None:
            tx.execute("INSERT INTO hub_node_facts (name, invalid_answers) VALUES (%s, 0)", (name,))

    def node_of(self, token: str) -> str | None:
        with self.store.transaction(write=False) as tx:
            row = tx.one("SELECT name FROM hub_nodes WHERE token_hash = %s", (token_hash(token),))
        return row[0] if row else None

    def seen(self, node: str, holds: list[str]) -> None:
        """A node polled, reporting what it holds. What the hub takes it to hold changes only
        by an admin (`set_holds`), or on the first non-empty report when no admin said: a
        node claiming to hold nothing, or something else later, cannot make the linkage
        check refuse every query. A report that differs is kept for the admin to see."""
        with self.store.transaction() as tx:
            row = tx.one("SELECT holds FROM hub_nodes WHERE name = %s", (node,))
            if row is None:
                return
            accepted = row[0]
            if accepted is None and holds:
                tx.execute("UPDATE hub_nodes SET holds = %s WHERE name = %s", (_csv(holds), node))
                accepted = _csv(holds)
            tx.execute("UPDATE hub_nodes SET last_seen = %s WHERE name = %s", (time.time(), node))
            self._facts(tx, node)
            differs = accepted is not None and _csv(holds) != accepted
            tx.execute(
                "UPDATE hub_node_facts SET reported = %s WHERE name = %s",
                (_csv(holds) if differs or accepted is None else None, node),
            )

    def nodes(self) -> list[NodeInfo]:
        with self.store.transaction(write=False) as tx:
            rows = tx.all(
                "SELECT n.name, n.holds, n.last_seen, f.persons, f.reported, f.invalid_answers "
                "FROM hub_nodes n LEFT JOIN hub_node_facts f ON f.name = n.name ORDER BY n.name"
            )
        return [
            NodeInfo(n, None if h is None else _uncsv(h), s, None if p is None else int(p),
                     None if r is None else _uncsv(r), int(i or 0))
            for n, h, s, p, r, i in rows
        ]  # fmt: skip

    def node(self, name: str) -> NodeInfo | None:
        return next((n for n in self.nodes() if n.name == name), None)

    # ---- per-node secrecy -----------------------------------------------------------------

    def shown(self, viewer: str, query_hash: str) -> list[frozenset[str]]:
        """The sets of nodes whose total of this cohort `viewer` was shown."""
        with self.store.transaction(write=False) as tx:
            rows = tx.all(
                "SELECT nodes FROM hub_shown WHERE viewer = %s AND query_hash = %s",
                (viewer, query_hash),
            )
        return [frozenset(_uncsv(r[0])) for r in rows]

    def record_shown(self, viewer: str, query_hash: str, nodes: list[str]) -> None:
        key = (viewer, query_hash, _csv(nodes))
        with self.store.transaction() as tx:
            if tx.one("SELECT nodes FROM hub_shown WHERE viewer = %s AND query_hash = %s "
                      "AND nodes = %s", key) is None:  # fmt: skip
                tx.execute(
                    "INSERT INTO hub_shown (viewer, query_hash, nodes) VALUES (%s, %s, %s)", key
                )

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
        """The oldest unanswered task of this node, marked offered (`running` only when the
        node acknowledges it: `acknowledge`). A task offered to or claimed by this node
        before and never answered is offered again: a node agent works on one task at a
        time, so when it asks for work it holds none (it was restarted)."""
        oldest = (
            "SELECT t.query_id FROM hub_tasks t JOIN hub_queries q ON q.id = t.query_id "
            "WHERE t.node = %s AND t.state IN ('pending', 'offered', 'running') "
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
                "UPDATE hub_tasks SET state = 'offered', claims = claims + 1, claimed = %s "
                "WHERE query_id = %s AND node = %s",
                (time.time(), qid, node),
            )
            q = tx.one(_Q + " WHERE id = %s", (qid,))
            t = tx.one(_T + " WHERE query_id = %s AND node = %s", (qid, node))
        return _query(q), _task(t)

    def acknowledge(self, node: str, qid: str) -> State:
        """The node has its task and is counting: `running` (an answered task keeps its
        answer). Acknowledged again while it counts, it is the node's heartbeat (`last_seen`)."""
        with self.store.transaction() as tx:
            row = tx.one(
                "SELECT state FROM hub_tasks WHERE query_id = %s AND node = %s", (qid, node)
            )
            if row is None:
                raise NoSuchTask(qid)
            state: State = row[0]
            if state not in FINAL:
                state = "running"
                tx.execute(
                    "UPDATE hub_tasks SET state = 'running', claimed = COALESCE(claimed, %s) "
                    "WHERE query_id = %s AND node = %s",
                    (time.time(), qid, node),
                )
            tx.execute("UPDATE hub_nodes SET last_seen = %s WHERE name = %s", (time.time(), node))
        return state

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
            tx.execute("UPDATE hub_nodes SET last_seen = %s WHERE name = %s", (time.time(), node))
        return "stored"

    def tallies(self) -> tuple[int, dict[str, int]]:
        """How many queries the hub holds, and its tasks by stored state (for /metrics)."""
        with self.store.transaction(write=False) as tx:
            queries = tx.one("SELECT COUNT(*) FROM hub_queries")
            states = tx.all("SELECT state, COUNT(*) FROM hub_tasks GROUP BY state")
        return int(queries[0] if queries else 0), {str(s): int(n) for s, n in states}

    def reject(self, node: str, qid: str, problem: str) -> None:
        """A node's answer the hub refused as invalid: recorded against the node (audited,
        counted), and its task failed with `invalid_answer` unless it was answered already."""
        with self.store.transaction() as tx:
            row = tx.one(
                "SELECT state FROM hub_tasks WHERE query_id = %s AND node = %s", (qid, node)
            )
            if row is None:
                raise NoSuchTask(qid)
            if row[0] not in FINAL:
                tx.execute(
                    "UPDATE hub_tasks SET state = 'failed', finished = %s, answer = NULL, "
                    "error_code = 'invalid_answer', error_message = %s "
                    "WHERE query_id = %s AND node = %s",
                    (time.time(), f"the hub refused this node's answer: {problem}", qid, node),
                )
            self._facts(tx, node)
            tx.execute(
                "UPDATE hub_node_facts SET invalid_answers = invalid_answers + 1 WHERE name = %s",
                (node,),
            )
            tx.audit(f"node:{node}", None, "hub_invalid_answer", None, qid, 0.0, problem)
