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

import dataclasses
import glob
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

from antal.catalog import Catalog, DataSource, Installation, Period, Register, Variable
from antal.catalog.vocabulary import CODE_SYSTEMS
from antal.engine import duckconn
from antal.engine.codes import shapes_regex
from antal.engine.errors import InternalError
from antal.engine.limits import DATE_MAX, DATE_MIN

__all__ = [
    "Finding",
    "check_data",
    "failures",
    "format_findings",
    "missing_columns",
    "present_columns",
    "row_checks",
    "tolerated_nulls",
]


@dataclass(frozen=True)
class Finding:
    """One problem with an extract. `count` is a number of rows (None: not about rows).
    A `note` does not fail the check: a column the catalog lists but does not require
    (only a cohort reading it is refused), or malformed rows within the installation's
    `tolerate` (they are read as missing values, see `tolerated_nulls`)."""

    register: str
    file: str
    column: str | None
    kind: str
    count: int | None
    message: str
    note: bool = False

    def __str__(self) -> str:
        where = self.file + (f": column {self.column!r}" if self.column else "")
        rows = "" if self.count is None else f" ({self.count} row{'s' * (self.count != 1)})"
        return f"{'note: ' if self.note else ''}{self.register}: {where}: {self.message}{rows}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


_Check = tuple[str, str, exp.Expression]  # kind, message, the condition of a bad row


def row_checks(reg: Register, v: Variable, by_period: bool = False) -> list[_Check]:
    """The checks of one column's rows, each a condition TRUE on a row that fails it (over
    the register's view, canonical names). The data check counts such rows; a count on an
    installation that tolerates some in a column reads that column's value as missing on
    them (`tolerated_nulls`). The person key's missing values and duplicates are the
    register's checks (`_Checker.values`), not these."""
    c = _col(v.name)
    checks: list[_Check] = []
    if reg.kind == "population":
        # the compiler does arithmetic on these (completed months of age): bounded values
        # keep it from failing on some rows only (docs/security.md)
        bounds = {"fodelsear": (DATE_MIN.year, DATE_MAX.year), "fodelsemanad": (1, 12)}
        if v.name in bounds:
            lo, hi = bounds[v.name]
            out = exp.Or(this=exp.LT(this=c, expression=exp.Literal.number(lo)),
                         expression=exp.GT(this=c.copy(), expression=exp.Literal.number(hi)))  # fmt: skip
            checks.append(("birth_out_of_range", f"values outside {lo}..{hi}", out))
    if not v.nullable and v.name != reg.person_key:
        checks.append(("missing_value", "missing where the catalog says never",
                       exp.Is(this=c.copy(), expression=exp.Null())))  # fmt: skip
    if v.type == "date":
        out = exp.Or(this=exp.LT(this=c.copy(), expression=_date(DATE_MIN)),
                     expression=exp.GT(this=c.copy(), expression=_date(DATE_MAX)))  # fmt: skip
        checks.append(("date_out_of_range", f"dates outside {DATE_MIN}..{DATE_MAX}", out))
    if v.code_system in CODE_SYSTEMS and v.type == "varchar":
        lower = exp.NEQ(this=c.copy(), expression=exp.Upper(this=c.copy()))
        checks.append(("code_case", "codes not in upper case", lower))
        # older rows hold older systems' codes (ICD-9 in npr before 1997)
        one = f"(?:{shapes_regex(v.systems)})"
        pattern = f"^{one}( {one})*$" if v.multi else f"^{one}$"
        bad = exp.And(
            this=exp.EQ(this=c.copy(), expression=exp.Upper(this=c.copy())),
            expression=exp.Not(this=exp.RegexpLike(this=c.copy(),
                                                   expression=exp.Literal.string(pattern))),
        )  # fmt: skip
        names = "/".join(dict.fromkeys([v.code_system, *(p.system for p in v.coding)]))
        checks.append(("code_shape", f"codes not shaped as {names} codes", bad))
        period = _period_check(reg, v) if by_period else None
        if period is not None:
            checks.append(period)
        for holds in [src.holds for src in reg.provides if src.codes == v.name and src.holds]:
            # an event reads the column only for codes starting so (engine/check.py)
            start = "(?:" + "|".join(re.escape(h) for h in holds) + r")\S*"
            within = f"^{start}( {start})*$" if v.multi else f"^{start}$"
            outside = exp.Not(this=exp.RegexpLike(this=c.copy(),
                                                  expression=exp.Literal.string(within)))  # fmt: skip
            checks.append(("code_range", f"codes not starting with {'/'.join(holds)}", outside))
    if v.values:
        lits = [_value_literal(v, x) for x in v.values]
        outside = exp.Not(this=exp.In(this=c.copy(), expressions=lits))
        checks.append(("value_not_allowed", "values outside the catalog's list", outside))
    return checks


