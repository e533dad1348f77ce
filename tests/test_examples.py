"""Every example cohort on a synthetic extract: the engine's counts and breakdown equal the
pure-Python reference evaluator's (an independent oracle), on realistic, Swedish-shaped data."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from antal import engine
from antal.catalog import Installation, load_catalog
from antal.engine.reference import evaluate
from antal.synthetic import generate

CAT = load_catalog()
EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.cohort"))


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> tuple[Installation, dict[str, list[dict]]]:
    d = tmp_path_factory.mktemp("synth")
    generate(20_000, 11, d)
    tables = {p.stem: pq.read_table(p).to_pylist() for p in d.glob("*.parquet")}
    return Installation.from_data_dir(d), tables


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("purpose", ["forskning", "kommersiell"])
def test_example_matches_reference(path: Path, purpose: str, extract) -> None:
    inst, tables = extract
    checked = engine.check(engine.parse(path.read_text(encoding="utf-8")), CAT)
    got = engine.count_exact(checked, inst, CAT, purpose=purpose)
    ref = evaluate(checked, tables, CAT, purpose=purpose)
    assert list(got.counts) == ref.counts()
    assert {tuple(k): n for k, n in got.cells} == ref.breakdown
    assert got.counts[0] > 0  # the synthetic data exercise every example
