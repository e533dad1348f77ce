"""Recruitment forecast from a released monthly series: post-processing, no ε.

Input: a monthly series as released by the privacy layer, one `ReleasedMonth` per month
(the first day of the month, the released value or None where it was shown as "<T", the
noise scale b of that release, its noise (discrete Laplace, or discrete Gaussian under
zCDP: antal.privacy.noise) and the threshold T). Everything here reads
only those released numbers, never the data, so it costs nothing beyond the series itself
(post-processing of a differentially private release is free: Dwork & Roth, *The
Algorithmic Foundations of Differential Privacy*, 2014, Proposition 2.1).

The model (`fit`): the released value of month t is `max(0, y_t + e_t)`, where y_t, the
number of persons newly eligible that month, is negative binomial with mean
`mu_t = exp(b0 + b1 * years + season[month of year])` and variance `mu_t + a * mu_t**2`,
and e_t the release's discrete Laplace noise (variance known from b). The month of year
enters only with at least `SEASONAL_MONTHS` months of history (two of each month);
shorter series get a trend alone, and fewer than `MIN_MONTHS` months are refused. The
mean is a Poisson-family GLM (statsmodels) with variance weights, so that each month's
variance is `mu + a * mu**2 + var(noise)`: the over-dispersion a is estimated by moments
from what the Poisson variance and the noise do not explain, and the two are refitted in
turn until stable. A suppressed month is censored: its value is only known to be below T.
It is replaced by its expected released value given that it is below T under the current
fit, refitted until stable (for a GLM whose estimating equations are linear in y, this is
the EM algorithm's E-step), and it is labelled in the result.

The forecast (`forecast`): the next N months' expected counts and 50% and 90% prediction
intervals for the value a release would show, from a parametric bootstrap with a fixed
seed: draw the coefficients from their estimated normal distribution, draw the count from
the negative binomial (a gamma-Poisson mixture), add discrete Laplace noise at the
release's scale, and clamp at 0 as the mechanism does. The intervals thus hold the
model's uncertainty, the counts' own variation and the DP noise; the over-dispersion is
taken as known (its uncertainty is not drawn). The back-test refits on all but the last
`BACKTEST_MONTHS` months, predicts them the same way, and reports for each whether its
released value fell inside; a suppressed month has no value to compare and is left out of
the coverage (and counted).

Same inputs, same output: the fit is deterministic and the bootstrap's generator is seeded.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from antal.privacy.errors import PrivacyError
from antal.privacy.noise import Laplace, noise_kind

__all__ = [
    "BACKTEST_MONTHS",
    "MIN_MONTHS",
    "SEASONAL_MONTHS",
    "BackTest",
    "BackTestMonth",
    "Fit",
    "Forecast",
    "ForecastError",
    "ForecastMonth",
    "ReleasedMonth",
    "backtest",
    "discrete_laplace_variance",
    "fit",
    "forecast",
]

MIN_MONTHS = 12  # fewer months cannot tell a trend from a season: refused
SEASONAL_MONTHS = 24  # the month of year is a term only with two of every month
BACKTEST_MONTHS = 12  # the back-test holds out the last year
MIN_SHOWN = 6  # months shown (not "<T") needed to fit anything at all
DRAWS = 4000  # bootstrap draws per forecast
SEED = 20240101  # the bootstrap's default seed (any fixed number: same inputs, same output)
_ROUNDS = 50  # refits of over-dispersion, weights and censored months (stops when stable)


class ForecastError(PrivacyError, ValueError):
    """A series the forecast cannot use (too short, gaps, nothing shown): the message says why."""


@dataclass(frozen=True)
class ReleasedMonth:
    """One month of a released series: `value` None when shown as "<threshold"."""

    month: dt.date  # the first day of the month
    value: int | None
    scale: float  # the noise scale b the release used (the Gaussian's σ)
    threshold: int  # released values below this were shown as "<threshold"
    rounding: int = 1  # released values were rounded to a multiple of this
    noise: str = "laplace"  # the release's noise (antal.privacy.noise)

    @classmethod
    def of(cls, item: ReleasedMonth | Sequence[Any]) -> ReleasedMonth:
        """From a `ReleasedMonth` or a tuple (month, value, scale, threshold[, rounding])."""
        return item if isinstance(item, ReleasedMonth) else cls(*item)


@dataclass(frozen=True)
class ForecastMonth:
    month: dt.date
    mean: float  # the expected number newly eligible (the model's rate, no noise)
    low50: int  # 50% and 90% prediction intervals for the value a release would show
    high50: int
    low90: int
    high90: int

    def to_json(self) -> dict[str, Any]:
        return {"month": self.month.isoformat(), "mean": round(self.mean, 2),
                "interval50": [self.low50, self.high50],
                "interval90": [self.low90, self.high90]}  # fmt: skip


@dataclass(frozen=True)
class BackTestMonth:
    predicted: ForecastMonth
    released: int | None  # None: the month was shown as "<T"

    @property
    def inside90(self) -> bool | None:
        if self.released is None:
            return None
        return self.predicted.low90 <= self.released <= self.predicted.high90

    @property
    def inside50(self) -> bool | None:
        if self.released is None:
            return None
        return self.predicted.low50 <= self.released <= self.predicted.high50

    def to_json(self) -> dict[str, Any]:
        return {**self.predicted.to_json(), "released": self.released,
                "suppressed": self.released is None,
                "inside90": self.inside90, "inside50": self.inside50}  # fmt: skip


@dataclass(frozen=True)
class BackTest:
    """The last months held out, predicted from the months before them."""

    months: tuple[BackTestMonth, ...]
    model: str

    @property
    def compared(self) -> int:
        return sum(m.released is not None for m in self.months)

    @property
    def suppressed(self) -> int:
        return len(self.months) - self.compared

    def coverage(self, level: int = 90) -> float | None:
        """Share of the compared (shown) months whose released value fell inside."""
        inside = [m.inside90 if level == 90 else m.inside50 for m in self.months]
        shown = [x for x in inside if x is not None]
        return sum(shown) / len(shown) if shown else None

    def _errors(self) -> list[tuple[float, float]]:
        return [(m.released - m.predicted.mean, m.predicted.mean) for m in self.months
                if m.released is not None]  # fmt: skip

    @property
    def bias(self) -> float | None:
        """Mean of (released − predicted mean) over the compared months, relative to the
        predicted mean: +0.16 when the releases were 16% above the forecast."""
        e = self._errors()
        total = sum(p for _d, p in e)
        return sum(d for d, _p in e) / total if e and total > 0 else None

    @property
    def mae(self) -> float | None:
        """Mean absolute error of the point forecast against the released values, relative
        to the predicted mean (it holds the noise and the count's own variation too)."""
        e = self._errors()
        total = sum(p for _d, p in e)
        return sum(abs(d) for d, _p in e) / total if e and total > 0 else None

    def to_json(self) -> dict[str, Any]:
        c90, c50 = self.coverage(90), self.coverage(50)
        bias, mae = self.bias, self.mae
        return {"model": self.model, "months": [m.to_json() for m in self.months],
                "compared": self.compared, "suppressed": self.suppressed,
                "coverage90": None if c90 is None else round(c90, 4),
                "coverage50": None if c50 is None else round(c50, 4),
                "bias": None if bias is None else round(bias, 4),
                "mae": None if mae is None else round(mae, 4)}  # fmt: skip


@dataclass(frozen=True)
class Fit:
    """A fitted model of a released series (`fit`); `forecast_from` predicts from it."""

    series: tuple[ReleasedMonth, ...]
    seasonal: bool
    params: np.ndarray = field(repr=False)
    cov: np.ndarray = field(repr=False)
    alpha: float  # over-dispersion: variance mu + alpha * mu**2 (besides the noise)
    imputed: tuple[tuple[dt.date, float], ...]  # suppressed months and the value used
    # the variance of a calendar year's shared shock on the log scale (`_year_variance`):
    # a year the whole of which sits above or below the trend
    year_variance: float = 0.0
    year_effect: bool = False  # three calendar years or more: τ² could be estimated

    @property
    def model(self) -> str:
        terms = "trend and month of year" if self.seasonal else "trend only"
        year = ", a random year effect" if self.year_effect else ""
        return f"negative binomial GLM, log link, {terms}{year}"

    @property
    def trend_per_year(self) -> float:
        """The fitted rate ratio from one year to the next."""
        return math.exp(float(self.params[1]))

    def rate(self, months: Sequence[dt.date]) -> np.ndarray:
        return np.exp(_design(months, self.series[0].month, self.seasonal) @ self.params)


@dataclass(frozen=True)
class Forecast:
    """What `forecast` returns; `to_json()` is the answer's shape."""

    fit: Fit
    months: tuple[ForecastMonth, ...]
    backtest: BackTest | None
    backtest_note: str | None  # why there is no back-test, when there is none
    draws: int
    seed: int

    def to_json(self) -> dict[str, Any]:
        f = self.fit
        return {
            "model": f.model,
            "history": {"first": f.series[0].month.isoformat(),
                        "last": f.series[-1].month.isoformat(), "months": len(f.series),
                        "suppressed": [m.isoformat() for m, _ in f.imputed]},
            "trend_per_year": round(f.trend_per_year, 4),
            "overdispersion": round(f.alpha, 6),
            "year_variance": round(f.year_variance, 6),
            "forecast": [m.to_json() for m in self.months],
            "backtest": self.backtest.to_json() if self.backtest else None,
            "backtest_note": self.backtest_note,
            "bootstrap": {"draws": self.draws, "seed": self.seed},
            "epsilon": 0,  # post-processing of released values
        }  # fmt: skip


# ---- noise --------------------------------------------------------------------------------


def discrete_laplace_variance(scale: float) -> float:
    """Variance of the discrete Laplace distribution P(k) ∝ exp(-|k| / scale), OpenDP's
    `make_laplace` on integers (privacy/mechanism.py): 2q / (1 - q)**2 with q = e^(-1/scale)."""
    return Laplace().variance(scale)


# ---- the series ---------------------------------------------------------------------------


def _next_month(d: dt.date, n: int = 1) -> dt.date:
    m = d.year * 12 + d.month - 1 + n
    return dt.date(m // 12, m % 12 + 1, 1)


def _series(items: Iterable[ReleasedMonth | Sequence[Any]]) -> tuple[ReleasedMonth, ...]:
    series = tuple(ReleasedMonth.of(x) for x in items)
    if len(series) < MIN_MONTHS:
        raise ForecastError(
            f"a forecast needs at least {MIN_MONTHS} months of history, this series has "
            f"{len(series)}: fewer cannot tell a trend from a season"
        )
    for i, m in enumerate(series):
        if m.month.day != 1:
            raise ForecastError(f"month {m.month.isoformat()} is not the first day of a month")
        if i and m.month != _next_month(series[i - 1].month):
            raise ForecastError(
                f"the months must follow each other without gaps: {m.month.isoformat()} "
                f"comes after {series[i - 1].month.isoformat()}"
            )
        if m.value is not None and m.value < 0:
            raise ForecastError(f"month {m.month.isoformat()}: a released count is not negative")
        if m.scale < 0 or m.threshold < 0 or m.rounding < 1:
            raise ForecastError(f"month {m.month.isoformat()}: scale, threshold or rounding")
    shown = sum(m.value is not None for m in series)
    if shown < MIN_SHOWN:
        raise ForecastError(
            f"only {shown} of the {len(series)} months were shown (the others were below the "
            f"threshold): at least {MIN_SHOWN} are needed to fit a rate"
        )
    return series


def _design(months: Sequence[dt.date], origin: dt.date, seasonal: bool) -> np.ndarray:
    """Intercept, years since the origin, and (seasonal) one column per month but January."""
    t = np.array([((m.year - origin.year) * 12 + m.month - origin.month) / 12 for m in months])
    cols = [np.ones_like(t), t]
    if seasonal:
        moy = np.array([m.month for m in months])
        cols += [(moy == k).astype(float) for k in range(2, 13)]
    return np.column_stack(cols)


# ---- fitting ------------------------------------------------------------------------------


def _censored_moments(
    mu: float, alpha: float, scale: float, threshold: int, noise: str = "laplace"
) -> tuple[float, float]:
    """E[r | r < T] and E[(r - mu)**2 | r < T] for the released value r = max(0, y + e),
    y ~ NB(mu, alpha) and e the release's noise: what a month shown as "<T" most likely held."""
    from scipy import stats  # imported when needed: the command line starts without it

    if threshold <= 0:
        return 0.0, mu * mu
    ys = np.arange(0, int(max(threshold, mu) + 20 * math.sqrt(mu + alpha * mu * mu + 1)
                          + 40 * max(scale, 1)))  # fmt: skip
    if alpha > 1e-9:
        n = 1.0 / alpha
        py = stats.nbinom.pmf(ys, n, n / (n + mu))
    else:
        py = stats.poisson.pmf(ys, mu)
    vs = np.arange(0, threshold)
    # P(y + e = v) for v = 1 .. T-1, and P(y + e <= 0) for the clamped 0
    kind = noise_kind(noise)
    pv = np.array([py @ kind.pmf(v - ys, scale) for v in vs[1:]])
    p0 = float(py @ kind.at_most(-ys, scale))  # P(y + e <= 0)
    probs = np.concatenate([[p0], pv])
    total = probs.sum()
    if total <= 0:  # the model says a month below T is all but impossible: take T - 1
        return float(threshold - 1), (threshold - 1 - mu) ** 2
    probs = probs / total
    return float(vs @ probs), float(((vs - mu) ** 2) @ probs)


def fit(items: Iterable[ReleasedMonth | Sequence[Any]], *, seasonal: bool | None = None) -> Fit:
    """Fit the model to a released series (see the module's docstring)."""
    # imported when needed: statsmodels takes a second to import, every command would pay it
    from statsmodels.genmod.families import Poisson
    from statsmodels.genmod.generalized_linear_model import GLM

    series = _series(items)
    if seasonal is None:
        seasonal = len(series) >= SEASONAL_MONTHS
    months = [m.month for m in series]
    x = _design(months, months[0], seasonal)
    noise = np.array([noise_kind(m.noise).variance(m.scale) for m in series])
    shown = np.array([m.value is not None for m in series])
    y = np.array([float(m.value) if m.value is not None else m.threshold / 2 for m in series])
    if seasonal and not all(shown[[m.month == k for m in months]].any() for k in range(1, 13)):
        seasonal = False  # a month of year never shown cannot have its own level
        x = _design(months, months[0], False)
    n, p = x.shape
    alpha, weights = 0.0, np.ones(n)
    res = None
    for _ in range(_ROUNDS):
        with warnings.catch_warnings():
            # the weighted Poisson quasi-likelihood is fitted to non-integer values (imputed
            # months) on purpose; statsmodels' domain warnings about that are expected
            warnings.simplefilter("ignore")
            res = GLM(y, x, family=Poisson(), var_weights=weights).fit()
        mu = res.fittedvalues
        if not np.all(np.isfinite(mu)):
            raise ForecastError("the series could not be fitted (the rate diverges)")
        # the censored months' expected value and squared residual given that they were
        # below T (under the current over-dispersion)
        new_y, sq = y.copy(), (y - mu) ** 2
        for i, m in enumerate(series):
            if m.value is None:
                new_y[i], sq[i] = _censored_moments(float(mu[i]), alpha, m.scale, m.threshold,
                                                    m.noise)  # fmt: skip
        # over-dispersion by moments: what is left of the squared residuals after the
        # Poisson variance and the noise's, relative to mu**2 (shown months as they are,
        # censored ones by their expectation: the shown ones alone are the high ones)
        resid = float(np.sum(sq)) * n / max(n - p, 1)
        new_alpha = max(0.0, (resid - float(np.sum(mu + noise))) / float(np.sum(mu**2)))
        new_weights = mu / (mu + new_alpha * mu**2 + noise)
        stable = (abs(new_alpha - alpha) <= 1e-6 * max(1.0, alpha)
                  and np.allclose(new_y, y, rtol=1e-6, atol=1e-6)
                  and np.allclose(new_weights, weights, rtol=1e-6))  # fmt: skip
        alpha, y, weights = new_alpha, new_y, new_weights
        if stable:
            break
    assert res is not None
    imputed = tuple(
        (m.month, round(float(y[i]), 3)) for i, m in enumerate(series) if m.value is None
    )
    mu = np.asarray(res.fittedvalues)
    tau2, deff, estimable = _year_variance(months, y, mu, mu + alpha * mu**2 + noise, p)
    # the months of a year share its shock, so the coefficients are less certain than for
    # independent months: the covariance is inflated by the design effect of a cluster
    # (Kish 1965) of a year's months
    cov = np.asarray(res.cov_params()) * deff
    return Fit(series, seasonal, np.asarray(res.params), cov, alpha, imputed, tau2, estimable)


def _year_variance(
    months: Sequence[dt.date], y: np.ndarray, mu: np.ndarray, var: np.ndarray, p: int
) -> tuple[float, float, bool]:
    """(τ², design effect, whether it could be estimated) of a random year effect: the calendar years' totals vary around
    the fitted trend more than the months' own variance `var` explains when a year's
    months share a shock exp(u), u ~ N(0, τ²). By moments over the years with at least six
    months: E[(Σy − Σμ)²] = Σvar + τ²(Σμ)², less the degrees of freedom the fit used at
    the year level (its trend and intercept). Fewer than three such years: no estimate."""
    years = sorted({m.year for m in months})
    rows = []
    for yr in years:
        at = np.array([m.year == yr for m in months])
        if at.sum() >= 6:
            rows.append((float(y[at].sum()), float(mu[at].sum()), float(var[at].sum()),
                         int(at.sum())))  # fmt: skip
    if len(rows) < 3:
        return 0.0, 1.0, False
    excess = sum((o - e) ** 2 - v for o, e, v, _n in rows)
    scale = sum(e * e for _o, e, _v, _n in rows)
    free = len(rows) - min(p, 2)  # the intercept and the trend are fitted to these totals
    tau2 = max(0.0, excess / scale * len(rows) / max(free, 1))
    # the share of a month's variance that its year shares, and the design effect
    m_bar = sum(n for *_x, n in rows) / len(rows)
    mean_mu = float(np.mean(mu))
    icc = tau2 * mean_mu**2 / (tau2 * mean_mu**2 + float(np.mean(var)))
    return tau2, 1 + (m_bar - 1) * icc, True


# ---- predicting ---------------------------------------------------------------------------


def _predict(
    f: Fit, months: Sequence[dt.date], scale: float, rounding: int, draws: int, seed: int,
    noise: str = "laplace",
) -> tuple[ForecastMonth, ...]:  # fmt: skip
    rng = np.random.default_rng(seed)
    xh = _design(months, f.series[0].month, f.seasonal)
    mean = np.exp(xh @ f.params)
    betas = rng.multivariate_normal(f.params, f.cov, size=draws, method="svd")
    mu = np.exp(np.clip(betas @ xh.T, -50, 50))  # draws x months
    if f.year_variance > 0:  # each future calendar year's shared shock, mean 1
        years = sorted({m.year for m in months})
        u = rng.normal(-f.year_variance / 2, math.sqrt(f.year_variance), (draws, len(years)))
        mu = mu * np.exp(u[:, [years.index(m.year) for m in months]])
    # negative binomial as a gamma-Poisson mixture
    lam = rng.gamma(1.0 / f.alpha, f.alpha * mu) if f.alpha > 1e-9 else mu
    y = rng.poisson(lam)
    e = noise_kind(noise).draws(rng, scale, y.size).reshape(y.shape)
    released = np.maximum(0, y + e)
    released = np.round(released / rounding) * rounding
    q = np.quantile(released, [0.05, 0.25, 0.75, 0.95], axis=0, method="inverted_cdf")
    return tuple(
        ForecastMonth(m, float(mean[j]), int(q[1, j]), int(q[2, j]), int(q[0, j]), int(q[3, j]))
        for j, m in enumerate(months)
    )


def backtest(
    items: Iterable[ReleasedMonth | Sequence[Any]],
    *,
    holdout: int = BACKTEST_MONTHS,
    draws: int = DRAWS,
    seed: int = SEED,
) -> BackTest:
    """Refit on all but the last `holdout` months and predict them."""
    series = tuple(ReleasedMonth.of(x) for x in items)
    head, tail = series[:-holdout], series[-holdout:]
    if len(head) < MIN_MONTHS:
        raise ForecastError(
            f"a back-test over the last {holdout} months needs at least {MIN_MONTHS + holdout} "
            f"months of history, this series has {len(series)}"
        )
    f = fit(head)
    last = tail[-1]
    predicted = _predict(f, [m.month for m in tail], last.scale, last.rounding, draws, seed,
                         last.noise)  # fmt: skip
    return BackTest(
        tuple(BackTestMonth(p, m.value) for p, m in zip(predicted, tail, strict=True)), f.model
    )


def forecast(
    items: Iterable[ReleasedMonth | Sequence[Any]],
    months: int,
    *,
    draws: int = DRAWS,
    seed: int = SEED,
) -> Forecast:
    """Fit the released series and forecast the `months` after its last; with enough
    history, also the back-test of its last `BACKTEST_MONTHS` months. The future releases
    are taken to use the last month's noise scale, threshold and rounding."""
    if months < 1:
        raise ForecastError("forecast at least one month")
    if draws < 100:
        raise ForecastError("at least 100 bootstrap draws")
    series = _series(items)
    f = fit(series)
    last = series[-1]
    ahead = [_next_month(last.month, k) for k in range(1, months + 1)]
    predicted = _predict(f, ahead, last.scale, last.rounding, draws, seed, last.noise)
    bt, note = None, None
    try:
        bt = backtest(series, draws=draws, seed=seed)
    except ForecastError as e:
        note = str(e)
    return Forecast(f, predicted, bt, note, draws, seed)
