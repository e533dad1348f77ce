"""The prepared layout (`antal prepare`: code tables, one code per row) gives the answers the
language specifies: every spec case of tests/test_spec.py (persons expected after each step,
written by hand) and generated cohorts over generated extracts, checked against the
pure-Python reference evaluator, with the extracts first prepared into a DuckDB file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from conftest import write_extracts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_generative import cohorts, extracts
from test_spec import CASES, Case, _breakdown_key

from antal import engine
from antal.catalog import Installation, load_catalog
from antal.engine.ingest import prepare
from antal.engine.language.parser import parse
from antal.engine.reference import evaluate

CAT = load_catalog()


def _prepared(tables: dict, directory: Path) -> Installation:
    raw = write_extracts(tables, directory / "raw")
    made = prepare(raw, directory / "p.duckdb", CAT, memory_limit="256MB", threads=1)
    inst = Installation.from_data_dir(made.path)
    assert inst.code_tables(), "the prepared file has code tables"
    return inst


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
def test_spec_case_on_prepared(c: Case, tmp_path: Path) -> None:
    inst = _prepared(c.tables, tmp_path)
    res = engine.count_exact(c.text, inst, CAT, purpose=c.purpose)
    assert [int(n) for _label, n in res.attrition] == [len(s) for s in c.steps]
    cohort = parse(c.text)
    if c.breakdown is not None:
        got = {_breakdown_key(cohort.report, row): int(row["count"]) for row in res.breakdown}
        assert got == c.breakdown
    if c.report_tables is not None:
        got_tables = [
            {_breakdown_key(rep.dims, row): int(row["count"]) for row in t.rows(res.names)}
            for rep, t in zip(cohort.reports, res.tables, strict=True)
        ]
        assert got_tables == c.report_tables


def test_code_events_read_code_tables(tmp_path: Path) -> None:
    """What the layout is for: a code event scans its code table, not the register."""
    case = next(c for c in CASES if "diagnosis" in c.text and "npr" in c.tables)
    inst = _prepared(case.tables, tmp_path)
    sql = engine.prepare(case.text, CAT, inst).compiled.sql()
    assert '"npr#diagnos"' in sql
    raw = Installation.from_data_dir(tmp_path / "raw")
    assert "#" not in engine.prepare(case.text, CAT, raw).compiled.sql()


# fewer than tests/test_generative.py: each example writes and prepares a DuckDB file
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(co=cohorts(), tables=extracts(), purpose=st.sampled_from(["forskning", "kommersiell"]))
def test_prepared_equals_reference(co, tables: dict, purpose: str) -> None:
    checked = engine.check(co, CAT)
    ref = evaluate(checked, tables, CAT, purpose=purpose)
    with tempfile.TemporaryDirectory() as d:
        got = engine.count_exact(checked, _prepared(tables, Path(d)), CAT, purpose=purpose)
    assert list(got.counts) == ref.counts(), (got.counts, ref.counts())
    for table, want in zip(got.tables, ref.tables, strict=True):
        assert {tuple(k): n for k, n in table.cells} == want
