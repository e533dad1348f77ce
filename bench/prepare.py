"""The prepared layout (`antal prepare`): ingest time and peak memory, and the examples'
count times on the raw Parquet files vs the prepared DuckDB file.

    python -m bench.prepare --data /tmp/bench1m --repeat 5

`antal prepare` runs in a child process (`python -m antal.api.cli ...` through the console
script's module), so its wall time includes process start and its peak memory is the
child's peak resident set (`getrusage(RUSAGE_CHILDREN).ru_maxrss`). Then every example is
counted in this process, on one reused DuckDB backend per layout with the same threads,
raw and prepared interleaved, median of `--repeat` after one warm-up; the two answers must
be equal (counts and every cell) or the run stops. Results go between the `prepare`
markers of `bench/README.md`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from antal import engine
from antal.catalog import Installation, load_catalog
from antal.engine.backends import DuckDBBackend
from antal.engine.limits import PREPARE_MEMORY

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
README = HERE / "README.md"
START, END = "<!-- prepare:start -->", "<!-- prepare:end -->"


def run_prepare(data: Path, out: Path, memory_limit: str) -> tuple[float, float]:
    """(wall seconds, peak RSS GiB) of `antal prepare` in a child process."""
    cmd = [sys.executable, "-c", "from antal.api.cli import app; app()", "prepare",
           "--data", str(data), "--out", str(out), "--memory-limit", memory_limit]  # fmt: skip
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return wall, peak_kib / 1024**2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.prepare", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="directory of canonical Parquet extracts")
    p.add_argument("--out", help="prepared file (default: a temporary one)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory-limit", default=PREPARE_MEMORY, help="of `antal prepare`")
    p.add_argument("--readme", default=str(README))
    p.add_argument("--no-readme", action="store_true")
    args = p.parse_args(argv)
    data = Path(args.data).resolve()
    with tempfile.TemporaryDirectory(prefix="antal-prepare-") as work:
        out = Path(args.out) if args.out else Path(work) / "release.duckdb"
        load0 = os.getloadavg()[0]
        wall, peak = run_prepare(data, out, args.memory_limit)
        print(f"prepare: {wall:.1f} s, peak {peak:.2f} GiB", file=sys.stderr)
        rows = compare(data, out, args.repeat, args.threads)
        size_raw = sum(f.stat().st_size for f in data.glob("*.parquet")) / 1024**2
        size_prep = out.stat().st_size / 1024**2
    persons = duckdb.sql(
        "SELECT count(*) FROM read_parquet(?)", params=[str(data / "population.parquet")]
    ).fetchall()[0][0]
    cmd = "python -m bench.prepare " + shlex.join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"Measured {dt.date.today().isoformat()} with `{cmd.strip()}` on {persons:,} "
        f"synthetic persons; {os.cpu_count()} cores, DuckDB {duckdb.__version__}, "
        f"{args.threads} threads for the counts; 1-minute load average {load0:.2f} at the "
        f"start, {os.getloadavg()[0]:.2f} at the end.",
        "",
        f"`antal prepare` (memory limit {args.memory_limit}, process start included): "
        f"**{wall:.1f} s**, peak resident memory **{peak:.2f} GiB**; Parquet in "
        f"{size_raw:.0f} MiB, prepared file {size_prep:.0f} MiB.",
        "",
        f"Counts in-process (`engine.count_exact` on a reused backend, median of {args.repeat} "
        "after one warm-up, raw and prepared interleaved; equal answers checked):",
        "",
        "| cohort | final count | raw Parquet ms | prepared ms | prepared / raw |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for stem, n, raw, prep in rows:
        lines.append(f"| {stem} | {n:,} | {raw * 1e3:.0f} | {prep * 1e3:.0f} | {prep / raw:.2f} |")
    tr, tp = sum(r[2] for r in rows), sum(r[3] for r in rows)
    lines.append(f"| **all {len(rows)}** | | {tr * 1e3:.0f} | {tp * 1e3:.0f} | {tp / tr:.2f} |")
    md = "\n".join(lines)
    print(md)
    if not args.no_readme:
        path = Path(args.readme)
        text = path.read_text(encoding="utf-8")
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        path.write_text(f"{head}{START}\n{md}\n{END}{tail}", encoding="utf-8")
    return 0


def compare(
    data: Path, prepared: Path, repeat: int, threads: int
) -> list[tuple[str, int, float, float]]:
    cat = load_catalog()
    raw_inst, prep_inst = Installation.from_data_dir(data), Installation.from_data_dir(prepared)
    raw_be = DuckDBBackend(raw_inst, cat, threads=threads, query_seconds=None)
    prep_be = DuckDBBackend(prep_inst, cat, threads=threads, query_seconds=None)
    rows = []
    for path in sorted(EXAMPLES.glob("*.cohort")):
        text = path.read_text(encoding="utf-8")
        a = engine.count_exact(text, raw_inst, cat, backend=raw_be)  # warm-up and check
        b = engine.count_exact(text, prep_inst, cat, backend=prep_be)
        if a.counts != b.counts or a.tables != b.tables:
            raise SystemExit(f"{path.stem}: the prepared file's answer differs from the raw one")
        t_raw, t_prep = [], []
        for i in range(repeat):
            order = [(raw_inst, raw_be, t_raw), (prep_inst, prep_be, t_prep)]
            for inst, be, into in order if i % 2 == 0 else order[::-1]:
                t = time.perf_counter()
                engine.count_exact(text, inst, cat, backend=be)
                into.append(time.perf_counter() - t)
        rows.append((path.stem, a.count, statistics.median(t_raw), statistics.median(t_prep)))
        print(f"  {path.stem:28s} raw {rows[-1][2] * 1e3:7.0f} ms  prepared "
              f"{rows[-1][3] * 1e3:7.0f} ms", file=sys.stderr)  # fmt: skip
    raw_be.close()
    prep_be.close()
    return rows


if __name__ == "__main__":
    sys.exit(main())
