"""The recruitment forecast end to end (issue 11, part 5): the monthly series is released as
one query bounded by the data's complete months, by hand-known counts; date indexes are
refused; the CLI and HTTP faces give the same answer."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from conftest import researcher_service, write_extracts
from typer.testing import CliRunner

from antal.api import usecases as uc
from antal.api.cli import app as cli
from antal.catalog import Installation, load_catalog
from antal.engine import parse
from antal.engine.backends.duckdb import DuckDBBackend
from antal.privacy import Gate, PrivacyParams, open_store

CAT = load_catalog()
AF = "index first diagnosis I48*\n"
FIRST = dt.date(2020, 1, 1)


def _month(i: int) -> dt.date:
    y, m = divmod(FIRST.month - 1 + i, 12)
    return dt.date(FIRST.year + y, m + 1, 1)


def _data(tmp_path: Path) -> tuple[Path, dict[dt.date, int]]:
    """Persons whose first I48 contact falls in a known month: month i of 2020-01..2021-12
    gets 5 + (i % 4) * 5 persons (5, 10, 15, 20, ...)."""
    pop, npr, want = [], [], {}
    pid = 0
    for i in range(24):
        n = 5 + (i % 4) * 5
        want[_month(i)] = n
        for _ in range(n):
            pid += 1
            pop.append({"lopnr": pid, "kon": 1, "fodelsear": 1950, "fodelsemanad": 1, "lan": "18"})
            day = _month(i) + dt.timedelta(days=pid % 27)
            npr.append({"lopnr": pid, "indatum": day, "vardform": "O", "sjukhus": "18001",
                        "hdia": "I489", "diagnos": "I489"})  # fmt: skip
            # a later contact must not move the index
            npr.append({"lopnr": pid, "indatum": day + dt.timedelta(days=400), "vardform": "O",
                        "sjukhus": "18001", "hdia": "I489", "diagnos": "I489"})  # fmt: skip
    d = write_extracts({"population": pop, "npr": npr}, tmp_path / "data")
    # extracted 2022-03-31; npr complete 3 months after a date: through 2021-12-31
    manifest = {"release": "fc-test", "extracted": dt.date(2022, 3, 31),
                "registers": {"npr": {"start": FIRST, "through": dt.date(2021, 12, 31)},
                              "population": {"start": FIRST, "through": dt.date(2021, 12, 31)}}}  # fmt: skip
    (d / "release.yaml").write_text(yaml.safe_dump(manifest))
    return d, want


def _gate(tmp_path: Path) -> Gate:
    store = open_store(tmp_path / "s.sqlite")
    store.create_project("p", "P", "forskning", 1e9, ("npr",))
    # a huge ε: the noise is zero with overwhelming probability, so hand counts are the oracle
    return Gate(store, PrivacyParams(epsilon=1e6, threshold=0))


def test_the_monthly_series_is_one_release_of_hand_known_counts(tmp_path: Path) -> None:
    d, want = _data(tmp_path)
    inst = Installation.from_data_dir(d)
    gate = _gate(tmp_path)
    be = DuckDBBackend(inst, CAT)
    res = uc.forecast_count(AF, inst, CAT, gate, "p", "u", be, months=6)
    got = {m.month: m.value for m in res.series[uc.TOTAL]}
    assert got == want  # every month of the data, each by hand
    # the open index window starts with the data; its months were all complete: none cut
    assert res.notes == ("the series starts 2020-01-01, the first day of the data",)
    a = res.counted.answer
    assert a.epsilon_charged == pytest.approx(2e6)  # attrition + the month table: one release
    f = res.forecasts[uc.TOTAL]
    assert not isinstance(f, str) and len(f.months) == 6
    assert f.months[0].month == dt.date(2022, 1, 1)
    # asked again: the stored answer, nothing charged
    again = uc.forecast_count(AF, inst, CAT, gate, "p", "u", be, months=6)
    be.close()
    assert again.counted.answer.epsilon_charged == 0


def test_incomplete_months_are_left_out_and_said(tmp_path: Path) -> None:
    d, want = _data(tmp_path)
    m = yaml.safe_load((d / "release.yaml").read_text())
    m["extracted"] = dt.date(2022, 1, 20)  # npr's lag: complete only through 2021-10-20
    (d / "release.yaml").write_text(yaml.safe_dump(m))
    inst = Installation.from_data_dir(d)
    be = DuckDBBackend(inst, CAT)
    res = uc.forecast_count(AF, inst, CAT, _gate(tmp_path), "p", "u", be, months=3)
    be.close()
    months = [s.month for s in res.series[uc.TOTAL]]
    assert months[-1] == dt.date(2021, 9, 1)  # the last whole month that is complete
    assert {s.month: s.value for s in res.series[uc.TOTAL]} == {
        k: v for k, v in want.items() if k <= dt.date(2021, 9, 1)
    }
    assert any("2021-09-30" in n for n in res.notes)


def test_date_indexes_and_unknown_groups_are_refused(tmp_path: Path) -> None:
    d, _ = _data(tmp_path)
    inst = Installation.from_data_dir(d)
    with pytest.raises(uc.DateIndexed):
        uc.monthly_cohort(parse("index 2021-01-01"), CAT, inst, None)
    with pytest.raises(uc.Invalid, match="--by"):
        uc.monthly_cohort(parse(AF), CAT, inst, "sex")


def test_cli_and_http_faces(tmp_path: Path) -> None:
    d, want = _data(tmp_path)
    f = tmp_path / "af.cohort"
    f.write_text(AF)
    r = CliRunner().invoke(cli, ["forecast", str(f), "--data", str(d), "--months", "4",
                                 "--store", str(tmp_path / "cli.sqlite"), "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert len(body["total"]["series"]) == 24 and body["answer"]["receipt"]["signature"]
    # the table a person reads: the forecast, its trend and its back-test, no traceback
    r = CliRunner().invoke(cli, ["forecast", str(f), "--data", str(d), "--months", "4",
                                 "--store", str(tmp_path / "cli.sqlite")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "90% interval" in r.output and "trend: ×" in r.output and "a year" in r.output
    date = tmp_path / "d.cohort"
    date.write_text("index 2021-01-01\n")
    r = CliRunner().invoke(cli, ["forecast", str(date), "--data", str(d), "--store",
                                 str(tmp_path / "cli.sqlite")])  # fmt: skip
    assert r.exit_code != 0 and "prevalence" in r.output

    c, h, _st = researcher_service(d, tmp_path / "h.sqlite", ("npr",))
    r = c.post("/v1/projects/p/forecast", json={"cohort": AF, "months": 3}, headers=h)
    assert r.status_code == 200, r.text
    assert [s["month"] for s in r.json()["total"]["series"]] == [m.isoformat() for m in want]
    r = c.post("/v1/projects/p/forecast", json={"cohort": "index 2021-01-01"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "date_index_cohort"


def test_the_report_can_forecast_itself(tmp_path: Path) -> None:
    d, _ = _data(tmp_path)
    f = tmp_path / "af.cohort"
    f.write_text(AF)
    out = tmp_path / "r.html"
    args = ["report", str(f), "--data", str(d), "--store", str(tmp_path / "r.sqlite"),
            "--out", str(out), "--forecast-months", "6"]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    html = out.read_text(encoding="utf-8")
    assert "Recruitment forecast" in html and "back-test" in html
    date = tmp_path / "d.cohort"
    date.write_text("index 2021-01-01\n")
    r = CliRunner().invoke(cli, [*args[:1], str(date), *args[2:]])
    assert r.exit_code != 0 and "date index" in r.output


def test_the_forecast_says_which_quantity_it_got(tmp_path: Path) -> None:
    """`index first` is first-ever persons (a declining series is expected, and said);
    `index each ..., washout N days` is episodes: here every contact, since each person's
    two contacts are 400 days apart, more than the washout of 365 (issue 24, item 1)."""
    d, want = _data(tmp_path)
    inst = Installation.from_data_dir(d)
    gate = _gate(tmp_path)
    be = DuckDBBackend(inst, CAT)
    first = uc.forecast_count(AF, inst, CAT, gate, "p", "u", be, months=3)
    each = uc.forecast_count(
        "index each diagnosis I48* between 2020-01-01 and 2021-12-31, washout 365 days\n",
        inst, CAT, gate, "p", "u", be, months=3,
    )  # fmt: skip
    be.close()
    assert first.quantity["unit"] == "persons" and "declines" in first.quantity["note"]
    assert each.quantity["unit"] == "episodes" and each.quantity["washout_days"] == 365
    assert each.to_json()["quantity"]["contribution"] == 730 // 366 + 1 == 2
    assert each.counted.answer.unit == "episodes" and each.counted.answer.contribution == 2
    # the contacts in the window, each an episode: the first contacts and the second ones
    # (400 days later) that fall before 2022
    contacts = sum(want.values()) + sum(
        n for m, n in want.items() if m + dt.timedelta(days=400 + 27) < dt.date(2022, 1, 1)
    )
    got = sum(m.value or 0 for m in each.series[uc.TOTAL])
    assert sum(want.values()) < got and abs(got - contacts) <= sum(
        n for m, n in want.items() if dt.date(2021, 12, 1) <= m + dt.timedelta(days=400) < dt.date(2022, 2, 1)
    )  # fmt: skip
    # the washout reaches before the data's first day: said
    assert any("washout of 365 days reaches before the data" in n for n in each.notes)
