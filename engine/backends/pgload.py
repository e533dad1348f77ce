"""`antal load-postgres`: a data release's Parquet extracts copied into tables of one
PostgreSQL schema, where the postgres backend counts on them.

One transaction: a failed load leaves the schema as it was. Each register's table is
made anew with the column types of its Parquet file, filled by COPY (CSV written by
pyarrow, batch by batch, so memory stays bounded), and analysed for the planner. The
schema's table `antal_release` carries the release id of the files (the id they have
read in place and in a prepared file: catalog.installation.data_dir_release), so that an
answer stored on the files is reused on the schema, and the manifest, so that an
installation naming the schema knows its data currency.

Besides the registers, the schema gets the prepared file's layout (engine/ingest.py's
SELECTs, read here from the loaded tables): the population's person table, one row per
person, and a code table per column of codes, one code per row, sorted by code, with a
B-tree index on the code (`COLLATE "C"`, byte order as in DuckDB, so that `LIKE 'E11%'`
is an index range in a database of any locale), listed in the table `antal_code_tables`.
The compiler reads them as it reads a prepared file's (Installation.from_postgres): a code
condition reads a few pages of a narrow sorted table instead of every row of the
register. Each events register also gets a B-tree index on its date, which the plans use
where a condition reads the register itself in a constant window. Which index each plan
uses, and what they cost: docs/placements.md, bench/README.md ("PostgreSQL layout").

The schema is made only when missing: a loader role that owns the schema (and may not
create schemas in the database) can fill it (docs/placements.md, "Roles")."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql
from sqlglot import exp

from antal.catalog import Catalog, Register
from antal.catalog.installation import (
    CODE_TABLES,
    LAYOUT_VERSION,
    MANIFEST,
    META_TABLE,
    _read_manifest,
    data_dir_release,
    person_table_name,
)
from antal.engine.errors import EngineError
from antal.engine.ingest import (
    CodeTableSpec,
    code_table_select,
    code_table_specs,
    code_tables_select,
    person_table_select,
)

__all__ = ["Loaded", "load_postgres"]

_BATCH_ROWS = 64_000  # rows per COPY chunk


@dataclass(frozen=True)
class Loaded:
    schema: str
    release: str
    tables: tuple[str, ...]  # the registers'
    layout: tuple[str, ...] = ()  # the person and code tables made besides them


def _pg_type(t: pa.DataType) -> str:
    """The PostgreSQL type of an Arrow column (the canonical extracts' types and a few more)."""
    for test, name in (
        (pa.types.is_int64, "bigint"), (pa.types.is_int32, "integer"),
        (pa.types.is_int16, "smallint"), (pa.types.is_int8, "smallint"),
        (pa.types.is_float64, "double precision"), (pa.types.is_float32, "real"),
        (pa.types.is_boolean, "boolean"), (pa.types.is_date, "date"),
        (pa.types.is_string, "text"), (pa.types.is_large_string, "text"),
    ):  # fmt: skip
        if test(t):
            return name
    raise EngineError(f"a Parquet column of type {t} has no PostgreSQL type here")


def load_postgres(
    directory: Path | str,
    dsn: str,
    schema: str,
    progress: Callable[[str, float], None] | None = None,
    catalog: Catalog | None = None,
) -> Loaded:
    """Copy the canonical extracts in `directory` into `schema` (made if missing; the
    registers' tables in it replaced), with the person and code tables of the registers
    `catalog` describes (the bundled catalog by default)."""
    d = Path(directory).resolve()
    if not d.is_dir():
        raise FileNotFoundError(f"data directory {d} does not exist")
    files = sorted(d.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet extracts (*.parquet) in {d}")
    if catalog is None:
        from antal.catalog import load_catalog

        catalog = load_catalog()
    manifest = _read_manifest(d / MANIFEST)
    release = data_dir_release(d, manifest.release)
    made: list[str] = []
    with psycopg.connect(dsn) as con, con.transaction():
        # not CREATE SCHEMA IF NOT EXISTS: PostgreSQL checks the right to create schemas in
        # the database before it looks whether the schema exists
        if (
            con.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            is None
        ):
            con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        coded: list[CodeTableSpec] = []
        for path in files:
            present = _load_table(con, schema, path, progress)
            reg = catalog.register(path.stem)
            _date_index(con, schema, reg, present)
            coded += _code_tables(con, schema, reg, present, progress)
            made += _person_table(con, schema, reg, progress)
        made += [s.name for s in coded]
        listing = sql.Identifier(schema, CODE_TABLES)
        con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(listing))
        con.execute(
            sql.SQL("CREATE TABLE {} AS {}").format(
                listing, sql.SQL(code_tables_select(coded).sql("postgres"))
            )
        )
        meta = sql.Identifier(schema, META_TABLE)
        con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(meta))
        con.execute(
            sql.SQL("CREATE TABLE {} (layout integer, release text, manifest text)").format(meta)
        )
        con.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(meta),
            (LAYOUT_VERSION, release, manifest.model_dump_json()),
        )
    # VACUUM cannot run in a transaction: after the commit, each new table's pages get their
    # hint bits and visibility map now, once, instead of by the first counts that read them
    # (each of which would also write every page) and by autovacuum racing those counts
    with psycopg.connect(dsn, autocommit=True) as con:
        for table in [*(p.stem for p in files), *made]:
            con.execute(sql.SQL("VACUUM {}").format(sql.Identifier(schema, table)))
    return Loaded(schema, release, tuple(p.stem for p in files), tuple(made))


