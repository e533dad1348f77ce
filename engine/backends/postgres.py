"""PostgreSQL: the extracts are tables in one schema of a database (`antal load-postgres`
fills one from Parquet files, or an installation names an existing schema's tables).

Each register becomes a temporary view of this connection named as the register, over its
table with the installation's column names mapped to the catalog's, so the compiled
statement reads the same names on every backend; so does each person or code table a
load made (`population#person`, `npr#diagnos`: engine/backends/pgload.py). Each count runs in a read-only
transaction, with a time budget (`statement_timeout`); its failure never passes on the
server's message, which may quote a value of the data."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlglot import exp

from antal.catalog import Catalog, DataSource, Installation
from antal.engine.backends import Backend
from antal.engine.compiler import Compiled
from antal.engine.errors import EngineError, QueryTimeout
from antal.engine.limits import QUERY_SECONDS

__all__ = ["PostgresBackend"]


class PostgresBackend(Backend):
    dialect = "postgres"
    placements = frozenset({"postgres"})
    errors = (psycopg.Error,)

    def __init__(
        self,
        installation: Installation,
        catalog: Catalog,
        threads: int | None = None,
        memory_limit: str | None = None,
        query_seconds: float | None = QUERY_SECONDS,
    ) -> None:
        # threads and memory are the server's own settings (its administrator's), not ours
        super().__init__(installation, catalog)
        if installation.postgres is None:
            raise EngineError("the postgres backend needs the installation's `postgres` schema")
        self.schema = installation.postgres.schema_
        self.query_seconds = query_seconds
        # settings as connection options, numbers only: nothing of the user's reaches SQL.
        # No nested loops: every join of a compiled statement is an equi-join on the person
        # key between unindexed scans, and PostgreSQL's row estimates through CTEs and
        # UNION ALL fall back to defaults (200 groups), so it picks nested loops that are
        # quadratic in persons: af_without_anticoagulant at 10M persons ran > 5 min with
        # them and 58 s without (bench/README.md, "Backends")
        options = "-c enable_nestloop=off"
        if query_seconds:
            options += f" -c statement_timeout={max(1, int(query_seconds * 1000))}"
        try:
            self.con = psycopg.connect(
                installation.postgres.dsn, autocommit=True, options=options, connect_timeout=10
            )
        except psycopg.Error as e:  # names the server and database, never a row
            raise EngineError(f"cannot connect to the PostgreSQL database: {e}") from None
        self._attached: set[str] = set()
        self._lock = threading.Lock()

    def _views(self, rid: str, src: DataSource) -> list[exp.Expression]:
        """A view named as the register over its table, and one per person or code table
        `antal load-postgres` made of it (named as the table: the compiler reads them)."""
        reg = self.catalog.register(rid)
        source = exp.table_(src.postgres or rid, db=self.schema, quoted=True)
        if reg is None:
            cols: list[exp.Expression] = [exp.Star()]
        else:
            cols = [
                exp.alias_(exp.column(src.column(v.name), quoted=True), v.name, quoted=True)
                for v in reg.variables
            ]
        views = [(rid, exp.select(*cols).from_(source))]
        # the load made these with the catalog's column names: read as they are
        for table in [*src.code_tables.values(), *filter(None, [src.person_table])]:
            own = exp.table_(table, db=self.schema, quoted=True)
            views.append((table, exp.select(exp.Star()).from_(own)))
        # a temporary view lives in pg_temp, which PostgreSQL searches before any schema
        return [
            exp.Create(
                this=exp.to_table(name, quoted=True),
                kind="VIEW",
                replace=True,
                properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
                expression=select,
            )
            for name, select in views
        ]

    def attach(self, registers: set[str] | frozenset[str]) -> None:
        self.require(registers)
        for rid in sorted(set(registers) - self._attached):
            # DDL on this session's temporary objects only (a read-only transaction refuses
            # even those); the counts themselves run in read-only transactions
            for view in self._views(rid, self.installation.sources[rid]):
                self.con.execute(view.sql("postgres"))
            self._attached.add(rid)

    def forget(self, register_id: str) -> None:
        with self._lock:
            self._attached.discard(register_id)

    def run(self, compiled: Compiled) -> list[tuple[Any, ...]]:
        with self._lock:
            self.attach(compiled.registers)
            try:
                with self.con.transaction():
                    self.con.execute("SET TRANSACTION READ ONLY")
                    return self.con.execute(compiled.sql(self.dialect)).fetchall()
            except pg_errors.QueryCanceled:
                raise QueryTimeout(self.query_seconds or 0.0) from None

    def error_kind(self, exc: BaseException) -> str:
        state = getattr(exc, "sqlstate", None)  # five characters from the SQL standard
        return f"{type(exc).__name__} (SQLSTATE {state})" if state else type(exc).__name__

    def close(self) -> None:
        self.con.close()
