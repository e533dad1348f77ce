"""The recruitment forecast (privacy/forecast.py) on simulated released series whose rate
is known: a Poisson count with a trend and a season, plus the privacy layer's own discrete
Laplace noise (OpenDP, privacy/mechanism.py), shown as "<T" below the threshold.

The coverage tests are statistical. The Poisson counts are seeded; OpenDP's noise is not,
so the observed coverage varies from run to run by about 0.01 (1,200 held-out months,
binomial, times a design effect of about 2 for the months of one series sharing its
fitted parameters). The accepted bands are at least three such deviations wide on the
side the simulations approach; integer intervals with inclusive ends cover a little more
than nominal (simulated: 0.92-0.94 for the 90% interval, 0.53-0.60 for the 50%)."""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics

import numpy as np
import pytest

from antal.api import usecases
from antal.engine import parse
from antal.privacy.forecast import (
    ForecastError,
    ReleasedMonth,
    _censored_moments,
    backtest,
    discrete_laplace_variance,
    fit,
    forecast,
)
from antal.privacy.mechanism import noisy_vector

START = dt.date(2015, 1, 1)


def month(i: int) -> dt.date:
    return dt.date(START.year + (START.month - 1 + i) // 12, (START.month - 1 + i) % 12 + 1, 1)


def rate(i: int, base: float, trend: float, season: float) -> float:
    """The true expected count of month i: yearly trend factor e^trend, a sine season."""
    return base * math.exp(
        trend * i / 12 + season * math.sin(2 * math.pi * (month(i).month - 1) / 12)
    )


def simulate(
    n: int, base: float, *, seed: int, trend: float = 0.05, season: float = 0.25,
    scale: float = 2.0, threshold: int = 10,
) -> tuple[list[ReleasedMonth], list[float]]:  # fmt: skip
    """n months released as the privacy layer releases a partition's cells: the count plus
    OpenDP's discrete Laplace noise at `scale`, clamped at 0, "<T" below the threshold."""
    rng = np.random.default_rng(seed)
    mu = [rate(i, base, trend, season) for i in range(n)]
    counts = [int(c) for c in rng.poisson(mu)]
    noisy = noisy_vector(counts, scale)
    series = [
        ReleasedMonth(month(i), max(0, v) if max(0, v) >= threshold else None, scale, threshold)
        for i, v in enumerate(noisy)
    ]
    return series, mu


def test_the_noise_variance_is_that_of_the_mechanism() -> None:
    for scale in (0.5, 2.0, 6.0):
        draws = np.array(noisy_vector([0] * 200_000, scale), dtype=float)
        assert draws.var() == pytest.approx(discrete_laplace_variance(scale), rel=0.05)


def test_the_90_percent_interval_covers_about_90_percent_of_held_out_months() -> None:
    inside90, inside50 = [], []
    for seed in range(100):
        series, _ = simulate(48, 30, seed=seed)
        bt = backtest(series, draws=1000)
        inside90 += [m.inside90 for m in bt.months if m.inside90 is not None]
        inside50 += [m.inside50 for m in bt.months if m.inside50 is not None]
    assert len(inside90) > 1100  # at a mean of 30, almost no month is suppressed
    assert 0.85 <= statistics.fmean(inside90) <= 0.97
    assert 0.43 <= statistics.fmean(inside50) <= 0.67


def test_more_noise_widens_the_intervals_and_they_still_cover() -> None:
    """The intervals hold the DP noise: at ε 0.125 on a one-step table (scale 8) they are
    wider than at scale 1, and still cover."""
    widths: dict[float, list[int]] = {1.0: [], 8.0: []}
    inside = []
    for seed in range(60):
        for scale in widths:
            series, _ = simulate(48, 40, seed=seed, scale=scale)
            bt = backtest(series, draws=1000)
            widths[scale] += [m.predicted.high90 - m.predicted.low90 for m in bt.months]
            if scale == 8.0:
                inside += [m.inside90 for m in bt.months if m.inside90 is not None]
    assert statistics.fmean(widths[8.0]) > statistics.fmean(widths[1.0]) + 10
    assert 0.85 <= statistics.fmean(inside) <= 0.97


def test_the_point_forecast_is_near_the_true_rate() -> None:
    errors = []
    for seed in range(40):
        series, _ = simulate(60, 50, seed=seed)
        f = forecast(series, 12, draws=200)
        for j, m in enumerate(f.months):
            true = rate(60 + j, 50, 0.05, 0.25)
            assert m.month == month(60 + j)
            errors.append(m.mean / true - 1)
    assert abs(statistics.fmean(errors)) < 0.05  # no bias
    assert statistics.median(abs(e) for e in errors) < 0.12


def test_the_trend_and_the_season_are_recovered() -> None:
    series, _ = simulate(96, 200, seed=7, trend=0.1, season=0.4)
    f = fit(series)
    assert f.seasonal
    assert f.trend_per_year == pytest.approx(math.exp(0.1), abs=0.03)
    # fitted ratios of months against the true ones: sin is 0 in January and July, 1 in
    # April and -1 in October, so July/January is 1 and April/October e^(2 * 0.4)
    jan, apr, jul, oct_ = f.rate([dt.date(2030, k, 1) for k in (1, 4, 7, 10)])
    assert jul / jan == pytest.approx(1.0, rel=0.15)
    assert apr / oct_ == pytest.approx(math.exp(0.8), rel=0.15)


def test_suppressed_months_are_censored_and_labelled() -> None:
    ratios = []
    for seed in range(20):
        series, _ = simulate(60, 9, seed=seed, trend=0.0, season=0.0)
        hidden = [m.month for m in series if m.value is None]
        assert len(hidden) >= 15  # a mean of 9 under a threshold of 10: many months are "<10"
        f = forecast(series, 6, draws=500)
        doc = f.to_json()
        assert doc["history"]["suppressed"] == [d.isoformat() for d in hidden]
        assert [d for d, _ in f.fit.imputed] == hidden
        assert all(0 <= v < 10 for _, v in f.fit.imputed)
        ratios.append(f.months[0].mean / 9)
        bt = f.backtest
        assert bt is not None
        for m, released in zip(bt.months, series[-12:], strict=True):
            assert (m.released is None) == (released.value is None)
            assert m.to_json()["suppressed"] == (released.value is None)
            if m.released is None:
                assert m.inside90 is None and m.inside50 is None
        assert bt.compared + bt.suppressed == 12
    # the rate is not taken from the shown (high) months alone
    assert 0.8 <= statistics.median(ratios) <= 1.2


def test_the_censored_mean_is_that_of_the_release() -> None:
    """E[released | released < T] against a simulation of the release itself."""
    rng = np.random.default_rng(3)
    mu, scale, threshold = 7.0, 2.0, 10
    y = rng.poisson(mu, 100_000)
    released = np.maximum(0, np.array(noisy_vector([int(v) for v in y], scale)))
    below = released[released < threshold]
    mean, sq = _censored_moments(mu, 0.0, scale, threshold)
    assert mean == pytest.approx(below.mean(), abs=0.05)
    assert sq == pytest.approx(((below - mu) ** 2).mean(), rel=0.03)


def test_short_series_are_refused_or_trend_only_as_documented() -> None:
    series, _ = simulate(30, 40, seed=1)
    with pytest.raises(ForecastError, match="at least 12 months of history, this series has 11"):
        forecast(series[:11], 6)
    short = forecast(series[:18], 6, draws=200)  # 12-23 months: a trend, no season, no back-test
    assert short.to_json()["model"] == "negative binomial GLM, log link, trend only"
    assert short.backtest is None
    assert "needs at least 24 months of history" in (short.backtest_note or "")
    assert forecast(series[:24], 6, draws=200).fit.seasonal
    bt = forecast(series[:24], 6, draws=200).backtest
    assert bt is not None and bt.model.endswith("trend only")  # fitted on 12 months


def test_bad_series_are_refused_with_the_reason() -> None:
    series, _ = simulate(30, 40, seed=2)
    with pytest.raises(ForecastError, match="without gaps: 2015-06-01 comes after 2015-04-01"):
        forecast(series[:4] + series[5:], 6)
    with pytest.raises(ForecastError, match="not the first day of a month"):
        forecast([ReleasedMonth(dt.date(2015, 1, 2), 12, 2.0, 10), *series[1:]], 6)
    hidden = [ReleasedMonth(m.month, None, m.scale, m.threshold) for m in series]
    with pytest.raises(ForecastError, match="only 0 of the 30 months were shown"):
        forecast(hidden, 6)
    with pytest.raises(ForecastError, match="at least one month"):
        forecast(series, 0)


def test_same_inputs_same_output_and_tuples_are_accepted() -> None:
    series, _ = simulate(40, 25, seed=5)
    as_tuples = [(m.month, m.value, m.scale, m.threshold) for m in series]
    a = json.dumps(forecast(series, 12).to_json())
    b = json.dumps(forecast(as_tuples, 12).to_json())
    assert a == b
    assert json.loads(a)["epsilon"] == 0
    assert forecast(series, 12, seed=1).to_json() != json.loads(a)  # the seed is used


def test_the_use_case_refuses_a_date_indexed_cohort() -> None:
    series, _ = simulate(30, 40, seed=3)
    prevalence = parse('cohort "On a day"\nindex 2024-01-01\ninclude age 40..75\n')
    with pytest.raises(usecases.DateIndexed, match="prevalence question") as e:
        usecases.forecast(series, 12, prevalence)
    assert e.value.code == "date_index_cohort"
    incidence = parse("index first diagnosis I48* between 2015-01-01 and 2017-06-30\n")
    got = usecases.forecast(series, 12, incidence)
    assert len(got.months) == 12 and got.months[0].month == dt.date(2017, 7, 1)


def test_the_use_case_bounds_and_maps_errors() -> None:
    series, _ = simulate(30, 40, seed=4)
    with pytest.raises(usecases.Invalid, match="1 to 60 months ahead, not 61"):
        usecases.forecast(series, 61)
    with pytest.raises(usecases.Invalid, match="at least 12 months"):
        usecases.forecast(series[:5], 12)
