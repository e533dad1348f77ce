"""The national benchmark: every example cohort at 1M and 10M persons, on the raw Parquet
files and on the prepared file, against the best hand-written SQL on each, in one run.

    python -m bench.national --data /data/p1m --data /data/p10m --repeat 5

For each `--data DIR` (generated with `antal synth --persons N --seed 1` beforehand), the
prepared file `DIR.duckdb` is made by `antal prepare` in a child process when missing (its
wall time and peak resident memory are reported; `--reprepare` makes it again). Then for
every example, after checking that all of them give the same final count and the same
cells (the run stops otherwise), interleaved round by round (the order rotates), median of
`--repeat` after one warm-up each:

  antal prep     `engine.count_exact` in this process on the prepared file (one reused
                 backend): parse, check, compile, run, result: what a server does per query
  antal raw      the same on the raw Parquet files
  CLI prep       `antal count COHORT --data DIR.duckdb --exact --json` as a new process:
                 process start and imports included; its peak resident memory too
  hand raw       bench/handwritten/<stem>.sql on a DuckDB connection over the Parquet files
  hand prep      bench/handwritten/prepared/<stem>.sql on a connection to the prepared file

DuckDB runs with `--threads` threads on every side. Results go between the `national`
markers of bench/README.md; with two or more data sizes, the growth from the smallest to
the largest per cohort as well.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from antal import engine
from antal.api import usecases as uc
from antal.catalog import CatalogError, Installation, load_catalog
from antal.engine.backends import DuckDBBackend
from bench.run import breakdown, machine

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
HANDWRITTEN = HERE / "handwritten"
README = HERE / "README.md"
START, END = "<!-- national:start -->", "<!-- national:end -->"

PREPARED_TARGET_S = 1.0  # antal on the prepared file, in-process, every example at 10M
PREPARED_RATIO = 0.5  # ... and at most this times the best hand-written SQL on raw Parquet
RAW_RATIO = 1.1  # antal on raw Parquet vs the best hand-written SQL on the same files
COUNT_MEMORY_GIB = 2.0  # peak memory of a count (the CLI process) at 10M


@dataclass
class Row:
    stem: str
    count: int
    times: dict[str, list[float]] = field(default_factory=dict)
    cli_peak_gib: float = 0.0

    def med(self, key: str) -> float | None:
        t = self.times.get(key)
        return statistics.median(t) if t else None


@dataclass
class Size:
    data: Path
    persons: int
    prepared: Path
    prepare_s: float | None
    prepare_gib: float | None
    rows: list[Row]
    load: tuple[float, float]


TIME = Path("/usr/bin/time")  # GNU time: a small process between us and the child (below)


def child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(wall seconds, peak resident GiB, exit status) of one child process.

    Linux keeps a process's peak resident size across fork and exec, so a child forked
    from this process (GiBs after the in-process counts) would report at least this
    process's size. GNU time, when installed, is forked from here but forks the command
    from itself, a few MiB: its `%M` is the command's own peak."""
    measured = [str(TIME), "-f", "%M", *cmd] if TIME.exists() else cmd
    t = time.perf_counter()
    proc = subprocess.run(
        measured, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
    )
    wall = time.perf_counter() - t
    peak_kib = float("nan")
    if TIME.exists():
        tail = proc.stderr.strip().splitlines()
        if tail and tail[-1].isdigit():
            peak_kib = float(tail[-1])
    return wall, peak_kib / 1024**2, proc.returncode


def antal_cli() -> list[str]:
    """The console script as a user runs it (process start and imports included)."""
    exe = Path(sys.executable).with_name("antal")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "antal.api.cli"]


def ensure_prepared(data: Path, out: Path, memory_limit: str, again: bool) -> tuple[float, float]:
    if out.exists() and not again:
        try:
            Installation.from_data_dir(out)
            return float("nan"), float("nan")
        except CatalogError as e:  # an older layout: made again
            print(f"{out}: {e}", file=sys.stderr)
    cmd = [*antal_cli(), "prepare", "--data", str(data), "--out", str(out),
           "--memory-limit", memory_limit]  # fmt: skip
    wall, peak, rc = child(cmd)
    if rc != 0:
        raise SystemExit(f"antal prepare failed ({rc}): {shlex.join(cmd)}")
    print(f"prepared {out}: {wall:.1f} s, peak {peak:.2f} GiB", file=sys.stderr)
    return wall, peak


