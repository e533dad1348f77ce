"""Throughput of the HTTP service on loopback: a project's repeated ask and `validate`.

    python -m bench.service --seconds 10 --clients 16
    python -m bench.service --seconds 10 --profile /tmp/service.prof  # the server's profile

Generates (or reuses, `--data`) a synthetic extract (`antal synth --persons 20000 --seed 7`),
starts `antal serve` on a free port of 127.0.0.1 with a fresh SQLite store and the rate
limits raised through the settings (ANTAL_*_PER_MINUTE, bench.load.server_env), creates a
researcher (`antal admin`) and one project approved for the cohort's registers (through the
API), counts the cohort once (the release, charged), then runs `--clients` client threads
(one keep-alive `httpx.Client` each) for `--seconds` per phase:

  1. stored answer: every client counts the same cohort for the same project again and
     again (each answer the stored one: `stored_answer`, `epsilon_charged` 0);
  2. validate: every client posts the same cohort to /v1/cohorts/validate.

Afterwards it checks that every request was answered 200, that every count was the stored
answer and charged nothing (the project's spent ε unchanged), that the audit log has one
`answer_stored` entry per stored answer served, and that `antal audit verify` exits 0.

With `--profile FILE` the server runs under cProfile (every thread: the event loop and the
worker threads of the sync routes) and writes its merged profile to FILE when it stops;
the top functions by cumulative time are printed. Profiled figures are slower: measure
without it.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import os
import pstats
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.load import (
    ROOT,
    admin_cli,
    antal_command,
    audit_verify_cli,
    free_port,
    machine,
    server_env,
)

__all__ = ["Phase", "ServiceResult", "main", "run_service"]

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
SECTION = "## Service throughput"
START, END = "<!-- service:start -->", "<!-- service:end -->"
DEFAULT_COHORT = ROOT / "examples" / "t2d_metformin.cohort"
MAX_REQUESTS_PER_CLIENT = 1_000_000  # a bound on every client loop besides its deadline


@dataclass
class Phase:
    name: str
    clients: int
    wall: float = 0.0
    seconds: list[float] = field(default_factory=list)  # each request's latency
    failed: list[str] = field(default_factory=list)  # what was wrong with an answer
    server_cpu: float = 0.0  # CPU seconds (user + system) of the server process
    client_cpu: float = 0.0  # of this process (the client threads)

    def rate(self) -> float:
        return len(self.seconds) / self.wall if self.wall else 0.0

    def cpu_ms(self, cpu: float) -> float:
        """CPU milliseconds per request: less disturbed than the rate by other processes
        sharing the cores."""
        return 1e3 * cpu / len(self.seconds) if self.seconds else float("nan")

    def quantile_ms(self, q: float) -> float:
        xs = sorted(self.seconds)
        if not xs:
            return float("nan")
        return 1e3 * xs[min(len(xs) - 1, max(0, round(q * len(xs)) - 1))]


Check = Callable[[httpx.Response], str | None]  # what is wrong with an answer, or None


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_phase(
    name: str, base: str, token: str, clients: int, seconds: float, path: str,
    body: dict[str, Any], check: Check, server_pid: int,
) -> Phase:  # fmt: skip
    """`clients` threads post `body` to `path` until `seconds` have passed."""
    phase = Phase(name, clients)
    times: list[list[float]] = [[] for _ in range(clients)]
    failed: list[list[str]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def work(i: int) -> None:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as c:
            start.wait()
            for _ in range(MAX_REQUESTS_PER_CLIENT):
                if time.perf_counter() >= deadline[0]:
                    break
                t0 = time.perf_counter()
                try:
                    r = c.post(path, json=body)
                except httpx.TransportError as e:
                    failed[i].append(repr(e))
                    continue
                times[i].append(time.perf_counter() - t0)
                problem = check(r)
                if problem is not None:
                    failed[i].append(problem)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    cpu0, mine0 = process_cpu(server_pid), time.process_time()
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join(timeout=seconds + 300)
    phase.wall = time.perf_counter() - t0
    phase.server_cpu = process_cpu(server_pid) - cpu0
    phase.client_cpu = time.process_time() - mine0
    phase.seconds = [s for xs in times for s in xs]
    phase.failed = [f for fs in failed for f in fs]
    return phase


def _stored(r: httpx.Response) -> str | None:
    if r.status_code != 200:
        return f"{r.status_code} {r.text[:200]}"
    body = r.json()
    if body.get("stored_answer") is not True or body.get("epsilon_charged") != 0:
        return "not the stored answer, or charged"
    return None


def _valid(r: httpx.Response) -> str | None:
    if r.status_code != 200:
        return f"{r.status_code} {r.text[:200]}"
    return None if r.json().get("ok") is True else "validate said not ok"


# ---- the server -----------------------------------------------------------------------------


@contextlib.contextmanager
def serve(
    data: Path, store: Path, *, profile: Path | None = None, timeout: float = 120
) -> Iterator[tuple[str, int]]:
    """`antal serve` (or, with `profile`, the same app under cProfile) on a free loopback
    port with the rate limits raised; yields its base URL and process id, and stops it on
    exit."""
    port = free_port()
    args = ["--data", str(data), "--store", str(store), "--host", "127.0.0.1", "--port", str(port)]
    if profile is None:
        cmd = [*antal_command(), "serve", *args]
    else:
        cmd = [sys.executable, "-m", "bench.service", "--serve-profiled", str(profile), *args]
    env = server_env()  # PYTHONPATH passes: `python -m bench.service` runs from ROOT
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"the server exited {proc.returncode}:\n{log.read()}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer within {timeout:.0f} s")
                time.sleep(0.1)
            yield base, proc.pid
        finally:
            proc.send_signal(signal.SIGINT if profile else signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


def serve_profiled(out: Path, argv: list[str]) -> None:
    """The app `antal serve` runs, under uvicorn as it runs it, with a cProfile of every
    thread (each new thread starts its own profile: the worker threads of the sync routes);
    the merged profile is written to `out` when the server stops."""
    from antal.api.app import create_app
    from antal.api.cli.common import run_server
    from antal.api.settings import load_settings

    p = argparse.ArgumentParser()
    for opt in ("--data", "--store", "--host", "--port"):
        p.add_argument(opt)
    a = p.parse_args(argv)
    settings = load_settings(None, data=Path(a.data), store=a.store, host=a.host,
                             port=int(a.port))  # fmt: skip
    app = create_app(settings)
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_thread_profile(*_: Any) -> None:
        prof = cProfile.Profile()
        with lock:
            profiles.append(prof)
        prof.enable()  # replaces this hook in the new thread

    threading.setprofile(start_thread_profile)
    main = cProfile.Profile()
    profiles.append(main)
    main.enable()
    try:
        run_server(app, settings.host, settings.port, settings.forwarded_allow_ips)
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        stats = pstats.Stats(main)
        for prof in profiles[1:]:
            with contextlib.suppress(TypeError):  # a thread that never ran a profiled call
                stats.add(prof)
        stats.dump_stats(str(out))


# ---- the run --------------------------------------------------------------------------------


@dataclass
class ServiceResult:
    persons: int
    clients: int
    seconds: float
    cohort: str
    phases: list[Phase]
    problems: list[str] = field(default_factory=list)


def _project(base: str, admin: str, token: str, cohort: str) -> None:
    """Project `p`, approved for every register the cohort reads, with the researcher."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
        v = c.post("/v1/cohorts/validate", json={"cohort": cohort}).json()
    if not v.get("ok"):
        raise RuntimeError(f"the cohort does not validate: {v}")
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as c:
        c.post("/v1/admin/projects", json={"id": "p", "title": "throughput", "budget": 100,
               "purpose": "forskning", "registers": v["registers"]}).raise_for_status()  # fmt: skip
        c.post("/v1/admin/projects/p/members", json={"user": "res"}).raise_for_status()


