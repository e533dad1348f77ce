"""Start-up of the command line: `antal check COHORT`, `antal --help`, `antal count --help`,
and `antal count COHORT --data DIR` up to its first statement to DuckDB, each a new process
(interpreter start, imports, the command), against bare `python -c pass`.

    python -m bench.startup --repeat 15
    python -m bench.startup --antal /other/.venv/bin/antal --antal .venv/bin/antal  # side by side

Runs the console script next to this interpreter (or each `--antal`: e.g. an installation
of the commit before a change, and this one), every command of every script interleaved
round by round after one warm-up each (which also writes the byte-code caches and antal's
own caches); prints the median and the fastest wall time of each, and the median CPU time
(user + system of the child: less disturbed than wall time when other processes share the
cores). Every run must exit 0 and `check` must print its `ok` line, or the run stops.

The children run without PYTHONDONTWRITEBYTECODE, so that the warm-up writes the byte code
of antal's modules as an installed package has it (pip compiles at install time); with it
set, as in this project's sandbox, every run compiles antal's source again (~0.1 s more).

`count to 1st query` is `antal count COHORT --data DIR` (a released count, the default) run
through the console script's app by a probe that wraps `duckdb.connect` when DuckDB is first
imported: the first statement sent on any connection that is not a session setting
(`PRAGMA`, `SET`), i.e. the first that reads the extract, ends the process there
(`os._exit`), so its wall time is the time from process start to the first row read, and
nothing is charged or stored. `--data` is generated when missing (`antal synth --persons
20000 --seed 7`).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["ensure_data", "main", "measure"]

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
FIRST_QUERY = "first query: "

# `antal ARGS` as the console script runs it, except that the first statement sent to DuckDB
# which reads data ends the process (after saying so): see the module's docstring.
_TO_FIRST_QUERY = f"""
import importlib.util, os, sys

def _first(con, name):
    def run(*args, **kwargs):
        sql = str(args[0]) if args else ""
        if not sql.lstrip().upper().startswith(("PRAGMA", "SET")):
            sys.stdout.write({FIRST_QUERY!r} + " ".join(sql.split())[:60] + "\\n")
            sys.stdout.flush()
            os._exit(0)
        return getattr(con, name)(*args, **kwargs)
    return run

class _Connection:
    def __init__(self, con):
        self._con = con
    def __getattr__(self, name):
        if name in ("execute", "executemany", "sql", "query"):
            return _first(self._con, name)
        return getattr(self._con, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self._con.__exit__(*exc)

class _OnImport:  # wraps duckdb.connect once DuckDB is imported, wherever that happens
    def find_spec(self, name, path, target=None):
        if name != "duckdb":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            connect = module.connect
            module.connect = lambda *a, **k: _Connection(connect(*a, **k))
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _OnImport())
from antal.api.cli import app
sys.argv = ["antal", *sys.argv[1:]]
app()
"""


_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _run(cmd: list[str], expect: str | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=_ENV)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or (expect is not None and expect not in done.stdout):
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(
    commands: dict[str, tuple[list[str], str | None]], repeat: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Each command's wall and CPU times: one warm-up, then `repeat` rounds, interleaved."""
    for cmd, expect in commands.values():
        _run(cmd, expect)
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in commands}
    names = list(commands)
    for i in range(repeat):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
            wall, cpu = _run(*commands[name])
            times[name][0].append(wall)
            times[name][1].append(cpu)
    return times


def ensure_data(data: Path) -> None:
    """The synthetic extract `count` reads: `antal synth --persons 20000 --seed 7 --out DATA`."""
    from antal.synthetic import REGISTERS, generate

    if not all((data / f"{r}.parquet").exists() for r in REGISTERS):
        print(f"generating 20000 synthetic persons (seed 7) into {data} ...", file=sys.stderr)
        generate(20_000, 7, data)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=15, help="runs of each command (median)")
    p.add_argument("--antal", action="append",
                   help="a console script, repeatable (default: next to this interpreter)")  # fmt: skip
    p.add_argument("--cohort", default=str(EXAMPLES / "t2d_metformin.cohort"))
    p.add_argument("--data", default="/tmp/startup-data",
                   help="extracts for `count` (generated if missing: 20,000 persons, seed 7)")  # fmt: skip
    a = p.parse_args(argv)
    ensure_data(Path(a.data))
    with tempfile.TemporaryDirectory(prefix="antal-startup-") as tmp:  # the store: never written
        _measure_all(a, Path(tmp) / "store.sqlite")
    return 0


def _measure_all(a: argparse.Namespace, store: Path) -> dict[str, tuple[list[float], list[float]]]:
    scripts = [os.path.abspath(s) for s in a.antal or [Path(sys.executable).with_name("antal")]]
    count = ["count", a.cohort, "--data", a.data, "--store", str(store)]
    commands: dict[str, tuple[list[str], str | None]] = {}
    for i, antal in enumerate(scripts):
        python = str(Path(antal).with_name("python"))  # the script's own interpreter
        commands |= {
            f"{i}:python -c pass": ([python, "-c", "pass"], None),
            f"{i}:antal check COHORT": ([antal, "check", a.cohort], ": ok ("),
            f"{i}:antal --help": ([antal, "--help"], "Usage"),
            f"{i}:antal count --help": ([antal, "count", "--help"], "Usage"),
            f"{i}:count to 1st query": ([python, "-c", _TO_FIRST_QUERY, *count], FIRST_QUERY),
        }
    load = os.getloadavg()[0]
    times = measure(commands, a.repeat)
    print(f"{a.repeat} runs each, cohort {Path(a.cohort).name}, load average "
          f"{load:.1f} before and {os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores")  # fmt: skip
    for i, antal in enumerate(scripts):
        print(f"\n{antal}")
        print(f"{'command':<22} {'median s':>9} {'fastest s':>10} {'CPU s':>7}")
        for name, (wall, cpu) in times.items():
            if name.startswith(f"{i}:"):
                print(f"{name.partition(':')[2]:<22} {statistics.median(wall):>9.3f} "
                      f"{min(wall):>10.3f} {statistics.median(cpu):>7.3f}")  # fmt: skip
    return times


if __name__ == "__main__":
    raise SystemExit(main())
