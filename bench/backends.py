"""The example cohorts on every backend: DuckDB (Parquet), PostgreSQL (the same files
loaded into a schema) and Spark (local[2], the same files), each against the best
hand-written SQL run on the same backend, with exact counts compared across backends.

    python -m bench.backends --data /tmp/bench100k --persons 100000 \\
        --dsn postgresql://postgres@127.0.0.1:55999/postgres --load

Generates the synthetic persons into `--data` first if the Parquet files are not there.
`--dsn` is a database the benchmark may write the schema `--schema` into (needed for the
postgres backend; `--load` runs `antal load-postgres` first and times it).

Each backend runs in its own process, so that its peak memory is its own: the Python
process's for DuckDB (embedded), the server process of the benchmark's connection for
PostgreSQL (read from /proc, so only for a server on this machine), the JVM's for Spark
(local mode: driver and executors are one process). Per cohort it times antal's count
(attrition and breakdown) and the hand-written query of bench/handwritten/NAME.sql (final
count and breakdown), transpiled by sqlglot from DuckDB's dialect and run over the same
views antal reads, after `--warmup` runs each; it checks that the hand-written final count
equals antal's on that backend and that antal's attrition is the same on every backend.
The machine is whatever runs it: label the figures with it."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from antal import engine
from antal.catalog import Installation, PostgresPlacement, load_catalog
from antal.engine.backends import Backend, get_backend
from antal.engine.dialects import sqlglot_dialect
from bench.run import EXAMPLES, HANDWRITTEN, split_breakdown

__all__ = ["main"]

_PARQUET = re.compile(r"read_parquet\('\{data\}/(\w+)\.parquet'\)")


def hand_sql(stem: str, dialect: str) -> str:
    """The hand-written final count + breakdown of one example in `dialect`, reading the
    registers by name (the views every backend makes) instead of DuckDB's read_parquet."""
    text = _PARQUET.sub(r"\1", (HANDWRITTEN / f"{stem}.sql").read_text())
    tree = sqlglot.parse_one(text, read="duckdb")
    for i, sub in enumerate(tree.find_all(exp.Subquery)):
        # DuckDB lets a subquery in FROM go unnamed; PostgreSQL does not
        if not sub.alias and isinstance(sub.parent, (exp.From, exp.Join)):
            sub.set("alias", exp.TableAlias(this=exp.to_identifier(f"_q{i}")))
    for select in tree.find_all(exp.Select):
        _expand_aliases(select)
    if dialect == "postgres":  # DuckDB's arg_min(x, (a, b)): the x of the smallest (a, b)
        for node in list(tree.find_all(exp.ArgMin)):
            keys = (
                node.expression.expressions
                if isinstance(node.expression, exp.Tuple)
                else [node.expression]
            )
            order = ", ".join(k.sql("postgres") for k in keys)
            node.replace(
                sqlglot.parse_one(
                    f"(ARRAY_AGG({node.this.sql('postgres')} ORDER BY {order}))[1]",
                    read="postgres",
                )
            )
    if dialect == "spark":  # Spark has no MATERIALIZED hint (it decides what to reuse)
        for cte in tree.find_all(exp.CTE):
            cte.set("materialized", None)
    # antal's renderings of the few constructs sqlglot's own get wrong (engine/dialects.py:
    # multi-column GROUPING on Spark); the counts are still checked against DuckDB's
    return tree.sql(sqlglot_dialect(dialect))  # type: ignore[arg-type]


def _expand_aliases(select: exp.Select) -> None:
    """DuckDB lets GROUP BY, GROUPING(...) and HAVING name the SELECT list's aliases;
    PostgreSQL and Spark want the expressions: put them in place of the names."""
    named = {e.alias: e.this for e in select.expressions if isinstance(e, exp.Alias) and e.alias}
    if not named:
        return
    parts = [select.args.get("group"), select.args.get("having")]
    parts += [g for e in select.expressions for g in e.find_all(exp.Grouping)]
    for part in parts:
        if part is None:
            continue
        for col in list(part.find_all(exp.Column)):
            if not col.table and col.name in named and col.find_ancestor(exp.Select) is select:
                col.replace(named[col.name].copy())


def _vm_hwm(pid: int) -> int | None:
    """Peak resident set of a process on this machine, bytes (None: not readable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# How the benchmark reaches each backend's own engine: running a statement of its own and
# finding the process that does the work. Bench code only; the engine never asks.
def _connection_sql(be: Any, q: str) -> list[tuple[Any, ...]]:
    """DuckDB's and psycopg's connections (`be.con`) execute and fetch alike."""
    return be.con.execute(q).fetchall()


def _spark_sql(be: Any, q: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in be.spark.sql(q).collect()]


def _duckdb_peak(be: Any) -> int | None:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _postgres_peak(be: Any) -> int | None:
    return _vm_hwm(be.con.info.backend_pid)


def _spark_peak(be: Any) -> int | None:
    return _vm_hwm(int(be.spark._jvm.java.lang.ProcessHandle.current().pid()))


ADAPTERS: dict[str, tuple[Callable[[Any, str], list], Callable[[Any], int | None]]] = {
    "duckdb": (_connection_sql, _duckdb_peak),
    "postgres": (_connection_sql, _postgres_peak),
    "spark": (_spark_sql, _spark_peak),
}


def _installation(args: argparse.Namespace, name: str) -> Installation:
    if name == "postgres":
        return Installation.from_postgres(PostgresPlacement(dsn=args.dsn, schema=args.schema))
    return Installation.from_data_dir(args.data)


def _hand_total(rows: list[tuple[Any, ...]], nd: int) -> int:
    """The grand-total row's count of a hand-written breakdown (dims…, grouping, n)."""
    totals, _ = split_breakdown(rows, nd)
    if len(totals) != 1:
        raise AssertionError(f"the hand-written query gave {len(totals)} grand totals")
    return totals[0]


