"""The researcher's view of a hub answer (what `Client.hub_submit` and `Client.hub_result`
return): per-node status and the combined total as pandas DataFrames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["HubResult"]

_NODE_COLUMNS = ["node", "status", "count", "low", "high", "in_total", "error_code",
                 "error_message", "finished", "last_seen"]  # fmt: skip
_TOTAL_COLUMNS = ["label", "total", "total_low", "total_high", "low", "high", "nodes",
                  "suppressed_nodes", "lower_bound"]  # fmt: skip


@dataclass(frozen=True)
class HubResult:
    """A query's state at the hub: complete (every node answered, refused or failed) or
    partial (`missing` names the nodes not in the total, which is then a lower bound)."""

    raw: dict[str, Any] = field(repr=False)

    @property
    def id(self) -> str:
        return str(self.raw["id"])

    @property
    def complete(self) -> bool:
        return bool(self.raw["complete"])

    @property
    def missing(self) -> list[str]:
        return list(self.raw["missing"])

    @property
    def lower_bound(self) -> bool:
        """Whether the total leaves out some node (a lower bound of the whole)."""
        total = self.raw.get("total")
        return total is None or bool(total["lower_bound"])

    @property
    def total_note(self) -> str | None:
        """Why the total is withheld or leaves out nodes that answered (per-node secrecy)."""
        note = self.raw.get("total_note")
        return None if note is None else str(note)

    @property
    def nodes(self) -> pd.DataFrame:
        """One row per node: status, its released count and interval (when the hub shows
        per-node counts), whether its answer is in the total, a refusal's code and message,
        and when the node was last heard from."""
        rows = []
        for n in self.raw["nodes"]:
            iv = n.get("interval") or (None, None)
            e = n.get("error") or {}
            rows.append({
                "node": n["node"], "status": n["status"], "count": n.get("count"),
                "low": iv[0], "high": iv[1], "in_total": n.get("in_total"),
                "error_code": e.get("code"), "error_message": e.get("message"),
                "finished": n.get("finished"), "last_seen": n.get("last_seen"),
            })  # fmt: skip
        df = pd.DataFrame(rows, columns=_NODE_COLUMNS)
        for col in ("low", "high"):
            df[col] = df[col].astype("Int64")
        df["count"] = pd.Series([r["count"] for r in rows], index=df.index, dtype=object)
        return df

    @property
    def total(self) -> pd.DataFrame:
        """One row per attrition step, added up over the nodes that answered: `total`
        (None when some node's count was suppressed: then `total_low`–`total_high`), the
        95% interval `low`–`high`, and whether it is a lower bound (nodes missing)."""
        lower = self.lower_bound
        rows = [
            {"label": s["label"], "total": s["total"], "total_low": s["total_range"][0],
             "total_high": s["total_range"][1], "low": s["interval"][0], "high": s["interval"][1],
             "nodes": s["nodes"], "suppressed_nodes": s["suppressed_nodes"], "lower_bound": lower}
            for s in self.raw.get("attrition", [])
        ]  # fmt: skip
        df = pd.DataFrame(rows, columns=_TOTAL_COLUMNS)
        df["total"] = df["total"].astype("Int64")
        return df

    def __repr__(self) -> str:
        total = self.raw.get("total")
        none = self.total_note or "no node has answered yet"
        head = none if total is None else (
            ("at least " if total["lower_bound"] else "") + total["display"]
            + f" (95% interval {total['interval'][0]}–{total['interval'][1]})"
        )  # fmt: skip
        state = "complete" if self.complete else f"partial, missing {', '.join(self.missing)}"
        return f"HubResult {self.id}: {head}; {state}"
