"""Combining the released counts of several nodes into one total with an honest interval.

Each node releases its attrition under its own privacy parameters (privacy.mechanism):
discrete Laplace noise of scale k/ε on each of its k steps, made non-increasing (pool
adjacent violators), rounded to a multiple of its `rounding`, and shown as `<T` below its
threshold T. The hub sees only those released values and the stated mechanism; the total
is the sum of the released values, and its interval comes from the stated noise:

- **Noise.** The error of a released step is not the plain discrete Laplace draw when the
  non-increasing post-processing pooled it with its neighbours: for step j of k, with
  noise e, the error lies between L_j = min_{i<=j} mean(e_i..e_j) and
  U_j = max_{l>=j} mean(e_j..e_l) whatever the true attrition (isotonic regression of a
  non-increasing truth plus noise; for the last step U is the draw itself). A flat
  attrition (a step that excludes nobody) pools often and biases the last step down, so
  a plain Laplace variance would under-cover (measured: 90% instead of 95% for five nodes
  of five steps). The sums over nodes are taken as normal: the lower end of the interval
  uses the U's, the upper end the L's, each at α/2.
- **Their moments, from a table.** The noise draws are independent and symmetric, so U_j
  has the distribution of M_m = max_{l<=m} mean(e_1..e_l) with m = k - j (the steps from j
  on) and L_j that of -M_m with m = j + 1: one family of distributions, indexed by the
  noise scale and m <= MAX_CRITERIA + 1. Their means and variances, in units of the noise's
  standard deviation, were simulated once (`build_table`, fixed seed, 200 000 draws) on a
  grid of scales and ship as `combine_moments.json`; a view looks them up and interpolates
  in log(scale): O(steps) per node, no simulation while a researcher waits (a hostile
  node's or a researcher's 100-step answer costs milliseconds, not minutes).
- **Rounding** is not random: it moves each released value by at most half its rounding
  step, added to both ends as such.
- **Suppressed nodes.** A node that shows `<T` contributes between 0 and T-1 (plus its
  noise and rounding): the total is then itself an interval [sum, sum + Σ(T-1)], stated as
  such, and the (1-α) interval widens by the same amount above.

This is post-processing of released values: it costs no ε and reads no data.
`tests/test_combine.py` checks the coverage by simulating the real mechanism.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from antal.catalog.errors import InternalError
from antal.privacy.noise import NOISES, Laplace, noise_kind

__all__ = [
    "GRID",
    "MAX_STEPS",
    "CombinedCount",
    "NodeCount",
    "Noise",
    "build_table",
    "combine",
    "discrete_laplace_variance",
    "max_mean_moments",
    "positive_part_mean",
    "step_error_moments",
]

# the table of moments (module docstring): draws per grid scale (the standard error of a
# tabulated mean is sd/~450), its seed, its grid of scales and the largest m it holds
_DRAWS = 200_000
_SEED = 20_251_125
GRID = tuple(float(f"{0.05 * 10 ** (i / 20):.6g}") for i in range(101))  # 0.05 .. 5000
MAX_STEPS = 101  # an index and engine.limits.MAX_CRITERIA criteria (a test holds them equal)
_TABLE_FILE = Path(__file__).with_name("combine_moments.json")


@dataclass(frozen=True)
class Noise:
    """How a node says it released one attrition (from the answer's params and scales)."""

    scale: float  # discrete Laplace scale of each step (`cumulative`) or bucket (`partition`)
    steps: int  # k: the steps released together
    rounding: int = 1
    threshold: int = 0
    # `partition` (issue 23: the buckets of the index pool, each at `scale`), or
    # `cumulative` (an older node: the k steps at `scale`, made non-increasing together)
    mechanism: str = "cumulative"
    noise: str = "laplace"  # the draws' distribution (antal.privacy.noise): a partition's may
    # be discrete Gaussian; a cumulative release's are discrete Laplace

    def __post_init__(self) -> None:
        if not (self.scale >= 0 and math.isfinite(self.scale)):
            raise ValueError(f"a noise scale is finite and not negative, not {self.scale!r}")
        if self.steps < 1 or self.rounding < 1 or self.threshold < 0:
            raise ValueError("steps and rounding are at least 1, the threshold at least 0")
        if self.mechanism not in ("partition", "cumulative"):
            raise ValueError(f"no mechanism {self.mechanism!r}")
        if self.noise not in NOISES or (self.noise != "laplace" and self.mechanism != "partition"):
            raise ValueError(f"no {self.mechanism} release with {self.noise!r} noise")


@dataclass(frozen=True)
class NodeCount:
    """One node's released value of one attrition step (None: shown as `<threshold`)."""

    node: str
    value: int | None
    noise: Noise
    step: int  # 0-based position in the node's attrition
    # `partition`: how many of the buckets this step adds up were released near 0 (each may
    # hold nobody and then biases the step up: privacy.mechanism.small_buckets)
    small: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.step < self.noise.steps:
            raise ValueError(f"step {self.step} of an attrition of {self.noise.steps} steps")
        if self.value is not None and self.value < 0:
            raise ValueError("a released count is not negative")


@dataclass(frozen=True)
class CombinedCount:
    """The total over the nodes that answered, with its (1-α) interval.

    `total_low`..`total_high` is the sum of the released values: one number unless some
    node's count was suppressed (then the total is an interval). `low`..`high` covers the
    true total with probability about 1-α."""

    total_low: int
    total_high: int
    low: int
    high: int
    nodes: int
    suppressed: int
    alpha: float

    @property
    def is_interval(self) -> bool:
        return self.total_low != self.total_high

    def shown(self) -> str:
        def n(x: int) -> str:
            return f"{x:,}".replace(",", " ")

        if self.is_interval:
            return f"{n(self.total_low)}–{n(self.total_high)}"
        return n(self.total_low)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total_low if not self.is_interval else None,
            "total_range": [self.total_low, self.total_high],
            "interval": [self.low, self.high],
            # the fields of a released count elsewhere in antal (docs/api.md)
            "count": self.total_low if not self.is_interval else None,
            "lower": self.low,
            "upper": self.high,
            "confidence": round(1 - self.alpha, 6),
            "nodes": self.nodes,
            "suppressed_nodes": self.suppressed,
            "display": self.shown(),
        }


