"""True (exact) counts as the engine produces them. They go to `privacy` only, or to
the data holder's own `--exact` mode; never to a log or an HTTP response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from antal.engine.compiler import Compiled

__all__ = ["ExactResult"]


@dataclass(frozen=True)
class ExactResult:
    labels: tuple[str, ...]
    counts: tuple[int, ...]  # persons after the index step, then after each step
    dims: tuple[str, ...]
    cells: tuple[tuple[tuple[Any, ...], int], ...]  # (dimension values, count of the final cohort)
    query_hash: str
    release: str

    @property
    def count(self) -> int:
        return self.counts[-1]

    @property
    def attrition(self) -> list[tuple[str, int]]:
        return list(zip(self.labels, self.counts, strict=True))

    @property
    def breakdown(self) -> list[dict[str, Any]]:
        return [{**dict(zip(self.dims, key, strict=True)), "count": n} for key, n in self.cells]

    def attrition_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"step": range(len(self.counts)), "label": self.labels, "count": self.counts}
        ).set_index("step")

    def breakdown_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.breakdown, columns=[*self.dims, "count"])

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "attrition": [{"label": lab, "count": n} for lab, n in self.attrition],
            "breakdown": self.breakdown,
        }

    @classmethod
    def from_rows(
        cls, compiled: Compiled, rows: list[tuple[Any, ...]], query_hash: str, release: str
    ) -> ExactResult:
        counts, cells = compiled.layout.read(rows)  # the row protocol: engine/rows.py
        cells.sort(key=lambda c: tuple((v is None, v) for v in c[0]))
        return cls(compiled.labels, counts, compiled.dims, tuple(cells), query_hash, release)