def run_service(
    data: Path, workdir: Path, *, clients: int, seconds: float, persons: int, cohort: Path,
    profile: Path | None = None,
) -> ServiceResult:  # fmt: skip
    store = workdir / "store.sqlite"
    text = cohort.read_text(encoding="utf-8")
    problems: list[str] = []
    admin = admin_cli(store, "create-user", "admin", "--role", "admin")
    token = admin_cli(store, "create-user", "res", "--role", "researcher")
    with serve(data, store, profile=profile) as (base, pid):
        _project(base, admin, token, text)
        hd = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=hd, timeout=300) as c:
            first = c.post("/v1/projects/p/count", json={"cohort": text})  # the release
            first.raise_for_status()
            spent = c.get("/v1/projects/p/budget").json()["spent"]
        stored = run_phase("stored answer", base, token, clients, seconds,
                           "/v1/projects/p/count", {"cohort": text}, _stored, pid)  # fmt: skip
        valid = run_phase("validate", base, token, clients, seconds,
                          "/v1/cohorts/validate", {"cohort": text}, _valid, pid)  # fmt: skip
        with httpx.Client(base_url=base, headers=hd, timeout=60) as c:
            spent_after = c.get("/v1/projects/p/budget").json()["spent"]
    for ph in (stored, valid):
        if ph.failed:
            problems.append(f"{ph.name}: {len(ph.failed)} failed, e.g. {ph.failed[0]}")
        if not ph.seconds:
            problems.append(f"{ph.name}: no request was answered")
    if spent_after != spent:
        problems.append(f"the stored answers charged: spent {spent} before, {spent_after} after")
    from antal.privacy import open_store

    entries = open_store(str(store)).audit_entries()
    replays = sum(1 for e in entries if e.action == "answer_stored")
    if replays != len(stored.seconds):
        problems.append(f"{replays} answer_stored audit entries, {len(stored.seconds)} served")
    verify = audit_verify_cli(store)
    if verify.returncode != 0:
        problems.append(f"antal audit verify exited {verify.returncode}: {verify.stdout}")
    rel = cohort.relative_to(ROOT) if cohort.is_relative_to(ROOT) else cohort
    return ServiceResult(persons, clients, seconds, str(rel), [stored, valid], problems)


