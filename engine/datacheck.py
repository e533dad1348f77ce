"""Check an installation's extracts against the catalog before anything is counted on them.

`antal data check`, `antal serve` (which refuses to start on a failing check) and the
CLI's `count` run it. What it checks, per register the installation must or does hold:

- present: a file (or, for a glob, at least one file) for every register the installation
  declares, for the population register, and for the opt-out register unless the
  installation says it keeps none (`optout: none`; see `catalog/installation.py`);
- readable: every Parquet file opens (an empty or corrupt file is named), every DuckDB
  source attaches and has its table, and every value can be read;
- columns: every variable of the catalog entry is a column of every file (under the name
  the installation maps it to), of a type that can hold it (an id stored as DOUBLE is not);
- values: person keys present, the population's person key unique (one row per person),
  columns the entry says are never missing present, dates within
  `limits.DATE_MIN..DATE_MAX`, codes upper case and of their code system's shape
  (space-separated lists item by item), closed value sets respected (an opt-out purpose
  spelt `Forskning` would otherwise opt nobody out). With `by_period` (a published
  entry), also: a code dated in one of its variable's coding periods is of the shape of
  that period's system (of one of them, where periods overlap).

Findings carry the register, the file, the column, the kind of problem and how many rows
have it: never a value from the data. The value checks are aggregate queries built with
sqlglot over the views the DuckDB backend registers (no text is pasted into SQL).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

from antal.catalog import Catalog, DataSource, Installation, Period, Register, Variable
from antal.catalog.vocabulary import CODE_SYSTEMS
from antal.engine.codes import shapes_regex
from antal.engine.errors import InternalError
from antal.engine.limits import DATE_MAX, DATE_MIN

__all__ = ["Finding", "check_data", "format_findings"]


@dataclass(frozen=True)
class Finding:
    """One problem with an extract. `count` is a number of rows (None: not about rows)."""

    register: str
    file: str
    column: str | None
    kind: str
    count: int | None
    message: str

    def __str__(self) -> str:
        where = self.file + (f": column {self.column!r}" if self.column else "")
        rows = "" if self.count is None else f" ({self.count} row{'s' * (self.count != 1)})"
        return f"{self.register}: {where}: {self.message}{rows}"


def _value_literal(v: Variable, x: object) -> exp.Expression:
    """One allowed value of a closed set as a typed literal. The values come from catalog
    entries, which a holder may publish: a string never becomes SQL text."""
    if v.type == "varchar" and isinstance(x, str):
        return exp.Literal.string(x)
    if v.type in ("bigint", "integer", "smallint") and type(x) is int:
        return exp.Literal.number(int(x))  # digits only: an int's str() is never SQL
    raise InternalError(f"{v.name}: value {x!r} does not fit its type {v.type}")


# What a catalog type accepts of the file's DuckDB types (DECIMAL(p,s) is matched by prefix).
_INTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER",
         "UBIGINT", "HUGEINT", "UHUGEINT"}  # fmt: skip
_ACCEPTS: dict[str, set[str]] = {
    "bigint": _INTS,
    "integer": _INTS,
    "smallint": _INTS,
    # not DECIMAL or HUGEINT: comparing them with a decimal literal casts every row to a
    # DECIMAL that huge values do not fit, a failure on some rows only
    "double": (_INTS - {"HUGEINT", "UHUGEINT"}) | {"FLOAT", "DOUBLE"},
    "varchar": {"VARCHAR"},
    "date": {"DATE"},
}


def _type_ok(catalog_type: str, duck_type: str) -> bool:
    return duck_type.split("(")[0].upper() in _ACCEPTS[catalog_type]


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _count_where(cond: exp.Expression) -> exp.Expression:
    """count(*) of the rows where cond is TRUE, portable (no FILTER clause)."""
    return exp.Sum(
        this=exp.Case(
            ifs=[exp.If(this=cond, true=exp.Literal.number(1))], default=exp.Literal.number(0)
        )
    )


def _date(d: object) -> exp.Expression:
    return exp.Cast(this=exp.Literal.string(str(d)), to=exp.DataType.build("DATE"))


# PostgreSQL's names of the types of a table's columns, as DuckDB spells them (_ACCEPTS)
_PG_TYPES = {"bigint": "BIGINT", "integer": "INTEGER", "smallint": "SMALLINT", "text": "VARCHAR",
             "character varying": "VARCHAR", "date": "DATE", "double precision": "DOUBLE",
             "real": "FLOAT", "boolean": "BOOLEAN", "numeric": "DECIMAL"}  # fmt: skip


def _describe(src: DataSource) -> str:
    if src.postgres:
        return f"PostgreSQL table {src.postgres}"
    if src.duckdb:
        return f"{src.duckdb} (table {src.table or '?'})"
    return src.parquet or "?"


class _Checker:
    def __init__(
        self,
        installation: Installation,
        catalog: Catalog,
        by_period: bool = False,
        trust_prepared: bool = False,
    ) -> None:
        self.inst = installation
        self.catalog = catalog
        self.by_period = by_period
        self.trust_prepared = trust_prepared
        self.findings: list[Finding] = []

    def add(self, reg: str, file: str, column: str | None, kind: str, count: int | None,
            message: str) -> None:  # fmt: skip
        self.findings.append(Finding(reg, file, column, kind, count, message))

    # ---- files and schemas ------------------------------------------------------------------
    def schema(self, con: duckdb.DuckDBPyConnection, rid: str, src: DataSource) -> bool:
        """Files present and readable, columns and types as the catalog says; True if usable."""
        reg = self.catalog.register(rid)
        assert reg is not None
        if src.duckdb:
            if not Path(src.duckdb).is_file():
                self.add(rid, src.duckdb, None, "missing_file", None, "no such file")
                return False
            alias = f"chk_{rid}"
            attach = exp.Attach(
                this=exp.alias_(exp.Literal.string(src.duckdb), alias),
                expressions=[exp.AttachOption(this=exp.var("READ_ONLY"))],
            )
            try:
                con.execute(attach.sql("duckdb"))
                sel = exp.select(exp.Star()).from_(
                    exp.table_(src.table or rid, db=alias, quoted=True)
                )
                types = dict(zip(*self._types(con, sel), strict=True))
            except duckdb.Error:
                self.add(rid, _describe(src), None, "unreadable", None,
                         "cannot be opened as a DuckDB database with this table")  # fmt: skip
                return False
            return self.columns(rid, _describe(src), reg, src, types)
        pattern = src.parquet or ""
        files = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        files = [f for f in files if Path(f).is_file()]
        if not files:
            self.add(rid, pattern, None, "missing_file", None, "no such file")
            return False
        ok = True
        for f in files:
            sel = exp.select(exp.Star()).from_(exp.func("read_parquet", exp.Literal.string(f)))
            try:
                types = dict(zip(*self._types(con, sel), strict=True))
            except duckdb.Error:  # its message may quote bytes of the file: never shown
                self.add(rid, f, None, "unreadable", None,
                         "is not a readable Parquet file (empty or corrupt)")  # fmt: skip
                ok = False
                continue
            ok = self.columns(rid, f, reg, src, types) and ok
        return ok

    def pg_schema(self, con: Any, schema: str, rid: str, src: DataSource) -> bool:
        """A PostgreSQL table present, its columns and types as the catalog says."""
        reg = self.catalog.register(rid)
        assert reg is not None
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s",
            (schema, src.postgres),
        ).fetchall()
        if not rows:
            self.add(rid, _describe(src), None, "missing_file", None, "no such table")
            return False
        types = {name: _PG_TYPES.get(t, t.upper()) for name, t in rows}
        return self.columns(rid, _describe(src), reg, src, types)

    @staticmethod
    def _types(con: duckdb.DuckDBPyConnection, sel: exp.Select) -> tuple[list[str], list[str]]:
        rel = con.sql(sel.sql("duckdb"))
        return list(rel.columns), [str(t) for t in rel.types]

    def columns(self, rid: str, file: str, reg: Register, src: DataSource,
                types: dict[str, str]) -> bool:  # fmt: skip
        ok = True
        for v in reg.variables:
            name = src.column(v.name)
            if name not in types:
                self.add(rid, file, name, "missing_column", None, "is missing")
                ok = False
            elif not _type_ok(v.type, types[name]):
                self.add(rid, file, name, "wrong_type", None,
                         f"is {types[name]}; the catalog says {v.type}")  # fmt: skip
                ok = False
        return ok

    # ---- values -------------------------------------------------------------------------------
    def values(self, con: Any, rid: str, src: DataSource, dialect: str = "duckdb",
               errors: tuple[type[BaseException], ...] = (duckdb.Error,)) -> None:  # fmt: skip
        """One aggregate query over the register's view (canonical column names)."""
        reg = self.catalog.register(rid)
        assert reg is not None
        checks: list[tuple[Variable | None, str, str, exp.Expression]] = []
        key = _col(reg.person_key)
        checks.append((reg.variable(reg.person_key), "null_id", "person key missing",
                       _count_where(exp.Is(this=key, expression=exp.Null()))))  # fmt: skip
        if reg.kind == "population":
            distinct = exp.Count(this=exp.Distinct(expressions=[key.copy()]))
            dup = exp.Sub(this=exp.Count(this=key.copy()), expression=distinct)
            checks.append((reg.variable(reg.person_key), "duplicate_key",
                           "the same person on several rows (one row per person)", dup))  # fmt: skip
            # the compiler does arithmetic on these (completed months of age): bounded values
            # keep it from failing on some rows only (docs/security.md)
            for name, lo, hi in (("fodelsear", DATE_MIN.year, DATE_MAX.year),
                                 ("fodelsemanad", 1, 12)):  # fmt: skip
                v = reg.variable(name)
                if v is not None:
                    c = _col(name)
                    out = exp.Or(this=exp.LT(this=c, expression=exp.Literal.number(lo)),
                                 expression=exp.GT(this=c.copy(), expression=exp.Literal.number(hi)))  # fmt: skip
                    checks.append((v, "birth_out_of_range", f"values outside {lo}..{hi}",
                                   _count_where(out)))  # fmt: skip
        for v in reg.variables:
            c = _col(v.name)
            if not v.nullable and v.name != reg.person_key:
                checks.append((v, "missing_value", "missing where the catalog says never",
                               _count_where(exp.Is(this=c, expression=exp.Null()))))  # fmt: skip
            if v.type == "date":
                out = exp.Or(this=exp.LT(this=c, expression=_date(DATE_MIN)),
                             expression=exp.GT(this=c.copy(), expression=_date(DATE_MAX)))  # fmt: skip
                checks.append((v, "date_out_of_range",
                               f"dates outside {DATE_MIN}..{DATE_MAX}", _count_where(out)))  # fmt: skip
            if v.code_system in CODE_SYSTEMS and v.type == "varchar":
                lower = exp.NEQ(this=c, expression=exp.Upper(this=c.copy()))
                checks.append((v, "code_case", "codes not in upper case", _count_where(lower)))
                # older rows hold older systems' codes (ICD-9 in npr before 1997)
                one = f"(?:{shapes_regex(v.systems)})"
                pattern = f"^{one}( {one})*$" if v.multi else f"^{one}$"
                bad = exp.And(
                    this=exp.EQ(this=c.copy(), expression=exp.Upper(this=c.copy())),
                    expression=exp.Not(this=exp.RegexpLike(this=c.copy(),
                                                           expression=exp.Literal.string(pattern))),
                )  # fmt: skip
                names = "/".join(dict.fromkeys([v.code_system, *(p.system for p in v.coding)]))
                checks.append((v, "code_shape", f"codes not shaped as {names} codes",
                               _count_where(bad)))  # fmt: skip
                period = self._period_check(reg, v) if self.by_period else None
                if period is not None:
                    checks.append(period)
            if v.values:
                lits = [_value_literal(v, x) for x in v.values]
                outside = exp.Not(this=exp.In(this=c.copy(), expressions=lits))
                checks.append((v, "value_not_allowed", "values outside the catalog's list",
                               _count_where(outside)))  # fmt: skip
        sel = exp.select(*(exp.alias_(e, f"c{i}") for i, (*_, e) in enumerate(checks))).from_(
            exp.to_table(rid, quoted=True)
        )
        try:
            row = con.execute(sel.sql(dialect)).fetchone()
        except errors:  # a page that does not decode, a value that does not convert
            self.add(rid, _describe(src), None, "unreadable", None, "its rows cannot be read")
            return
        assert row is not None
        for (v, kind, message, _), n in zip(checks, row, strict=True):
            if n:
                column = src.column(v.name) if v is not None else None
                self.add(rid, _describe(src), column, kind, int(n), message)

    @staticmethod
    def _date_of(reg: Register, v: Variable) -> str | None:
        """The date column that dates a code column: its event source's, else the register's."""
        for src in reg.provides:
            if v.name in (src.codes, src.main):
                return reg.event_date(src) or None
        return reg.date_column

    def _period_check(
        self, reg: Register, v: Variable
    ) -> tuple[Variable, str, str, exp.Expression] | None:
        """Codes dated in a coding period of `v` not of the shape of that period's system
        (of any period containing the date, where periods overlap); None without periods
        or a date to place the rows in them."""
        date = self._date_of(reg, v)
        if not v.coding or date is None:
            return None
        c, d = _col(v.name), _col(date)

        def within(p: Period) -> exp.Expression:
            conds: list[exp.Expression] = [
                exp.Not(this=exp.Is(this=d.copy(), expression=exp.Null()))
            ]
            if p.start is not None:
                conds.append(exp.GTE(this=d.copy(), expression=_date(p.start)))
            if p.until is not None:
                conds.append(exp.LT(this=d.copy(), expression=_date(p.until)))
            return exp.and_(*conds)

        fits = []
        for p in v.coding:
            one = f"(?:{shapes_regex([p.system])})"
            pattern = f"^{one}( {one})*$" if v.multi else f"^{one}$"
            shaped = exp.RegexpLike(this=c.copy(), expression=exp.Literal.string(pattern))
            fits.append(exp.and_(within(p), shaped))
        dated = exp.or_(*(within(p) for p in v.coding))
        upper = exp.EQ(this=c.copy(), expression=exp.Upper(this=c.copy()))
        bad = exp.and_(dated, upper, exp.Not(this=exp.Paren(this=exp.or_(*fits))))
        spans = ", ".join(f"{p.system} {p.start or '…'}..{p.until or '…'}" for p in v.coding)
        return (v, "code_period", f"codes not of their period's code system ({spans})",
                _count_where(bad))  # fmt: skip

    # ---- the whole installation -----------------------------------------------------------
    def run(self, registers: set[str] | None, required: bool) -> list[Finding]:
        from antal.engine.backends.duckdb import DuckDBBackend

        wanted = set(self.inst.sources) if registers is None else set(registers)
        required_regs = (self.catalog.population, self.catalog.optout) if required else ()
        required = [r for r in required_regs if r is not None]
        for reg in required:
            if reg.kind == "optout" and self.inst.optout == "none":
                continue
            wanted.add(reg.id)
            if reg.id not in self.inst.sources:
                where = "the installation" + (
                    " (add it, or say `optout: none` in its config if this installation keeps no opt-outs)"
                    if reg.kind == "optout" else ""
                )  # fmt: skip
                self.add(reg.id, f"{reg.id}.parquet", None, "missing_file", None,
                         f"is required and not in {where}")  # fmt: skip
        if "postgres" in self.inst.placements:
            return self.run_postgres(wanted)
        backend = DuckDBBackend(self.inst, self.catalog, threads=None)
        try:
            for rid in sorted(wanted):
                src = self.inst.sources.get(rid)
                if src is None or self.catalog.register(rid) is None:
                    continue  # required ones are reported above; unknown files are not registers
                if self.schema(backend.con, rid, src):
                    try:
                        backend.attach({rid})
                    except duckdb.Error:
                        self.add(rid, _describe(src), None, "unreadable", None, "cannot be read")
                        continue
                    if not (self.trust_prepared and src.values_checked):
                        self.values(backend.con, rid, src)
        finally:
            backend.close()
        return self.findings

    def run_postgres(self, wanted: set[str]) -> list[Finding]:
        """The same checks on tables of a PostgreSQL schema (one installation, one engine)."""
        from antal.engine.backends.postgres import PostgresBackend

        assert self.inst.postgres is not None
        backend = PostgresBackend(self.inst, self.catalog, query_seconds=None)
        errors = backend.errors
        try:
            for rid in sorted(wanted):
                src = self.inst.sources.get(rid)
                if src is None or self.catalog.register(rid) is None:
                    continue
                if self.pg_schema(backend.con, self.inst.postgres.schema_, rid, src):
                    try:
                        backend.attach({rid})
                    except errors:
                        self.add(rid, _describe(src), None, "unreadable", None, "cannot be read")
                        continue
                    self.values(backend.con, rid, src, "postgres", errors)
        finally:
            backend.close()
        return self.findings


def check_data(
    installation: Installation,
    catalog: Catalog,
    registers: set[str] | None = None,
    *,
    required: bool = True,
    by_period: bool = False,
    trust_prepared: bool = False,
) -> list[Finding]:
    """Findings about the installation's extracts (empty: the check passes).

    `registers` limits the check to those registers (plus, with `required`, the population
    and, unless the installation keeps none, the opt-outs); by default every register it
    declares. Without `required`, only the registers named are read (a published entry).
    `by_period`: codes are also checked against the system of their date's coding period.
    `trust_prepared`: tables of a prepared file whose values were checked when it was made
    (`antal prepare` checks first; the file cannot change without changing its release id)
    get only the check of their shape; what a count does before it reads, where reading
    every value again would cost more than the count. `antal data check` checks all."""
    return _Checker(installation, catalog, by_period, trust_prepared).run(registers, required)


def format_findings(findings: list[Finding]) -> str:
    """The findings as lines for people: file, column, problem and a count of rows."""
    return "\n".join(str(f) for f in findings)
