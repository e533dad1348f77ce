"""Gaussian noise under zCDP as an installation's choice (issue 23, item 3): discrete
Gaussian measurements whose OpenDP privacy map is the ρ charged, a ledger that adds ρ and
states a project's total as ε at the installation's δ, receipts that state the (ε, δ) of
their answer, the stated variances, and a store made before the ρ column migrated."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from antal.privacy import BudgetExceeded, Gate, PrivacyParams, SQLiteStore, TrueCounts
from antal.privacy.gate import release
from antal.privacy.mechanism import (
    ReleasedCount,
    TrueTable,
    attrition_variances,
    level_variances,
    release_attrition,
    release_tables,
)
from antal.privacy.noise import Gaussian, epsilon_of_rho, rho_of_epsilon
from antal.privacy.receipts import verify

GAUSS = PrivacyParams(noise="gaussian", threshold=0)


def _ckv_epsilon(rho: float, delta: float) -> float:
    """The oracle: (ε, δ) of ρ-zCDP by Canonne, Kamath & Steinke (2020), Proposition 12,
    minimised over α on a fine grid (written from the paper, not from OpenDP)."""
    a = np.exp(np.linspace(np.log(1.0001), np.log(1e4), 200_000))
    eps = rho * a + (np.log(1 / (a * delta)) + (a - 1) * np.log(1 - 1 / a)) / (a - 1)
    return float(max(0.0, eps.min()))


@pytest.mark.parametrize("rho", [0.01, 0.05, 0.1, 0.5, 2.0])
def test_rho_is_stated_as_epsilon_at_delta_by_the_published_bound(rho: float) -> None:
    for delta in (1e-6, 1e-10):
        ours = epsilon_of_rho(rho, delta)
        assert ours == pytest.approx(_ckv_epsilon(rho, delta), rel=1e-3)
        # tighter than the classic ρ + 2√(ρ ln 1/δ), never looser
        assert ours <= rho + 2 * math.sqrt(rho * math.log(1 / delta))
    assert epsilon_of_rho(rho_of_epsilon(10, 1e-10), 1e-10) == pytest.approx(10, rel=1e-8)


def test_each_measurement_costs_the_rho_charged() -> None:
    """OpenDP's privacy map of each measurement: the attrition's buckets (a person in one:
    L2 sensitivity 1) and K leaf tables together (a person in one cell of each: √K)."""
    p = GAUSS
    ask = 2 * p.release_rho
    _steps, s1 = release_attrition((900, 800, 700), p, p.attrition_share * ask)
    assert Gaussian().measurement(s1).map(1) == pytest.approx(p.attrition_share * ask)
    tables = (TrueTable(("a",), {("x",): 400, ("y",): 300}, [("x",), ("y",)]),
              TrueTable(("b",), {("u",): 700}, [("u",)], report=1))  # fmt: skip
    rho_t = (1 - p.attrition_share) * ask
    _out, s2 = release_tables(tables, ReleasedCount(700, 690, 710, 0), 4.0, p, rho_t)
    assert Gaussian().measurement(s2).map(1) * 2 == pytest.approx(rho_t)  # ρ ∝ sensitivity²
    assert s2 == pytest.approx(math.sqrt(2 / (2 * rho_t)))


def _ask(gate: Gate, qhash: str, tables: bool = True) -> object:
    true = TrueCounts(("i", "s"), (900, 890), tables=(
        TrueTable(("d",), {("a",): 445, ("b",): 445}, [("a",), ("b",)]),) if tables else ())  # fmt: skip
    dims = ("d",) if tables else ()
    return gate.answer("p", "u", qhash, qhash, "rel", ("i", "s"), dims, lambda: true)


def test_the_ledger_adds_rho_and_states_the_total_as_epsilon_at_delta(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    p = PrivacyParams(noise="gaussian")
    store.create_project("p", "t", "forskning", p.default_budget)
    gate = Gate(store, p)
    ask = 2 * p.release_rho
    # the default ask is a tenth of the ρ that the budget's ε allows at δ: ten asks
    assert ask == pytest.approx(rho_of_epsilon(10.0, 1e-10) / 10)
    q = gate.quote("p", "h0", "rel", has_breakdown=True)
    assert q.asks_left == 9 and q.epsilon == pytest.approx(_ckv_epsilon(ask, 1e-10), rel=1e-3)
    charged = []
    for i in range(10):
        a = _ask(gate, f"h{i}")
        charged.append(a.epsilon_charged)
        # the project's spent ε is the ε at δ of the ρ it was charged (oracle: the bound)
        spent = store.project("p").spent
        assert spent == pytest.approx(_ckv_epsilon(ask * (i + 1), 1e-10), rel=1e-3)
        assert a.budget_left == pytest.approx(10.0 - spent, abs=1e-9)
    assert charged == sorted(charged, reverse=True)  # the first ask costs the most ε
    assert sum(charged) == pytest.approx(store.project("p").spent)
    with pytest.raises(BudgetExceeded):
        _ask(gate, "h10")
    assert store.ledger_problems() == []
    # an answer alone states its own (ε, δ), signed
    r = _ask(gate, "h3").receipt()  # asked before: the stored answer and its receipt
    g = r["guarantee"]
    assert g["noise"] == "gaussian" and g["rho"] == pytest.approx(ask) and g["delta"] == 1e-10
    assert g["epsilon"] == pytest.approx(_ckv_epsilon(ask, 1e-10), rel=1e-3)
    assert verify(r, gate.signer.public) == []


def test_a_reused_attrition_is_filed_with_its_rho(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    p = PrivacyParams(noise="gaussian")
    store.create_project("p", "t", "forskning", 10.0)
    gate = Gate(store, p)
    true = TrueCounts(("i", "s"), (900, 890), tables=(
        TrueTable(("d",), {("a",): 445, ("b",): 445}, [("a",), ("b",)]),))  # fmt: skip
    gate.answer("p", "u", "with", "with", "rel", ("i", "s"), ("d",), lambda: true,
                attrition=("alone", "alone"))  # fmt: skip
    with store.transaction(write=False) as tx:
        rows = dict(tx.all("SELECT answer_key, rho FROM charges"))
    assert len(rows) == 2 and sum(rows.values()) == pytest.approx(2 * p.release_rho)
    assert min(rows.values()) == pytest.approx((1 - p.attrition_share) * 2 * p.release_rho)
    # a new breakdown of it pays the tables' ρ alone
    q = gate.quote("p", "other", "rel", True, attrition_hash="alone")
    assert q.rho == pytest.approx(p.release_rho)
    assert store.ledger_problems() == []


def test_pure_and_gaussian_charges_compose(tmp_path: Path) -> None:
    """A project charged pure ε before its installation chose gaussian noise: its spent ε is
    the pure ε plus the ε at δ of its ρ (basic composition of (ε₁, 0) and (ε₂, δ))."""
    store = SQLiteStore(tmp_path / "s.sqlite")
    store.create_project("p", "t", "forskning", 10.0)
    _ask(Gate(store, PrivacyParams()), "pure")  # 2 × 0.5
    g = PrivacyParams(noise="gaussian")
    _ask(Gate(store, g), "zcdp")
    expected = 1.0 + _ckv_epsilon(2 * g.release_rho, 1e-10)
    assert store.project("p").spent == pytest.approx(expected, rel=1e-3)
    assert store.ledger_problems() == []


def test_stated_variances_and_intervals_hold_for_gaussian_noise() -> None:
    """Many releases of fixed counts: each step's and cell's empirical variance within 12%
    of the stated one, and the 95% intervals cover."""
    p = PrivacyParams(noise="gaussian", threshold=0, rho=0.02)
    months = [(m,) for m in range(1, 7)]
    tables = (
        TrueTable(("month",), {k: 400 + 10 * k[0] for k in months}, months, parent=1,
                  up=[((m - 1) // 3 + 1,) for (m,) in months], level=0),
        TrueTable(("quarter",), {(1,): 1260, (2,): 1350}, [(1,), (2,)], level=1),
        TrueTable(("sex",), {("f",): 1300, ("m",): 1310}, [("f",), ("m",)], report=1),
    )  # fmt: skip
    true = TrueCounts(("i", "a", "b"), (4000, 3000, 2610), tables=tables)
    runs = 3000
    steps, cells, covered = [], [], 0
    for _ in range(runs):
        import json

        d = json.loads(release(true, ("month",), 2 * p.release_rho, p))
        steps.append([s["count"] for s in d["steps"]])
        row = []
        for t in d["tables"]:
            row += [c["count"] for _k, c in t["cells"]]
            covered += sum(c["lower"] <= tt <= c["upper"] for (_k, c), tt in zip(
                t["cells"], [tables[t["report"] * 2 + t["level"]].cells[tuple(k)]
                             for k, _c in t["cells"]], strict=True))  # fmt: skip
        cells.append(row)
    steps_a, cells_a = np.array(steps, float), np.array(cells, float)
    rho_a = p.attrition_share * 2 * p.release_rho
    s1 = math.sqrt(1 / (2 * rho_a))
    stated = attrition_variances(3, s1, "gaussian")
    for j in range(3):
        assert abs(steps_a[:, j].var() / stated[j] - 1) < 0.12, (j, steps_a[:, j].var())
    s2 = math.sqrt(2 / (2 * (1 - p.attrition_share) * 2 * p.release_rho))
    levels = level_variances(tables, s2, stated[-1], "gaussian")
    flat = [v for row in levels for v in row]
    for j, v in enumerate(flat):
        assert abs(cells_a[:, j].var() / v - 1) < 0.12, (j, cells_a[:, j].var(), v)
    assert covered / (runs * len(flat)) >= 0.94


def test_a_store_made_before_the_rho_column_is_migrated(tmp_path: Path) -> None:
    """A store as antal made it before migrations (charges without ρ, no record of
    migrations): opened, it gains the column, keeps its charges (as pure ε) and records it."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE charges (project_id TEXT NOT NULL, answer_key TEXT NOT NULL, "
            "epsilon DOUBLE PRECISION NOT NULL, created TEXT NOT NULL, "
            "PRIMARY KEY (project_id, answer_key))"
        )
        con.execute("INSERT INTO charges VALUES ('p', 'attempt:1', 0.5, '2026-01-01')")
    store = SQLiteStore(path)
    SQLiteStore(path)  # opened again: nothing applied twice
    with store.transaction(write=False) as tx:
        assert tx.all("SELECT project_id, epsilon, rho FROM charges") == [("p", 0.5, 0.0)]
        assert [v for (v,) in tx.all("SELECT version FROM schema_migrations")] == [1]


