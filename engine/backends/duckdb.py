"""DuckDB, the embedded default: each register becomes a view over its files, read
in place (no copy into memory first)."""

from __future__ import annotations

import threading
from typing import Any

import duckdb
from sqlglot import exp

from antal.catalog import Catalog, DataSource, Installation
from antal.engine.backends import Backend
from antal.engine.compiler import Compiled

__all__ = ["DuckDBBackend"]


class DuckDBBackend(Backend):
    dialect = "duckdb"

    def __init__(
        self, installation: Installation, catalog: Catalog, threads: int | None = None
    ) -> None:
        super().__init__(installation, catalog)
        self.con = duckdb.connect(":memory:")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self._attached: set[str] = set()
        self._lock = threading.Lock()

    def _view(self, rid: str, src: DataSource) -> exp.Expression:
        if src.duckdb:
            alias = f"src_{rid}"
            attach = exp.Attach(
                this=exp.alias_(exp.Literal.string(src.duckdb), alias),
                expressions=[exp.AttachOption(this=exp.var("READ_ONLY"))],
            )
            self.con.execute(attach.sql("duckdb"))
            source: exp.Expression = exp.table_(src.table or rid, db=alias, quoted=True)
        else:
            source = exp.func("read_parquet", exp.Literal.string(src.parquet or ""))
        reg = self.catalog.register(rid)
        if reg is None or not src.columns:
            cols: list[exp.Expression] = [exp.Star()]
        else:
            cols = [
                exp.alias_(exp.column(src.column(v.name), quoted=True), v.name, quoted=True)
                for v in reg.variables
            ]
        select = exp.select(*cols).from_(source)
        return exp.Create(
            this=exp.to_table(rid, quoted=True), kind="VIEW", replace=True, expression=select
        )

    def attach(self, registers: set[str] | frozenset[str]) -> None:
        self.require(registers)
        for rid in sorted(set(registers) - self._attached):
            self.con.execute(self._view(rid, self.installation.sources[rid]).sql("duckdb"))
            self._attached.add(rid)

    def run(self, compiled: Compiled) -> list[tuple[Any, ...]]:
        with self._lock:
            self.attach(compiled.registers)
            cur = self.con.cursor()
        try:
            return cur.execute(compiled.sql(self.dialect)).fetchall()
        finally:
            cur.close()

    def close(self) -> None:
        self.con.close()
