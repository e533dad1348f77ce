"""A query's state as the hub shows it: per-node status, the combined total over the nodes
that answered (a lower bound while any node is missing), and the missing nodes by name.

Per-node status: `pending` (not yet claimed), `running` (claimed by its node),
`succeeded`, `refused` (with the node's error code and message), `failed`, and
`timed_out` (pending or running past the query's deadline; a late answer still counts).
Nothing here reads data: it adds up what the nodes released (antal.privacy.combine).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from antal.api.federation.store import FINAL, QueryRow, TaskRow
from antal.privacy.combine import NodeCount, Noise, combine

__all__ = ["node_status", "query_view"]


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def node_status(task: TaskRow, deadline: float, at: float) -> str:
    if task.state in FINAL:
        return task.state
    return "timed_out" if at >= deadline else task.state


def _noise(answer: dict[str, Any]) -> Noise:
    return Noise(scale=float(answer["scale"]), steps=len(answer["steps"]),
                 rounding=int(answer["rounding"]), threshold=int(answer["threshold"]))  # fmt: skip


def query_view(
    q: QueryRow, tasks: list[TaskRow], *, min_nodes_shown: int, at: float | None = None
) -> dict[str, Any]:
    """The JSON the hub answers for a query (see the module docstring)."""
    at = time.time() if at is None else at
    done = [t for t in tasks if t.state == "succeeded" and t.answer]
    # per-node counts only where enough nodes report above their threshold (MII: 3 sites)
    above = sum(1 for t in done if t.answer and t.answer["steps"][-1]["count"] is not None)
    per_node = above >= min_nodes_shown
    nodes = []
    for t in tasks:
        row: dict[str, Any] = {
            "node": t.node,
            "status": node_status(t, q.deadline, at),
            "claims": t.claims,
            "finished": _iso(t.finished),
            "error": {"code": t.error_code, "message": t.error_message} if t.error_code else None,
        }
        if t.answer:
            last = t.answer["steps"][-1]
            row["data_release"] = t.answer.get("release")
            row["stored_answer"] = bool(t.answer.get("stored"))
            if per_node:
                shown = last["count"]
                row["count"] = f"<{t.answer['threshold']}" if shown is None else shown
                row["interval"] = None if shown is None else [last["low"], last["high"]]
                # the fields of a released count elsewhere in antal (docs/api.md)
                row["suppressed"] = shown is None
                row["lower"] = None if shown is None else last["low"]
                row["upper"] = None if shown is None else last["high"]
                row["display"] = f"<{t.answer['threshold']}" if shown is None else str(shown)
        nodes.append(row)
    missing = [t.node for t in tasks if t not in done]
    complete = all(t.state in FINAL for t in tasks)
    out: dict[str, Any] = {
        "id": q.id,
        "project": q.project,
        "title": q.title,
        "query_hash": q.query_hash,
        "registers": list(q.registers),
        "submitted_by": q.submitted_by,
        "created": _iso(q.created),
        "deadline": _iso(q.deadline),
        "past_deadline": at >= q.deadline,
        "complete": complete,
        "nodes": nodes,
        "answered": [t.node for t in done],
        "missing": missing,
        "per_node_counts": per_node,
        "total": None,
        "attrition": [],
    }
    if not per_node:
        out["per_node_note"] = (
            f"per-node counts are shown when at least {min_nodes_shown} nodes report a count "
            f"above their threshold ({above} do): the total only"
        )
    if done:
        answers = [t.answer for t in done if t.answer]
        steps = {len(a["steps"]) for a in answers}
        # every node compiles the same cohort, so the same steps; a node of another version
        # might not: then only the final counts are added up
        positions = range(len(answers[0]["steps"])) if len(steps) == 1 else [-1]
        for j in positions:
            combined = combine(
                [NodeCount(t.node, t.answer["steps"][j]["count"], _noise(t.answer),
                           j % len(t.answer["steps"]))
                 for t in done if t.answer],
                alpha=float(answers[0].get("alpha", 0.05)),
            )  # fmt: skip
            label = answers[0]["steps"][j]["label"] if len(steps) == 1 else "final"
            out["attrition"].append({"label": label, **combined.to_json()})
        total = dict(out["attrition"][-1])
        total.pop("label")
        total["lower_bound"] = bool(missing)
        total["over_nodes"] = out["answered"]
        out["total"] = total
    return out
