"""A query's state as the hub shows it: per-node status, the combined total over the nodes
that answered (a lower bound while any node is missing), and the missing nodes by name.

Per-node status: `pending` (waiting for its node to take it; also a task offered to a
node that never acknowledged it, which its next poll is offered again), `offered` (handed
to the node's poll, not yet acknowledged), `running` (the node acknowledged it and is
counting), `unreachable` (not answered, and the node has not been heard from within the
hub's heartbeat window: `last_seen` says when it was), `succeeded`, `refused` (with the
node's error code and message), `failed`, and `timed_out` (not answered by the query's
deadline; a late answer still counts).
Nothing here reads data: it adds up what the nodes released (antal.privacy.combine).

Per-node secrecy (the network's rule, `min_nodes_shown` = N): a node's own count is shown
only when at least N nodes report a count above their threshold, however the nodes of a
query were chosen. So a total is shown only when it adds up at least N nodes (a total of
one node is that node's count); a partial total before the deadline only while at least N
nodes are still missing (otherwise the complete total would give the missing nodes' count by
difference); and a viewer is never shown two totals of the same cohort over node sets that
differ by fewer than N nodes (`shown_before`, kept by the hub per viewer and cohort): when a
late answer would do that, the total shown before stays, and the late nodes are named.
With N = 1 every total is shown, as a network that keeps no per-node secrecy wants.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

from pydantic import ValidationError

from antal.api.federation.schemas import NodeAnswer
from antal.api.federation.store import ACK_SECONDS, FINAL, QueryRow, TaskRow
from antal.privacy.combine import NodeCount, Noise, combine
from antal.privacy.mechanism import small_buckets

__all__ = ["node_status", "query_view", "unreachable"]


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def unreachable(last_seen: float | None, heartbeat: float, at: float) -> bool:
    """A node not heard from within the heartbeat window (or never)."""
    return last_seen is None or at - last_seen > heartbeat


def node_status(
    task: TaskRow,
    deadline: float,
    at: float,
    last_seen: float | None = None,
    heartbeat: float | None = None,
) -> str:
    """The task's status as shown (the module docstring); `heartbeat`: the hub's window
    for `unreachable` (None: not judged), `last_seen`: when its node was last heard from."""
    if task.state in FINAL:
        return task.state
    if at >= deadline:
        return "timed_out"
    if heartbeat is not None and unreachable(last_seen, heartbeat, at):
        return "unreachable"
    if task.state == "offered" and (task.claimed is None or at - task.claimed > ACK_SECONDS):
        return "pending"  # never acknowledged: the node's next poll is offered it again
    return task.state


def _noise(answer: dict[str, Any]) -> Noise:
    return Noise(scale=float(answer["scale"]), steps=len(answer["steps"]),
                 rounding=int(answer["rounding"]), threshold=int(answer["threshold"]),
                 mechanism=answer.get("mechanism", "cumulative"),
                 noise=answer.get("noise", "laplace"))  # fmt: skip


def _small(answer: dict[str, Any]) -> list[int]:
    """Per step of a partition answer, its buckets released near 0 (a suppressed step
    counts as 0 persons: its buckets are near 0 too); none for a cumulative answer."""
    steps = [s["count"] or 0 for s in answer["steps"]]
    if answer.get("mechanism", "cumulative") != "partition":
        return [0] * len(steps)
    buckets = [float(steps[i] - steps[i + 1]) for i in range(len(steps) - 1)] + [float(steps[-1])]
    return small_buckets(buckets, float(answer["scale"]), float(answer.get("alpha", 0.05)),
                         answer.get("noise", "laplace"))  # fmt: skip


def _combination(
    answered: frozenset[str],
    missing: int,
    waiting: bool,
    shown_before: list[frozenset[str]],
    n: int,
) -> tuple[frozenset[str] | None, str | None]:
    """The nodes whose total may be shown under the rule of the module docstring (None:
    none), and why not all that answered."""
    if len(answered) < n:
        return None, (
            f"a total is shown when at least {n} nodes have answered ({len(answered)} have): "
            "a total of fewer would show a node's own count"
        )
    if waiting and 0 < missing < n:
        return None, (
            f"waiting for the last {missing} node(s): a total shown now would give theirs "
            "by difference from the complete one"
        )

    def apart(s: frozenset[str]) -> bool:
        return all(s == b or len(s ^ b) >= n for b in shown_before)

    if apart(answered):
        return answered, None
    # a late answer: keep the largest total shown before that this one contains
    kept = [b for b in shown_before if b <= answered and apart(b)]
    if kept:
        best = max(kept, key=lambda b: (len(b), sorted(b)))
        late = ", ".join(sorted(answered - best))
        return best, (
            f"the answers of {late} are not added: with them this total would differ from "
            f"one shown before by fewer than {n} nodes, which would show their counts"
        )
    return None, (
        f"this total would differ from one you were shown before by fewer than {n} nodes, "
        "which would show a node's own count by difference: ask every node of that query"
    )


def _nothing_answered(nodes: list[dict[str, Any]]) -> str:
    """The one message of a query no node answered, when no more will come by its deadline
    (every node refused, failed or timed out): each node and why."""
    why = ", ".join(
        f"{n['node']} {n['status'].replace('_', ' ')}"
        + (f" ({n['error']['code']})" if n.get("error") else "")
        for n in nodes
    )
    return f"no node answered, so there is no total: {why}"


def _checked(task: TaskRow) -> TaskRow:
    """A stored answer as the hub takes answers now: one stored before the hub checked them
    (a hub store from an older version) that the schema refuses is shown as the failure it
    would have been, never added up (an absurd count would break every view of the query)."""
    if task.state != "succeeded" or task.answer is None:
        return task
    try:
        NodeAnswer.model_validate(task.answer)
    except ValidationError:
        return dataclasses.replace(task, state="failed", answer=None, error_code="invalid_answer",
                                   error_message="an answer stored before the hub checked "
                                   "answers, which it would refuse now")  # fmt: skip
    return task


def query_view(
    q: QueryRow,
    tasks: list[TaskRow],
    *,
    min_nodes_shown: int,
    at: float | None = None,
    shown_before: list[frozenset[str]] | None = None,
    labels: tuple[str, ...] | None = None,
    seen: dict[str, float | None] | None = None,
    heartbeat: float | None = None,
) -> dict[str, Any]:
    """The JSON the hub answers for a query (see the module docstring). `shown_before`: the
    node sets whose total of this cohort the viewer was shown; `labels`: the cohort's step
    labels as the hub compiles it (a node's own labels are never shown); `seen`: when each
    node was last heard from, and `heartbeat` the window after which it is `unreachable`."""
    at = time.time() if at is None else at
    tasks = [_checked(t) for t in tasks]
    done = [t for t in tasks if t.state == "succeeded" and t.answer]
    missing = [t.node for t in tasks if t not in done]
    complete = all(t.state in FINAL for t in tasks)
    past = at >= q.deadline
    over, withheld = (None, None)
    if done:
        pending = sum(1 for t in tasks if t.state not in FINAL)
        over, withheld = _combination(frozenset(t.node for t in done), pending,
                                      not complete and not past, shown_before or [],
                                      min_nodes_shown)  # fmt: skip
    combined = [t for t in done if over is not None and t.node in over]
    # per-node counts only where enough nodes report above their threshold (MII: 3 sites)
    above = sum(1 for t in combined if t.answer and t.answer["steps"][-1]["count"] is not None)
    per_node = above >= min_nodes_shown
    nodes = []
    for t in tasks:
        row: dict[str, Any] = {
            "node": t.node,
            "status": node_status(
                t, q.deadline, at, (seen or {}).get(t.node), heartbeat if seen is not None else None
            ),
            "claims": t.claims,
            "last_seen": _iso((seen or {}).get(t.node)),
            "finished": _iso(t.finished),
            "error": {"code": t.error_code, "message": t.error_message} if t.error_code else None,
        }
        if t.answer:
            last = t.answer["steps"][-1]
            row["data_release"] = t.answer.get("release")
            row["in_total"] = t in combined
            if per_node and t in combined:
                shown = last["count"]
                row["count"] = f"<{t.answer['threshold']}" if shown is None else shown
                row["interval"] = None if shown is None else [last["low"], last["high"]]
                # the fields of a released count elsewhere in antal (docs/api.md)
                row["suppressed"] = shown is None
                row["lower"] = None if shown is None else last["low"]
                row["upper"] = None if shown is None else last["high"]
                row["display"] = f"<{t.answer['threshold']}" if shown is None else str(shown)
        nodes.append(row)
    out: dict[str, Any] = {
        "id": q.id,
        "project": q.project,
        "title": q.title,
        "query_hash": q.query_hash,
        "registers": list(q.registers),
        "submitted_by": q.submitted_by,
        "created": _iso(q.created),
        "deadline": _iso(q.deadline),
        "past_deadline": past,
        "complete": complete,
        "nodes": nodes,
        "answered": [t.node for t in done],
        "missing": missing,
        "per_node_counts": per_node,
        "total": None,
        "attrition": [],
    }
    if withheld is not None:
        out["total_note"] = withheld
    elif not done and (complete or past):
        out["total_note"] = _nothing_answered(nodes)
    if not per_node and combined:
        out["per_node_note"] = (
            f"per-node counts are shown when at least {min_nodes_shown} nodes report a count "
            f"above their threshold ({above} do): the total only"
        )
    if combined:
        answers = [t.answer for t in combined if t.answer]
        steps = {len(a["steps"]) for a in answers}
        # every node compiles the same cohort, so the same steps (the hub refuses an answer
        # of any other number); an answer stored before that check might not: then only the
        # final counts are added up
        positions = range(len(answers[0]["steps"])) if len(steps) == 1 else [-1]
        k = len(answers[0]["steps"])
        names = labels if labels is not None and len(labels) == k else None
        small = {t.node: _small(t.answer) for t in combined if t.answer}  # once per node
        for j in positions:
            total = combine(
                [NodeCount(t.node, t.answer["steps"][j]["count"], _noise(t.answer),
                           j % len(t.answer["steps"]), small[t.node][j])
                 for t in combined if t.answer],
                alpha=float(answers[0].get("alpha", 0.05)),
            )  # fmt: skip
            if len(steps) != 1:
                label = "final"
            else:
                label = names[j] if names else answers[0]["steps"][j]["label"]
            out["attrition"].append({"label": label, **total.to_json()})
        total_row = dict(out["attrition"][-1])
        total_row.pop("label")
        total_row["lower_bound"] = bool(missing) or len(combined) < len(done)
        total_row["over_nodes"] = [t.node for t in combined]
        out["total"] = total_row
    return out
