"""The rows a compiled statement returns, and how they are read: the one protocol between
the compiler (engine/compiler.py, which names and orders the columns) and the result
(engine/result.py, which reads them back).

Without `report by`, one row: the count after the index step, then after each step
(`n0, n1, ..., nk`). With dimensions, `GROUP BY GROUPING SETS ((), (dims...))`: each row
is the dimension values, the grouping flag (`grp`, true on the grand-total row), then the
same counts; the grand-total row gives the attrition, the others the cells of the final
cohort (a cell's count is its last count).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["GROUPING", "RowLayout", "count_column"]

GROUPING = "grp"  # the GROUPING(...) flag: true on the grand-total row


def count_column(step: int) -> str:
    """The column of the count after step `step` (0: the index step)."""
    return f"n{step}"


@dataclass(frozen=True)
class RowLayout:
    """The columns of a compiled cohort's result rows, in order."""

    dims: tuple[str, ...]  # the breakdown's columns, in report order
    steps: int  # counts per row: the index step and each include/exclude step

    @property
    def columns(self) -> tuple[str, ...]:
        counts = tuple(count_column(k) for k in range(self.steps))
        return (*self.dims, GROUPING, *counts) if self.dims else counts

    def read(
        self, rows: Iterable[tuple[Any, ...]]
    ) -> tuple[tuple[int, ...], list[tuple[tuple[Any, ...], int]]]:
        """(the attrition's counts, the final cohort's non-empty cells) from the rows."""
        nd = len(self.dims)
        counts: tuple[int, ...] = tuple(0 for _ in range(self.steps))
        cells = []
        for row in rows:
            if nd == 0:
                counts = tuple(int(x) for x in row)
                continue
            keys, grp, ns = row[:nd], row[nd], row[nd + 1 :]
            if grp:  # the grand-total grouping set
                counts = tuple(int(x) for x in ns)
            elif ns[-1]:  # a cell of the final cohort (cells with nobody left are not cells)
                cells.append((tuple(keys), int(ns[-1])))
        return counts, cells
