"""A short load test of the real service (`antal serve` on 127.0.0.1): correctness under
concurrency, no timing thresholds. `python -m bench.load` is the long version that measures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.load import STORED_COHORTS, LoadResult, report, run_load  # noqa: E402

CLIENTS = 8
SECONDS = 5.0
PERSONS = 3000
RACE_QUERIES = 4  # the budget race project's budget, in fresh answers
RACE_PER_CLIENT = 3


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> LoadResult:
    from antal.synthetic import generate

    root = tmp_path_factory.mktemp("load")
    generate(PERSONS, 1, root / "data")
    r = run_load(
        root / "data", root, clients=CLIENTS, seconds=SECONDS, persons=PERSONS,
        race_budget_queries=RACE_QUERIES, race_per_client=RACE_PER_CLIENT,
    )  # fmt: skip
    print("\n" + report(r, f"tests/test_load.py ({CLIENTS} clients, {SECONDS:g} s per phase)"))
    return r


@pytest.mark.slow
def test_no_problem_found_by_the_load_run(result: LoadResult) -> None:
    assert result.problems == []


@pytest.mark.slow
def test_stored_answers_are_free_under_load(result: LoadResult) -> None:
    ph = result.phase("stored answers")
    assert ph.samples, "no request was made"
    assert {s.status for s in ph.samples} == {200}
    assert all(s.stored is True and s.charged == 0 for s in ph.samples)
    # the warm-up paid for each cohort once (twice ε with a breakdown); the phase paid nothing
    eps = result.epsilon
    warmup = sum(2 * eps if "report by" in c else eps for c in STORED_COHORTS)
    assert result.spent["stored"] == pytest.approx(warmup, abs=1e-9)
    assert result.spent_before_stored == pytest.approx(warmup, abs=1e-9)


@pytest.mark.slow
def test_fresh_counts_charge_exactly_once_each(result: LoadResult) -> None:
    ph = result.phase("fresh counts")
    assert ph.samples, "no request was made"
    assert {s.status for s in ph.samples} == {200}
    eps = result.epsilon
    assert all(s.stored is False and s.charged == eps for s in ph.samples)
    for i in range(CLIENTS):
        pid = f"fresh-{i}"
        released = sum(1 for s in ph.samples if s.project == pid)
        assert released > 0
        assert result.spent[pid] == pytest.approx(released * eps, abs=1e-9), pid
        assert result.charges[pid] == pytest.approx(released * eps, abs=1e-9), pid
        assert result.answers_in_audit[pid] == released, pid


@pytest.mark.slow
def test_a_small_budget_runs_out_exactly_under_concurrency(result: LoadResult) -> None:
    ph = result.phase("budget race")
    assert len(ph.samples) == CLIENTS * RACE_PER_CLIENT
    ok = [s for s in ph.samples if s.status == 200]
    refused = [s for s in ph.samples if s.status == 403 and s.error == "budget_exceeded"]
    assert len(ok) == RACE_QUERIES
    assert len(refused) == len(ph.samples) - RACE_QUERIES
    assert all(s.stored is False and s.charged == result.epsilon for s in ok)
    assert result.spent["race"] == pytest.approx(result.budgets["race"], abs=1e-9)
    assert result.spent["race"] <= result.budgets["race"] + 1e-9  # never overspent
    assert result.answers_in_audit["race"] == RACE_QUERIES
    assert result.refusals_in_audit["race"] == len(refused)


@pytest.mark.slow
def test_audit_log_and_ledger_verify_after_the_load(result: LoadResult) -> None:
    assert result.audit_verify_rc == 0, result.audit_verify_out
    assert "ledger consistent" in result.audit_verify_out