def hand(stem: str, data: Path) -> tuple[str, str | None]:
    raw = (HANDWRITTEN / f"{stem}.sql").read_text(encoding="utf-8").replace("{data}", str(data))
    p = HANDWRITTEN / "prepared" / f"{stem}.sql"
    return raw, p.read_text(encoding="utf-8") if p.exists() else None


@dataclass
class _Ctx:
    cat: object
    raw_inst: Installation
    prep_inst: Installation
    raw_be: DuckDBBackend
    prep_be: DuckDBBackend
    raw_con: duckdb.DuckDBPyConnection
    prep_con: duckdb.DuckDBPyConnection
    data: Path
    prepared: Path
    threads: int


def _timed(fn: Callable[[], object]) -> Callable[[], float]:
    def timed() -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    return timed


def measure_one(c: _Ctx, stem: str, repeat: int) -> Row:
    path = EXAMPLES / f"{stem}.cohort"
    text = path.read_text(encoding="utf-8")
    raw_sql, prep_sql = hand(stem, c.data)
    a = engine.count_exact(text, c.raw_inst, c.cat, backend=c.raw_be)
    b = engine.count_exact(text, c.prep_inst, c.cat, backend=c.prep_be)
    want = sorted((tuple(k), int(n)) for k, n in a.cells)
    nd = len(a.dims)
    problems = []
    if (b.counts, b.tables) != (a.counts, a.tables):
        problems.append("antal on the prepared file")
    _, total, cells = breakdown(c.raw_con, raw_sql, nd)
    if (total, sorted(cells)) != (a.count, want):
        problems.append("hand-written on raw")
    if prep_sql is not None:
        _, total, cells = breakdown(c.prep_con, prep_sql, nd)
        if (total, sorted(cells)) != (a.count, want):
            problems.append("hand-written on prepared")
    if problems:
        raise SystemExit(f"{stem}: antal on raw Parquet disagrees with {', '.join(problems)}")
    row = Row(stem, a.count)
    cli_cmd = [*antal_cli(), "count", str(path), "--data", str(c.prepared), "--exact", "--json"]
    # as a user's installation runs: byte-compiled modules kept (this machine's shells set
    # PYTHONDONTWRITEBYTECODE, which would recompile antal on every start)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["ANTAL_THREADS"] = str(c.threads)
    peaks: list[float] = []

    def cli_run() -> float:
        wall, peak, rc = child(cli_cmd, env)
        if rc != 0:
            raise SystemExit(f"{shlex.join(cli_cmd)} failed ({rc})")
        peaks.append(peak)
        return wall

    sides: dict[str, Callable[[], float]] = {
        "antal prep": _timed(
            lambda: engine.count_exact(text, c.prep_inst, c.cat, backend=c.prep_be)
        ),
        "antal raw": _timed(lambda: engine.count_exact(text, c.raw_inst, c.cat, backend=c.raw_be)),
        "CLI prep": cli_run,
        "hand raw": _timed(lambda: c.raw_con.execute(raw_sql).fetchall()),
    }
    if prep_sql is not None:
        sides["hand prep"] = _timed(lambda: c.prep_con.execute(prep_sql).fetchall())
    keys = list(sides)
    for k in keys:  # warm-up
        sides[k]()
    for i in range(repeat):  # interleaved; the order rotates from round to round
        j = i % len(keys)
        for k in keys[j:] + keys[:j]:
            row.times.setdefault(k, []).append(sides[k]())
    row.cli_peak_gib = max(peaks)
    print(
        f"  {stem:28s} "
        + "  ".join(f"{k} {row.med(k) * 1e3:6.0f} ms" for k in keys)  # type: ignore[operator]
        + f"  CLI peak {row.cli_peak_gib:.2f} GiB",
        file=sys.stderr,
    )
    return row


