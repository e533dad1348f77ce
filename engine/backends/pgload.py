"""`antal load-postgres`: a data release's Parquet extracts copied into tables of one
PostgreSQL schema, where the postgres backend counts on them.

One transaction: a failed load leaves the schema as it was. Each register's table is
made anew with the column types of its Parquet file, filled by COPY (CSV written by
pyarrow, batch by batch, so memory stays bounded), and analysed for the planner. The
schema's table `antal_release` carries the release id of the files (the id they have
read in place and in a prepared file: catalog.installation.data_dir_release), so that an
answer stored on the files is reused on the schema, and the manifest, so that an
installation naming the schema knows its data currency.

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

from antal.catalog.installation import (
    LAYOUT_VERSION,
    MANIFEST,
    META_TABLE,
    _read_manifest,
    data_dir_release,
)
from antal.engine.errors import EngineError

__all__ = ["Loaded", "load_postgres"]

_BATCH_ROWS = 64_000  # rows per COPY chunk


@dataclass(frozen=True)
class Loaded:
    schema: str
    release: str
    tables: tuple[str, ...]


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
) -> Loaded:
    """Copy the canonical extracts in `directory` into `schema` (made if missing; the
    registers' tables in it replaced)."""
    d = Path(directory).resolve()
    if not d.is_dir():
        raise FileNotFoundError(f"data directory {d} does not exist")
    files = sorted(d.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet extracts (*.parquet) in {d}")
    manifest = _read_manifest(d / MANIFEST)
    release = data_dir_release(d, manifest.release)
    with psycopg.connect(dsn) as con, con.transaction():
        # not CREATE SCHEMA IF NOT EXISTS: PostgreSQL checks the right to create schemas in
        # the database before it looks whether the schema exists
        if (
            con.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            is None
        ):
            con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for path in files:
            _load_table(con, schema, path, progress)
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
        for path in files:
            con.execute(sql.SQL("VACUUM {}").format(sql.Identifier(schema, path.stem)))
    return Loaded(schema, release, tuple(p.stem for p in files))


def _load_table(
    con: psycopg.Connection,
    schema: str,
    path: Path,
    progress: Callable[[str, float], None] | None,
) -> None:
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
