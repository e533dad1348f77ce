"""DuckDB, the embedded default: each register becomes a view over its files, read
in place (no copy into memory first).

Every statement has a time budget (`query_seconds`; a watcher thread interrupts it) and
the database a memory limit and a number of threads, so that no cohort can hold the
server: a statement over budget raises `QueryTimeout`, one over the memory limit DuckDB's
OutOfMemoryException."""

from __future__ import annotations

import threading
from typing import Any

import duckdb
from sqlglot import exp

from antal.catalog import Catalog, DataSource, Installation
from antal.engine import duckconn
from antal.engine.backends import Backend
from antal.engine.compiler import Compiled
from antal.engine.datacheck import present_columns, tolerated_nulls
from antal.engine.errors import QueryTimeout
from antal.engine.limits import ENGINE_MEMORY, QUERY_SECONDS

__all__ = ["DuckDBBackend"]

_INTERRUPT_EVERY = 0.05  # s: an interrupt sent before a statement starts is lost; repeat it


class DuckDBBackend(Backend):
    dialect = "duckdb"
    placements = frozenset({"parquet", "duckdb"})
    errors = (duckdb.Error,)

    def __init__(
        self,
        installation: Installation,
        catalog: Catalog,
        threads: int | None = None,
        memory_limit: str | None = ENGINE_MEMORY,
        query_seconds: float | None = QUERY_SECONDS,
        tolerate: bool = True,
    ) -> None:
        super().__init__(installation, catalog)
        self.query_seconds = query_seconds
        # the installation's tolerated malformed values read as missing (engine/datacheck.py
        # `tolerated_nulls`); False for the data check, which counts them as they are
        self.tolerate = tolerate
        config: dict[str, str | int] = {}
        if threads:
            config["threads"] = int(threads)
        if memory_limit:
            config["memory_limit"] = str(memory_limit)
        # as connection config, not SET statements: no setting is ever pasted into SQL
        self.con = duckconn.connect(config=config)
        self._attached: set[str] = set()
        self._lock = threading.Lock()

    def _views(self, rid: str, src: DataSource) -> list[exp.Expression]:
        """A view named as the register over its extract, and one per code table of a
        prepared file (named as the table, `<register>#<column>`: the compiler reads them)."""
        views: list[exp.Expression] = []
        if src.duckdb:
            alias = f"src_{rid}"
            attach = exp.Attach(
                this=exp.alias_(exp.Literal.string(src.duckdb), alias),
                expressions=[exp.AttachOption(this=exp.var("READ_ONLY"))],
            )
            self.con.execute(attach.sql("duckdb"))
            source: exp.Expression = exp.table_(src.table or rid, db=alias, quoted=True)
            for table in [*src.code_tables.values(), *filter(None, [src.person_table])]:
                views.append(
                    exp.Create(
                        this=exp.to_table(table, quoted=True),
                        kind="VIEW",
                        replace=True,
                        expression=exp.select(exp.Star()).from_(
                            exp.table_(table, db=alias, quoted=True)
                        ),
                    )
                )
        else:
            source = exp.func("read_parquet", exp.Literal.string(src.parquet or ""))
        reg = self.catalog.register(rid)
        tolerates = self.tolerate and any(
            k.startswith(f"{rid}.") for k in self.installation.tolerate
        )
        if reg is None or not (src.columns or tolerates):
            select = exp.select(exp.Star()).from_(source)
        else:
            # the catalog's columns the files have (a cohort reading another one is refused
            # before it runs: engine.prepare), under their canonical names
            have = present_columns(src)
            names = [v.name for v in reg.variables if have is None or src.column(v.name) in have]
            select = exp.select(*(
                exp.alias_(exp.column(src.column(n), quoted=True), n, quoted=True) for n in names
            )).from_(source)  # fmt: skip
            tolerated = tolerated_nulls(self.installation, self.catalog, rid, set(names))
            if tolerates and tolerated:  # malformed values tolerated: read as missing
                cols = [
                    exp.alias_(exp.Case(ifs=[exp.If(this=tolerated[n], true=exp.Null())],
                                        default=exp.column(n, quoted=True)), n, quoted=True)
                    if n in tolerated else exp.column(n, quoted=True)
                    for n in names
                ]  # fmt: skip
                select = exp.select(*cols).from_(select.subquery("raw"))
        views.append(
            exp.Create(
                this=exp.to_table(rid, quoted=True), kind="VIEW", replace=True, expression=select
            )
        )
        return views

    def attach(self, registers: set[str] | frozenset[str]) -> None:
        self.require(registers)
        for rid in sorted(set(registers) - self._attached):
            for view in self._views(rid, self.installation.sources[rid]):
                self.con.execute(view.sql("duckdb"))
            self._attached.add(rid)

    def forget(self, register_id: str) -> None:
        with self._lock:  # the view is made again, with the new entry's columns, on next use
            self._attached.discard(register_id)

    def run(self, compiled: Compiled) -> list[tuple[Any, ...]]:
        with self._lock:
            self.attach(compiled.registers)
            cur = self.con.cursor()
        done = threading.Event()
        fired = threading.Event()
        watcher = None
        if self.query_seconds:
            watcher = threading.Thread(
                target=_watch, args=(cur, self.query_seconds, done, fired), daemon=True
            )
            watcher.start()
        try:
            return cur.execute(compiled.sql(self.dialect)).fetchall()
        except duckdb.InterruptException:
            if fired.is_set():
                raise QueryTimeout(self.query_seconds or 0.0) from None
            raise
        finally:
            done.set()
            if watcher is not None:
                watcher.join()
            cur.close()

    def close(self) -> None:
        self.con.close()


def _watch(
    cur: duckdb.DuckDBPyConnection, seconds: float, done: threading.Event, fired: threading.Event
) -> None:
    """Interrupt `cur` once `seconds` have passed, and again until its statement ends."""
    if done.wait(seconds):
        return
    fired.set()
    while True:
        cur.interrupt()
        if done.wait(_INTERRUPT_EVERY):
            return