def measure(data: Path, prepared: Path, stems: list[str], repeat: int, threads: int) -> list[Row]:
    cat = load_catalog()
    raw_inst, prep_inst = Installation.from_data_dir(data), Installation.from_data_dir(prepared)
    # what a count does first (`antal count`, a service at start): the data check, stored
    # per release, after which a population found one row per person is read as such
    uc.check_data(raw_inst, cat)
    raw_be = DuckDBBackend(raw_inst, cat, threads=threads, query_seconds=None)
    prep_be = DuckDBBackend(prep_inst, cat, threads=threads, query_seconds=None)
    raw_con = duckdb.connect(":memory:", config={"threads": threads})
    prep_con = duckdb.connect(str(prepared), read_only=True, config={"threads": threads})
    ctx = _Ctx(cat, raw_inst, prep_inst, raw_be, prep_be, raw_con, prep_con, data, prepared,
               threads)  # fmt: skip
    rows = [measure_one(ctx, stem, repeat) for stem in stems]
    for c in (raw_be, prep_be, raw_con, prep_con):
        c.close()
    return rows


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v * 1e3:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}"


def _verdict(missed: list[str]) -> str:
    return "met" if not missed else "**missed** on " + ", ".join(missed)


def report(sizes: list[Size], args: argparse.Namespace, argv: list[str]) -> str:
    cmd = "python -m bench.national " + shlex.join(argv)
    lines = [
        f"Measured {dt.date.today().isoformat()} with `{cmd.strip()}`.",
        "",
        f"Machine: {machine(args.threads)}.",
        "",
    ]
    for s in sizes:
        lines += [
            f"### {s.persons:,} persons (`{s.data.name}`)",
            "",
            f"1-minute load average {s.load[0]:.2f} at the start, {s.load[1]:.2f} at the end. "
            + (
                f"`antal prepare`: **{s.prepare_s:.0f} s**, peak resident memory "
                f"**{s.prepare_gib:.2f} GiB** (process start included); "
                if s.prepare_s == s.prepare_s  # not NaN: made in this run
                else "`antal prepare`: made before this run; "
            )
            + f"prepared file {s.prepared.stat().st_size / 1024**3:.2f} GiB, Parquet "
            f"{sum(f.stat().st_size for f in s.data.glob('*.parquet')) / 1024**3:.2f} GiB.",
            "",
            f"Median of {args.repeat} ms. *prep* = the prepared file, *raw* = the Parquet "
            "files; *antal* = in-process end to end, *CLI* = a new `antal count --exact "
            "--json` process; *hand* = the best hand-written SQL on the same data.",
            "",
            "| cohort | final count | antal prep | CLI prep | antal raw | hand raw | hand prep "
            "| antal prep / hand raw | antal raw / hand raw | antal prep / hand prep "
            "| CLI peak GiB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in s.rows:
            ap, cp, ar = r.med("antal prep"), r.med("CLI prep"), r.med("antal raw")
            hr, hp = r.med("hand raw"), r.med("hand prep")
            lines.append(
                f"| {r.stem} | {r.count:,} | {_ms(ap)} | {_ms(cp)} | {_ms(ar)} | {_ms(hr)} "
                f"| {_ms(hp)} | {_ratio(ap, hr)} | {_ratio(ar, hr)} | {_ratio(ap, hp)} "
                f"| {r.cli_peak_gib:.2f} |"
            )
        tot = {
            k: sum(r.med(k) or 0.0 for r in s.rows)
            for k in ("antal prep", "CLI prep", "antal raw", "hand raw", "hand prep")
        }
        lines.append(
            f"| **all {len(s.rows)}** | | {_ms(tot['antal prep'])} | {_ms(tot['CLI prep'])} "
            f"| {_ms(tot['antal raw'])} | {_ms(tot['hand raw'])} | {_ms(tot['hand prep'] or None)} "
            f"| {_ratio(tot['antal prep'], tot['hand raw'])} "
            f"| {_ratio(tot['antal raw'], tot['hand raw'])} "
            f"| {_ratio(tot['antal prep'], tot['hand prep'] or None)} "
            f"| {max(r.cli_peak_gib for r in s.rows):.2f} |"
        )
        lines.append("")
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        f = big.persons / small.persons
        lines += [
            f"### Growth from {small.persons:,} to {big.persons:,} persons ({f:.0f}× the data)",
            "",
            "Each cell: time at the larger size / time at the smaller (linear growth would "
            f"be {f:.0f}).",
            "",
            "| cohort | antal prep | CLI prep | antal raw | hand raw | hand prep |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for a, b in zip(small.rows, big.rows, strict=True):
            cells = [
                _ratio(b.med(k), a.med(k))
                for k in ("antal prep", "CLI prep", "antal raw", "hand raw", "hand prep")
            ]
            lines.append(f"| {a.stem} | " + " | ".join(cells) + " |")
        lines.append("")
    big = sizes[-1]
    lines += ["### Targets (at the largest size)", ""]
    slow = [
        f"{r.stem} ({(r.med('antal prep') or 0):.2f} s)"
        for r in big.rows
        if (r.med("antal prep") or 0) > PREPARED_TARGET_S
    ]
    lines.append(
        f"- antal on the prepared file ≤ {PREPARED_TARGET_S:g} s in-process, every example: "
        f"{_verdict(slow)}."
    )
    for name, key, target in (
        ("antal on the prepared file ≤", "antal prep", PREPARED_RATIO),
        ("antal on raw Parquet ≤", "antal raw", RAW_RATIO),
    ):
        miss = [
            f"{r.stem} ({_ratio(r.med(key), r.med('hand raw'))}×)"
            for r in big.rows
            if (r.med(key) or 0) > target * (r.med("hand raw") or float("inf"))
        ]
        lines.append(f"- {name} {target:g}× the best hand-written SQL on raw Parquet: "
                     f"{_verdict(miss)}.")  # fmt: skip
    heavy = [f"{r.stem} ({r.cli_peak_gib:.2f} GiB)" for r in big.rows
             if r.cli_peak_gib > COUNT_MEMORY_GIB]  # fmt: skip
    lines.append(
        f"- peak memory of a count (the CLI process) ≤ {COUNT_MEMORY_GIB:g} GiB: "
        f"{_verdict(heavy)} (largest {max(r.cli_peak_gib for r in big.rows):.2f} GiB)."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.national", description=__doc__.split("\n")[0])
    p.add_argument("--data", action="append", required=True,
                   help="a directory of Parquet extracts (repeatable: 1M, then 10M)")  # fmt: skip
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory-limit", default="4GB", help="of `antal prepare`")
    p.add_argument("--reprepare", action="store_true", help="make the prepared files again")
    p.add_argument("--cohort", dest="cohorts", action="append", help="only this stem")
    p.add_argument("--readme", default=str(README))
    p.add_argument("--no-readme", action="store_true")
    args = p.parse_args(argv)
    stems = sorted(q.stem for q in EXAMPLES.glob("*.cohort"))
    if args.cohorts:
        stems = [s for s in stems if s in args.cohorts]
    sizes = []
    for d in args.data:
        data = Path(d).resolve()
        prepared = data.with_suffix(".duckdb")
        load0 = os.getloadavg()[0]
        wall, peak = ensure_prepared(data, prepared, args.memory_limit, args.reprepare)
        persons = duckdb.sql(
            "SELECT count(*) FROM read_parquet(?)", params=[str(data / "population.parquet")]
        ).fetchall()[0][0]
        print(f"{persons:,} persons in {data}", file=sys.stderr)
        rows = measure(data, prepared, stems, args.repeat, args.threads)
        sizes.append(Size(data, persons, prepared, wall, peak, rows, (load0, os.getloadavg()[0])))
    sizes.sort(key=lambda s: s.persons)
    md = report(sizes, args, argv)
    print(md)
    if not args.no_readme:
        path = Path(args.readme)
        text = path.read_text(encoding="utf-8")
        if START not in text:
            text = text.rstrip("\n") + f"\n\n## National benchmark\n\n{START}\n{END}\n"
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        path.write_text(f"{head}{START}\n{md}{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
