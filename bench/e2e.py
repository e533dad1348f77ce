"""Whole-process time of `antal count` against the hand-written SQL (issue 25, issue 26).

    python -m bench.e2e --data /tmp/g10m --example t2d_metformin --runs 5

Each run is a process of its own, as a user starts it: `antal count EXAMPLE --data DIR
--exact` (the engine's path: parse, check, the data check, compile, one statement; a
released count adds the privacy layer's milliseconds) and the hand-written final-count
query of `bench/handwritten/<stem>.final.sql` run by a fresh Python process with DuckDB on
the same files. The runs alternate (antal, hand-written, antal, ...) so that the page cache
and the machine's load fall on both alike. The first antal run of a release does the
row-level value check and stores its result (issue 25); `--fresh-check` removes the stored
result before every antal run, to time the first count of a release instead.

Reported: the median wall time of each side, their ratio, and the peak resident memory of
each side's processes (the children's maximum RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The hand-written side: DuckDB in a fresh process, as antal's own process would start.
HAND = """
import sys, duckdb
con = duckdb.connect()
con.execute("PRAGMA disable_progress_bar")  # as antal's connections (antal.engine.duckconn)
print(con.execute(open(sys.argv[1]).read()).fetchall()[0][0])
"""


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a directory of canonical Parquet extracts")
    ap.add_argument("--example", default="t2d_metformin")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--fresh-check", action="store_true",
                    help="remove the stored value check before every antal run")  # fmt: skip
    args = ap.parse_args(argv)
    data = Path(args.data).resolve()
    cohort = ROOT / "examples" / f"{args.example}.cohort"
    sql = (HERE / "handwritten" / f"{args.example}.final.sql").read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="antal-e2e-") as tmp:
        query = Path(tmp) / "hand.sql"
        query.write_text(sql.replace("{data}", str(data)), encoding="utf-8")
        cache = Path(tmp) / "cache"
        env = {**os.environ, "ANTAL_CACHE_DIR": str(cache)}
        antal = [sys.executable, "-c", "from antal.api.cli import app; app()", "count",
                 str(cohort), "--data", str(data), "--exact", "--json"]  # fmt: skip
        hand = [sys.executable, "-c", HAND, str(query)]
        _run(antal, env)  # a first count: the release's digests and its value check stored
        times: dict[str, list[float]] = {"antal": [], "hand-written": []}
        answers: dict[str, int] = {}
        for _ in range(args.runs):
            if args.fresh_check:
                for f in cache.rglob("data-checks.json"):
                    f.unlink()
            t, out = _run(antal, env)
            times["antal"].append(t)
            answers["antal"] = int(json.loads(out)["count"])
            t, out = _run(hand, env)
            times["hand-written"].append(t)
            answers["hand-written"] = int(out.strip())
        # RUSAGE_CHILDREN's maximum is over every child so far: each side's peak alone
        peaks = {k: _side_peak(c, env) for k, c in (("antal", antal), ("hand-written", hand))}
    if answers["antal"] != answers["hand-written"]:
        raise SystemExit(f"the two sides disagree: {answers}")
    a, h = statistics.median(times["antal"]), statistics.median(times["hand-written"])
    print(f"{args.example} on {data} ({args.runs} interleaved runs each, "
          f"{'first' if args.fresh_check else 'a later'} count of the release); "
          f"final count {answers['antal']}")  # fmt: skip
    print("| side | median wall time | peak RSS |")
    print("| --- | --- | --- |")
    for side, ts in times.items():
        print(f"| {side} | {statistics.median(ts):.2f} s | {peaks[side]:.0f} MiB |")
    print(f"\nratio antal / hand-written: {a / h:.2f}")
    return 0


def _side_peak(cmd: list[str], env: dict[str, str]) -> float:
    """The peak RSS of one more run of `cmd`, in a process that starts it alone."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    done = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True,
                          env=env, check=True)  # fmt: skip
    return float(done.stdout.strip())


if __name__ == "__main__":
    raise SystemExit(main())
