"""Noise, post-processing, rounding, suppression and intervals for one query's counts.

Neighbouring data sets differ by one person (added or removed). An attrition table of k
steps changes by at most 1 in each step, so it is a vector of L1 sensitivity k: OpenDP's
discrete Laplace mechanism with scale k/ε releases it at cost ε. A breakdown is a
partition (each person in exactly one cell): L1 sensitivity 1, the whole table at cost ε.
The table is released over its whole public domain (every region, sex, band...), zero
cells included, so which cells exist tells nothing.

Several tables of the same cohort (several `report by`, and the levels of a roll-up) are
released together (`release_tables`): each person is in one cell of each of the K tables,
so the vector of all their cells has L1 sensitivity K, and discrete Laplace noise of scale
K/ε on every cell releases them all at cost ε. The noisy tables are then made consistent
(post-processing, no ε): top-down, as the US Census TopDown algorithm, each table (or each
group of cells under one cell of the level above) is projected onto the non-negative
values that sum to its released parent (the final count of the attrition for a table as
asked, the cell above for a roll-up level), then rounded to integers (multiples of the
rounding base) that keep the sum. docs/privacy.md gives the variance of each level.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import opendp.prelude as dp
from opendp.accuracy import discrete_laplacian_scale_to_accuracy

from antal.privacy.params import PrivacyParams

__all__ = [
    "COUNT_FIELDS",
    "ReleasedCount",
    "ReleasedTable",
    "TrueCounts",
    "TrueTable",
    "dlap_variance",
    "level_variances",
    "measurement",
    "noisy_vector",
    "release_attrition",
    "release_cells",
    "release_tables",
    "within_total",
]

dp.enable_features("contrib")
_RNG = random.SystemRandom()  # post-processing only: the order of ties when rounding


@dataclass(frozen=True)
class TrueTable:
    """One table's exact counts over its public domain, and where its cells sum: into the
    cohort's total (`parent` None) or into the cells `up` of table `parent` (a roll-up)."""

    dims: tuple[str, ...]
    cells: dict[tuple[Any, ...], int]  # exact count per cell (absent: 0)
    domain: list[tuple[Any, ...]]  # every cell the table can have
    parent: int | None = None
    up: list[tuple[Any, ...]] | None = None  # per cell of `domain`, its cell in `parent`
    report: int = 0  # the `report by` it belongs to
    level: int = 0  # 0: as asked; 1, 2, ...: the levels above

    def __repr__(self) -> str:
        return f"TrueTable({self.dims}, <{len(self.cells)} cells hidden>)"

    __str__ = __repr__


@dataclass(frozen=True)
class TrueCounts:
    """What the engine hands over: exact counts, never to be shown."""

    labels: tuple[str, ...]
    counts: tuple[int, ...]
    dims: tuple[str, ...] = ()
    cells: dict[tuple[Any, ...], int] | None = None  # exact count per cell (absent: 0)
    domain: list[tuple[Any, ...]] | None = None  # every cell a breakdown can have
    tables: tuple[TrueTable, ...] = ()  # several tables (else the one of dims/cells/domain)

    def __repr__(self) -> str:  # a true count must not reach a log line by accident
        return f"TrueCounts(<{len(self.counts)} steps, {len(self.cells or {})} cells hidden>)"

    __str__ = __repr__

    def all_tables(self) -> tuple[TrueTable, ...]:
        if self.tables:
            return self.tables
        if self.dims:
            return (TrueTable(self.dims, self.cells or {}, self.domain or []),)
        return ()


# the fields of a released count in JSON, in order (the API's `Released` schema)
COUNT_FIELDS = ("count", "suppressed", "lower", "upper", "display")


