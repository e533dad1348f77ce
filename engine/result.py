"""True (exact) counts as the engine produces them. They go to `privacy` only, or to
the data holder's own `--exact` mode; never to a log or an HTTP response."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from antal.engine.compiler import Compiled
from antal.engine.hierarchy import has_names

if TYPE_CHECKING:  # pandas only for the frames a notebook asks for: a CLI count never does
    import pandas as pd

__all__ = ["ExactResult", "ExactTable"]


Cells = tuple[tuple[tuple[Any, ...], int], ...]  # (dimension values, count of the final cohort)


def _row(dims: tuple[str, ...], key: tuple[Any, ...], names: dict[str, dict[Any, str | None]]
         ) -> dict[str, Any]:  # fmt: skip
    """A cell as a row: each column's value, and its `<column>_name` where it has one."""
    out: dict[str, Any] = {}
    for d, v in zip(dims, key, strict=True):
        out[d] = v
        if has_names(d):
            out[f"{d}_name"] = names.get(d, {}).get(v)
    return out


@dataclass(frozen=True)
class ExactTable:
    dims: tuple[str, ...]
    cells: Cells

    def rows(self, names: dict[str, dict[Any, str | None]]) -> list[dict[str, Any]]:
        return [{**_row(self.dims, key, names), "count": n} for key, n in self.cells]


@dataclass(frozen=True)
class ExactResult:
    labels: tuple[str, ...]
    counts: tuple[int, ...]  # persons after the index step, then after each step
    dims: tuple[str, ...]  # the first table's (the only one of most cohorts)
    cells: Cells  # the first table's
    query_hash: str
    release: str
    tables: tuple[ExactTable, ...] = ()  # every `report by` table, the first included
    names: dict[str, dict[Any, str | None]] = field(default_factory=dict)  # column -> value -> name

    @property
    def count(self) -> int:
        return self.counts[-1]

    @property
    def attrition(self) -> list[tuple[str, int]]:
        return list(zip(self.labels, self.counts, strict=True))

    @property
    def breakdown(self) -> list[dict[str, Any]]:
        return [{**_row(self.dims, key, self.names), "count": n} for key, n in self.cells]

    def attrition_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            {"step": range(len(self.counts)), "label": self.labels, "count": self.counts}
        ).set_index("step")

    def breakdown_frame(self, table: int = 0) -> pd.DataFrame:
        import pandas as pd

        """A table as a DataFrame: its columns, their names, and the count."""
        if not self.tables:
            return pd.DataFrame([], columns=["count"])
        t = self.tables[table]
        cols = [c for d in t.dims for c in ((d, f"{d}_name") if has_names(d) else (d,))]
        return pd.DataFrame(t.rows(self.names), columns=[*cols, "count"])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "count": self.count,
            "attrition": [{"label": lab, "count": n} for lab, n in self.attrition],
            "breakdown": self.breakdown,
        }
        if len(self.tables) > 1:
            out["tables"] = [
                {"dims": list(t.dims), "breakdown": t.rows(self.names)} for t in self.tables
            ]
        return out

    @classmethod
    def from_rows(
        cls, compiled: Compiled, rows: list[tuple[Any, ...]], query_hash: str, release: str
    ) -> ExactResult:
        counts, per_table = compiled.layout.read_tables(rows)  # the row protocol: engine/rows.py
        tables = []
        names: dict[str, dict[Any, str | None]] = {}
        for dims, cells in zip(compiled.tables, per_table, strict=True):
            cells.sort(key=lambda c: tuple((v is None, v) for v in c[0]))
            tables.append(ExactTable(dims, tuple(cells)))
            for key, _n in cells:
                for d, v in zip(dims, key, strict=True):
                    if has_names(d):
                        names.setdefault(d, {})[v] = compiled.namer(d, v)
        first = tables[0] if tables else ExactTable((), ())
        return cls(compiled.labels, counts, first.dims, first.cells, query_hash, release,
                   tuple(tables), names)  # fmt: skip
