"""Load test of the HTTP service on loopback: stored answers and fresh counts.

    python -m bench.load --persons 20000 --seconds 20 --clients 16

Generates (or reuses) a synthetic extract, starts `antal serve` on a free port of
127.0.0.1 with a fresh SQLite store, creates an admin and a researcher with the
`antal admin` CLI and the projects through the API, then runs `--clients` concurrent
clients (threads, one keep-alive `httpx.Client` each) for `--seconds` in each of two phases:

  1. stored answers: after a warm-up that released a few cohorts once, every client counts
     the same cohorts again and again (each answer is the stored one, charged ε 0);
  2. fresh counts: every client counts cohorts nobody asked before (`exclude <index event>
     before D`, a no-op criterion, with a 1900 date D of its own per request), each in the client's own project,
     so every request runs on the extracts and is charged ε;

and a short third one, the budget race: all clients at once ask distinct fresh cohorts in
one project whose budget covers only a few of them.

Afterwards it checks: no errors (every answer 200, except the budget race's intended 403
`budget_exceeded`); each project's spent ε == its released fresh answers × ε per query
(from the API, the store's audit log and its charges); the budget-race project is spent
exactly, never overspent; stored answers came back with `epsilon_charged` 0 and charged
nothing; `antal audit verify --store` exits 0. Results are printed as markdown and written
into the "Service load" section of `bench/README.md`.

Every request goes to 127.0.0.1 only; every loop is bounded in time and count; the server
is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shlex
import shutil
import socket
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README = HERE / "README.md"
SECTION = "## Service load"
START, END = "<!-- load:start -->", "<!-- load:end -->"

REGISTERS = ("npr", "lmr", "ndr")
HIGH_LIMIT = "10000000"  # requests and counts per minute per user: never the bottleneck here
MAX_REQUESTS_PER_CLIENT = 200_000  # a bound on every client loop besides its deadline

# Released once in the warm-up, then asked again and again (stored answers, charged 0).
STORED_COHORTS = (
    "index first diagnosis E11*\nreport by sex\n",
    "index first diagnosis I10*\ninclude age 40..75\n",
    "index first diagnosis E11*\ninclude drug A10BA02 in lmr within 0..365 days after index\n",
    "index first diagnosis I21*\ninclude latest ndr.hba1c > 53 within 365 days before index\n",
)


def fresh_cohort(n: int, code: str = "E11*") -> str:
    """A cohort nobody asked before for each n: excluding the index event's records before
    a date in 1900 (a new date per n) keeps everyone."""
    day = dt.date(1900, 1, 2) + dt.timedelta(days=n)
    return f"index first diagnosis {code}\nexclude diagnosis {code} before {day}\n"


# ---- the server and its accounts ------------------------------------------------------------


def antal_command() -> list[str]:
    """How to run the `antal` command line of this Python (its console script if installed)."""
    script = Path(sys.executable).with_name("antal")
    if script.exists():
        return [str(script)]
    found = shutil.which("antal")
    if found:
        return [found]
    return [
        sys.executable,
        "-c",
        "import sys; from antal.api.cli import app; sys.argv[0] = 'antal'; app()",
    ]


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    """The environment of `antal serve`: rate limits far above what a run can reach."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTAL_")}
    env.update(
        ANTAL_REQUESTS_PER_MINUTE=HIGH_LIMIT,
        ANTAL_COUNTS_PER_MINUTE=HIGH_LIMIT,
        ANTAL_CHECKS_PER_MINUTE=HIGH_LIMIT,
        ANTAL_AUTH_FAILURES_PER_MINUTE=HIGH_LIMIT,
        ANTAL_AUTH_FAILURES_GLOBAL_PER_MINUTE=HIGH_LIMIT,
    )
    env.update(extra)
    return env


def admin_cli(store: Path | str, *args: str) -> str:
    """Run `antal admin ARGS --store STORE`; its standard output (a token, for some)."""
    cmd = [*antal_command(), "admin", *args, "--store", str(store)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=server_env())
    if r.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout.strip()


def audit_verify_cli(store: Path | str) -> subprocess.CompletedProcess[str]:
    cmd = [*antal_command(), "audit", "verify", "--store", str(store)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=server_env())