@dataclass(frozen=True)
class ReleasedCount:
    """A count as released: a number with its interval, or suppressed ("<T")."""

    value: int | None  # None when suppressed
    low: int | None
    high: int | None
    threshold: int

    @property
    def suppressed(self) -> bool:
        return self.value is None

    def display(self) -> str:
        """For programs and files: "1240", or "<10" (the threshold as an integer, whatever
        type the configuration gave it)."""
        return f"<{int(self.threshold)}" if self.value is None else str(int(self.value))

    def shown(self) -> str:
        """For people: Swedish thousands ("1 240"), or "<10"."""
        if self.value is None:
            return self.display()
        return f"{self.value:,}".replace(",", " ")

    def to_json(self) -> dict[str, Any]:
        """`count` is a number or null, so that a program can add counts up; `display` is
        what to show. The threshold and rounding are stated once, in the answer's privacy
        parameters, not with every count."""
        return {
            "count": self.value,
            "suppressed": self.suppressed,
            "lower": self.low,
            "upper": self.high,
            "display": self.display(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], threshold: int) -> ReleasedCount:
        """Read the current form and the one stored before issue 11 (`{"count": 1240,
        "interval": [lo, hi]}`, or `{"count": "<10"}` when suppressed)."""
        threshold = int(threshold)
        if "suppressed" in d:
            if d["suppressed"] or d["count"] is None:
                return cls(None, None, None, threshold)
            return cls(int(d["count"]), int(d["lower"]), int(d["upper"]), threshold)
        v = d["count"]
        if v is None or isinstance(v, str):
            return cls(None, None, None, threshold)
        lo, hi = d["interval"]
        return cls(int(v), int(lo), int(hi), threshold)


@dataclass(frozen=True)
class ReleasedTable:
    """A released table: its cells over the whole domain; `report` is the `report by` it
    belongs to and `level` 0 the table as asked, 1, 2... its roll-up levels."""

    dims: tuple[str, ...]
    cells: tuple[tuple[tuple[Any, ...], ReleasedCount], ...]
    report: int = 0
    level: int = 0

    def to_json(self) -> dict[str, Any]:  # the stored form
        return {"dims": list(self.dims), "report": self.report, "level": self.level,
                "cells": [[list(k), c.to_json()] for k, c in self.cells]}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any], threshold: int) -> ReleasedTable:
        cells = tuple((tuple(k), ReleasedCount.from_json(c, threshold)) for k, c in d["cells"])
        return cls(tuple(d["dims"]), cells, int(d["report"]), int(d["level"]))


def dlap_variance(scale: float) -> float:
    """The variance of OpenDP's discrete Laplace noise of a scale: 2q / (1 - q)², q = e^(-1/scale)."""
    q = math.exp(-1 / scale)
    return 2 * q / (1 - q) ** 2


def measurement(scale: float) -> dp.Measurement:
    """OpenDP's discrete Laplace mechanism on a vector of integer counts (L1 distance)."""
    return dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=scale
    )


def noisy_vector(values: list[int], scale: float) -> list[int]:
    """Discrete Laplace noise from OpenDP on a vector of integer counts."""
    return list(measurement(scale)(list(values)))