def _renyi2(a: list[int], b: list[int]) -> float:
    """D_2(P || Q) = log Σ P(x)² / Q(x) of two samples' frequencies, the tails pooled into
    one bin each (a coarser output: by post-processing never above the true divergence)."""
    lo, hi = np.percentile(a + b, [1, 99])
    bins = np.arange(math.floor(lo), math.ceil(hi) + 2) - 0.5
    edges = np.concatenate([[-np.inf], bins, [np.inf]])
    p = np.histogram(a, edges)[0] / len(a)
    q = np.histogram(b, edges)[0] / len(b)
    keep = q > 0
    return float(np.log(np.sum(p[keep] ** 2 / q[keep])))


def test_neighbouring_data_sets_stay_within_the_renyi_bound() -> None:
    """The zCDP guarantee measured: one person removed (from the last bucket), 100 000
    releases each; the order-2 Rényi divergence of the released final count is at most
    2ρ (ρ-zCDP: D_α ≤ αρ for every α), and the same estimate at half the noise is not
    (the test can fail)."""
    p = PrivacyParams(noise="gaussian", threshold=0)
    rho = p.release_rho
    runs = 100_000

    def finals(last: int, loss: float) -> list[int]:
        # the final count as release_attrition releases it, `runs` times in one OpenDP call:
        # the last bucket plus noise at the scale of `loss`, clipped at 0
        scale = p.kind.scale_for(loss)
        return [max(0, x) for x in p.kind.sample([last] * runs, scale)]

    assert release_attrition((90, 40), p, rho)[1] == p.kind.scale_for(rho)
    d = _renyi2(finals(40, rho), finals(39, rho))
    assert d <= 2 * rho * 1.15 + 0.01, (d, 2 * rho)  # sampling error: 15% and a floor
    loud = _renyi2(finals(40, 4 * rho), finals(39, 4 * rho))  # σ halved
    assert loud > 2 * rho * 1.5, loud