@contextlib.contextmanager
def serve(
    data: Path | str, store: Path | str, *, env: dict[str, str] | None = None, timeout: float = 120
) -> Iterator[str]:
    """`antal serve --data DATA --store STORE` on a free loopback port; yields its base URL.

    Waits (at most `timeout` s) until /healthz answers; stops the server on exit."""
    port = free_port()
    cmd = [*antal_command(), "serve", "--data", str(data), "--store", str(store),
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env or server_env(), cwd=str(ROOT)
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"antal serve exited {proc.returncode}:\n{log.read()}")
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"antal serve did not answer /healthz within {timeout:.0f} s"
                    )
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


def create_accounts(store: Path | str) -> tuple[str, str]:
    """An admin and a researcher, with the `antal admin` CLI; their tokens."""
    admin = admin_cli(store, "create-user", "admin", "--role", "admin", "--name", "Load admin")
    res = admin_cli(
        store, "create-user", "res", "--role", "researcher", "--name", "Load researcher"
    )
    return admin, res


def create_projects(base: str, admin_token: str, budgets: dict[str, float]) -> None:
    """Projects approved for npr, lmr and ndr, with the researcher as member (through the API)."""
    hd = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=base, headers=hd, timeout=60) as c:
        for pid, budget in budgets.items():
            body = {"id": pid, "title": f"load {pid}", "purpose": "forskning",
                    "budget": budget, "registers": list(REGISTERS)}  # fmt: skip
            r = c.post("/v1/admin/projects", json=body)
            r.raise_for_status()
            c.post(f"/v1/admin/projects/{pid}/members", json={"user": "res"}).raise_for_status()


# ---- the phases -----------------------------------------------------------------------------


@dataclass
class Sample:
    client: int
    project: str
    status: int  # 0: no HTTP answer (transport error)
    seconds: float
    stored: bool | None = None
    charged: float | None = None
    error: str | None = None  # the error code of a 4xx/5xx, or the transport error


@dataclass
class Phase:
    name: str
    clients: int
    wall: float = 0.0
    samples: list[Sample] = field(default_factory=list)

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 200]

    def rate(self) -> float:
        return len(self.samples) / self.wall if self.wall else 0.0

    def quantile_ms(self, q: float) -> float:
        xs = sorted(s.seconds for s in self.samples)
        if not xs:
            return float("nan")
        return 1e3 * xs[min(len(xs) - 1, max(0, round(q * len(xs)) - 1))]


Request = Callable[[int, int], tuple[str, str] | None]  # (client, k) -> (project, cohort) or stop


def run_phase(
    name: str, base: str, token: str, clients: int, seconds: float, request: Request,
    max_per_client: int = MAX_REQUESTS_PER_CLIENT,
) -> Phase:  # fmt: skip
    """`clients` threads count cohorts until `seconds` have passed (or `request` says stop)."""
    phase = Phase(name, clients)
    per_client: list[list[Sample]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def work(i: int) -> None:
        out = per_client[i]
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as c:
            start.wait()
            for k in range(max_per_client):
                if time.perf_counter() >= deadline[0]:
                    break
                job = request(i, k)
                if job is None:
                    break
                pid, cohort = job
                t0 = time.perf_counter()
                try:
                    r = c.post(f"/v1/projects/{pid}/count", json={"cohort": cohort})
                except httpx.TransportError as e:
                    out.append(Sample(i, pid, 0, time.perf_counter() - t0, error=repr(e)))
                    continue
                took = time.perf_counter() - t0
                body = r.json()
                if r.status_code == 200:
                    out.append(
                        Sample(i, pid, 200, took, body["stored_answer"], body["epsilon_charged"])
                    )
                else:
                    out.append(
                        Sample(i, pid, r.status_code, took, error=body.get("error", {}).get("code"))
                    )

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join(timeout=seconds + 300)
    phase.wall = time.perf_counter() - t0
    phase.samples = [s for xs in per_client for s in xs]
    return phase


@dataclass
class LoadResult:
    persons: int
    clients: int
    seconds: float
    epsilon: float  # per query without breakdown
    phases: list[Phase]
    budgets: dict[str, float]  # project -> total
    spent: dict[str, float]  # project -> spent, from the API after the run
    spent_before_stored: float  # of the stored-answers project, before phase 1
    answers_in_audit: dict[str, int]  # project -> audit entries "answer" (charged releases)
    refusals_in_audit: dict[str, int]  # project -> audit entries "refused_budget"
    charges: dict[str, float]  # project -> sum of its charges (store)
    audit_verify_rc: int
    audit_verify_out: str
    problems: list[str] = field(default_factory=list)

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)


