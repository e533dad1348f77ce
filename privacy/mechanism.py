"""Noise, post-processing, rounding, suppression and intervals for one query's counts.

Neighbouring data sets differ by one person (added or removed). An attrition table of k
steps changes by at most 1 in each step, so it is a vector of L1 sensitivity k: OpenDP's
discrete Laplace mechanism with scale k/ε releases it at cost ε. A breakdown is a
partition (each person in exactly one cell): L1 sensitivity 1, the whole table at cost ε.
The table is released over its whole public domain (every region, sex, band...), zero
cells included, so which cells exist tells nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import opendp.prelude as dp
from opendp.accuracy import discrete_laplacian_scale_to_accuracy

from antal.privacy.params import PrivacyParams

__all__ = [
    "COUNT_FIELDS",
    "ReleasedCount",
    "TrueCounts",
    "measurement",
    "noisy_vector",
    "release_attrition",
    "release_cells",
    "within_total",
]

dp.enable_features("contrib")


@dataclass(frozen=True)
class TrueCounts:
    """What the engine hands over: exact counts, never to be shown."""

    labels: tuple[str, ...]
    counts: tuple[int, ...]
    dims: tuple[str, ...] = ()
    cells: dict[tuple[Any, ...], int] | None = None  # exact count per cell (absent: 0)
    domain: list[tuple[Any, ...]] | None = None  # every cell a breakdown can have

    def __repr__(self) -> str:  # a true count must not reach a log line by accident
        return f"TrueCounts(<{len(self.counts)} steps, {len(self.cells or {})} cells hidden>)"

    __str__ = __repr__


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
    acc = discrete_laplacian_scale_to_accuracy(scale, p.alpha)
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
    acc = discrete_laplacian_scale_to_accuracy(scale, p.alpha)
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
