"""The PostgreSQL layout of `antal load-postgres` (person table, code tables, indexes):
its load time, the disk each table and its indexes take, and the examples' count times
with the layout and without it.

    python -m bench.pglayout --data /tmp/pg1m --dsn postgresql://postgres@127.0.0.1:55431/postgres \\
        --schema pg1m --before pg1m_before --load --repeat 5

`--before` names a schema of the same files loaded by an antal without the layout (the
registers' tables alone, no index): the counts "before" run there. Without it they run on
`--schema` with its person and code tables left out (its registers' indexes kept).

`--load` loads `--data` into `--schema` first, timing each table `load_postgres` reports
(a register's COPY and ANALYZE, and each person or code table it makes), the rest (the
registers' date indexes, the listing tables, the commit and the VACUUM) as one remainder.
Then the sizes of every table of the schema (pg_table_size, pg_indexes_size,
pg_total_relation_size), and the indexes each example's plan reads (EXPLAIN). Then every
example on one postgres backend per layout (before and with the layout), interleaved,
median of `--repeat` after one warm-up each. The two answers and DuckDB's on the Parquet
files of `--data` must be equal (counts and every cell), or the run stops. Prints
markdown for bench/README.md ("PostgreSQL layout").
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg

from antal import engine
from antal.catalog import Installation, PostgresPlacement, load_catalog
from antal.engine.backends import get_backend
from antal.engine.backends.pgload import load_postgres

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_INDEX = re.compile(r'(?:Index Scan|Index Only Scan|Bitmap Index Scan) (?:using |on )"?([^" ]+)"?')

__all__ = ["main"]


def load(data: Path, dsn: str, schema: str) -> None:
    """Load, printing the seconds of each table the loader reports and of the rest."""
    started: dict[str, float] = {}
    took: dict[str, float] = {}

    def progress(name: str, frac: float) -> None:
        now = time.perf_counter()
        started.setdefault(name, now)
        if frac >= 1.0:
            took[name] = now - started[name]

    t0 = time.perf_counter()
    loaded = load_postgres(data, dsn, schema, progress=progress)
    total = time.perf_counter() - t0
    registers = sum(took[t] for t in loaded.tables)
    layout = sum(took[t] for t in loaded.layout)
    print(f"load: {total:.1f} s = registers (COPY, ANALYZE) {registers:.1f} s + person and "
          f"code tables {layout:.1f} s + indexes, commit, VACUUM {total - registers - layout:.1f} s")  # fmt: skip
    for t in sorted(loaded.layout, key=lambda t: -took[t]):
        print(f"  {t}: {took[t]:.1f} s")


def sizes(dsn: str, schema: str) -> None:
    """Each table's heap, indexes and total, MB; and the sums per kind of table."""
    q = """SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid),
                  pg_total_relation_size(c.oid)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY 4 DESC, 1"""
    with psycopg.connect(dsn) as con:
        rows = con.execute(q, (schema,)).fetchall()
    mb = 2**20
    print("| table | kind | table MB | indexes MB | total MB |\n| --- | --- | ---: | ---: | ---: |")
    sums: dict[str, list[int]] = {}
    for name, table, idx, total in rows:
        kind = "layout" if "#" in name else "register" if not name.startswith("antal_") else "meta"
        s = sums.setdefault(kind, [0, 0, 0])
        for i, v in enumerate((table, idx, total)):
            s[i] += v
        if total >= mb:
            print(f"| `{name}` | {kind} | {table / mb:.0f} | {idx / mb:.0f} | {total / mb:.0f} |")
    for kind, (table, idx, total) in sums.items():
        print(f"| **all {kind} tables** | | {table / mb:.0f} | {idx / mb:.0f} | {total / mb:.0f} |")


def indexes_used(dsn: str, schema: str) -> None:
    """The indexes each example's plan reads (EXPLAIN of its compiled statement, on the
    backend's own session: nested loops off as it sets them)."""
    cat = load_catalog()
    inst = Installation.from_postgres(PostgresPlacement(dsn=dsn, schema=schema))
    be = get_backend("postgres", inst, cat, query_seconds=None)
    print("| cohort | indexes its plan reads (times) |\n| --- | --- |")
    try:
        for f in sorted(EXAMPLES.glob("*.cohort")):
            compiled = engine.prepare(f.read_text(encoding="utf-8"), cat, inst).compiled
            be.attach(compiled.registers)  # type: ignore[attr-defined]
            plan = be.con.execute("EXPLAIN " + compiled.sql("postgres")).fetchall()  # type: ignore[attr-defined]
            used = Counter(m for (line,) in plan for m in _INDEX.findall(line))
            print(
                f"| {f.stem} | " + ", ".join(f"`{i}` ({n})" for i, n in sorted(used.items())) + " |"
            )
    finally:
        be.close()


def _plain(inst: Installation) -> Installation:
    """The same schema read without its person and code tables (the registers alone)."""
    bare = {"code_tables": {}, "person_table": None}
    return dataclasses.replace(
        inst, sources={r: s.model_copy(update=bare) for r, s in inst.sources.items()}
    )


def counts(
    data: Path, dsn: str, schema: str, before: str | None, repeat: int, only: list[str] | None
) -> None:
    cat = load_catalog()
    layout = Installation.from_postgres(PostgresPlacement(dsn=dsn, schema=schema))
    plain = _plain(
        layout
        if before is None
        else Installation.from_postgres(PostgresPlacement(dsn=dsn, schema=before))
    )
    files = Installation.from_data_dir(data)
    backends = {
        "plain": (plain, get_backend("postgres", plain, cat, query_seconds=None)),
        "layout": (layout, get_backend("postgres", layout, cat, query_seconds=None)),
    }
    print("| cohort | before s | with the layout s | ratio |\n| --- | ---: | ---: | ---: |")
    sums = {k: 0.0 for k in backends}
    for f in sorted(EXAMPLES.glob("*.cohort")):
        if only and f.stem not in only:
            continue
        text = f.read_text(encoding="utf-8")
        want = engine.count_exact(text, files, cat)  # DuckDB on the Parquet files
        times: dict[str, list[float]] = {k: [] for k in backends}
        for i in range(repeat + 1):  # the first round warms up
            for k, (inst, be) in backends.items():
                t0 = time.perf_counter()
                got = engine.count_exact(text, inst, cat, backend=be)
                if i:
                    times[k].append(time.perf_counter() - t0)
                if (got.counts, got.tables) != (want.counts, want.tables):
                    sys.exit(f"{f.stem}: {k} counts {got.counts} != DuckDB's {want.counts}")
        med = {k: statistics.median(v) for k, v in times.items()}
        for k in sums:
            sums[k] += med[k]
        print(f"| {f.stem} | {med['plain']:.2f} | {med['layout']:.2f} | "
              f"{med['layout'] / med['plain']:.2f} |", flush=True)  # fmt: skip
    print(f"| **all (sum)** | {sums['plain']:.1f} | {sums['layout']:.1f} | "
          f"{sums['layout'] / sums['plain']:.2f} |")  # fmt: skip
    for _inst, be in backends.values():
        be.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--schema", required=True)
    ap.add_argument("--before", default=None, help="the same files loaded without the layout")
    ap.add_argument("--load", action="store_true", help="run antal load-postgres first")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default=None, help="comma-separated example names")
    args = ap.parse_args()
    if args.load:
        load(args.data, args.dsn, args.schema)
    sizes(args.dsn, args.schema)
    indexes_used(args.dsn, args.schema)
    only = args.only.split(",") if args.only else None
    counts(args.data, args.dsn, args.schema, args.before, args.repeat, only)


if __name__ == "__main__":
    main()