# ---- report ---------------------------------------------------------------------------------


def report(r: ServiceResult, cmd: str, load: tuple[float, float]) -> str:
    lines = [
        f"Measured {dt.date.today().isoformat()} with `{cmd}` ({r.persons:,} synthetic persons, "
        f"cohort `{r.cohort}`), one `antal serve` process and the {r.clients} client threads "
        f"on the same machine. Machine: {machine()}. 1-minute load average {load[0]:.2f} at "
        f"the start, {load[1]:.2f} at the end.",
        "",
        "| phase | clients | requests | errors | wall s | req/s | p50 ms | p95 ms "
        "| server CPU ms/req | client CPU ms/req |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for ph in r.phases:
        lines.append(
            f"| {ph.name} | {ph.clients} | {len(ph.seconds):,} | {len(ph.failed)} "
            f"| {ph.wall:.1f} | {ph.rate():.0f} | {ph.quantile_ms(0.5):.1f} "
            f"| {ph.quantile_ms(0.95):.1f} | {ph.cpu_ms(ph.server_cpu):.2f} "
            f"| {ph.cpu_ms(ph.client_cpu):.2f} |"
        )
    lines += [
        "",
        "All checks passed." if not r.problems else "**Problems:** " + "; ".join(r.problems),
    ]
    return "\n".join(lines)


def print_profile(path: Path, top: int = 40) -> None:
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def ensure_data(data: Path, persons: int, seed: int) -> None:
    from antal.synthetic import REGISTERS as FILES
    from antal.synthetic import generate

    if all((data / f"{r}.parquet").exists() for r in FILES):
        return
    print(f"generating {persons} synthetic persons (seed {seed}) into {data} ...", file=sys.stderr)
    generate(persons, seed, data)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-profiled"]:
        serve_profiled(Path(argv[1]), argv[2:])
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.service", description=__doc__.split("\n")[0])
    p.add_argument("--persons", type=int, default=20_000, help="persons when generating")
    p.add_argument("--seed", type=int, default=7, help="seed when generating")
    p.add_argument(
        "--data", help="extracts dir (default /tmp/antal-svc-<persons>; made if missing)"
    )
    p.add_argument("--cohort", default=str(DEFAULT_COHORT), help="the cohort asked")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per phase")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients")
    p.add_argument("--profile", help="run the server under cProfile; its profile to this file")
    args = p.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        p.error("--clients must be ≥ 1 and --seconds > 0")
    data = Path(args.data or f"/tmp/antal-svc-{args.persons}")
    ensure_data(data, args.persons, args.seed)
    load0 = os.getloadavg()[0]
    profile = Path(args.profile).resolve() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="antal-service-") as work:
        result = run_service(data, Path(work), clients=args.clients, seconds=args.seconds,
                             persons=args.persons, cohort=Path(args.cohort).resolve(),
                             profile=profile)  # fmt: skip
    cmd = "python -m bench.service " + shlex.join(argv)
    print(report(result, cmd.strip(), (load0, os.getloadavg()[0])))
    if profile is not None:
        print_profile(profile)
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
