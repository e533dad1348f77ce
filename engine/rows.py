"""The rows a compiled statement returns, and how they are read: the one protocol between
the compiler (engine/compiler.py, which names and orders the columns) and the result
(engine/result.py, which reads them back).

Without `report by`, one row: the count after the index step, then after each step
(`n0, n1, ..., nk`). With `report by` tables, the cells of the final cohort grouped by
`GROUPING SETS ((table 1...), (table 2...)...)` over the columns of every table (each
column once, in order of first use), and one attrition row: each row is those columns,
the grouping flag `grp` (GROUPING over every column: a bit per column, the first column
the highest, set where the row aggregates over it), then the counts. The attrition row
has every bit set and every count; a row whose bits are clear exactly on one table's
columns is a cell of that table's final cohort, its count the last one (the others are
empty). One table keeps the form it always had: `grp` is 0 on its cells and non-zero on
the attrition row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["GROUPING", "RowLayout", "count_column"]

GROUPING = "grp"  # the GROUPING(...) flag: all bits set on the grand-total row


def count_column(step: int) -> str:
    """The column of the count after step `step` (0: the index step)."""
    return f"n{step}"


@dataclass(frozen=True)
class RowLayout:
    """The columns of a compiled cohort's result rows, in order."""

    dims: tuple[str, ...]  # every table's columns, each once, in order of first use
    steps: int  # counts per row: the index step and each include/exclude step
    tables: tuple[tuple[str, ...], ...] = ()  # each table's columns (default: one of `dims`)

    @classmethod
    def of(cls, tables: tuple[tuple[str, ...], ...], steps: int) -> RowLayout:
        dims = tuple(dict.fromkeys(c for t in tables for c in t))
        return cls(dims, steps, tables)

    @property
    def columns(self) -> tuple[str, ...]:
        counts = tuple(count_column(k) for k in range(self.steps))
        return (*self.dims, GROUPING, *counts) if self.dims else counts

    def _tables(self) -> tuple[tuple[str, ...], ...]:
        return self.tables or ((self.dims,) if self.dims else ())

    def _mask(self, table: tuple[str, ...]) -> int:
        """GROUPING(every column) on a cell of `table`: bits set for the other columns."""
        n = len(self.dims)
        return sum(1 << (n - 1 - i) for i, c in enumerate(self.dims) if c not in table)

    def read_tables(
        self, rows: Iterable[tuple[Any, ...]]
    ) -> tuple[tuple[int, ...], list[list[tuple[tuple[Any, ...], int]]]]:
        """(the attrition's counts, each table's non-empty cells of the final cohort)."""
        nd = len(self.dims)
        tables = self._tables()
        counts: tuple[int, ...] = tuple(0 for _ in range(self.steps))
        cells: list[list[tuple[tuple[Any, ...], int]]] = [[] for _ in tables]
        which = {self._mask(t): i for i, t in enumerate(tables)}
        where = {c: i for i, c in enumerate(self.dims)}
        total = (1 << nd) - 1
        for row in rows:
            if nd == 0:
                counts = tuple(int(x) for x in row)
                continue
            keys, grp, ns = row[:nd], int(row[nd]), row[nd + 1 :]
            if grp == total or (len(tables) == 1 and grp):  # the grand-total grouping set
                counts = tuple(int(x) for x in ns)
            elif ns[-1]:  # a cell of the final cohort (cells with nobody left are not cells)
                t = which[grp]
                cells[t].append((tuple(keys[where[c]] for c in tables[t]), int(ns[-1])))
        return counts, cells

    def read(
        self, rows: Iterable[tuple[Any, ...]]
    ) -> tuple[tuple[int, ...], list[tuple[tuple[Any, ...], int]]]:
        """(the attrition's counts, the first table's non-empty cells of the final cohort)."""
        counts, cells = self.read_tables(rows)
        return counts, (cells[0] if cells else [])
