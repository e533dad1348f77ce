"""`antal prepare`: a data release ingested into one DuckDB file laid out for cohort queries.

Layout version 2 has two kinds of table:

- every register in the SAME shape as its canonical Parquet extract (same table name,
  columns and types), copied in the order it comes (the population and the opt-outs sorted
  by person), so that every cohort the compiler can write runs on it unchanged;
- the population's persons, one row each (`population#person`), every value resolved as
  the compiler resolves duplicated population rows, so the compiler reads it without
  grouping the population by person (the largest step of a date-indexed cohort);
- a *code table* for each column of codes an events register provides (`npr`'s `diagnos`,
  `ekod`, `op` and the main diagnosis `hdia`, `lmr`'s `atc`, ...), named `<register>#<column>`
  (a name no register can have): one code per row, a space-separated list exploded into its
  items, with only the columns an event scan reads (the person, the event's date columns,
  hospital and clinic), sorted by code, person and date. A code condition then reads a few
  row groups of a narrow table: DuckDB turns `code LIKE 'E11%'` into a range and its zone
  maps skip everything else, where on the raw layout it reads every row of every string.
  The compiler scans a code table when the installation has one (`Installation.code_tables`)
  and the raw register otherwise; the answers are the same (tests/test_prepare.py checks
  both against the reference evaluator).

Sorting only the narrow code tables, not the wide registers, is what keeps ingest fast: a
sort carries every column of its rows through memory and spill files.

The file carries its release id in a table `antal_release`: the id of the files it was
made from (catalog.installation.data_dir_release: a hash of each `*.parquet` and the
manifest `release.yaml`, by name and bytes), the same id they have read in place, so an
answer stored on the files is reused on the file. Never of paths or modification times:
copying or touching the files keeps it, and changing one byte of content changes it.

Writing is atomic: the database is built in a temporary file beside the target and renamed
over it only when complete, so a failed or interrupted prepare leaves the previous file
usable. DuckDB's memory limit is set (the sort spills to a temporary directory beside it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from sqlglot import exp

from antal.catalog import Catalog, Register
from antal.catalog.installation import (
    CODE_TABLES,
    LAYOUT_VERSION,
    MANIFEST,
    META_TABLE,
    code_table_name,
    data_dir_release,
    person_table_name,
)
from antal.engine import duckconn
from antal.engine.errors import DataError
from antal.engine.limits import PREPARE_MEMORY

__all__ = [
    "CODE_TABLES",
    "LAYOUT_VERSION",
    "Prepared",
    "code_table_name",
    "code_table_select",
    "code_table_specs",
    "code_tables_select",
    "person_table_select",
    "prepare",
    "sort_keys",
]

_POLL = 0.1  # s between two reads of DuckDB's progress of the running statement

# (register id, fraction done in [0, 1]) for the table being written
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class Prepared:
    path: Path
    release: str
    tables: tuple[str, ...]


def sort_keys(reg: Register | None) -> list[str]:
    """The columns a register's own table is sorted by: the person, for the population and
    the opt-outs (joined by person); events registers keep their order (their code tables
    are the sorted ones)."""
    if reg is None or reg.kind == "events":
        return []
    return [reg.person_key] if reg.person_key in {v.name for v in reg.variables} else []


@dataclass(frozen=True)
class CodeTableSpec:
    """One code table: which column of codes, exploded or not, and the columns it keeps."""

    register: str
    column: str
    multi: bool
    keep: tuple[str, ...]  # person, dates, hospital, clinic: what an event scan reads

    @property
    def name(self) -> str:
        return code_table_name(self.register, self.column)


def code_table_specs(
    reg: Register | None, present: frozenset[str] | None = None
) -> list[CodeTableSpec]:
    """The code tables of a register: one per column of codes its events read, of the
    columns `present` in its file (all the catalog's when not given): a column the release
    lacks has no table, and a cohort that reads it is refused by name (engine.prepare)."""
    if reg is None or reg.kind != "events":
        return []
    names = {v.name for v in reg.variables}
    if present is not None:
        names &= present
    columns: dict[str, bool] = {}  # column -> holds a space-separated list
    dates: dict[str, list[str]] = {}
    for src in reg.provides:
        for col, multi in ((src.codes, src.multi), (src.main, False)):
            if col is None or col not in names:
                continue
            columns[col] = columns.get(col, False) or multi
            d = reg.event_date(src)
            if d and d not in dates.setdefault(col, []):
                dates[col].append(d)
    out = []
    for col, multi in columns.items():
        keep = [reg.person_key, *dates[col], reg.site_column, reg.clinic_column]
        kept = tuple(k for i, k in enumerate(keep) if k and k in names and k not in keep[:i])
        out.append(CodeTableSpec(reg.id, col, multi, tuple(k for k in kept if k != col)))
    return out


def prepare(
    directory: Path | str,
    out: Path | str,
    catalog: Catalog,
    memory_limit: str = PREPARE_MEMORY,
    threads: int | None = None,
    progress: Progress | None = None,
    checked: bool = False,
    release: str | None = None,
) -> Prepared:
    """Ingest the canonical extracts in `directory` into the DuckDB file `out` (replaced
    only once the new one is complete). `checked`: the extracts passed the data check
    (`antal prepare` checks first); recorded in the file, so that a count on it checks
    only its tables' shape, not again every value of a file that cannot have changed.
    `release`: the id to record (a converted delivery's, antal.engine.delivery); by default
    the files' own (as read in place: the same content, the same answers)."""
    from antal.catalog.installation import _read_manifest

    d = Path(directory).resolve()
    if not d.is_dir():
        raise FileNotFoundError(f"data directory {d} does not exist")
    files = sorted(d.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet extracts (*.parquet) in {d}")
    target = Path(out).resolve()
    if target.suffix != ".duckdb":
        raise ValueError(f"{target}: the prepared file's name must end in .duckdb")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"directory {target.parent} does not exist")
    manifest = _read_manifest(d / MANIFEST)
    release = release or data_dir_release(d, manifest.release)

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    spill = target.with_name(f".{target.name}.{os.getpid()}.spill")
    config: dict[str, str | int] = {"memory_limit": memory_limit, "temp_directory": str(spill)}
    if threads:
        config["threads"] = int(threads)
    # the order of rows is the point of the layout: keep it through the insert
    config["preserve_insertion_order"] = True
    try:
        with contextlib.closing(duckconn.connect(str(tmp), config=config)) as con:
            made: list[CodeTableSpec] = []
            for p in files:
                reg = catalog.register(p.stem)
                try:
                    _run(con, p.stem, _copy_sql(p.stem, p, sort_keys(reg)), progress)
                    present = frozenset(pq.read_schema(p).names)
                    for spec in code_table_specs(reg, present):
                        select = code_table_select(spec, _parquet(p))
                        _run(con, spec.name, _create(spec.name, select), progress)
                        made.append(spec)
                    if reg is not None and reg.kind == "population":
                        name = person_table_name(reg.id)
                        select = person_table_select(reg, _parquet(p))
                        _run(con, name, _create(name, select), progress)
                except duckdb.Error:  # its message may quote a value from the data: not shown
                    raise DataError(
                        f"{p.name} could not be read into the prepared file (nothing was "
                        "replaced); `antal data check` says why"
                    ) from None
            con.execute(_create(CODE_TABLES, code_tables_select(made)))
            meta = exp.Create(
                this=exp.to_table(META_TABLE, quoted=True),
                kind="TABLE",
                expression=exp.select(
                    exp.alias_(exp.Literal.number(LAYOUT_VERSION), "layout"),
                    exp.alias_(exp.Literal.string(release), "release"),
                    exp.alias_(
                        exp.Literal.string(manifest.model_dump_json(exclude_none=True)),
                        "manifest",
                    ),
                    exp.alias_(exp.Boolean(this=checked), "checked"),
                ),
            )
            con.execute(meta.sql("duckdb"))
            con.execute("CHECKPOINT")
        os.replace(tmp, target)  # atomic on one file system: the old file until here
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
    return Prepared(target, release, tuple(p.stem for p in files))


def _parquet(path: Path) -> exp.Expression:
    return exp.func("read_parquet", exp.Literal.string(str(path)))


def _create(name: str, select: exp.Expression) -> str:
    return exp.Create(this=exp.to_table(name, quoted=True), kind="TABLE", expression=select).sql(
        "duckdb"
    )


def _copy_sql(rid: str, path: Path, keys: list[str]) -> str:
    select = exp.select(exp.Star()).from_(_parquet(path))
    if keys:
        select = select.order_by(*(exp.column(k, quoted=True) for k in keys))
    return _create(rid, select)


def code_table_select(spec: CodeTableSpec, source: exp.Expression) -> exp.Select:
    """The rows of a code table read from its register's rows in `source` (its Parquet
    file here, its table in a PostgreSQL schema: engine/backends/pgload.py): one code per
    row (a list split at its spaces, as the raw layout's LIKE patterns read it), the kept
    columns, sorted by code, person, date. Rows without a code can match no code condition
    and are left out."""
    code = exp.column(spec.column, quoted=True)
    if spec.multi:
        # STRING_TO_ARRAY: DuckDB's alias of string_split, and PostgreSQL's own name
        split = exp.StringToArray(this=code, expression=exp.Literal.string(" "))
        item: exp.Expression = exp.Unnest(expressions=[split])
    else:
        item = code.copy()
    inner = (
        exp.select(
            exp.alias_(item, spec.column, quoted=True),
            *(exp.column(k, quoted=True) for k in spec.keep),
        )
        .from_(source)
        .where(code.copy().is_(exp.null()).not_())
    )
    first_date = spec.keep[1:2]
    return (
        exp.select(*(exp.column(c, quoted=True) for c in (spec.column, *spec.keep)))
        .from_(inner.subquery("t"))
        .where(
            exp.NEQ(this=exp.column(spec.column, quoted=True), expression=exp.Literal.string(""))
        )
        .order_by(*(exp.column(c, quoted=True) for c in (spec.column, spec.keep[0], *first_date)))
    )


def person_table_select(reg: Register, source: exp.Expression) -> exp.Select:
    """The population's persons read from its rows in `source` (as `code_table_select`),
    one row each, ordered by person: each value the one the person's rows agree on
    (missing values aside), else unknown, exactly as the compiler resolves a population
    extract with duplicated rows (engine/compiler.py, `_person_value`), so that a count
    never depends on the layout. Rows without a person key are nobody and are left out."""
    key = exp.column(reg.person_key, quoted=True)
    cols: list[exp.Expression] = [key.copy()]
    for v in reg.variables:
        if v.name == reg.person_key:
            continue
        c = exp.column(v.name, quoted=True)
        lo, hi = exp.Min(this=c), exp.Max(this=c.copy())
        cols.append(
            exp.alias_(
                exp.Case(ifs=[exp.If(this=exp.EQ(this=lo, expression=hi), true=lo.copy())]),
                v.name,
                quoted=True,
            )
        )
    return (
        exp.select(*cols)
        .from_(source)
        .where(key.copy().is_(exp.null()).not_())
        .group_by(key.copy())
        .order_by(key.copy())
    )


def code_tables_select(specs: list[CodeTableSpec]) -> exp.Select:
    """The rows of the table `antal_code_tables`: which code table holds which register's
    column (a prepared file's, and a PostgreSQL schema's)."""
    rows = [
        exp.Tuple(
            expressions=[
                exp.Literal.string(s.register),
                exp.Literal.string(s.column),
                exp.Literal.string(s.name),
            ]
        )
        for s in specs
    ]
    cols = ["register", "column", "table"]
    if not rows:
        return exp.select(
            *(exp.alias_(exp.cast(exp.null(), "VARCHAR"), c, quoted=True) for c in cols)
        ).where(exp.false())
    return exp.select(exp.Star()).from_(
        exp.Values(
            expressions=rows,
            alias=exp.TableAlias(
                this=exp.to_identifier("v"),
                columns=[exp.to_identifier(c, quoted=True) for c in cols],
            ),
        )
    )


def _run(con: duckdb.DuckDBPyConnection, name: str, sql: str, progress: Progress | None) -> None:
    """Run one CREATE TABLE, reporting DuckDB's progress of it under `name`."""
    if progress is None:
        con.execute(sql)
        return
    progress(name, 0.0)
    cur = con.cursor()
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            cur.execute(sql)
        except BaseException as e:  # re-raised in the caller's thread
            failure.append(e)
        finally:
            done.set()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        while not done.wait(_POLL):
            pct = cur.query_progress()
            if pct >= 0:
                progress(name, min(pct, 100.0) / 100.0)
    except BaseException:  # Ctrl-C: stop the statement, then let the caller clean up
        cur.interrupt()
        raise
    finally:
        worker.join()
        cur.close()
    if failure:
        raise failure[0]
    progress(name, 1.0)