def _date_of(reg: Register, v: Variable) -> str | None:
    """The date column that dates a code column: its event source's, else the register's."""
    for src in reg.provides:
        if v.name in (src.codes, src.main):
            return reg.event_date(src) or None
    return reg.date_column


def _period_check(reg: Register, v: Variable) -> _Check | None:
    """Codes dated in a coding period of `v` not of the shape of that period's system
    (of any period containing the date, where periods overlap); None without periods
    or a date to place the rows in them."""
    date = _date_of(reg, v)
    if not v.coding or date is None:
        return None
    c, d = _col(v.name), _col(date)

    def within(p: Period) -> exp.Expression:
        conds: list[exp.Expression] = [exp.Not(this=exp.Is(this=d.copy(), expression=exp.Null()))]
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
    return ("code_period", f"codes not of their period's code system ({spans})", bad)


# The kinds of malformed rows an installation may tolerate in a column (`tolerate`): a
# value of the wrong shape or out of range, read as missing. Not a missing file, column
# or type, and not the register's own checks (person keys missing or duplicated).
TOLERABLE = frozenset({"birth_out_of_range", "missing_value", "date_out_of_range", "code_case",
                       "code_shape", "code_period", "code_range", "value_not_allowed"})  # fmt: skip


def tolerated_nulls(installation: Installation, catalog: Catalog, rid: str,
                    present: set[str] | frozenset[str]) -> dict[str, exp.Expression]:  # fmt: skip
    """Canonical column -> the condition of its malformed rows, for each column of `rid`
    the installation tolerates malformed rows in (`tolerate`) and its files have: the
    view a count reads has the value missing (NULL) on those rows, so a tolerated row
    matches no code, no date, no filter value (docs/configuration.md). The same
    conditions the data check counts (`row_checks`, without the coding periods, which
    only a published entry is checked against)."""
    reg = catalog.register(rid)
    out: dict[str, exp.Expression] = {}
    if reg is None:
        return out
    for v in reg.variables:
        if f"{rid}.{v.name}" in installation.tolerate and v.name in present:
            bad = [cond for kind, _m, cond in row_checks(reg, v) if kind in TOLERABLE]
            if bad:
                out[v.name] = exp.or_(*bad)
    return out


# The columns of each file read, by what tells its content without reading it (path,
# device, inode, size, modification time; with the table of a DuckDB file): a count checks
# the columns it reads (`missing_columns`), and opening DuckDB to read a file's schema cost
# the service more than the rest of a stored answer. A file replaced or rewritten has
# another key and is read again. A DuckDB view is not kept: its columns are its sources'
# (files elsewhere, which may change while the DuckDB file does not).
_COLUMNS: dict[tuple[Any, ...], frozenset[str]] = {}
_COLUMNS_MAX = 4_096  # keys (a file each): emptied when full


def _content_keys(src: DataSource) -> list[tuple[Any, ...]]:
    """The key of each file a source reads (as `_files` finds them: the regular files its
    path or pattern names), one `stat` each: a count asks this on every ask."""
    if src.duckdb:
        names = [src.duckdb]
    else:
        pattern = src.parquet or ""
        names = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    keys = []
    for name in names:
        try:
            st = os.stat(name) if name else None
        except OSError:
            continue
        if st is not None and stat.S_ISREG(st.st_mode):
            keys.append((name, src.table if src.duckdb else None, st.st_dev, st.st_ino,
                         st.st_size, st.st_mtime_ns))  # fmt: skip
    return keys


