"""The hub's CPU per view of a query: the combination of the nodes' released attritions.

    python -m bench.hub_view [--nodes 3,21] [--steps 2,11,61,101] [--repeat 20]

For each number of nodes and of steps, builds genuine node answers (the real mechanism,
`release_attrition`, ε 0.5, threshold 10) and times `query_view`, the whole view the hub
answers (per-node secrecy, the combination of every step), in process CPU time: the median
of `--repeat` views after one warm-up (which reads the table of moments once). No data,
no network, no store: this is what the hub computes per request. Before issue 22 each step
simulated 200 000 × k noise draws (a 60-step view: 32.7 s of hub CPU).
"""

from __future__ import annotations

import argparse
import statistics
import time

from antal.api.federation.results import query_view
from antal.api.federation.store import QueryRow, TaskRow
from antal.privacy.mechanism import release_attrition
from antal.privacy.params import PrivacyParams

P = PrivacyParams(epsilon=0.5, threshold=10)


def _answer(k: int, offset: int) -> dict:
    counts = tuple(5_000 + offset - 10 * j for j in range(k))
    steps, scale = release_attrition(counts, P)
    return {
        "steps": [{"label": f"s{j}", "count": c.value, "low": c.low, "high": c.high}
                  for j, c in enumerate(steps)],
        "threshold": P.threshold, "rounding": P.rounding, "epsilon": P.epsilon,
        "alpha": P.alpha, "scale": scale, "release": "r", "query_hash": "a" * 64,
        "answer_key": "b" * 64, "stored": False, "epsilon_charged": P.epsilon,
    }  # fmt: skip


def view_ms(nodes: int, k: int, repeat: int) -> float:
    q = QueryRow("q1", "nat", "anna", "t", "cohort", "h" * 64, ("npr",), 0.0, 100.0)
    tasks = [TaskRow("q1", f"n{i}", "succeeded", 1, 1.0, 2.0, _answer(k, i), None, None)
             for i in range(nodes)]  # fmt: skip
    query_view(q, tasks, min_nodes_shown=3, at=50.0)  # warm-up: the table is read once
    times = []
    for _ in range(repeat):
        t = time.process_time()
        v = query_view(q, tasks, min_nodes_shown=3, at=50.0)
        times.append(time.process_time() - t)
        assert len(v["attrition"]) == k
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="3,21")
    ap.add_argument("--steps", default="2,11,61,101")
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    print("| nodes | steps | hub CPU per view (ms, median) |")
    print("| --- | --- | --- |")
    for n in (int(x) for x in a.nodes.split(",")):
        for k in (int(x) for x in a.steps.split(",")):
            print(f"| {n} | {k} | {view_ms(n, k, a.repeat):.1f} |")


if __name__ == "__main__":
    main()
