"""Honest site tables (issue 23, item 4): a table by hospital or clinic marks each shown
site whose interval reaches below the threshold (`near_threshold`) or overlaps that of its
neighbour in the released ranking (`rank_uncertain`), in the answer's JSON, its
DataFrames, the command line, the report and the workbench. The marks are checked against
hand-made released values."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from antal.api.answerview import tables_of
from antal.api.cli import app
from antal.api.frames import table_frames
from antal.privacy.gate import Answer
from antal.privacy.mechanism import ReleasedCount, ReleasedTable
from antal.privacy.sites import is_site_table, site_marks
from antal.synthetic import generate

T = 10
CELLS = (
    (("A",), ReleasedCount(120, 110, 130, T)),  # far above its neighbour: separated
    (("B",), ReleasedCount(60, 52, 68, T)),  # overlaps C
    (("C",), ReleasedCount(55, 47, 63, T)),  # overlaps B
    (("D",), ReleasedCount(14, 6, 22, T)),  # may be below 10; apart from C (47 > 22)
    (("E",), ReleasedCount(None, None, None, T)),  # suppressed: not ranked, no mark
)


def test_marks_by_hand() -> None:
    marks = site_marks(CELLS, T)
    assert marks == {
        ("A",): (False, False),
        ("B",): (False, True),
        ("C",): (False, True),
        ("D",): (True, False),
        ("E",): (False, False),
    }
    assert is_site_table(("hospital",)) and is_site_table(("clinic",))
    assert not is_site_table(("region",)) and not is_site_table(("hospital", "sex"))


def _answer(dims: tuple[str, ...]) -> Answer:
    return Answer(
        labels=("Index event",), steps=(ReleasedCount(249, 240, 258, T),), dims=dims,
        cells=CELLS, params={"threshold": T, "rounding": 1, "epsilon": 0.5, "alpha": 0.05},
        epsilon_charged=1.0, epsilon_of_answer=1.0, budget_left=9.0, query_hash="h",
        release="r", purpose="forskning", key="k", stored=False, scales={},
        tables=(ReleasedTable(dims, CELLS),),
    )  # fmt: skip


def test_the_json_frames_and_view_carry_the_marks_of_site_tables_only() -> None:
    j = _answer(("hospital",)).to_json()
    rows = {r["hospital"]: (r["near_threshold"], r["rank_uncertain"]) for r in j["breakdown"]}
    assert rows["D"] == (True, False) and rows["B"] == (False, True)
    (frame,) = table_frames(j)
    assert list(frame["near_threshold"]) == [False, False, False, True, False]
    assert frame["rank_uncertain"].dtype == bool
    (table,) = tables_of({**j, "privacy": {"threshold": T}})
    assert table.marked
    assert [c.marks for c in table.cells][2:4] == [
        ("rank not separated from its neighbours",),
        ("may be below 10",),
    ]
    # a table that is no ranking of sites: no marks, no columns
    other = _answer(("region",)).to_json()
    assert all("near_threshold" not in r for r in other["breakdown"])
    assert "near_threshold" not in table_frames(other)[0].columns


def test_the_command_line_marks_the_sites(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate(20_000, 1, data)
    cohort = tmp_path / "hf.cohort"
    cohort.write_text("index first diagnosis I50* between 2015-01-01 and 2024-12-31\n"
                      "report by hospital\n", encoding="utf-8")  # fmt: skip
    common = ["--data", str(data), "--store", str(tmp_path / "s.sqlite"), "--project", "p"]
    r = CliRunner().invoke(app, ["count", str(cohort), *common], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    j = json.loads(CliRunner().invoke(app, ["count", str(cohort), "--json", *common]).stdout)
    near = [row for row in j["breakdown"] if row["near_threshold"]]
    assert near, "20 000 persons: some hospital is shown near the threshold"
    assert "read with care" in r.output and "may be below 10" in r.output