def run_load(
    data: Path, workdir: Path, *, clients: int, seconds: float, persons: int,
    race_budget_queries: int = 4, race_per_client: int = 3,
) -> LoadResult:  # fmt: skip
    """The whole run: server, accounts, the three phases, the checks (in `problems`)."""
    store = workdir / "store.sqlite"
    if store.exists():
        store.unlink()
    admin_tok, res_tok = create_accounts(store)
    with serve(data, store) as base:
        hd = {"Authorization": f"Bearer {admin_tok}"}
        # the ε per query (without a breakdown table) is the service's: read from a budget
        budgets: dict[str, float] = {"stored": 100.0, "race": 0.0}
        budgets.update({f"fresh-{i}": 1000.0 for i in range(clients)})
        create_projects(base, admin_tok, {"stored": 100.0})
        eps = httpx.get(base + "/v1/projects/stored/budget", headers=hd, timeout=30).json()
        epsilon = float(eps["epsilon_per_query"])
        budgets["race"] = race_budget_queries * epsilon
        create_projects(base, admin_tok, {k: v for k, v in budgets.items() if k != "stored"})

        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {res_tok}"}, timeout=120
        ) as c:
            for cohort in STORED_COHORTS:  # warm-up: each released once
                r = c.post("/v1/projects/stored/count", json={"cohort": cohort})
                r.raise_for_status()
            spent_before = c.get("/v1/projects/stored/budget").json()["spent"]

        stored = run_phase(
            "stored answers", base, res_tok, clients, seconds,
            lambda i, k: ("stored", STORED_COHORTS[(i + k) % len(STORED_COHORTS)]),
        )  # fmt: skip
        fresh = run_phase(
            "fresh counts", base, res_tok, clients, seconds,
            lambda i, k: (f"fresh-{i}", fresh_cohort(k * clients + i)),
        )  # fmt: skip
        race = run_phase(
            "budget race", base, res_tok, clients, 300,
            lambda i, k: ("race", fresh_cohort(k * clients + i, "I10*")) if k < race_per_client else None,
        )  # fmt: skip

        with httpx.Client(base_url=base, headers=hd, timeout=60) as c:
            spent = {p["id"]: float(p["spent"]) for p in c.get("/v1/admin/projects").json()}
            api_audit = c.get("/v1/audit/verify").json()

    from antal.privacy import open_store

    st = open_store(str(store))
    answers: dict[str, int] = {}
    refusals: dict[str, int] = {}
    for e in st.audit_entries():
        if e.project_id and e.action == "answer":
            answers[e.project_id] = answers.get(e.project_id, 0) + 1
        elif e.project_id and e.action == "refused_budget":
            refusals[e.project_id] = refusals.get(e.project_id, 0) + 1
    charges: dict[str, float] = {}
    with st.transaction(write=False) as tx:  # type: ignore[call-arg]
        for pid, total in tx.all(
            "SELECT project_id, SUM(epsilon) FROM charges GROUP BY project_id"
        ):
            charges[pid] = float(total)
    verify = audit_verify_cli(store)
    result = LoadResult(
        persons, clients, seconds, epsilon, [stored, fresh, race], budgets, spent,
        float(spent_before), answers, refusals, charges, verify.returncode,
        (verify.stdout + verify.stderr).strip(),
    )  # fmt: skip
    result.problems = check(result, api_audit)
    return result


