"""The plans antal compiles, as reviewed text and as the engines run them.

- Golden SQL (as sqlglot keeps its fixtures): every example's statement in every dialect,
  on raw extracts and on a prepared file's layout, is the text in tests/golden/. A change
  of plan is a reviewed diff of those files, not a surprise in a benchmark. After an
  intended change: `python tests/test_plans.py --write`, and read the diff.
- One read per table: every example's statement names each register (or code table) once,
  and DuckDB's physical plan scans each register once, on raw Parquet and on a prepared
  file: the conditions reading a register share one pre-filtered scan (engine/compiler.py,
  `_Scan`). A prepared file's code tables are the exception by design: sorted by code, each
  use reads the blocks of its own codes again, which costs less than keeping the rows.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlglot import exp

from antal import engine
from antal.catalog import Installation, load_catalog
from antal.catalog.installation import PhysicalLayout, person_table_name
from antal.catalog.vocabulary import DIALECTS
from antal.engine.compiler import compile_cohort
from antal.engine.ingest import code_table_specs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.cohort"))
GOLDEN = Path(__file__).resolve().parent / "golden"
CAT = load_catalog()
OPTOUT = "optout"


def _prepared_layout() -> PhysicalLayout:
    """The layout of a prepared file holding every register (engine/ingest.py's tables)."""
    pop = CAT.population
    assert pop is not None
    return PhysicalLayout(
        code_tables={
            (spec.register, spec.column): spec.name
            for reg in CAT.registers.values()
            for spec in code_table_specs(reg)
        },
        person_tables={pop.id: person_table_name(pop.id)},
    )


LAYOUTS = {"raw": PhysicalLayout(), "prepared": _prepared_layout()}
# the prepared file is DuckDB's; the other engines read the registers as they are
CASES = [(d, "raw") for d in DIALECTS] + [("duckdb", "prepared")]


def _compiled(path: Path, layout: str) -> engine.Compiled:
    checked = engine.check(engine.parse(path.read_text(encoding="utf-8")), CAT)
    return compile_cohort(checked, CAT, optout=OPTOUT, layout=LAYOUTS[layout])


def _golden(path: Path, dialect: str, layout: str) -> Path:
    return GOLDEN / f"{path.stem}.{layout}.{dialect}.sql"


def _text(path: Path, dialect: str, layout: str) -> str:
    return _compiled(path, layout).sql(dialect, pretty=True) + "\n"  # type: ignore[arg-type]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize(("dialect", "layout"), CASES)
def test_plan_is_the_reviewed_one(path: Path, dialect: str, layout: str) -> None:
    golden = _golden(path, dialect, layout)
    assert golden.exists(), "no golden SQL: run `python tests/test_plans.py --write`"
    assert _text(path, dialect, layout) == golden.read_text(encoding="utf-8"), (
        f"{golden.name} changed: if intended, `python tests/test_plans.py --write` and review"
    )


def test_every_golden_file_belongs_to_an_example() -> None:
    wanted = {_golden(p, d, lay).name for p in EXAMPLES for d, lay in CASES}
    assert {g.name for g in GOLDEN.glob("*.sql")} == wanted


def _tables_read(tree: exp.Expression) -> Counter[str]:
    """How many times the statement names each table that is not one of its CTEs."""
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    return Counter(t.name for t in tree.find_all(exp.Table) if t.name not in ctes)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_table_is_named_once(path: Path, layout: str) -> None:
    compiled = _compiled(path, layout)
    read = _tables_read(compiled.tree)
    assert read, "the statement reads no table"
    assert {t: n for t, n in read.items() if n > 1} == {}


# ---- DuckDB's physical plans ----------------------------------------------------------------


@pytest.fixture(scope="module")
def extracts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Installation]:
    """A small raw extract and the prepared file made from it: the plans do not depend on
    the data's size, only on the statement and the tables' kinds."""
    from antal.engine.ingest import prepare
    from antal.synthetic import generate

    d = tmp_path_factory.mktemp("plans")
    generate(2_000, 3, d / "raw")
    out = prepare(d / "raw", d / "prepared.duckdb", CAT).path
    return {
        "raw": Installation.from_data_dir(d / "raw"),
        "prepared": Installation.from_data_dir(out),
    }


