"""`antal prepare`: a data release ingested into one DuckDB file laid out for cohort queries.

Layout version 1 keeps every register in the SAME shape as the canonical Parquet extract
(same tables, columns and types), so the compiler runs on it unchanged; what changes is the
physical order: each events register is sorted by the column holding its codes (the first
event it provides: `npr` by `diagnos`, `lmr` by `atc`), then by person and date, so that
DuckDB's zone maps skip the row groups a code condition cannot match; the population and
the opt-outs are sorted by person. (One code per row, precomputed months of birth and the
compiler's own event scan for them are a later layout version.)

The file carries its release id in a table `antal_release`: a hash of the source files'
bytes (each `*.parquet` and the manifest `release.yaml`, by name) and of the layout
version, never of paths or modification times, so copying or touching the files keeps it
and changing one byte of content changes it.

Writing is atomic: the database is built in a temporary file beside the target and renamed
over it only when complete, so a failed or interrupted prepare leaves the previous file
usable. DuckDB's memory limit is set (the sort spills to a temporary directory beside it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
from sqlglot import exp

from antal.catalog import Catalog, Register
from antal.catalog.installation import LAYOUT_VERSION, MANIFEST, META_TABLE
from antal.engine.errors import DataError
from antal.engine.limits import PREPARE_MEMORY

__all__ = ["LAYOUT_VERSION", "Prepared", "content_release", "prepare", "sort_keys"]

_POLL = 0.1  # s between two reads of DuckDB's progress of the running statement
_CHUNK = 1 << 20  # bytes read at a time while hashing

# (register id, fraction done in [0, 1]) for the table being written
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class Prepared:
    path: Path
    release: str
    tables: tuple[str, ...]


def content_release(directory: Path, manifest_release: str | None = None) -> str:
    """The release id of the files in `directory`: their names and bytes, the layout version.
    A manifest's own release name, when there is one, is kept in front, for people."""
    h = hashlib.sha256(f"antal-prepared-layout:{LAYOUT_VERSION};".encode())
    files = sorted(directory.glob("*.parquet"))
    if (directory / MANIFEST).is_file():
        files.append(directory / MANIFEST)
    for p in files:
        h.update(f"{p.name}:{p.stat().st_size};".encode())
        with p.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    digest = h.hexdigest()[:16]
    return f"{manifest_release}-{digest}" if manifest_release else f"prepared-{digest}"


def sort_keys(reg: Register | None) -> list[str]:
    """The columns a register's table is sorted by: codes first for events, then person."""
    if reg is None:
        return []
    keys: list[str] = []
    if reg.kind == "events" and reg.provides:
        keys.append(reg.provides[0].codes)
    keys.append(reg.person_key)
    if reg.kind == "events" and reg.date_column:
        keys.append(reg.date_column)
    names = {v.name for v in reg.variables}
    return [k for i, k in enumerate(keys) if k in names and k not in keys[:i]]


def prepare(
    directory: Path | str,
    out: Path | str,
    catalog: Catalog,
    memory_limit: str = PREPARE_MEMORY,
    threads: int | None = None,
    progress: Progress | None = None,
) -> Prepared:
    """Ingest the canonical extracts in `directory` into the DuckDB file `out` (replaced
    only once the new one is complete)."""
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
    release = content_release(d, manifest.release)

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    spill = target.with_name(f".{target.name}.{os.getpid()}.spill")
    config: dict[str, str | int] = {"memory_limit": memory_limit, "temp_directory": str(spill)}
    if threads:
        config["threads"] = int(threads)
    # the order of rows is the point of the layout: keep it through the insert
    config["preserve_insertion_order"] = True
    try:
        with contextlib.closing(duckdb.connect(str(tmp), config=config)) as con:
            for p in files:
                try:
                    _copy(con, p.stem, p, sort_keys(catalog.register(p.stem)), progress)
                except duckdb.Error:  # its message may quote a value from the data: not shown
                    raise DataError(
                        f"{p.name} could not be read into the prepared file (nothing was "
                        "replaced); `antal data check` says why"
                    ) from None
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


def _copy(
    con: duckdb.DuckDBPyConnection, rid: str, path: Path, keys: list[str], progress: Progress | None
) -> None:
    select = exp.select(exp.Star()).from_(exp.func("read_parquet", exp.Literal.string(str(path))))
    if keys:
        select = select.order_by(*(exp.column(k, quoted=True) for k in keys))
    create = exp.Create(this=exp.to_table(rid, quoted=True), kind="TABLE", expression=select)
    sql = create.sql("duckdb")
    if progress is None:
        con.execute(sql)
        return
    progress(rid, 0.0)
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
                progress(rid, min(pct, 100.0) / 100.0)
    except BaseException:  # Ctrl-C: stop the statement, then let the caller clean up
        cur.interrupt()
        raise
    finally:
        worker.join()
        cur.close()
    if failure:
        raise failure[0]
    progress(rid, 1.0)