def _is_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether `table` of the DuckDB file attached as `present` is a table (not a view)."""
    found = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = 'present' AND table_name = ?",
        [table],
    ).fetchone()
    return found is not None


def present_columns(src: DataSource) -> frozenset[str] | None:
    """The columns (as named in the files) every file of a source has; None where that
    cannot be told here (a PostgreSQL table, a file that cannot be read: the data check
    reports those)."""
    keys = _content_keys(src)
    if not keys:
        return None
    known = [_COLUMNS.get(k) for k in keys]
    if all(c is not None for c in known):
        return frozenset.intersection(*known)  # type: ignore[arg-type]
    con = duckconn.connect()
    try:
        found: frozenset[str] | None = None
        for key in keys:
            f = Path(key[0])
            if src.duckdb:
                alias = "present"
                con.execute(exp.Attach(this=exp.alias_(exp.Literal.string(str(f)), alias),
                                       expressions=[exp.AttachOption(this=exp.var("READ_ONLY"))]
                                       ).sql("duckdb"))  # fmt: skip
                source: exp.Expression = exp.table_(src.table or "", db=alias, quoted=True)
            else:
                source = exp.func("read_parquet", exp.Literal.string(str(f)))
            names = frozenset(
                con.sql(exp.select(exp.Star()).from_(source).limit(0).sql("duckdb")).columns
            )
            if not src.duckdb or _is_table(con, src.table or ""):
                if len(_COLUMNS) >= _COLUMNS_MAX:
                    _COLUMNS.clear()
                _COLUMNS[key] = names
            found = names if found is None else found & names
        return found
    except duckdb.Error:
        return None
    finally:
        con.close()


def missing_columns(installation: Installation, catalog: Catalog,
                    read: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:  # fmt: skip
    """(register, column as named in its files, file) for each column a statement reads
    (`read`: register, canonical column) that the installation's files lack. A file's name
    only, never its directory: the message reaches researchers of a service."""
    by_register: dict[str, set[str]] = {}
    for rid, col in read:
        by_register.setdefault(rid, set()).add(col)
    out = []
    for rid in sorted(by_register):
        src = installation.sources.get(rid)
        have = present_columns(src) if src is not None else None
        if src is None or have is None:
            continue  # a register not held is MissingRegisterError; unreadable: the check's
        for col in sorted(by_register[rid]):
            if src.column(col) not in have:
                where = Path(src.duckdb or src.parquet or "").name
                out.append(
                    (
                        rid,
                        src.column(col),
                        where + (f" (table {src.table})" if src.duckdb and src.table else ""),
                    )
                )
    return out


_STORED_FILE = "data-checks.json"
_STORED_MAX = 2_000  # entries (a register of a release each): a cache that only grows is slow


def _files(src: DataSource) -> list[Path]:
    """The files a source reads (none for a PostgreSQL table)."""
    if src.duckdb:
        return [Path(src.duckdb)] if Path(src.duckdb).is_file() else []
    pattern = src.parquet or ""
    names = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    return [Path(f) for f in names if f and Path(f).is_file()]


class _StoredChecks:
    """The findings of value checks already run, in antal's cache directory
    (catalog/usercache.py), keyed by the content digests of the files checked
    (catalog/release.py: the same digests a data release id is made of) and the check's
    query: a changed file, a changed catalog entry or column mapping, or a changed check
    is checked again. Each entry holds, per failing check, its column, kind, message and
    number of rows: never a value. Where the cache cannot be written, every count checks."""

    def __init__(self) -> None:
        from antal.catalog.usercache import cache_dir

        where = cache_dir()
        self.path = where / _STORED_FILE if where is not None else None
        self.data: dict[str, Any] = {}
        self.changed = False
        if self.path is not None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.data = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self.data = {}

    def key(self, src: DataSource, query: str) -> str | None:
        from antal.catalog.release import content_release

        files = _files(src)
        if not files:
            return None
        what = json.dumps([content_release(files, "check"), src.table,
                           sorted(src.columns.items()), query])  # fmt: skip
        return hashlib.sha256(what.encode()).hexdigest()

    def get(self, key: str, rid: str, src: DataSource) -> list[Finding] | None:
        rows = self.data.get(key)
        if not isinstance(rows, list):
            return None
        try:
            return [Finding(rid, _describe(src), r["column"], r["kind"], int(r["count"]),
                            str(r["message"])) for r in rows]  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None  # damaged: checked again

    def put(self, key: str, found: list[Finding]) -> None:
        self.data.pop(key, None)
        self.data[key] = [{"column": f.column, "kind": f.kind, "count": f.count,
                           "message": f.message} for f in found]  # fmt: skip
        self.changed = True

    def save(self) -> None:
        if self.changed and self.path is not None:
            from antal.catalog.usercache import write_atomic

            kept = dict(list(self.data.items())[-_STORED_MAX:])
            write_atomic(self.path, json.dumps(kept).encode())


class _Checker:
    def __init__(
        self,
        installation: Installation,
        catalog: Catalog,
        by_period: bool = False,
        trust_prepared: bool = False,
        refresh: bool = False,
    ) -> None:
        self.inst = installation
        self.catalog = catalog
        self.by_period = by_period
        self.trust_prepared = trust_prepared
        self.findings: list[Finding] = []
        self.absent: dict[str, set[str]] = {}  # register -> optional columns its files lack
        self.refresh = refresh
        self.stored = _StoredChecks()

    def add(self, reg: str, file: str, column: str | None, kind: str, count: int | None,
            message: str, note: bool = False) -> None:  # fmt: skip
        self.findings.append(Finding(reg, file, column, kind, count, message, note))

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
            if name not in types and v.name in reg.required_columns:
                self.add(rid, file, name, "missing_column", None, "is missing")
                ok = False
            elif name not in types:  # a count that reads it is refused (engine.prepare)
                self.absent.setdefault(rid, set()).add(v.name)
                self.add(rid, file, name, "absent_column", None,
                         "is missing: only a cohort that reads it is refused", note=True)  # fmt: skip
            elif not _type_ok(v.type, types[name]):
                self.add(rid, file, name, "wrong_type", None,
                         f"is {types[name]}; the catalog says {v.type}")  # fmt: skip
                ok = False
        return ok

    # ---- values -------------------------------------------------------------------------------
    def value_query(self, rid: str) -> tuple[list[tuple[Variable | None, str, str]], exp.Select]:
        """The checks of a register's values, and the one aggregate query counting the rows
        failing each (over the register's view, canonical column names)."""
        reg = self.catalog.register(rid)
        assert reg is not None
        absent = self.absent.get(rid, set())
        checks: list[tuple[Variable | None, str, str, exp.Expression]] = []
        key = _col(reg.person_key)
        checks.append((reg.variable(reg.person_key), "null_id", "person key missing",
                       _count_where(exp.Is(this=key, expression=exp.Null()))))  # fmt: skip
        if reg.kind == "population":
            distinct = exp.Count(this=exp.Distinct(expressions=[key.copy()]))
            dup = exp.Sub(this=exp.Count(this=key.copy()), expression=distinct)
            checks.append((reg.variable(reg.person_key), "duplicate_key",
                           "the same person on several rows (one row per person)", dup))  # fmt: skip
        for v in reg.variables:
            if v.name not in absent:
                checks += [(v, kind, message, _count_where(bad))
                           for kind, message, bad in row_checks(reg, v, self.by_period)]  # fmt: skip
        sel = exp.select(*(exp.alias_(e, f"c{i}") for i, (*_, e) in enumerate(checks))).from_(
            exp.to_table(rid, quoted=True)
        )
        return [c[:3] for c in checks], sel

    def values(self, con: Any, rid: str, src: DataSource, dialect: str = "duckdb",
               errors: tuple[type[BaseException], ...] = (duckdb.Error,)) -> None:  # fmt: skip
        """Run the register's value query; a finding per check some rows fail."""
        checks, sel = self.value_query(rid)
        try:
            row = con.execute(sel.sql(dialect)).fetchone()
        except errors:  # a page that does not decode, a value that does not convert
            self.add(rid, _describe(src), None, "unreadable", None, "its rows cannot be read")
            return
        assert row is not None
        for (v, kind, message), n in zip(checks, row, strict=True):
            if n:
                column = src.column(v.name) if v is not None else None
                self.add(rid, _describe(src), column, kind, int(n), message)

    def stored_values(self, con: Any, rid: str, src: DataSource) -> None:
        """`values`, or its findings stored for exactly these files and this query: a
        release's values are read once, not on every count (`_StoredChecks`)."""
        key = self.stored.key(src, self.value_query(rid)[1].sql("duckdb"))
        found = self.stored.get(key, rid, src) if (key and not self.refresh) else None
        if found is None:
            before = len(self.findings)
            self.values(con, rid, src)
            found = self.findings[before:]
            del self.findings[before:]
            if key is not None and not any(f.kind == "unreadable" for f in found):
                self.stored.put(key, found)
        self.findings += [self.tolerated(rid, src, f) for f in found]

    def tolerated(self, rid: str, src: DataSource, f: Finding) -> Finding:
        """A finding of malformed rows within the installation's `tolerate` for its column
        becomes a note (the count reads the value as missing on those rows); above it, the
        finding says how many were tolerated."""
        if f.kind not in TOLERABLE or f.column is None or f.count is None:
            return f
        canonical = {src.column(c): c for c in src.columns}.get(f.column, f.column)
        n = self.inst.tolerate.get(f"{rid}.{canonical}")
        if n is None:
            return f
        if f.count <= n:
            return dataclasses.replace(
                f, note=True, message=f"{f.message}; tolerated (at most {n}): read as missing"
            )
        return dataclasses.replace(f, message=f"{f.message}; more than the {n} tolerated")

    def tolerate_names(self) -> None:
        """Every `tolerate` entry names a column of the catalog (a misspelt one tolerates
        nothing, and would hide that behind a config that looks right)."""
        for name in sorted(self.inst.tolerate):
            rid, _, col = name.partition(".")
            reg = self.catalog.register(rid)
            if reg is None or reg.variable(col) is None:
                self.add(rid, "the installation's config", None, "tolerate_unknown", None,
                         f"`tolerate` names {name!r}, which is no register.column of the catalog")  # fmt: skip

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
        self.tolerate_names()
        if "postgres" in self.inst.placements:
            return self.run_postgres(wanted)
        # the files as they are: the view a count reads has tolerated values as missing
        backend = DuckDBBackend(self.inst, self.catalog, threads=None, tolerate=False)
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
                        self.stored_values(backend.con, rid, src)
        finally:
            backend.close()
            self.stored.save()
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
    refresh: bool = False,
) -> list[Finding]:
    """Findings about the installation's extracts (empty: the check passes).

    `registers` limits the check to those registers (plus, with `required`, the population
    and, unless the installation keeps none, the opt-outs); by default every register it
    declares. Without `required`, only the registers named are read (a published entry).
    `by_period`: codes are also checked against the system of their date's coding period.
    `trust_prepared`: tables of a prepared file whose values were checked when it was made
    (`antal prepare` checks first; the file cannot change without changing its release id)
    get only the check of their shape; what a count does before it reads, where reading
    every value again would cost more than the count. `antal data check` checks all.

    The values of files read in place are checked once per content: the findings are
    stored by the files' content digests and the check's query (`_StoredChecks`) and
    reused until either changes; `refresh` checks them again (`antal data check`).
    Findings with `note` set do not fail the check."""
    checker = _Checker(installation, catalog, by_period, trust_prepared, refresh)
    return checker.run(registers, required)


def failures(findings: list[Finding]) -> list[Finding]:
    """The findings that fail the check (not notes)."""
    return [f for f in findings if not f.note]


def format_findings(findings: list[Finding]) -> str:
    """The findings as lines for people: file, column, problem and a count of rows."""
    return "\n".join(str(f) for f in findings)
