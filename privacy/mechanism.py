"""Noise, post-processing, rounding, suppression and intervals for one query's counts.

Neighbouring data sets differ by one person (added or removed).

**The attrition is released as a partition.** Every person of the index pool falls in
exactly one bucket: removed by criterion i (i = 1..k-1), or remaining after the last. The
vector of the k buckets has L1 sensitivity 1, so OpenDP's discrete Laplace mechanism of
scale 1/ε releases all of it at cost ε. Each step's count is a sum of buckets (the final
count: the remaining bucket alone; step j: the k - j buckets from j on), so the final count
has the noise of one count and an earlier step the noise of the buckets it adds up. The
estimates are non-negative and consistent: the least-squares non-negative buckets (each
bucket measured once: its noisy value clipped at 0), so the steps never increase. Before
issue 23 the cumulative counts were released at scale k/ε (`cumulative` answers, still read
back and labelled): at the same ε the final count's noise was k times as large.

A breakdown is a partition (each person in exactly one cell): L1 sensitivity 1, the whole
table at cost ε. The table is released over its whole public domain (every region, sex,
band...), zero cells included, so which cells exist tells nothing.

**Tables are measured at their leaves.** Of a cohort's tables (several `report by`, and the
levels of a roll-up), only the finest of each `report by` is measured: each person is in one
cell of each of the K measured tables, so the vector of their cells has L1 sensitivity K, and
discrete Laplace noise of scale K/ε on every cell releases them all at cost ε. The levels
above (län, healthcare region, Sweden above hospitals) are sums of the leaves they hold,
never measured again: a roll-up adds no noise and costs no ε. The leaves are made
consistent with the released final count (post-processing, no ε): projected onto the
non-negative values that sum to it (least squares), then rounded to integers (multiples of
the rounding base) that keep the sum; the levels above add them up. docs/privacy.md gives
the variance of each level.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import opendp.prelude as dp

from antal.privacy.noise import Laplace, noise_kind
from antal.privacy.params import PrivacyParams

__all__ = [
    "COUNT_FIELDS",
    "MECHANISMS",
    "UNITS",
    "ReleasedCount",
    "ReleasedTable",
    "TrueCounts",
    "TrueTable",
    "attrition_bounds",
    "attrition_variances",
    "dlap_variance",
    "leaves",
    "level_variances",
    "measurement",
    "noisy_vector",
    "release_attrition",
    "release_cells",
    "release_tables",
    "small_buckets",
    "variance_accuracy",
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


UNITS = ("persons", "episodes")  # what a cohort's counts count (`index each`: episodes)


@dataclass(frozen=True)
class TrueCounts:
    """What the engine hands over: exact counts, never to be shown."""

    labels: tuple[str, ...]
    counts: tuple[int, ...]
    dims: tuple[str, ...] = ()
    cells: dict[tuple[Any, ...], int] | None = None  # exact count per cell (absent: 0)
    domain: list[tuple[Any, ...]] | None = None  # every cell a breakdown can have
    tables: tuple[TrueTable, ...] = ()  # several tables (else the one of dims/cells/domain)
    # K: the most units one person adds to the counts (1: a person is a unit; an `index
    # each` cohort's episodes: engine.ir.contribution). Every release scales its noise by it
    contribution: int = 1
    unit: str = "persons"  # what the counts count: persons, or `index each`'s episodes

    def __post_init__(self) -> None:
        if isinstance(self.contribution, bool) or not (
            isinstance(self.contribution, int) and self.contribution >= 1
        ):
            raise ValueError("a contribution bound is a whole number of at least 1")
        if self.unit not in UNITS:
            raise ValueError(f"a unit is one of {', '.join(UNITS)}")

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
    return Laplace().variance(scale)


def measurement(scale: float, noise: str = "laplace") -> dp.Measurement:
    """OpenDP's mechanism on a vector of integer counts: discrete Laplace (L1 distance, ε)
    or discrete Gaussian (L2 distance, ρ); see antal.privacy.noise."""
    return noise_kind(noise).measurement(scale)


def noisy_vector(values: list[int], scale: float, noise: str = "laplace") -> list[int]:
    """Noise from OpenDP on a vector of integer counts (discrete Laplace unless `noise`)."""
    return noise_kind(noise).sample(values, scale)


def _publish(
    value: float, accuracy: float, p: PrivacyParams, below: float | None = None
) -> ReleasedCount:
    """A released count: rounded, suppressed below the threshold, with its interval:
    `accuracy` above the value and `below` (default: the same) under it."""
    base = p.rounding
    v = max(0, round(value / base) * base)
    if v < p.threshold:
        return ReleasedCount(None, None, None, p.threshold)
    under = accuracy if below is None else below
    # the interval is rounded outwards to the same base, so it does not undo the rounding
    low = max(0, math.floor((value - under) / base) * base)
    high = math.ceil((value + accuracy) / base) * base
    return ReleasedCount(int(v), int(min(low, v)), int(max(high, v)), p.threshold)


MECHANISMS = ("partition", "cumulative")  # how an attrition was released (the newest first)


def attrition_bounds(k: int, scale: float, alpha: float, noise: str = "laplace") -> list[float]:
    """The widest interval (upper − lower, before rounding) a partition release of k steps
    at `scale` can state for each step: its noise's 1 − alpha width, and below it the bias
    of every bucket it adds up (the hub checks a node's answers against these)."""
    bias = noise_kind(noise).positive_part_mean(scale)
    return [2 * variance_accuracy(v, alpha, noise) + (k - j) * bias
            for j, v in enumerate(attrition_variances(k, scale, noise))]  # fmt: skip


def attrition_variances(k: int, scale: float, noise: str = "laplace") -> list[float]:
    """The stated variance of each step of a partition release of k steps at `scale`: step
    j adds up k - j buckets, each with the noise's variance (an upper bound: clipping a
    bucket at 0 only lowers it)."""
    one = noise_kind(noise).variance(scale)
    return [(k - j) * one for j in range(k)]


def small_buckets(
    buckets: list[float], scale: float, alpha: float, noise: str = "laplace"
) -> list[int]:
    """Per step j, how many of the buckets it adds up (j..k-1) were released within the
    noise of 0 (at most its 1 - alpha half-width): those may hold nobody, and then each
    biases the step up by `positive_part_mean`. Read from released values only."""
    near = noise_kind(noise).accuracy(scale, alpha)
    out, run = [], 0
    for b in reversed(buckets):
        run += b <= near
        out.append(run)
    return out[::-1]


def release_attrition(
    counts: tuple[int, ...],
    p: PrivacyParams,
    epsilon: float | None = None,
    contribution: int = 1,
) -> tuple[list[ReleasedCount], float]:
    """All steps as one partition under ε or ρ (`epsilon`, else the parameters' loss of one
    release): returns the released steps and the noise scale of each bucket (see the module
    docstring). With `contribution` K (a person is up to K units: episodes), one person
    moves the buckets by K in L1 and L2 (worst case all in one bucket): the scale is K/ε
    (Gaussian K/√(2ρ)).

    Step j's error is the sum of its buckets' errors, max(-b, e) each: at least the plain
    noise and at most its positive part. Its interval is the plain noise's (variance of
    the k - j buckets) above, and below it that widened by the bias of each bucket released
    near 0 (`small_buckets`), which may hold nobody."""
    kind = p.kind
    k = len(counts)
    scale = kind.scale_for(p.release_loss if epsilon is None else epsilon, 1, contribution)
    buckets = [counts[i] - counts[i + 1] for i in range(k - 1)] + [counts[-1]]
    if any(b < 0 for b in buckets):
        raise ValueError("an attrition's counts do not increase")
    noisy = [max(0, x) for x in kind.sample(buckets, scale)]  # non-negative least squares
    steps = [float(sum(noisy[j:])) for j in range(k)]
    bias = kind.positive_part_mean(scale)
    small = small_buckets([float(x) for x in noisy], scale, p.alpha, p.noise)
    out = []
    for x, v, n in zip(steps, attrition_variances(k, scale, p.noise), small, strict=True):
        acc = variance_accuracy(v, p.alpha, p.noise)
        out.append(_publish(x, acc, p, below=acc + n * bias))
    return out, scale


def release_cells(
    cells: dict[tuple[Any, ...], int],
    domain: list[tuple[Any, ...]],
    p: PrivacyParams,
    contribution: int = 1,
) -> tuple[list[tuple[tuple[Any, ...], ReleasedCount]], float]:
    """A partition under one ε: every cell of the domain, zero cells included (a person
    in up to `contribution` units of it: the scale is K/ε)."""
    if len(domain) > p.max_cells:
        raise ValueError(
            f"a breakdown of {len(domain)} cells is finer than the {p.max_cells} allowed"
        )
    kind = p.kind
    scale = kind.scale_for(p.release_loss, 1, contribution)
    noisy = kind.sample([cells.get(key, 0) for key in domain], scale) if domain else []
    acc = kind.accuracy(scale, p.alpha)
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


def leaves(tables: tuple[TrueTable, ...] | list[TrueTable]) -> list[int]:
    """The tables measured: those no other table rolls up from (the finest level of each
    `report by`; a table without a roll-up is its own leaf)."""
    parents = {t.parent for t in tables if t.parent is not None}
    return [i for i in range(len(tables)) if i not in parents]


def _cover(tables: tuple[TrueTable, ...] | list[TrueTable]) -> list[list[tuple[int, list[int]]]]:
    """Per table, per cell: the leaf table and the leaf cells it adds up (a leaf's cell: itself)."""
    index = [{key: j for j, key in enumerate(t.domain)} for t in tables]
    out: list[list[tuple[int, list[int]]]] = [[(-1, []) for _ in t.domain] for t in tables]
    for leaf in leaves(tables):
        for j in range(len(tables[leaf].domain)):
            i, cell = leaf, j
            while True:
                held = out[i][cell]
                out[i][cell] = (leaf, [*held[1], j])
                t = tables[i]
                if t.parent is None or t.up is None:
                    break
                cell, i = index[t.parent][t.up[cell]], t.parent
    return out


def level_variances(
    tables: tuple[TrueTable, ...] | list[TrueTable],
    scale: float,
    total_variance: float,
    noise: str = "laplace",
) -> list[list[float]]:
    """The stated variance of every released cell (before non-negativity and rounding). A
    leaf table of n cells, each measured with noise variance σ² at `scale`, is projected
    onto the released total (variance V): a cell that adds up c of its n leaf cells (c = 1
    for a leaf) has c·σ²·(1 − c/n) + (c/n)²·V (docs/privacy.md). Reads only the domains."""
    s2 = noise_kind(noise).variance(scale)
    out: list[list[float]] = []
    for i, cells in enumerate(_cover(tables)):
        row = []
        for leaf, held in cells:
            n, c = len(tables[leaf].domain) if leaf >= 0 else 1, len(held)
            row.append(c * s2 * (1 - c / n) + (c / n) ** 2 * total_variance if n else 0.0)
        out.append(row)
        del i
    return out


def release_tables(
    tables: tuple[TrueTable, ...],
    total: ReleasedCount,
    total_variance: float,
    p: PrivacyParams,
    epsilon: float | None = None,
    contribution: int = 1,
) -> tuple[list[ReleasedTable], float]:
    """Tables of one cohort under one ε or ρ (`epsilon`, else the parameters' loss of one
    release): the leaves measured at the noise scale of T tables (T/ε; √T/√(2ρ) for the
    Gaussian), times the `contribution` K of a person (T·K/ε; √T·K/√(2ρ): up to K units
    in one cell of each), made consistent with the released total,
    and the levels above added up from them; see the module docstring. `total` is the
    released final count of the attrition and `total_variance` its noise's variance."""
    size = sum(len(t.domain) for t in tables)
    if size > p.max_cells:
        raise ValueError(f"a breakdown of {size} cells is finer than the {p.max_cells} allowed")
    measured = leaves(tables)
    kind = p.kind
    loss = p.release_loss if epsilon is None else epsilon
    scale = kind.scale_for(loss, len(measured), contribution)
    flat = [tables[i].cells.get(key, 0) for i in measured for key in tables[i].domain]
    noisy = kind.sample(flat, scale) if flat else []  # one measurement: every leaf at once
    if total.value is None:  # a total below the threshold: no cell can reach it
        hidden = ReleasedCount(None, None, None, p.threshold)
        return [ReleasedTable(t.dims, tuple((key, hidden) for key in t.domain), t.report,
                              t.level) for t in tables], scale  # fmt: skip
    base = p.rounding
    leaf_values: dict[int, list[int]] = {}
    start = 0
    for i in measured:
        n = len(tables[i].domain)
        units = _project([x / base for x in noisy[start : start + n]], total.value / base)
        leaf_values[i] = [v * base for v in _round_keeping_sum(units, total.value // base)]
        start += n
    var = level_variances(tables, scale, total_variance, p.noise)
    out = []
    for i, (t, cells) in enumerate(zip(tables, _cover(tables), strict=True)):
        values = [sum(leaf_values[leaf][j] for j in held) if leaf >= 0 else 0
                  for leaf, held in cells]  # fmt: skip
        released = tuple(
            (key, _publish(float(v), variance_accuracy(vv, p.alpha, p.noise), p))
            for key, v, vv in zip(t.domain, values, var[i], strict=True)
        )
        out.append(ReleasedTable(t.dims, released, t.report, t.level))
    return out, scale


def variance_accuracy(variance: float, alpha: float, noise: str = "laplace") -> float:
    """The half-width of a 1 − alpha interval for an error of this variance made of this
    noise (antal.privacy.noise: the Laplace's that of one draw of the same variance, whose
    tails are the heaviest; the Gaussian's exact, a sum of Gaussians being Gaussian)."""
    return noise_kind(noise).accuracy_of_variance(variance, alpha)


def dlap_accuracy(scale: float, alpha: float) -> float:
    """The half-width of a 1 − alpha interval of OpenDP's discrete Laplace noise (OpenDP's
    own formula), 0 where P(|noise| ≥ 1) is already below alpha."""
    return Laplace().accuracy(scale, alpha)
