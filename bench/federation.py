"""Load of a federated network on loopback: one hub, five nodes, N concurrent researchers.

    python -m bench.federation --persons 20000 --nodes 5 --researchers 1,4,16 --seconds 20

Generates (or reuses) one synthetic extract per node (seeds 1..nodes), starts `antal hub
serve` and `antal node join` for each node (real processes on 127.0.0.1, each node with its
own store, a local project with budget enough for the run and the default privacy
parameters: ε 0.5, threshold 10), then, for each N in `--researchers`, runs N researcher
threads for `--seconds` in two phases:

  1. fresh: every query is a cohort nobody asked before (a no-op `exclude` with a date of
     its own), so every node counts it on its extract and charges ε;
  2. stored: the same few cohorts again and again, answered from each node's store.

Each researcher submits with a long-poll (`wait`) and measures the time from submission
to the complete answer (HTTP 200, every node succeeded). Reported: complete queries per
second, and the median, 95th percentile and largest time to a complete answer. Any answer
that is not complete with every node succeeded is a problem, and the run says so.

Every request goes to 127.0.0.1; every process is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.load import fresh_cohort

STORED = (
    "index first diagnosis E11*\ninclude age 40..75\n",
    "index first diagnosis I10*\ninclude age 40..75\n",
    "index first diagnosis I21*\n",
)
MAX_PER_RESEARCHER = 100_000  # a bound on every loop besides its deadline


@dataclass
class Phase:
    name: str
    researchers: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def qps(self) -> float:
        return len(self.latencies) / self.seconds

    def row(self) -> str:
        lat = sorted(self.latencies) or [float("nan")]
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        return (f"| {self.name} | {self.researchers} | {len(self.latencies)} | {self.qps:.1f} | "
                f"{statistics.median(lat):.2f} | {p95:.2f} | {lat[-1]:.2f} |")  # fmt: skip


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _antal() -> list[str]:
    here = Path(sys.executable).parent / "antal"
    return [str(here)] if here.exists() else ["antal"]


class Network:
    def __init__(self, root: Path, data: dict[str, Path]) -> None:
        from antal.api.accounts import Accounts
        from antal.api.federation.store import HubStore
        from antal.privacy import open_store

        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANTAL_")}
        self.env.update(ANTAL_THREADS="1", ANTAL_HUB_REQUESTS_PER_MINUTE="10000000")
        hub = HubStore(str(root / "hub.sqlite"))
        acc = Accounts(hub.store)
        acc.create_user("res", "Researcher", "researcher")
        self.token = acc.issue_token("res")
        hub.store.create_project("nat", "nat", "forskning", 0.0)
        acc.add_member("nat", "res")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.procs.append(self._start(["hub", "serve", "--store", str(root / "hub.sqlite"),
                                       "--port", str(self.port)], "hub"))  # fmt: skip
        self._wait_healthy()
        for name, d in data.items():
            store = str(root / f"{name}.sqlite")
            open_store(store).create_project("t2d", "t2d", "forskning", 1e9, ("npr", "lmr", "ndr"))
            self.procs.append(self._start(
                ["node", "join", self.url, "--token", hub.add_node(name), "--project", "nat=t2d",
                 "--data", str(d), "--store", store, "--poll", "20"], name,
            ))  # fmt: skip
        self.nodes = list(data)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(n.last_seen for n in hub.nodes()):
                return
            time.sleep(0.2)
        raise SystemExit("the nodes did not join")

    def _start(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        with (self.root / f"{log}.log").open("ab") as f:
            return subprocess.Popen([*_antal(), *args], env=self.env, stdout=f,
                                    stderr=subprocess.STDOUT)  # fmt: skip

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise SystemExit("the hub did not start")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


_fresh = itertools.count()  # one new cohort per fresh query of the whole run


def run_phase(net: Network, name: str, researchers: int, seconds: float) -> Phase:
    phase = Phase(name, researchers, seconds)
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def researcher(i: int) -> None:
        headers = {"Authorization": f"Bearer {net.token}"}
        with httpx.Client(base_url=net.url, headers=headers, timeout=120) as http:
            for n in range(MAX_PER_RESEARCHER):
                if time.monotonic() >= end:
                    return
                if name == "fresh":
                    with lock:
                        cohort = fresh_cohort(next(_fresh))
                else:
                    cohort = STORED[n % len(STORED)]
                t0 = time.monotonic()
                r = http.post("/v1/hub/queries", json={"project": "nat", "cohort": cohort,
                                                       "wait": 60})  # fmt: skip
                while r.status_code == 206 and time.monotonic() - t0 < 120:
                    r = http.get(f"/v1/hub/queries/{r.json()['id']}", params={"wait": 60})
                took = time.monotonic() - t0
                body = r.json()
                ok = r.status_code == 200 and all(x["status"] == "succeeded" for x in body["nodes"])
                with lock:
                    if ok and time.monotonic() <= end + 120:
                        phase.latencies.append(took)
                    else:
                        phase.problems.append(f"{r.status_code}: {str(body)[:300]}")

    threads = [threading.Thread(target=researcher, args=(i,)) for i in range(researchers)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.seconds = time.monotonic() - t_start  # the last answers come after the deadline
    return phase


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=20_000, help="persons per node's extract")
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--researchers", default="1,4,16", help="comma-separated N")
    ap.add_argument("--seconds", type=float, default=20.0, help="per phase")
    ap.add_argument("--work", type=Path, default=None, help="keep extracts and stores here")
    args = ap.parse_args()
    from antal.synthetic import generate

    root = args.work or Path(tempfile.mkdtemp(prefix="antal-fed-"))
    root.mkdir(parents=True, exist_ok=True)
    data = {}
    for i in range(1, args.nodes + 1):
        d = root / f"extract-{args.persons}-s{i}"
        if not (d / "population.parquet").exists():
            generate(args.persons, i, d)
        data[f"n{i}"] = d
    run = root / f"run-{int(time.time())}"
    run.mkdir()
    net = Network(run, data)
    phases = []
    try:
        for n in (int(x) for x in args.researchers.split(",")):
            for name in ("fresh", "stored"):
                phases.append(run_phase(net, name, n, args.seconds))
    finally:
        net.stop()
    print(f"\n{args.nodes} nodes of {args.persons} persons each, {args.seconds:g} s per phase; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")  # fmt: skip
    print("| phase | researchers | complete answers | per second | median s | p95 s | max s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for p in phases:
        print(p.row())
    problems = [x for p in phases for x in p.problems]
    if problems:
        print(f"\n{len(problems)} problems, e.g. {problems[:3]}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