def check(r: LoadResult, api_audit: dict[str, Any]) -> list[str]:
    """Everything that must hold after a run; each problem as one line."""
    problems: list[str] = []
    eps = r.epsilon
    stored, fresh, race = r.phases
    for ph in (stored, fresh):
        bad = [s for s in ph.samples if s.status != 200]
        if bad:
            kinds = sorted({(s.status, s.error) for s in bad}, key=str)
            problems.append(f"{ph.name}: {len(bad)} of {len(ph.samples)} requests failed: {kinds}")
        if not ph.samples:
            problems.append(f"{ph.name}: no request was made")
    # stored answers: free, and nothing charged
    not_free = [s for s in stored.ok if not s.stored or s.charged != 0]
    if not_free:
        problems.append(f"stored answers: {len(not_free)} answers were not stored/free")
    if abs(r.spent["stored"] - r.spent_before_stored) > 1e-9:
        problems.append(
            f"stored answers: project 'stored' spent {r.spent_before_stored} before, {r.spent['stored']} after"
        )
    warmup_cost = sum(2 * eps if "report by" in c else eps for c in STORED_COHORTS)
    if abs(r.spent["stored"] - warmup_cost) > 1e-9:
        problems.append(f"project 'stored' spent {r.spent['stored']}, expected {warmup_cost}")
    # fresh counts: every one charged, each project's spent == its releases × ε
    for s in fresh.ok:
        if s.stored or s.charged != eps:
            problems.append(f"fresh counts: an answer was stored={s.stored} charged={s.charged}")
            break
    for i in range(r.clients):
        pid = f"fresh-{i}"
        released = sum(1 for s in fresh.ok if s.project == pid)
        if abs(r.spent[pid] - released * eps) > 1e-9:
            problems.append(f"{pid}: spent {r.spent[pid]} != {released} released × ε {eps}")
        if r.answers_in_audit.get(pid, 0) != released:
            problems.append(
                f"{pid}: {r.answers_in_audit.get(pid, 0)} answers in the audit log, {released} released"
            )
        if abs(r.charges.get(pid, 0.0) - released * eps) > 1e-9:
            problems.append(f"{pid}: charges sum to {r.charges.get(pid, 0.0)}, {released} released")
    # budget race: exactly the budget's worth released, the rest refused, never overspent
    can = round(r.budgets["race"] / eps)
    race_ok = [s for s in race.samples if s.status == 200]
    refused = [s for s in race.samples if s.status == 403 and s.error == "budget_exceeded"]
    other = [s for s in race.samples if s not in race_ok and s not in refused]
    if len(race_ok) != can or other or len(refused) != len(race.samples) - can:
        problems.append(
            f"budget race: {len(race_ok)} released (expected {can}), {len(refused)} refused, "
            f"{len(other)} other: {sorted({(s.status, s.error) for s in other}, key=str)}"
        )
    if any(s.stored or s.charged != eps for s in race_ok):
        problems.append("budget race: a released answer was not charged ε")
    if (
        abs(r.spent["race"] - r.budgets["race"]) > 1e-9
        or r.spent["race"] > r.budgets["race"] + 1e-9
    ):
        problems.append(f"budget race: spent {r.spent['race']} of {r.budgets['race']}")
    if r.answers_in_audit.get("race", 0) != can:
        problems.append(
            f"budget race: {r.answers_in_audit.get('race', 0)} answers in the audit log"
        )
    if r.refusals_in_audit.get("race", 0) != len(refused):
        problems.append(
            f"budget race: {r.refusals_in_audit.get('race', 0)} refusals in the audit log, {len(refused)} answered"
        )
    for pid, total in r.budgets.items():
        if r.spent.get(pid, 0.0) > total + 1e-9:
            problems.append(f"{pid}: overspent, {r.spent[pid]} of {total}")
    if not api_audit.get("ok"):
        problems.append(f"GET /v1/audit/verify: {api_audit}")
    if r.audit_verify_rc != 0:
        problems.append(f"antal audit verify exited {r.audit_verify_rc}: {r.audit_verify_out}")
    return problems


# ---- report ---------------------------------------------------------------------------------


def ensure_data(data: Path, persons: int, seed: int) -> None:
    from antal.synthetic import REGISTERS as FILES
    from antal.synthetic import generate

    if all((data / f"{r}.parquet").exists() for r in FILES):
        return
    print(f"generating {persons} synthetic persons (seed {seed}) into {data} ...", file=sys.stderr)
    generate(persons, seed, data)