def _non_increasing(xs: list[float]) -> list[float]:
    """The closest non-increasing sequence (least squares; pool adjacent violators).
    Post-processing: free in privacy, and an attrition can only shrink."""
    blocks: list[list[float]] = []  # [sum, size]
    for x in xs:
        blocks.append([x, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            s, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
    out: list[float] = []
    for s, n in blocks:
        out += [s / n] * int(n)
    return out


def _publish(value: float, accuracy: float, p: PrivacyParams) -> ReleasedCount:
    base = p.rounding
    v = max(0, round(value / base) * base)
    if v < p.threshold:
        return ReleasedCount(None, None, None, p.threshold)
    # the interval is rounded outwards to the same base, so it does not undo the rounding
    low = max(0, math.floor((value - accuracy) / base) * base)
    high = math.ceil((value + accuracy) / base) * base
    return ReleasedCount(int(v), int(min(low, v)), int(max(high, v)), p.threshold)


def release_attrition(
    counts: tuple[int, ...], p: PrivacyParams
) -> tuple[list[ReleasedCount], float]:
    """All steps under one ε; returns the released steps and the noise scale used."""
    k = len(counts)
    scale = k / p.epsilon
    noisy = _non_increasing([float(x) for x in noisy_vector(list(counts), scale)])
    acc = dlap_accuracy(scale, p.alpha)
    return [_publish(x, acc, p) for x in noisy], scale


def release_cells(
    cells: dict[tuple[Any, ...], int], domain: list[tuple[Any, ...]], p: PrivacyParams
) -> tuple[list[tuple[tuple[Any, ...], ReleasedCount]], float]:
    """A partition under one ε: every cell of the domain, zero cells included."""
    if len(domain) > p.max_cells:
        raise ValueError(
            f"a breakdown of {len(domain)} cells is finer than the {p.max_cells} allowed"
        )
    scale = 1 / p.epsilon
    noisy = noisy_vector([cells.get(key, 0) for key in domain], scale) if domain else []
    acc = dlap_accuracy(scale, p.alpha)
    return [(key, _publish(float(x), acc, p)) for key, x in zip(domain, noisy, strict=True)], scale


def within_total(
    cells: list[tuple[tuple[Any, ...], ReleasedCount]], total: ReleasedCount
) -> list[tuple[tuple[Any, ...], ReleasedCount]]:
    """Released cells made consistent with the released total of the same cohort
    (post-processing of released values: no ε). A person is in one cell, so no cell can
    hold more than the total: a cell above it is lowered to it (its interval too), and when
    the total is shown as `<T` every cell is, since none can reach T."""
    if total.value is None:
        return [(key, ReleasedCount(None, None, None, c.threshold)) for key, c in cells]
    out = []
    for key, c in cells:
        if c.value is not None and (c.value > total.value or (c.high or 0) > (total.high or 0)):
            value = min(c.value, total.value)
            c = ReleasedCount(value, min(c.low or 0, value),
                              max(value, min(c.high or value, total.high or value)), c.threshold)  # fmt: skip
        out.append((key, c))
    return out


def _project(xs: list[float], target: float) -> list[float]:
    """The closest (least squares) non-negative values that sum to `target` >= 0: the
    Euclidean projection onto the scaled simplex (sort, find the threshold, clip)."""
    if not xs:
        return []
    if target <= 0:
        return [0.0] * len(xs)
    u = sorted(xs, reverse=True)
    run, theta = 0.0, 0.0
    for j, x in enumerate(u, 1):
        run += x
        t = (run - target) / j
        if x - t > 0:
            theta = t
    return [max(x - theta, 0.0) for x in xs]


def _round_keeping_sum(xs: list[float], total: int) -> list[int]:
    """Integers as close as the largest remainders allow that sum to `total` (xs >= 0 sum
    to it already, up to float error)."""
    floors = [math.floor(x) for x in xs]
    left = total - sum(floors)
    # largest part first; ties (common: a projection shifts integers by one amount) in a
    # random order, else the first cells of a table would always round up (a bias)
    ties = [_RNG.random() for _ in xs]
    order = sorted(range(len(xs)), key=lambda i: (floors[i] - xs[i], ties[i]))
    for i in order[: max(0, left)]:
        floors[i] += 1
    if left < 0:  # float error the other way: take from the smallest parts
        for i in reversed(order[left:]):
            floors[i] = max(0, floors[i] - 1)
    return floors


def _groups(tables: tuple[TrueTable, ...] | list[TrueTable]) -> list[dict[int | None, list[int]]]:
    """Per table, its cells by the cell they sum into: the index of a cell of its parent
    table, or None for the cohort's total."""
    index = [{key: j for j, key in enumerate(t.domain)} for t in tables]
    out: list[dict[int | None, list[int]]] = []
    for t in tables:
        if t.parent is None or t.up is None:
            out.append({None: list(range(len(t.domain)))})
            continue
        groups: dict[int | None, list[int]] = {}
        for j, up in enumerate(t.up):
            groups.setdefault(index[t.parent][up], []).append(j)
        out.append(groups)
    return out


def _top_down(tables: tuple[TrueTable, ...] | list[TrueTable]) -> list[int]:
    """The tables in an order where each comes after the table its cells sum into."""
    order: list[int] = []
    seen: set[int] = set()

    def visit(i: int) -> None:
        if i in seen:
            return
        parent = tables[i].parent
        if parent is not None:
            visit(parent)
        seen.add(i)
        order.append(i)

    for i in range(len(tables)):
        visit(i)
    return order


def level_variances(
    tables: tuple[TrueTable, ...] | list[TrueTable], scale: float, total_variance: float
) -> list[list[float]]:
    """The stated variance of every released cell (before non-negativity and rounding):
    a cell projected with its n − 1 siblings onto a parent released with variance V has
    σ²(1 − 1/n) + V/n², σ² the variance of the noise at `scale` (docs/privacy.md). Reads
    only the domains."""
    s2 = dlap_variance(scale)
    groups = _groups(tables)
    out: list[list[float]] = [[] for _ in tables]
    for i in _top_down(tables):
        var = [0.0] * len(tables[i].domain)
        for parent_cell, members in groups[i].items():
            parent = tables[i].parent
            pv = (
                total_variance
                if parent_cell is None or parent is None
                else out[parent][parent_cell]
            )
            for m in members:
                var[m] = s2 * (1 - 1 / len(members)) + pv / len(members) ** 2
        out[i] = var
    return out


def release_tables(
    tables: tuple[TrueTable, ...],
    total: ReleasedCount,
    total_variance: float,
    p: PrivacyParams,
) -> tuple[list[ReleasedTable], float]:
    """Tables of one cohort under one ε (noise scale K/ε, K tables), made consistent with
    the released total and with each other; see the module docstring. `total` is the
    released final count of the attrition and `total_variance` its noise's variance."""
    size = sum(len(t.domain) for t in tables)
    if size > p.max_cells:
        raise ValueError(f"a breakdown of {size} cells is finer than the {p.max_cells} allowed")
    k = len(tables)
    scale = k / p.epsilon
    flat = [t.cells.get(key, 0) for t in tables for key in t.domain]
    noisy = noisy_vector(flat, scale) if flat else []  # one measurement: all K tables at once
    if total.value is None:  # a total below the threshold: no cell can reach it
        hidden = ReleasedCount(None, None, None, p.threshold)
        return [ReleasedTable(t.dims, tuple((key, hidden) for key in t.domain), t.report,
                              t.level) for t in tables], scale  # fmt: skip
    base = p.rounding
    start = 0
    per_table: list[list[int]] = []
    for t in tables:
        per_table.append(noisy[start : start + len(t.domain)])
        start += len(t.domain)
    groups = _groups(tables)
    values: list[list[int]] = [[] for _ in tables]
    for i in _top_down(tables):  # parents first: TopDown
        t = tables[i]
        vals = [0] * len(t.domain)
        for parent_cell, members in groups[i].items():
            parent = t.parent
            target = (
                total.value
                if parent_cell is None or parent is None
                else values[parent][parent_cell]
            )
            units = _project([per_table[i][m] / base for m in members], target / base)
            for m, v in zip(members, _round_keeping_sum(units, target // base), strict=True):
                vals[m] = v * base
        values[i] = vals
    var = level_variances(tables, scale, total_variance)
    out = []
    for i, t in enumerate(tables):
        cells = tuple(
            (key, _publish(float(v), _accuracy(vv, p.alpha), p))
            for key, v, vv in zip(t.domain, values[i], var[i], strict=True)
        )
        out.append(ReleasedTable(t.dims, cells, t.report, t.level))
    return out, scale


def _accuracy(variance: float, alpha: float) -> float:
    """The half-width of a 1 − alpha interval for an error of this variance: that of the
    discrete Laplace of the same variance (whose tails are the heaviest of the errors
    here: a projected cell's error is a mean of independent Laplace noises)."""
    if variance <= 0:
        return 0.0
    return dlap_accuracy(math.sqrt(variance / 2), alpha)


def dlap_accuracy(scale: float, alpha: float) -> float:
    """The half-width of a 1 − alpha interval of OpenDP's discrete Laplace noise (OpenDP's
    own formula), 0 where P(|noise| ≥ 1) is already below alpha: at such small scales
    (a very large ε) OpenDP's function overflows to infinity."""
    q = math.exp(-1 / scale) if scale > 0 else 0.0
    if 2 * q / (1 + q) <= alpha:
        return 0.0
    return discrete_laplacian_scale_to_accuracy(scale, alpha)
