"""An enrolment plan from a released site table: how many a trial enrols per site and month
at the sites a sponsor picks, when it reaches its target N, and how likely by a date.

Post-processing of released values only, like `antal.privacy.forecast`: the model reads a
`report by hospital` table's released cells (a count and its noise's stated variance, or
`<T`), never the data, and costs no ε.

The model is the Poisson-gamma model of centre recruitment (Anisimov & Fedorov 2007,
Statistics in Medicine 26:4958-4975; Anisimov 2011; Mountain & Sherlock 2022, Biometrics
78:636-648):

- **Eligible persons per site.** Site i's persons become eligible as a Poisson process of
  rate λ_i a month, and the rates of a country's sites are Gamma(α, β) (shape α, rate β).
  Over the index window (τ months) site i had n_i eligible persons, so n_i is negative
  binomial: NB(α, β/(β + τ)).
- **The release.** A site's released value is n_i plus the release's noise of known
  variance, rounded; a site shown as `<T` had a noisy value below T. So the likelihood of
  what was shown is P(shown | n_i) under the noise (discrete Laplace or Gaussian of the
  stated variance), not a point mass at the shown value: the DP noise enters the plan's
  uncertainty. A `<T` site is between 0 and T−1 before noise, and its likelihood says so.
- **The prior** (α, β) is learnt from every site of the table (the marginal NB likelihood,
  summed over the noise): the country's sites tell how much sites differ. It is not one
  plug-in estimate but a posterior over a grid of shapes α and means α/β (flat in their
  logarithms), from which every draw takes its own (α, β): where the table cannot tell the
  prior well (a small or noise-dominated table, Mountain & Sherlock's point) the plan's
  intervals widen instead of trusting a point that happened to fit. The released total of
  the sites' counts, when given (the roll-up's top or the attrition's final count), is
  evidence on the mean (Σn_i has mean S·α·τ/β and NB variance, plus its noise): a table whose
  cells are mostly noise cannot then make every site's rate vanish (a plug-in fit did: a
  site released as 58 given 0.0 a month). Given (α, β), site i's true count has the posterior
  w_i(n) ∝ NB(n)·P(shown | n) and its rate Gamma(α + n, β + τ) given n (the conjugate
  update).
- **Enrolment.** A site enrols a fraction f = capture × consent × (1 − screen failure) of
  its eligible persons (a thinned Poisson process: rate f·λ_i), from its activation date.
  The cumulative intensity Λ(t) = Σ f·λ_i·(t − a_i)⁺ is piecewise linear, and the time to
  the N-th enrolment is Λ⁻¹(G) with G ~ Gamma(N, 1) (the N-th arrival of a unit Poisson
  process), so each draw is exact, not a month-by-month simulation.

Monte Carlo over the posterior (default 4 000 draws, a seeded generator: the same inputs
give the same plan) gives the time to N (median and 90% interval), P(N reached by a date),
and the expected enrolment per site and month with the 90% interval of the cumulative
total. A month is a twelfth of a year (30.44 days).

Not in the model: the fractions are taken as known (a sponsor's assumption, not data);
rates are constant (no season, no trend, no decay after activation: Urbas, Sherlock &
Metcalfe 2022 show decaying rates in oncology trials); the leaves' consistency projection
(a shared shift across a table's cells, docs/privacy.md) is treated as independent noise
per cell.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

__all__ = [
    "DAYS_PER_MONTH",
    "Fractions",
    "Plan",
    "PlanError",
    "SiteCount",
    "SitePlan",
    "Total",
    "add_months",
    "calendar_month",
    "fit_prior",
    "plan",
    "prior_posterior",
    "schedule",
    "site_posterior",
    "time_to_target",
]

DAYS_PER_MONTH = 365.25 / 12
DRAWS = 4000
SEED = 20240124
MAX_TARGET = 1_000_000
MAX_MONTHS_SHOWN = 120  # the monthly table stops here (the time to N does not)
MAX_MONTHS_DATED = 1200  # a time to N beyond 100 years is given no date
NEVER_MONTHS = 1e9  # a draw that never reaches N


class PlanError(ValueError):
    """Inputs a plan cannot use (the message says which and why)."""


@dataclass(frozen=True)
class SiteCount:
    """One released cell of a site table: `value` None when shown as `<threshold`;
    `variance` that of the noise of the release at this cell (0: an exact count)."""

    code: str
    name: str | None
    value: int | None
    variance: float
    threshold: int
    rounding: int = 1


@dataclass(frozen=True)
class Fractions:
    """Of the eligible persons at a site: the share the site's screening captures, the share
    of those who consent, and the share of those who fail screening."""

    capture: float = 1.0
    consent: float = 1.0
    screen_fail: float = 0.0

    def __post_init__(self) -> None:
        for name in ("capture", "consent"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and 0 < v <= 1):
                raise PlanError(f"{name.replace('_', '-')} is a fraction in (0, 1], not {v!r}")
        v = self.screen_fail
        if not (isinstance(v, int | float) and math.isfinite(v) and 0 <= v < 1):
            raise PlanError(f"screen-fail is a fraction in [0, 1), not {v!r}")

    @property
    def enrolled(self) -> float:
        """The share of eligible persons enrolled."""
        return self.capture * self.consent * (1 - self.screen_fail)

    def to_json(self) -> dict[str, float]:
        return {"capture": self.capture, "consent": self.consent,
                "screen_fail": self.screen_fail, "enrolled": self.enrolled}  # fmt: skip


def add_months(start: dt.date, months: float) -> dt.date:
    """The date `months` (of 30.44 days) after `start`."""
    return start + dt.timedelta(days=round(months * DAYS_PER_MONTH))


def calendar_month(start: dt.date, m: int) -> dt.date:
    """The day `m` calendar months after `start` (the month's last day when it is shorter)."""
    y, mo = divmod(start.month - 1 + m, 12)
    first = dt.date(start.year + y, mo + 1, 1)
    last = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return first.replace(day=min(start.day, last.day))


def _months_between(a: dt.date, b: dt.date) -> float:
    return (b - a).days / DAYS_PER_MONTH


# ---- the release's likelihood ----------------------------------------------------------------


def _noise_cdf(k: np.ndarray, variance: float, noise: str) -> np.ndarray:
    """P(noise ≤ k) for integer k, for a noise of this variance (0: none)."""
    k = np.asarray(k, dtype=float)
    if variance <= 0:
        return (k >= 0).astype(float)
    if noise == "gaussian":
        return np.asarray(stats.norm.cdf((k + 0.5) / math.sqrt(variance)))
    # discrete Laplace with 2q/(1-q)² = variance: P(e = k) = (1-q)/(1+q)·q^|k|
    q = ((variance + 1) - math.sqrt(2 * variance + 1)) / variance
    neg = q ** (-k) / (1 + q)  # k < 0: P(e ≤ k) = q^(-k) / (1 + q)
    pos = 1 - q ** (k + 1) / (1 + q)
    return np.where(k < 0, neg, pos)


def _likelihood(cell: SiteCount, grid: np.ndarray, noise: str) -> np.ndarray:
    """P(what the release shows | the true count n) for every n of `grid`."""
    v = cell.variance
    if cell.value is None:  # shown as <T: the noisy value was below T
        return _noise_cdf(cell.threshold - 1 - grid, v, noise)
    r = max(1, int(cell.rounding))
    if cell.value <= 0:  # the table is clamped at 0: any noisy value up to r/2 shows 0
        return _noise_cdf(math.ceil(r / 2) - 1 - grid, v, noise)
    lo = math.ceil(cell.value - r / 2)  # the noisy values that round to the shown one
    hi = math.ceil(cell.value + r / 2) - 1
    return _noise_cdf(hi - grid, v, noise) - _noise_cdf(lo - 1 - grid, v, noise)


def _grid(cells: Sequence[SiteCount]) -> np.ndarray:
    top = max((c.value if c.value is not None else c.threshold) for c in cells)
    spread = max(math.sqrt(max(c.variance, 0.0)) for c in cells)
    rounding = max(c.rounding for c in cells)
    return np.arange(0, int(top + 14 * spread + 2 * rounding + 20) + 1, dtype=float)


def _nb_logpmf(
    n: np.ndarray, alpha: np.ndarray | float, beta: np.ndarray | float, tau: float
) -> np.ndarray:
    """log NB(n; α, β/(β+τ)): the count over τ months of a site whose rate is Gamma(α, β).
    Broadcasts: counts along one axis and (α, β) along another give every pair."""
    return (special.gammaln(n + alpha) - special.gammaln(alpha) - special.gammaln(n + 1)
            + alpha * np.log(beta / (beta + tau)) + n * np.log(tau / (beta + tau)))  # fmt: skip


def fit_prior(
    cells: Sequence[SiteCount],
    exposure: float,
    noise: str = "laplace",
    total: Total | None = None,
) -> tuple[float, float]:
    """(α, β) of the sites' monthly rates, Gamma(α, β): the mode of `prior_posterior` (the
    plan draws over the whole posterior; this is the point it reports)."""
    alpha, beta, w = prior_posterior(cells, exposure, noise, total)
    i = int(np.argmax(w))
    return float(alpha[i]), float(beta[i])


@dataclass(frozen=True)
class Total:
    """The released total of the table's sites (`value`, the variance of its noise)."""

    value: float
    variance: float


# The grid of the prior's posterior: shapes α from 0.05 (sites differ a hundredfold) to 200
# (all alike), means from a hundredth to a hundred times the table's rough mean.
_SHAPES = np.exp(np.linspace(math.log(0.05), math.log(200.0), 41))
_MEAN_SPAN = np.linspace(-math.log(100.0), math.log(100.0), 47)


def prior_posterior(
    cells: Sequence[SiteCount],
    exposure: float,
    noise: str = "laplace",
    total: Total | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(α, β, weight) of every grid point: the posterior of the sites' Gamma(α, β) given
    every cell as released (and the released total, when given)."""
    if exposure <= 0:
        raise PlanError("the index window has no length")
    if not any(c.value is not None for c in cells):
        raise PlanError(
            "every site of the table is shown as below the threshold: there is no rate to plan from"
        )
    grid = _grid(cells)
    lik = np.vstack([_likelihood(c, grid, noise) for c in cells])  # sites × counts
    if total is not None and total.value > 0:
        m0 = total.value / (len(cells) * exposure)
    else:
        shown = [c.value if c.value is not None else c.threshold / 2 for c in cells]
        m0 = max(float(np.mean(shown)), 0.5) / exposure
    alpha = np.repeat(_SHAPES, _MEAN_SPAN.size)
    mean = np.tile(m0 * np.exp(_MEAN_SPAN), _SHAPES.size)
    beta = alpha / mean
    # every grid point (rows) and count (columns)
    logp = _nb_logpmf(grid[None, :], alpha[:, None], beta[:, None], exposure)
    top = logp.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        ll = (np.log(lik @ np.exp(logp - top).T) + top.T).sum(axis=0)
    if total is not None:
        mu = len(cells) * mean * exposure  # Σ n_i: the sites' counts together
        var = mu * (1 + exposure / beta) + total.variance + 1.0
        ll = ll - 0.5 * (total.value - mu) ** 2 / var - 0.5 * np.log(var)
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    if not np.isfinite(ll).any():
        raise PlanError("the released table is impossible under the model")
    w = np.exp(ll - ll.max())
    return alpha, beta, w / w.sum()


def site_posterior(
    cell: SiteCount, alpha: float, beta: float, exposure: float, noise: str = "laplace"
) -> tuple[np.ndarray, np.ndarray]:
    """(counts n, weights w(n)): the posterior of a site's true count given its release."""
    grid = _grid([cell])
    logw = _nb_logpmf(grid, alpha, beta, exposure)
    w = np.exp(logw - logw.max()) * _likelihood(cell, grid, noise)
    if w.sum() <= 0:
        raise PlanError(f"site {cell.code}'s released value is impossible under the model")
    return grid, w / w.sum()


# ---- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SitePlan:
    """One site of a plan: what it released, its eligible persons a month (posterior mean
    and 90% interval), what it enrols a month once active, and when it starts."""

    code: str
    name: str | None
    released: int | None  # None: shown as <threshold
    threshold: int
    start: dt.date
    eligible_per_month: float
    eligible_per_month90: tuple[float, float]
    enrolled_per_month: float

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.code, "name": self.name,
            "released": self.released,
            "display": f"<{self.threshold}" if self.released is None else str(self.released),
            "start": self.start.isoformat(),
            "eligible_per_month": round(self.eligible_per_month, 3),
            "eligible_per_month90": [round(x, 3) for x in self.eligible_per_month90],
            "enrolled_per_month": round(self.enrolled_per_month, 3),
        }  # fmt: skip


@dataclass(frozen=True)
class Plan:
    target: int
    start: dt.date
    exposure_months: float
    fractions: Fractions
    prior: tuple[float, float]  # (α, β) of the monthly rates
    sites: tuple[SitePlan, ...]
    months: tuple[dict[str, Any], ...]  # per month: expected per site, total, cumulative
    time_median: float
    time90: tuple[float, float]
    by: dt.date | None
    p_by: float | None
    draws: int
    seed: int
    notes: tuple[str, ...] = field(default=())

    def date_of(self, months: float) -> dt.date | None:
        """The date `months` after the start; None beyond 100 years (no date to give)."""
        return add_months(self.start, months) if months <= MAX_MONTHS_DATED else None

    def to_json(self) -> dict[str, Any]:
        lo, hi = self.time90
        return {
            "model": "Poisson-gamma centre recruitment (Anisimov & Fedorov 2007), "
                     "rates updated by each site's released count, noise included",
            "target": self.target,
            "start": self.start.isoformat(),
            "exposure_months": round(self.exposure_months, 3),
            "fractions": self.fractions.to_json(),
            "prior": {"alpha": self.prior[0], "beta": self.prior[1],
                      "mean_per_month": self.prior[0] / self.prior[1]},
            "sites": [s.to_json() for s in self.sites],
            "time_to_target": {
                "median_months": round(self.time_median, 2),
                "interval90_months": [round(lo, 2), round(hi, 2)],
                "median": _iso(self.date_of(self.time_median)),
                "interval90": [_iso(self.date_of(lo)), _iso(self.date_of(hi))],
            },
            "by": self.by.isoformat() if self.by else None,
            "p_by": None if self.p_by is None else round(self.p_by, 4),
            "months": list(self.months),
            "simulation": {"draws": self.draws, "seed": self.seed},
            "notes": list(self.notes),
            "epsilon": 0,
        }  # fmt: skip


def _iso(d: dt.date | None) -> str | None:
    return None if d is None else d.isoformat()


def time_to_target(rates: np.ndarray, starts: np.ndarray, gammas: np.ndarray) -> np.ndarray:
    """Per draw, the time at which the cumulative intensity Σ rate_i·(t − start_i)⁺ reaches
    the draw's Gamma(N, 1) value: rates (draws × sites), starts (sites), gammas (draws)."""
    order = np.argsort(starts, kind="stable")
    a = starts[order]
    slope = np.cumsum(rates[:, order], axis=1)  # total rate once sites 0..k are active
    # Λ at each site's start: Λ(a_k) = Σ_{j<k} slope_{j}·(a_{j+1} − a_j)
    gaps = np.diff(a)
    at = np.zeros_like(slope)
    at[:, 1:] = np.cumsum(slope[:, :-1] * gaps, axis=1)
    seg = (at <= gammas[:, None]).sum(axis=1) - 1  # the last start before Λ reaches G
    rows = np.arange(len(gammas))
    return a[seg] + (gammas - at[rows, seg]) / slope[rows, seg]


def schedule(
    sites: Sequence[str],
    start: dt.date,
    site_starts: Mapping[str, dt.date] | None = None,
    by: dt.date | None = None,
    names: Mapping[str, str] | None = None,
) -> dict[str, dt.date]:
    """Each site's first day (the plan's `start` unless `site_starts` says later), checked:
    a start date only for a planned site, none before the plan's start, and the date to
    reach the target after it (`PlanError` with the reason; `names` shows a site's code as
    the user wrote it). The one check of a plan's dates, for the use case and the model."""
    shown = names or {}
    starts = {s: start for s in sites}
    for s, d in (site_starts or {}).items():
        if s not in starts:
            raise PlanError(
                f"a start date for {shown.get(s, s)!r}, which is not one of the plan's sites"
            )
        if d < start:
            raise PlanError(f"site {shown.get(s, s)!r} starts {d}, before the plan's start {start}")
        starts[s] = d
    if by is not None and by <= start:
        raise PlanError(f"the date to reach the target ({by}) is not after the start ({start})")
    return starts


def plan(
    table: Sequence[SiteCount],
    exposure_months: float,
    sites: Sequence[str],
    target: int,
    start: dt.date,
    fractions: Fractions = Fractions(),
    site_starts: Mapping[str, dt.date] | None = None,
    by: dt.date | None = None,
    noise: str = "laplace",
    prior: tuple[float, float] | None = None,
    draws: int = DRAWS,
    seed: int = SEED,
    total: Total | None = None,
) -> Plan:
    """The enrolment plan of `sites` (codes of `table`'s cells) to `target` persons from
    `start` (see the module docstring). `prior` fixes (α, β) instead of drawing them from
    their posterior; `total` is the released total of the table's sites."""
    if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target <= MAX_TARGET:
        raise PlanError(f"the target is a whole number from 1 to {MAX_TARGET}, not {target!r}")
    if not sites:
        raise PlanError("name at least one site")
    if exposure_months <= 0:
        raise PlanError("the index window has no length")
    cells = {c.code: c for c in table}
    unknown = [s for s in sites if s not in cells]
    if unknown:
        raise PlanError(f"not in the site table: {', '.join(unknown)}")
    if len(set(sites)) != len(sites):
        raise PlanError("a site is named twice")
    starts = schedule(sites, start, site_starts, by)
    rng = np.random.default_rng(seed)
    if prior is not None:
        ab = np.array([prior], dtype=float)
        pick = np.zeros(draws, dtype=int)
        mode = ab[0]
    else:
        a, b, w = prior_posterior(list(cells.values()), exposure_months, noise, total)
        ab = np.column_stack([a, b])
        pick = rng.choice(len(w), size=draws, p=w)
        mode = ab[int(np.argmax(w))]  # the point reported: fit_prior's, the posterior's mode
    f = fractions.enrolled
    lam = np.empty((draws, len(sites)))
    for g in np.unique(pick):  # the draws that took grid point g: its (α, β)
        rows = np.flatnonzero(pick == g)
        alpha, beta = float(ab[g, 0]), float(ab[g, 1])
        for j, s in enumerate(sites):
            grid, w = site_posterior(cells[s], alpha, beta, exposure_months, noise)
            n = rng.choice(grid, size=rows.size, p=w)
            lam[rows, j] = rng.gamma(alpha + n, 1.0 / (beta + exposure_months))
    offs = np.array([_months_between(start, starts[s]) for s in sites])
    t = time_to_target(f * lam, offs, rng.gamma(target, 1.0, size=draws))
    # a draw whose rates all vanish (underflow) never reaches N: a finite "never" keeps the
    # quantiles, the JSON and the monthly horizon numbers (beyond 100 years: no date)
    t = np.where(np.isfinite(t), t, NEVER_MONTHS)
    lo, med, hi = (float(x) for x in np.quantile(t, [0.05, 0.5, 0.95]))
    p_by = None if by is None else float(np.mean(t <= _months_between(start, by)))
    site_plans = tuple(
        SitePlan(s, cells[s].name, cells[s].value, cells[s].threshold, starts[s],
                 float(lam[:, j].mean()),
                 tuple(float(x) for x in np.quantile(lam[:, j], [0.05, 0.95])),  # type: ignore[arg-type]
                 float(f * lam[:, j].mean()))
        for j, s in enumerate(sites)
    )  # fmt: skip
    horizon = min(MAX_MONTHS_SHOWN, max(12, math.ceil(hi)))
    months = _monthly(site_plans, f * lam, offs, start, horizon, target, rng)
    return Plan(target, start, exposure_months, fractions, (float(mode[0]), float(mode[1])),
                site_plans, months, med, (lo, hi), by, p_by, draws, seed)  # fmt: skip


def _monthly(
    sites: Sequence[SitePlan],
    rates: np.ndarray,
    offs: np.ndarray,
    start: dt.date,
    horizon: int,
    target: int,
    rng: np.random.Generator,
) -> tuple[dict[str, Any], ...]:
    """Per calendar month of the plan: each site's expected enrolment (its mean rate times
    the time it is active in that month), the total, the expected cumulative total at the
    month's end and its 90% interval (a Poisson count of each draw's cumulative intensity)."""
    out = []
    mean = rates.mean(axis=0)
    for m in range(1, horizon + 1):
        a = _months_between(start, calendar_month(start, m - 1))
        b = _months_between(start, calendar_month(start, m))
        per_site = mean * np.clip(b - np.maximum(a, offs), 0, None)  # months active in it
        cum = rng.poisson((rates * np.clip(b - offs, 0, None)).sum(axis=1))
        lo, hi = (int(x) for x in np.quantile(cum, [0.05, 0.95]))
        out.append({
            "month": m,
            "from": calendar_month(start, m - 1).isoformat(),
            "sites": {s.code: round(float(v), 3) for s, v in zip(sites, per_site, strict=True)},
            "expected": round(float(per_site.sum()), 3),
            "cumulative": round(float(cum.mean()), 2),
            "cumulative90": [lo, hi],
            "p_reached": round(float(np.mean(cum >= target)), 4),
        })  # fmt: skip
    return tuple(out)