def _scans(node: dict, out: list[dict]) -> list[dict]:
    if node.get("name") in ("READ_PARQUET", "SEQ_SCAN", "TABLE_SCAN"):
        out.append(node)
    for child in node.get("children", []):
        _scans(child, out)
    return out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_duckdb_scans_every_table_once(path: Path, layout: str, extracts) -> None:
    """DuckDB's physical plan of the statement has one scan per table it reads: a scan
    that several conditions use is a materialised CTE, read from memory by each of them."""
    from antal.engine.backends import DuckDBBackend

    inst = extracts[layout]
    checked = engine.check(engine.parse(path.read_text(encoding="utf-8")), CAT)
    compiled = compile_cohort(checked, CAT, optout=OPTOUT, layout=inst.layout())
    backend = DuckDBBackend(inst, CAT)
    try:
        backend.attach(compiled.registers | {OPTOUT})
        (row,) = backend.con.execute("EXPLAIN (FORMAT JSON) " + compiled.sql("duckdb")).fetchall()
        scans = [s for root in json.loads(row[1]) for s in _scans(root, [])]
    finally:
        backend.close()
    tables = _tables_read(compiled.tree)
    # (DuckDB may plan no scan at all for a table its statistics prove empty of the rows asked)
    if layout == "prepared":  # tables of one DuckDB file: each scan names its table
        named = Counter(s["extra_info"]["Table"].rsplit(".", 1)[-1].strip('"') for s in scans)
        assert set(named) <= set(tables)
        # a code table (`npr#diagnos`), sorted by code, is read by each of its uses in the
        # blocks of that use's codes (`_Scan.materialized`); every other table once
        assert {t: n for t, n in named.items() if n > 1 and "#" not in t} == {}
    else:  # Parquet files: a scan names no file, but there are no more scans than files
        assert {s["name"] for s in scans} == {"READ_PARQUET"}
        assert len(scans) <= len(tables)


def _write() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for g in GOLDEN.glob("*.sql"):
        g.unlink()
    for p in EXAMPLES:
        for dialect, layout in CASES:
            _golden(p, dialect, layout).write_text(_text(p, dialect, layout), encoding="utf-8")
    print(f"wrote {len(EXAMPLES) * len(CASES)} files to {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/test_plans.py --write")
    _write()


def test_a_checked_population_is_read_without_grouping(extracts, tmp_path: Path) -> None:
    """After a passing data check (which refuses a person key on two population rows) the
    population is read as a person table, one row per person: the same counts as grouping
    its rows by person, without the hash aggregate over every person."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from antal.api import usecases as uc
    from antal.engine import DataError

    raw = extracts["raw"]
    data = Path(raw.sources["population"].parquet or "").parent
    checked = Installation.from_data_dir(data)
    uc.check_data(checked, CAT)
    assert checked.layout().person_tables == {"population": "population"}
    for path in EXAMPLES:
        text = path.read_text(encoding="utf-8")
        ir_ = engine.check(engine.parse(text), CAT)
        plain = compile_cohort(ir_, CAT, optout=OPTOUT, layout=raw.layout()).sql("duckdb")
        fast = compile_cohort(ir_, CAT, optout=OPTOUT, layout=checked.layout()).sql("duckdb")
        assert "MAX(p." in plain and "MAX(p." not in fast
        a = engine.count_exact(ir_, raw, CAT)
        b = engine.count_exact(ir_, checked, CAT)
        assert (a.counts, a.cells) == (b.counts, b.cells), path.stem

    # a population with a person on two rows fails the check and stays grouped
    dup = tmp_path / "dup"
    shutil.copytree(data, dup)
    pop = pq.read_table(dup / "population.parquet")
    pq.write_table(pa.concat_tables([pop, pop.slice(0, 1)]), dup / "population.parquet")
    twice = Installation.from_data_dir(dup)
    with pytest.raises(DataError):
        uc.check_data(twice, CAT)
    assert twice.layout().person_tables == {}