def machine() -> str:
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = next(
            line
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem = f", {int(kb.split()[1]) / 2**20:.1f} GiB RAM"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return (
        f"{os.cpu_count()} cores (nproc){mem}, {cpu}; Python {platform.python_version()}, "
        f"Linux {platform.release()}"
    )


def report(r: LoadResult, cmd: str, load: tuple[float, float] | None = None) -> str:
    avg = (
        f" 1-minute load average {load[0]:.2f} at the start, {load[1]:.2f} at the end."
        if load
        else ""
    )
    lines = [
        f"Measured {dt.date.today().isoformat()} with `{cmd}` on {r.persons:,} synthetic persons "
        f"(seed 1), one `antal serve` process (uvicorn, SQLite store) and the {r.clients} client "
        "threads on the same machine.",
        "",
        f"Machine: {machine()}.{avg}",
        "",
        "| phase | clients | requests | errors | wall s | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for ph in r.phases:
        intended = ph.name == "budget race"
        errs = sum(1 for s in ph.samples if s.status != 200)
        err_txt = f"{errs} (403 intended)" if intended else str(errs)
        lines.append(
            f"| {ph.name} | {ph.clients} | {len(ph.samples):,} | {err_txt} | {ph.wall:.1f} "
            f"| {ph.rate():.1f} | {ph.quantile_ms(0.5):.0f} | {ph.quantile_ms(0.95):.0f} "
            f"| {ph.quantile_ms(0.99):.0f} | {ph.quantile_ms(1.0):.0f} |"
        )
    stored, fresh, race = r.phases
    released = len(fresh.ok)
    lines += [
        "",
        f"Checks after the run: stored answers {len(stored.ok):,} of {len(stored.samples):,} "
        f"with `epsilon_charged` 0 and project spent unchanged; fresh counts {released:,} "
        f"released in {r.clients} projects, each project's spent ε == its released answers × "
        f"{r.epsilon:g} (API, audit log and charges agree); budget race: "
        f"{len(race.ok)} released of {len(race.samples)} asked at once in a project with ε "
        f"{r.budgets['race']:g}, the rest refused `budget_exceeded`, spent "
        f"{r.spent['race']:g} (never more); `antal audit verify` exit code "
        f"{r.audit_verify_rc}. "
        + ("All checks passed." if not r.problems else "**Problems:** " + "; ".join(r.problems)),
    ]
    return "\n".join(lines)


SECTION_INTRO = f"""{SECTION}

```sh
python -m bench.load --persons 20000 --seconds 20 --clients 16
```

`bench/load.py` generates (or reuses, `--data`) a synthetic extract, starts `antal serve` on
a free port of 127.0.0.1 with a fresh SQLite store and rate limits set far above what the run
reaches (`ANTAL_REQUESTS_PER_MINUTE`, `ANTAL_COUNTS_PER_MINUTE`), creates an admin and a
researcher with `antal admin` and the projects through the API, and runs `--clients` client
threads (one keep-alive `httpx.Client` each) for `--seconds` per phase:

- **stored answers**: four cohorts released once in a warm-up, then counted again and again by
  every client (each answer the stored one, `epsilon_charged` 0);
- **fresh counts**: every client counts cohorts nobody asked before
  (`exclude <index event> before D`, a criterion that keeps everyone, with a 1900 date D of its
  own per request) in its own
  project, so every request runs on the extracts and is charged ε;
- **budget race**: all clients at once ask distinct fresh cohorts (3 each) in one project whose
  budget covers 4: exactly 4 are released, the rest refused (403 `budget_exceeded`).

Then it checks the budgets (spent ε == released fresh answers × ε, per project, from the API,
the audit log and the charges), that stored answers charged nothing, and that
`antal audit verify` exits 0. `tests/test_load.py` runs the same, shorter, as a test
(correctness only, no timing thresholds). The client threads share the machine's cores with
the server, so the numbers are a floor of what the service does alone.

{START}
"""


def write_readme(md: str, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = f"{head}{START}\n{md}\n{END}{tail}"
    else:
        text = text.rstrip("\n") + "\n\n" + SECTION_INTRO + md + "\n" + END + "\n"
    path.write_text(text, encoding="utf-8")
    print(f"written to {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    p.add_argument("--persons", type=int, default=20_000, help="persons when generating")
    p.add_argument("--seed", type=int, default=1, help="seed when generating")
    p.add_argument(
        "--data", help="extracts dir (default /tmp/antal-load-<persons>; generated if missing)"
    )
    p.add_argument("--seconds", type=float, default=20.0, help="seconds per phase")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients")
    p.add_argument("--readme", default=str(README), help="markdown file to write results into")
    p.add_argument("--no-readme", action="store_true", help="print only")
    args = p.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        p.error("--clients must be ≥ 1 and --seconds > 0")
    data = Path(args.data or f"/tmp/antal-load-{args.persons}")
    ensure_data(data, args.persons, args.seed)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="antal-load-") as work:
        result = run_load(
            data, Path(work), clients=args.clients, seconds=args.seconds, persons=args.persons
        )
    cmd = "python -m bench.load " + shlex.join(argv if argv is not None else sys.argv[1:])
    md = report(result, cmd.strip(), (load0, os.getloadavg()[0]))
    print(md)
    if not args.no_readme:
        write_readme(md, Path(args.readme))
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