@pytest.mark.parametrize("scale", [0.7, 3.0, 8.0])
def test_the_numpy_model_of_the_gaussian_is_opendps(scale: float) -> None:
    """What the forecast simulates and conditions on (antal.privacy.noise: pmf, P(e <= k),
    seeded draws) is the distribution OpenDP releases with."""
    g = Gaussian()
    k = np.arange(-60, 61)
    assert g.pmf(k, scale).sum() == pytest.approx(1.0, abs=1e-9)
    assert np.allclose(np.cumsum(g.pmf(k, scale)), g.at_most(k, scale), atol=1e-9)
    ours = g.draws(np.random.default_rng(1), scale, 100_000)
    theirs = np.array(g.sample([0] * 100_000, scale))
    assert ours.var() == pytest.approx(g.variance(scale), rel=0.03)
    assert theirs.var() == pytest.approx(g.variance(scale), rel=0.03)
    for x in (0, 1, 2 * int(scale)):
        assert np.mean(np.abs(ours) <= x) == pytest.approx(np.mean(np.abs(theirs) <= x), abs=0.01)


def test_a_gaussian_series_is_forecast_with_its_own_noise() -> None:
    """A monthly series released under Gaussian noise: the forecast's back-tests use that
    noise (its variance in the fit, its draws in the intervals) and cover as stated."""
    import datetime as dt
    import statistics

    from antal.privacy.forecast import ReleasedMonth, backtest

    scale, inside = 6.0, []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        mu = [30 * math.exp(0.05 * i / 12) for i in range(48)]
        noisy = Gaussian().sample([int(c) for c in rng.poisson(mu)], scale)
        series = [ReleasedMonth(dt.date(2020 + i // 12, i % 12 + 1, 1),
                                max(0, v) if max(0, v) >= 10 else None, scale, 10, 1, "gaussian")
                  for i, v in enumerate(noisy)]  # fmt: skip
        inside += [m.inside90 for m in backtest(series, draws=1000).months
                   if m.inside90 is not None]  # fmt: skip
    assert 0.83 <= statistics.fmean(inside) <= 0.98, statistics.fmean(inside)


def test_episodes_scale_the_gaussian_by_their_contribution_bound() -> None:
    """`index each` (issue 24): K episodes of a person move the buckets by K in L2 (all in
    one, the worst case) and T leaf tables by √T·K: σ = K/√(2ρ) and √T·K/√(2ρ), and OpenDP's
    map at those sensitivities is the ρ charged."""
    p = GAUSS
    ask, k = 2 * p.release_rho, 3
    rho_a = p.attrition_share * ask
    _steps, s1 = release_attrition((900, 800, 700), p, rho_a, contribution=k)
    assert s1 == pytest.approx(k / math.sqrt(2 * rho_a))
    assert Gaussian().measurement(s1).map(1) * k**2 == pytest.approx(rho_a)
    tables = (TrueTable(("a",), {("x",): 400, ("y",): 300}, [("x",), ("y",)]),
              TrueTable(("b",), {("u",): 700}, [("u",)], report=1))  # fmt: skip
    rho_t = (1 - p.attrition_share) * ask
    _out, s2 = release_tables(tables, ReleasedCount(700, 690, 710, 0), 4.0, p, rho_t,
                              contribution=k)  # fmt: skip
    assert s2 == pytest.approx(math.sqrt(2) * k / math.sqrt(2 * rho_t))
    assert Gaussian().measurement(s2).map(1) * 2 * k**2 == pytest.approx(rho_t)


def test_a_receipt_signs_what_the_counts_count(tmp_path: Path) -> None:
    """An `index each` answer counts episodes: its receipt's guarantee says so (and K),
    so the same numbers shown as persons no longer check against it."""
    from antal.privacy.receipts import check_answer

    store = SQLiteStore(tmp_path / "s.sqlite")
    store.create_project("p", "t", "forskning", 10.0)
    gate = Gate(store, PrivacyParams())
    true = TrueCounts(("i", "s"), (900, 890), contribution=3, unit="episodes")
    a = gate.answer("p", "u", "q", "q", "rel", ("i", "s"), (), lambda: true)
    shown = a.to_json()
    g = shown["receipt"]["guarantee"]
    assert (g["unit"], g["contribution"]) == ("episodes", 3)
    assert verify(shown["receipt"], gate.signer.public) == []
    assert check_answer(shown, shown["receipt"]) == []
    relabelled = {**shown, "unit": "persons"}
    assert any("counts persons" in p for p in check_answer(relabelled, shown["receipt"]))