def discrete_laplace_variance(scale: float) -> float:
    """Variance of the discrete Laplace distribution P(x) ∝ exp(-|x|/scale)
    (antal.privacy.noise's, which imports no OpenDP: the hub needs none)."""
    return Laplace().variance(scale)


def _draws(scale: float, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Discrete Laplace draws in `shape`, the noise module's (drawn flat, in row order)."""
    return Laplace().draws(rng, scale, shape[0] * shape[1]).reshape(shape).astype(float)


def max_mean_moments(
    scale: float, steps: int = MAX_STEPS, draws: int = _DRAWS, chunk: int = 20_000
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated (mean, variance) of M_m = max_{l<=m} mean(e_1..e_l) for m = 1..`steps`,
    with e discrete Laplace of `scale` (fixed seed: the same numbers on every machine).
    What `build_table` tabulates; the tests' oracle simulates the mechanism itself."""
    rng = np.random.default_rng([_SEED, round(scale * 1e6)])
    total = np.zeros(steps)
    squares = np.zeros(steps)
    done = 0
    while done < draws:
        n = min(chunk, draws - done)
        e = _draws(scale, (n, steps), rng)
        running = np.maximum.accumulate(np.cumsum(e, axis=1) / np.arange(1, steps + 1), axis=1)
        total += running.sum(axis=0)
        squares += (running**2).sum(axis=0)
        done += n
    mean = total / draws
    return mean, np.maximum(squares / draws - mean**2, 0.0)


def build_table(path: Path = _TABLE_FILE) -> None:
    """Simulate the moments on the grid and write the table the hub reads (a minute or two;
    run by hand after changing the grid, the draws or MAX_CRITERIA:
    `python -c "from antal.privacy.combine import build_table; build_table()"`)."""
    rows = []
    for scale in GRID:
        sd = math.sqrt(discrete_laplace_variance(scale))
        mean, var = max_mean_moments(scale)
        rows.append({"scale": scale,
                     "mean": [float(f"{x / sd:.6g}") for x in mean],
                     "var": [float(f"{x / sd**2:.6g}") for x in var]})  # fmt: skip
    body = {"draws": _DRAWS, "seed": _SEED, "max_steps": MAX_STEPS, "grid": rows}
    path.write_text(json.dumps(body, separators=(",", ":")) + "\n", encoding="utf-8")


@functools.cache
def _table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log scales, standardised means, standardised variances) of the shipped table."""
    body = json.loads(_TABLE_FILE.read_text(encoding="utf-8"))
    if body["max_steps"] < MAX_STEPS:
        raise InternalError(f"{_TABLE_FILE.name} holds {body['max_steps']} steps, not {MAX_STEPS}")
    grid = body["grid"]
    return (np.log([r["scale"] for r in grid]), np.array([r["mean"] for r in grid]),
            np.array([r["var"] for r in grid]))  # fmt: skip


def _moments(scale: float, m: int) -> tuple[float, float]:
    """(mean, variance) of M_m at `scale`, from the table (interpolated in log(scale); the
    grid's ends beyond it, where the standardised moments no longer change)."""
    if scale <= 0:
        return 0.0, 0.0
    logs, means, variances = _table()
    x = min(max(math.log(scale), float(logs[0])), float(logs[-1]))
    i = min(int(np.searchsorted(logs, x, side="right")) - 1, len(logs) - 2)
    w = (x - logs[i]) / (logs[i + 1] - logs[i])
    sd2 = discrete_laplace_variance(scale)
    mean = (1 - w) * means[i, m - 1] + w * means[i + 1, m - 1]
    var = (1 - w) * variances[i, m - 1] + w * variances[i + 1, m - 1]
    return float(mean * math.sqrt(sd2)), float(var * sd2)


def step_error_moments(scale: float, steps: int, step: int) -> tuple[float, float, float, float]:
    """(mean, variance) of U and of L for step `step` of `steps` at noise `scale`: the
    bounds of a released step's error after the non-increasing post-processing (see the
    module docstring): U_j as M_{k-j}, L_j as -M_{j+1}."""
    if not 0 <= step < steps <= MAX_STEPS:
        raise ValueError(f"step {step} of {steps} (at most {MAX_STEPS} steps)")
    m_u, v_u = _moments(scale, steps - step)
    m_l, v_l = _moments(scale, step + 1)
    return m_u, v_u, -m_l, v_l


def positive_part_mean(scale: float) -> float:
    """E[max(e, 0)] of the discrete Laplace noise e at `scale` (antal.privacy.noise's)."""
    return Laplace().positive_part_mean(scale)


def _error_moments(c: NodeCount) -> tuple[float, float, float, float]:
    """(mean, variance) of the bounds U and L of a released step's error. A partition's
    step j adds up m = k - j buckets, each released as max(0, b + e): its error lies between
    the plain noise (L: mean 0, variance m·σ²) and that plus the bias of each bucket released
    near 0 (U: mean `small`·E[max(e, 0)], the same variance): closed forms, O(1)."""
    n = c.noise
    if n.mechanism == "cumulative":
        return step_error_moments(n.scale, n.steps, c.step)
    kind = noise_kind(n.noise)
    var = (n.steps - c.step) * kind.variance(n.scale)
    return c.small * kind.positive_part_mean(n.scale), var, 0.0, var


def combine(counts: Sequence[NodeCount], alpha: float = 0.05) -> CombinedCount:
    """The total of one attrition step over the nodes that released it (see the module
    docstring); `counts` holds one entry per node that answered."""
    if not 0 < alpha < 1:
        raise ValueError("alpha is between 0 and 1")
    z = NormalDist().inv_cdf(1 - alpha / 2)
    shown = sum(c.value for c in counts if c.value is not None)
    hidden = sum(c.noise.threshold - 1 for c in counts if c.value is None and c.noise.threshold)
    mu_u = var_u = mu_l = var_l = 0.0
    half_steps_shown = half_steps_all = 0.0
    for c in counts:
        m_u, v_u, m_l, v_l = _error_moments(c)
        # a cumulative release averages steps (non-integers, then rounded); a partition's
        # steps are sums of integers: rounded only by a rounding base
        pooled = c.noise.steps > 1 and c.noise.mechanism == "cumulative"
        half = c.noise.rounding / 2 if c.noise.rounding > 1 or pooled else 0.0
        mu_l, var_l, half_steps_all = mu_l + m_l, var_l + v_l, half_steps_all + half
        if c.value is not None:  # a suppressed node's count may be 0: no lower error
            mu_u, var_u, half_steps_shown = mu_u + m_u, var_u + v_u, half_steps_shown + half
    low = shown - half_steps_shown - mu_u - z * math.sqrt(var_u)
    high = shown + hidden + half_steps_all - mu_l + z * math.sqrt(var_l)
    return CombinedCount(
        total_low=shown,
        total_high=shown + hidden,
        low=max(0, math.floor(low + 1e-9)),
        high=max(shown + hidden, math.ceil(high - 1e-9)),
        nodes=len(counts),
        suppressed=sum(1 for c in counts if c.value is None),
        alpha=alpha,
    )