def _one(
    be: Backend, run_sql: Callable, text: str, q: str, args: argparse.Namespace, cat, inst
) -> dict[str, Any]:
    """One example on one backend: warm-ups, then the median of `repeat` timed runs."""
    for _ in range(args.warmup):
        engine.count_exact(text, inst, cat, backend=be)
        run_sql(be, q)
    antal_t, hand_t = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = engine.count_exact(text, inst, cat, backend=be)
        antal_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rows = run_sql(be, q)
        hand_t.append(time.perf_counter() - t0)
    return {
        "antal_s": statistics.median(antal_t),
        "hand_s": statistics.median(hand_t),
        "counts": list(res.counts),
        "hand_final": _hand_total(rows, len(res.dims)),
    }


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One backend: every example's antal and hand-written times, counts and the peak."""
    name = args.worker
    cat = load_catalog()
    inst = _installation(args, name)
    be: Backend = get_backend(name, inst, cat, query_seconds=None)
    run_sql, peak = ADAPTERS[name]
    out: dict[str, Any] = {"backend": name, "cohorts": {}}
    try:
        be.attach(set(inst.sources))  # type: ignore[attr-defined]  # every backend has it
        for f in sorted(EXAMPLES.glob("*.cohort")):
            if args.only and f.stem not in args.only.split(","):
                continue
            text = f.read_text(encoding="utf-8")
            try:
                rec = _one(be, run_sql, text, hand_sql(f.stem, be.dialect), args, cat, inst)
            except Exception as e:  # synthetic data: the whole message may be shown
                print(f"{name} {f.stem}: failed: {type(e).__name__}: {e}"[:2000], file=sys.stderr)
                out["cohorts"][f.stem] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
                continue
            out["cohorts"][f.stem] = rec
            print(
                f"{name:9s} {f.stem:28s} antal {rec['antal_s']:8.2f} s  "
                f"hand {rec['hand_s']:8.2f} s",
                file=sys.stderr,
                flush=True,
            )
        out["peak_bytes"] = peak(be)
    finally:
        be.close()
    return out


def report(results: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """A markdown table (seconds and antal/hand ratio per backend) and the disagreements."""
    names = [r["backend"] for r in results]
    stems = sorted({s for r in results for s in r["cohorts"]})
    head = "| cohort | " + " | ".join(f"{n} antal s | {n} hand s | {n} ratio" for n in names) + " |"
    lines = [head, "| --- |" + " ---: | ---: | ---: |" * len(names)]
    problems = []
    for stem in stems:
        cells, first = [], None
        for r in results:
            c = r["cohorts"].get(stem)
            if c is None or "error" in c:
                cells.append("failed | | ")
                if c is not None:
                    problems.append(f"{stem} on {r['backend']}: {c['error']}")
                continue
            cells.append(
                f"{c['antal_s']:.2f} | {c['hand_s']:.2f} | {c['antal_s'] / c['hand_s']:.2f}"
            )
            if c["hand_final"] != c["counts"][-1]:
                problems.append(
                    f"{stem} on {r['backend']}: antal's final count {c['counts'][-1]} != "
                    f"hand-written {c['hand_final']}"
                )
            if first is None:
                first = (r["backend"], c["counts"])
            elif c["counts"] != first[1]:
                problems.append(
                    f"{stem}: attrition on {r['backend']} {c['counts']} != on {first[0]} {first[1]}"
                )
        lines.append(f"| {stem} | " + " | ".join(cells) + " |")
    totals = []
    for r in results:
        ok = [c for c in r["cohorts"].values() if "error" not in c]
        a, h = sum(c["antal_s"] for c in ok), sum(c["hand_s"] for c in ok)
        totals.append(f"{a:.1f} | {h:.1f} | {a / h:.2f}" if h else "| |")
    lines.append("| **all (sum)** | " + " | ".join(totals) + " |")
    peaks = [
        f"{r['peak_bytes'] / 2**30:.2f} GiB | | " if r.get("peak_bytes") else "n/a | | "
        for r in results
    ]
    lines.append("| peak memory | " + " | ".join(peaks) + " |")
    return "\n".join(lines), problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--dsn", default=None)
    ap.add_argument("--schema", default="bench")
    ap.add_argument("--load", action="store_true", help="run antal load-postgres first")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--backends", default="duckdb,postgres,spark")
    ap.add_argument("--only", default="", help="comma-separated example names")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        json.dump(worker(args), sys.stdout)
        return
    if not list(args.data.glob("*.parquet")):
        from antal.synthetic import generate

        generate(args.persons, 1, args.data)
    wanted = args.backends.split(",")
    if "postgres" in wanted and not args.dsn:
        ap.error("the postgres backend needs --dsn")
    if "postgres" in wanted and args.load:
        from antal.engine.backends.pgload import load_postgres

        t0 = time.perf_counter()
        load_postgres(args.data, args.dsn, args.schema)
        print(f"load-postgres: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    results = []
    for name in wanted:
        cmd = [sys.executable, "-m", "bench.backends", "--worker", name]
        for flag in ("data", "dsn", "schema", "repeat", "warmup", "only"):
            value = getattr(args, flag)
            if value not in (None, ""):
                cmd += [f"--{flag}", str(value)]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        if done.returncode != 0:
            print(f"{name}: the worker failed (exit {done.returncode})", file=sys.stderr)
            continue
        results.append(json.loads(done.stdout))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    table, problems = report(results)
    print(table)
    print(
        "\n".join(problems)
        if problems
        else "same exact counts on every backend; every hand-written final count equals antal's"
    )
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
