"""The application database, defined in one place: every table of the transactional store.

One store (SQLite by default, PostgreSQL in a real deployment) holds everything the
service remembers, so that a charge, its answer and its audit entry commit together:

    projects          a project: purpose, ε budget and spent, approved registers
    answers           released answers under their key (query, release, params, purpose)
    charges           ε charged to a project, per answer key (or attempt), and its ρ
                      (gaussian noise: the ledger adds ρ and states the total as ε at δ)
    project_queries   which project asked which answer, and when first
    receipts          version 1 receipts (before issue 22), kept and listed, no longer given
    shown_receipts    each project's signed receipt of each answer as it was shown to it
    audit, audit_head the hash-chained audit log and its newest entry
    audit_seals       each entry's head signed with the installation's key (antal.privacy.seal)
    users, tokens     accounts and their bearer tokens (SHA-256 hashes only)
    members           project membership
    catalog_entries   register entries published by their holders through the API
    catalog_versions  every published version of an entry: who, when, what changed
    audit_registers   which registers each audit entry touches (a holder's view)

`antal.privacy.store.Store` creates all of them when it is opened; the privacy layer
(store.py, gate.py) and the accounts (antal.api.accounts) read and write them with fixed
statements and bound parameters. The DDL is the subset SQLite and PostgreSQL share.
"""

from __future__ import annotations

__all__ = ["GENESIS", "MIGRATIONS", "SCHEMA", "TABLES"]

# the `prev` of the first audit entry, and the head of an empty log
GENESIS = "0" * 64

_TABLES: dict[str, str] = {
    # ---- projects, answers and the budget ledger -------------------------------------------
    "projects": """CREATE TABLE IF NOT EXISTS projects (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        purpose TEXT NOT NULL,
        budget DOUBLE PRECISION NOT NULL,
        spent DOUBLE PRECISION NOT NULL DEFAULT 0,
        registers TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL)""",
    "answers": """CREATE TABLE IF NOT EXISTS answers (
        key TEXT PRIMARY KEY,
        query_hash TEXT NOT NULL,
        release TEXT NOT NULL,
        params TEXT NOT NULL,
        purpose TEXT NOT NULL,
        released TEXT NOT NULL,
        created TEXT NOT NULL)""",
    "charges": """CREATE TABLE IF NOT EXISTS charges (
        project_id TEXT NOT NULL,
        answer_key TEXT NOT NULL,
        epsilon DOUBLE PRECISION NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (project_id, answer_key))""",
    "project_queries": """CREATE TABLE IF NOT EXISTS project_queries (
        project_id TEXT NOT NULL,
        answer_key TEXT NOT NULL,
        query TEXT NOT NULL,
        first_asked TEXT NOT NULL,
        PRIMARY KEY (project_id, answer_key))""",
    # the version 1 receipt a project was given for an answer (made before receipts signed
    # the names: kept, listed when the project has no newer one, never given again)
    "receipts": """CREATE TABLE IF NOT EXISTS receipts (
        project_id TEXT NOT NULL,
        answer_key TEXT NOT NULL,
        receipt TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (project_id, answer_key))""",
    # the signed receipt a project was given for an answer as shown (its title, step labels
    # and values: `shown` is antal.privacy.receipts.shown_key); a stored answer asked with
    # the same names replays it. Its own table, so that a store made before keeps working
    "shown_receipts": """CREATE TABLE IF NOT EXISTS shown_receipts (
        project_id TEXT NOT NULL,
        answer_key TEXT NOT NULL,
        shown TEXT NOT NULL,
        receipt TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (project_id, answer_key, shown))""",
    # ---- the audit log -----------------------------------------------------------------------
    "audit": """CREATE TABLE IF NOT EXISTS audit (
        seq BIGINT PRIMARY KEY,
        ts TEXT NOT NULL,
        actor TEXT NOT NULL,
        project_id TEXT,
        action TEXT NOT NULL,
        query_hash TEXT,
        query TEXT,
        epsilon DOUBLE PRECISION NOT NULL,
        released TEXT,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL)""",
    # the newest entry's hash, kept apart so that removing the last entries is detected too
    "audit_head": """CREATE TABLE IF NOT EXISTS audit_head (
        id INTEGER PRIMARY KEY,
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL)""",
    # each entry's signed head: its sequence number, hash and the ledger then, signed with the
    # installation's key (antal.privacy.seal); entries written before signing have none
    "audit_seals": """CREATE TABLE IF NOT EXISTS audit_seals (
        seq BIGINT PRIMARY KEY,
        head TEXT NOT NULL)""",
    # ---- accounts (antal.api.accounts) ---------------------------------------------------------
    "users": """CREATE TABLE IF NOT EXISTS users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        registers TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL)""",
    "tokens": """CREATE TABLE IF NOT EXISTS tokens (
        hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        label TEXT NOT NULL,
        created TEXT NOT NULL,
        revoked TEXT)""",
    "members": """CREATE TABLE IF NOT EXISTS members (
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (project_id, user_id))""",
    # ---- catalog entries published through the API (antal.api.accounts.CatalogEntries) -----
    "catalog_entries": """CREATE TABLE IF NOT EXISTS catalog_entries (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated TEXT NOT NULL)""",
    # every version of a published entry, oldest first: the entry as published, who and
    # when, and the structural changes from the version before (antal.catalog.entries)
    "catalog_versions": """CREATE TABLE IF NOT EXISTS catalog_versions (
        register_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        body TEXT NOT NULL,
        changes TEXT NOT NULL,
        published_by TEXT NOT NULL,
        published TEXT NOT NULL,
        audit_seq BIGINT NOT NULL,
        PRIMARY KEY (register_id, version))""",
    # the registers an audit entry touches (a query's, an approval's, a publish's): kept
    # beside the hash-chained log, written in the same transaction as the entry
    "audit_registers": """CREATE TABLE IF NOT EXISTS audit_registers (
        seq BIGINT NOT NULL,
        register_id TEXT NOT NULL,
        PRIMARY KEY (seq, register_id))""",
}

TABLES: tuple[str, ...] = tuple(_TABLES)
# the statements that create every table, in order (each is idempotent)
SCHEMA: tuple[str, ...] = (
    *_TABLES.values(),
    # which migrations a store has had (a store made before there were any has none)
    """CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY,
        applied TEXT NOT NULL)""",
)

# Changes to the tables above, each applied once, in order, to every store (a new one
# too: its tables are created as above, then migrated), recorded in schema_migrations in
# the same transaction. Never edit one that has shipped: add the next.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    # 1: a charge's ρ (gaussian noise, issue 23); 0 for a charge of pure ε
    (1, "ALTER TABLE charges ADD COLUMN rho DOUBLE PRECISION NOT NULL DEFAULT 0"),
)