def _create_as(
    con: psycopg.Connection,
    schema: str,
    name: str,
    select: str,
    progress: Callable[[str, float], None] | None,
) -> sql.Identifier:
    """A table of the schema made anew from a SELECT (sqlglot's, in PostgreSQL's dialect)."""
    if progress:
        progress(name, 0.0)
    table = sql.Identifier(schema, name)
    con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    con.execute(sql.SQL("CREATE TABLE {} AS {}").format(table, sql.SQL(select)))
    return table


def _code_tables(
    con: psycopg.Connection,
    schema: str,
    reg: Register | None,
    present: frozenset[str],
    progress: Callable[[str, float], None] | None,
) -> list[CodeTableSpec]:
    """The register's code tables (engine/ingest.py's), read from its loaded table, each
    with a B-tree index on its code. A code table of a column this release lacks is
    dropped, not left over from an earlier load."""
    for gone in code_table_specs(reg):
        con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, gone.name)))
    specs = code_table_specs(reg, present)
    for spec in specs:
        select = code_table_select(spec, exp.table_(spec.register, db=schema, quoted=True))
        # byte order, as DuckDB compares: PostgreSQL turns `LIKE 'E11%'` into an index
        # range only on a column of the "C" collation, whatever the database's locale
        code = select.selects[0]
        code.replace(
            exp.alias_(
                exp.Collate(this=code.copy(), expression=exp.to_identifier("C", quoted=True)),
                spec.column,
                quoted=True,
            )
        )
        table = _create_as(con, schema, spec.name, select.sql("postgres"), progress)
        con.execute(sql.SQL("CREATE INDEX ON {} ({})").format(table, sql.Identifier(spec.column)))
        con.execute(sql.SQL("ANALYZE {}").format(table))
        if progress:
            progress(spec.name, 1.0)
    return specs


def _date_index(
    con: psycopg.Connection, schema: str, reg: Register | None, present: frozenset[str]
) -> None:
    """A B-tree index on an events register's date: a condition the compiler reads from
    the register itself (a `where` filter, not codes) reads a constant window (as an index
    date gives) by it. None on the person key: with nested loops off (engine/backends/
    postgres.py) no join looks a person up, and the examples' plans used none."""
    date = reg.date_column if reg is not None and reg.kind == "events" else None
    if reg is None or date is None or date not in present:
        return
    con.execute(
        sql.SQL("CREATE INDEX ON {} ({})").format(
            sql.Identifier(schema, reg.id), sql.Identifier(date)
        )
    )


def _person_table(
    con: psycopg.Connection,
    schema: str,
    reg: Register | None,
    progress: Callable[[str, float], None] | None,
) -> list[str]:
    """The population's person table (engine/ingest.py's). No index: every count reads
    all of it (the population at the index date, or joined by hash to the index events),
    and with nested loops off (engine/backends/postgres.py) no plan looks a person up."""
    if reg is None or reg.kind != "population":
        return []
    name = person_table_name(reg.id)
    select = person_table_select(reg, exp.table_(reg.id, db=schema, quoted=True))
    table = _create_as(con, schema, name, select.sql("postgres"), progress)
    con.execute(sql.SQL("ANALYZE {}").format(table))
    if progress:
        progress(name, 1.0)
    return [name]


def _load_table(
    con: psycopg.Connection,
    schema: str,
    path: Path,
    progress: Callable[[str, float], None] | None,
) -> frozenset[str]:
    """The register's table made anew from its Parquet file; its columns."""
    rid = path.stem
    f = pq.ParquetFile(path)
    arrow = f.schema_arrow
    table = sql.Identifier(schema, rid)
    con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    con.execute(
        sql.SQL("CREATE TABLE {} ({})").format(
            table,
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(fld.name), sql.SQL(_pg_type(fld.type)))
                for fld in arrow
            ),
        )
    )
    columns = sql.SQL(", ").join(sql.Identifier(n) for n in arrow.names)
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(table, columns)
    total = max(1, f.metadata.num_rows)
    done = 0
    # pyarrow quotes every string and leaves a null empty and unquoted: COPY's CSV reads
    # the one as the string (even an empty one) and the other as NULL
    options = pacsv.WriteOptions(include_header=False)
    with con.cursor().copy(copy_sql) as copy:
        for batch in f.iter_batches(batch_size=_BATCH_ROWS):
            buf = io.BytesIO()
            pacsv.write_csv(pa.Table.from_batches([batch]), buf, options)
            copy.write(buf.getvalue())
            done += batch.num_rows
            if progress:
                progress(rid, done / total)
    con.execute(sql.SQL("ANALYZE {}").format(table))
    if progress:
        progress(rid, 1.0)
    return frozenset(arrow.names)
