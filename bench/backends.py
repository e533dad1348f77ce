"""The example cohorts on every backend: DuckDB (Parquet), PostgreSQL (the same files
loaded into a schema) and Spark (local[2], the same files), with their exact counts
compared across backends.

    python -m bench.backends --data /tmp/bench100k --persons 100000 --dsn postgresql://...

Generates the synthetic persons into `--data` first if the Parquet files are not there.
`--dsn` is a database the benchmark may write a schema `bench` into (needed for the
postgres backend). Reports per backend the median wall time of each cohort over `--repeat` runs
after one warm-up, and the load time of `antal load-postgres`. The machine is whatever
runs it: label the figures with it."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from antal import engine
from antal.catalog import Installation, PostgresPlacement, load_catalog
from antal.engine.backends import get_backend

__all__ = ["main"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--dsn", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backends", default="duckdb,postgres,spark")
    args = ap.parse_args()
    if not list(args.data.glob("*.parquet")):
        from antal.synthetic import generate

        generate(args.persons, 1, args.data)
    cat = load_catalog()
    files = Installation.from_data_dir(args.data)
    cohorts = sorted(Path("examples").glob("*.cohort"))
    wanted = args.backends.split(",")
    installs: dict[str, Installation] = {b: files for b in wanted if b != "postgres"}
    if "postgres" in wanted:
        from antal.engine.backends.pgload import load_postgres

        dsn = args.dsn
        if not dsn:
            ap.error("the postgres backend needs --dsn")
        t0 = time.perf_counter()
        load_postgres(args.data, dsn, "bench")
        print(f"load-postgres: {time.perf_counter() - t0:.1f} s")
        installs["postgres"] = Installation.from_postgres(
            PostgresPlacement(dsn=dsn, schema="bench")
        )
    counts: dict[str, dict[str, tuple[int, ...]]] = {}
    for name in wanted:
        be = get_backend(name, installs[name], cat, query_seconds=None)
        counts[name] = {}
        try:
            for f in cohorts:
                text = f.read_text(encoding="utf-8")
                res = engine.count_exact(text, installs[name], cat, backend=be)  # warm-up
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    engine.count_exact(text, installs[name], cat, backend=be)
                    times.append(time.perf_counter() - t0)
                counts[name][f.stem] = tuple(res.counts)
                print(f"{name:9s} {f.stem:28s} {statistics.median(times):7.2f} s")
        finally:
            be.close()
    first = counts[wanted[0]]
    same = all(c == first for c in counts.values())
    print("same exact counts on every backend:", same)


if __name__ == "__main__":
    main()
