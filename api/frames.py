"""Released answers as pandas DataFrames, from their JSON form (the API's count, `antal
count --json`): the notebook client and the use cases' `Counted` give the same frames.

`count` is a nullable integer column (pandas `Int64`, <NA> where a count is suppressed),
so that `frame["count"].sum()` adds up the counts shown; `suppressed` says which are
below the threshold, `lower` and `upper` are the 95% interval, and `display` is the text
to show ("1240", or "<10")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = [
    "COUNT_COLUMNS",
    "MARK_COLUMNS",
    "attrition_frame",
    "breakdown_frame",
    "count_columns",
    "table_frame",
    "table_frames",
]

COUNT_COLUMNS = ["count", "suppressed", "lower", "upper", "display"]


def count_columns(x: Mapping[str, Any]) -> dict[str, Any]:
    """The count fields of one released count (an attrition step, a cell, a stored answer's
    last step). Reads the form written before issue 11 too (`"count": "<10"`, `interval`)."""
    if "suppressed" in x:
        return {c: x.get(c) for c in COUNT_COLUMNS}
    n, iv = x.get("count"), x.get("interval")
    if n is None or isinstance(n, str):
        return {"count": None, "suppressed": True, "lower": None, "upper": None,
                "display": str(n) if n is not None else None}  # fmt: skip
    return {"count": int(n), "suppressed": False, "lower": iv[0] if iv else None,
            "upper": iv[1] if iv else None, "display": str(int(n))}  # fmt: skip


def _frame(rows: list[dict[str, Any]], columns: list[str], objects: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    for col in ("count", "lower", "upper"):
        df[col] = df[col].astype("Int64")
    df["suppressed"] = df["suppressed"].astype(bool)
    for col in [*objects, "display"]:  # labels and dimensions: None stays None, not NaN
        df[col] = pd.Series([r.get(col) for r in rows], index=df.index, dtype=object)
    return df


def attrition_frame(answer: Mapping[str, Any]) -> pd.DataFrame:
    """One row per step: step, label, count, suppressed, lower, upper, display."""
    rows = [
        {"step": i, "label": s.get("label"), **count_columns(s)}
        for i, s in enumerate(answer.get("attrition") or [])
    ]
    return _frame(rows, ["step", "label", *COUNT_COLUMNS], ["label"])


# a site table's marks (antal.privacy.sites): the sites not to read as exact or as ranked
MARK_COLUMNS = ["near_threshold", "rank_uncertain"]


def table_frame(dims: list[str], cells: list[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per cell of a released table: each dimension followed by its name where it
    has one (`region`, `region_name`; None: unknown), then the count columns, and for a
    table of sites its marks (`near_threshold`, `rank_uncertain`)."""
    cols = [c for d in dims for c in (d, f"{d}_name") if c == d or any(c in x for x in cells)]
    marks = [m for m in MARK_COLUMNS if any(m in x for x in cells)]
    rows = [{**{c: x.get(c) for c in cols}, **count_columns(x),
             **{m: bool(x.get(m)) for m in marks}} for x in cells]  # fmt: skip
    df = _frame(rows, [*cols, *COUNT_COLUMNS, *marks], cols)
    for m in marks:
        df[m] = df[m].astype(bool)
    return df


def breakdown_frame(answer: Mapping[str, Any]) -> pd.DataFrame:
    """The first table (the answer's `dims` and `breakdown`) as `table_frame` gives it."""
    return table_frame(list(answer.get("dims") or []), list(answer.get("breakdown") or []))


def table_frames(answer: Mapping[str, Any]) -> list[pd.DataFrame]:
    """Every released table (several `report by`, the levels of a roll-up), in order."""
    if "tables" not in answer:
        return [breakdown_frame(answer)] if answer.get("dims") else []
    return [table_frame(list(t["dims"]), list(t["breakdown"])) for t in answer["tables"]]
