"""No silent wrong answers (issue 10): codes that do not exist are errors, retired and
unverifiable ones warnings; windows reaching a period the codes cannot match, past the
data or into a register's reporting lag are warnings; every answer carries the data's
currency. Each case on the Python API, the CLI and HTTP; counts by hand."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import researcher_service, write_extracts
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from antal import engine
from antal.api.app import create_app
from antal.api.cli import app as cli
from antal.api.settings import Settings
from antal.catalog import Catalog, Coding, Installation, Period, bundled_dir, load_catalog
from antal.engine.currency import currency_of

CAT = load_catalog()
D = dt.date


def _with(cat: Catalog, rid: str, **changes: Any) -> Catalog:
    """The catalog with one register's fields changed (a test's own statement of facts)."""
    reg = cat.registers[rid]
    return dataclasses.replace(
        cat, registers={**cat.registers, rid: reg.model_copy(update=changes)}
    )


def _npr_icd9(cat: Catalog = CAT) -> Catalog:
    """npr whose diagnoses are ICD-9 before 1997, ICD-10-SE from then."""
    reg = cat.registers["npr"]
    coding = [Coding(system="ICD-9", until=D(1997, 1, 1), note="Skåne until 1998"),
              Coding(system="ICD-10-SE", start=D(1997, 1, 1))]  # fmt: skip
    variables = [v.model_copy(update={"coding": coding if v.name in ("hdia", "diagnos") else []})
                 for v in reg.variables]  # fmt: skip
    return _with(cat, "npr", variables=variables)


def _npr_no_periods(cat: Catalog = CAT) -> Catalog:
    reg = cat.registers["npr"]
    return _with(cat, "npr", variables=[v.model_copy(update={"coding": []}) for v in reg.variables])


def codes_of(diags: list[engine.Diagnostic]) -> list[str]:
    return [d.code for d in diags]


def warnings(text: str, cat: Catalog = CAT, inst: Installation | None = None) -> list[Any]:
    return list(engine.prepare(text, cat, inst).warnings)


_CODE_WARNINGS = {"retired_code", "older_code", "unverified_code"}


def code_warnings(text: str, cat: Catalog = CAT) -> list[Any]:
    """The warnings about codes only (not about the periods a window reaches)."""
    return [w for w in warnings(text, cat) if w.code in _CODE_WARNINGS]


# ---- codes that do not exist, retired codes, unverifiable codes ------------------------------


@pytest.mark.parametrize(
    ("text", "near"),
    [
        ("index first diagnosis I50X", "I500"),  # I50 has fourth characters: X is none
        ("index first diagnosis E11.X", "E110"),
        ('index first npr where hdia = "I50X"', "I500"),  # a filter's code, looked up too
        ("index first drug A99*", None),  # no therapeutic subgroup A99
        ("index first drug Q01*", None),  # not an anatomical group: a shape error already
    ],
)
def test_codes_no_list_has_are_errors_with_the_nearest(text: str, near: str | None) -> None:
    with pytest.raises(engine.CohortError) as e:
        engine.check(engine.parse(text), CAT)
    d = e.value.diagnostics[0]
    assert d.code in ("unknown_code", "code_system") and d.line == 1
    if near:
        assert d.code == "unknown_code" and near in (d.hint or "")


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        # ICD-10-SE's fifth characters under WHO leaves (fractures: S72.00, S72.01)
        ("index first diagnosis S7200, S7201", ["S7200", "S7201"]),
        ("index first diagnosis Q99.99", ["Q9999"]),
        ('index first npr where hdia = "S7200"', ["S7200"]),
    ],
)
def test_codes_below_a_who_leaf_are_unverified_not_unknown(text: str, codes: list[str]) -> None:
    """ICD-10-SE extends WHO's ICD-10 below codes the WHO list ends at: without
    Socialstyrelsen's complete file such a code can be neither confirmed nor refused."""
    found = [w for w in code_warnings(text) if w.code == "unverified_code"]
    assert [w.message.split()[0] for w in found] == codes


def test_a_complete_icd10se_list_makes_them_errors(tmp_path: Path) -> None:
    from antal.catalog.code_lists import load_code_lists

    d = tmp_path / "codelists"
    d.mkdir()
    (d / "icd10se.tsv").write_text(
        "# system: ICD-10-SE\n# source: Socialstyrelsen's code file (test)\n"
        "# complete: all\nS7200\tfracture\n",
        encoding="utf-8",
    )
    lists = load_code_lists(tmp_path)
    assert lists.judge("S7200", False, "ICD-10-SE").status == "known"
    assert lists.judge("S7201", False, "ICD-10-SE").status == "unknown"


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ('index first npr where hdia in ("I50", "I5O9")', '"I5O9" is not an ICD-10-SE code'),
        ('index first npr where hdia = "B01AF01"', "it looks like an ATC code"),
        ('index first lmr where atc = "E119"', '"E119" is not an ATC code'),
    ],
)
def test_filter_codes_of_another_shape_are_errors(text: str, what: str) -> None:
    """A filter compares whole stored codes: one of no shape the column holds is a silent
    zero, refused like an event's code (issue 24)."""
    with pytest.raises(engine.CohortError) as e:
        engine.check(engine.parse(text), CAT)
    d = e.value.diagnostics[0]
    assert d.code == "code_system" and what in f"{d.message} - {d.hint}", (d.message, d.hint)


def test_a_prefix_over_an_atc_move_names_the_older_codes() -> None:
    """`drug A10BK*` before 2017: the WHO moved the SGLT2 inhibitors out of A10BX then, and
    the prescribed drug register keeps the code of the day: one warning naming them."""
    text = "index first drug A10BK* in lmr between 2014-01-01 and 2020-01-01\n"
    older = [w for w in warnings(text) if w.code == "older_code"]
    assert len(older) == 1 and "A10BX09, A10BX11, A10BX12" in (older[0].hint or "")
    text = "index first drug A10BK*, A10BX* in lmr between 2014-01-01 and 2020-01-01\n"
    assert [w for w in warnings(text) if w.code == "older_code"] == []
    text = "index first drug A10BK* in lmr between 2018-01-01 and 2020-01-01\n"
    assert [w for w in warnings(text) if w.code == "older_code"] == []


def test_real_codes_and_prefixes_pass_without_warnings() -> None:
    text = "codeset d = E11*, E119, I21*, I48, U071\nindex first diagnosis @d\n"
    text += "include drug A10BA02, A10B*, B01AE07\ninclude procedure FNG02\n"
    assert code_warnings(text) == []


def test_a_retired_code_warns_and_names_its_successor() -> None:
    w = code_warnings("index first drug L01XC03 between 2015-01-01 and 2020-12-31")
    assert codes_of(w) == ["retired_code"] and "L01FD01" in w[0].message
    assert "trastuzumab" in w[0].message and w[0].severity == "warning"
    assert "retired_code" not in codes_of(warnings("index first drug L01XC03, L01FD01"))


def test_a_split_code_is_not_retired_but_older_rows_hold_what_left_it() -> None:
    """The WHO's 2014 split of R03AK: formoterol and beclometasone left R03AK07, which keeps
    formoterol and budesonide, so R03AK07 is no retired code, but lmr (which keeps the code
    of the day) holds formoterol and beclometasone before 2014 as R03AK07. Fenoterol and
    ipratropium left R03AK03 for R03AL01 altogether: R03AK03 is retired."""
    assert code_warnings("index first drug R03AK07 in lmr between 2015-01-01 and 2020-12-31") == []
    w = code_warnings("index first drug R03AK08 in lmr between 2010-01-01 and 2020-12-31")
    assert codes_of(w) == ["older_code"] and w[0].hint == "add R03AK07"
    assert code_warnings("index first drug R03AK08 in lmr between 2014-01-01 and 2020-12-31") == []
    w = code_warnings("index first drug R03AK03 in lmr between 2015-01-01 and 2020-12-31")
    assert codes_of(w) == ["retired_code"] and "R03AL01" in w[0].message


def test_a_current_code_warns_where_older_rows_hold_the_old_one() -> None:
    # lmr keeps the code valid at the time: rows before 2022 hold trastuzumab as L01XC03
    reg = CAT.registers["lmr"]
    hist = [Coding(system="ATC", historical=True)]
    cat = _with(CAT, "lmr", variables=[
        v.model_copy(update={"coding": hist}) if v.name == "atc" else v for v in reg.variables
    ])  # fmt: skip
    w = warnings("index first drug L01FD01 in lmr between 2019-01-01 and 2023-12-31", cat)
    assert "older_code" in codes_of(w) and any("L01XC03" in x.message for x in w)
    assert "older_code" not in codes_of(
        warnings("index first drug L01FD01 in lmr between 2022-01-01 and 2023-12-31", cat)
    )
    assert "older_code" not in codes_of(
        warnings("index first drug L01FD01, L01XC03 in lmr between 2019-01-01 and 2023-12-31", cat)
    )


def test_codes_beyond_the_partial_lists_warn_as_unverified() -> None:
    w = code_warnings("index first drug A10BA99")
    assert codes_of(w) == ["unverified_code"] and "A10BA02" in (w[0].hint or "")
    assert codes_of(code_warnings("index first procedure ZZZ99")) == ["unverified_code"]


def test_an_installation_code_list_makes_a_code_known(tmp_path: Path) -> None:
    d = tmp_path / "entries"
    (d / "codelists").mkdir(parents=True)
    (d / "codelists" / "kva.tsv").write_text(
        "# system: KVÅ\n# source: a test's own list\n# complete: 5\nZZZ99\tEn teståtgärd\n"
    )
    cat = load_catalog(bundled_dir(), d)
    assert code_warnings("index first procedure ZZZ99", cat) == []
    with pytest.raises(engine.CohortError) as e:  # complete: what it lacks does not exist
        engine.check(engine.parse("index first procedure ZZZ98"), cat)
    assert e.value.diagnostics[0].code == "unknown_code"


# ---- ICD-9 codes: a shape of their own, and they count ----------------------------------------


def test_icd9_codes_parse_check_and_match_older_records(tmp_path: Path) -> None:
    day = D(1995, 3, 1)
    npr = [
        {"lopnr": 1, "indatum": day, "vardform": "S", "sjukhus": "18001", "hdia": "410A", "diagnos": "410A"},
        {"lopnr": 2, "indatum": day, "vardform": "S", "sjukhus": "18001", "hdia": "4109", "diagnos": "250B 4109"},
        {"lopnr": 3, "indatum": day, "vardform": "S", "sjukhus": "18001", "hdia": "411A", "diagnos": "411A"},
        {"lopnr": 4, "indatum": D(2001, 1, 1), "vardform": "S", "sjukhus": "18001", "hdia": "I219", "diagnos": "I219"},
        {"lopnr": 5, "indatum": day, "vardform": "O", "sjukhus": "18001", "hdia": "J44", "diagnos": "J44 4100"},
    ]  # fmt: skip
    pop = [
        {"lopnr": i, "kon": 1, "fodelsear": 1940, "fodelsemanad": 1, "lan": "18"}
        for i in range(1, 6)
    ]
    inst = Installation.from_data_dir(write_extracts({"population": pop, "npr": npr}, tmp_path))
    # by hand: 410* matches 410A (1), 4109 (2, second code) and 4100 (5); I21* matches 4
    got = engine.count_exact("index first diagnosis I21*, 410*", inst, CAT)
    assert got.count == 4
    assert engine.count_exact("index first diagnosis 410A, 4109", inst, CAT).count == 2
    assert engine.count_exact("index first diagnosis 41*", inst, CAT).count == 4  # 410*, 411A
    with pytest.raises(engine.CohortError) as e:
        engine.check(engine.parse("index first drug 410*"), CAT)
    assert e.value.diagnostics[0].code == "code_system"


def test_numbers_stay_numbers_outside_code_lists() -> None:
    co = engine.parse(
        "index first diagnosis 410*\ninclude diagnosis I10 within 1000..3650 days before index"
    )
    assert co.steps[0].cond.window.lo == -3650 and co.steps[0].cond.window.hi == -1000


# ---- code systems by period ------------------------------------------------------------------


def test_a_look_back_into_the_icd9_years_warns_and_says_what_to_add() -> None:
    cat = _npr_icd9()
    text = "index first diagnosis I21* between 2000-01-01 and 2000-12-31\n"
    text += "exclude diagnosis I21* within 3650 days before index\n"
    w = [x for x in warnings(text, cat) if x.code == "code_system_period"]
    assert len(w) == 1 and w[0].line == 2 and "ICD-9" in w[0].message
    assert "410*" in (w[0].hint or "") and "1997-01-01" in (w[0].hint or "")
    fixed = text.replace("exclude diagnosis I21*", "exclude diagnosis I21*, 410*")
    assert "code_system_period" not in codes_of(warnings(fixed, cat))
    # a look-back that stays in the ICD-10 years does not warn
    short = text.replace("3650 days", "365 days")
    assert "code_system_period" not in codes_of(warnings(short, cat))


def test_an_extract_that_starts_later_does_not_reach_the_old_codes(tmp_path: Path) -> None:
    cat = _npr_icd9()
    d = write_extracts({}, tmp_path)
    (d / "release.yaml").write_text(yaml.safe_dump({"extracted": D(2026, 1, 1),
        "registers": {"npr": {"start": D(2006, 1, 1), "through": D(2025, 12, 31)}}}))  # fmt: skip
    inst = Installation.from_data_dir(d)
    text = "index first diagnosis I21* between 2015-01-01 and 2015-12-31\n"
    text += "exclude diagnosis I21* before index\n"
    assert "code_system_period" in codes_of(warnings(text, cat))  # the register's own years
    assert "code_system_period" not in codes_of(warnings(text, cat, inst))


# ---- data currency: the extract's ends, the reporting lag, known gaps ---------------------------


def _data(tmp_path: Path) -> Path:
    d = write_extracts({}, tmp_path / "data")
    (d / "release.yaml").write_text(yaml.safe_dump({
        "release": "test-2025-12", "extracted": D(2025, 12, 31),
        "registers": {"npr": {"start": D(2006, 1, 1), "through": D(2025, 12, 31)},
                      "lmr": {"start": D(2006, 1, 1), "through": D(2025, 12, 31)}},
    }))  # fmt: skip
    return d


def test_currency_by_hand(tmp_path: Path) -> None:
    inst = Installation.from_data_dir(_data(tmp_path))
    assert inst.release.startswith("test-2025-12-") and inst.extracted == D(2025, 12, 31)
    cat = _with(CAT, "npr", update=CAT.registers["npr"].update.model_copy(
        update={"lag_months": 3, "finalised": "monthly"}))  # fmt: skip
    cat = _with(cat, "dors", update=CAT.registers["dors"].update.model_copy(
        update={"lag_months": 15, "finalised": "yearly"}))  # fmt: skip
    cur = currency_of(cat, inst, ["npr", "dors", "optout"])
    assert set(cur.registers) == {"npr", "dors"}  # the opt-outs are internal
    npr, dors = cur.registers["npr"], cur.registers["dors"]
    assert (npr.start, npr.through, npr.complete_through) == (
        D(2006, 1, 1),
        D(2025, 12, 31),
        D(2025, 9, 30),
    )
    # 2025-12-31 minus 15 months is 2024-09-30: the last year final 15 months after its end is 2023
    assert dors.complete_through == D(2023, 12, 31) and dors.through == D(2025, 12, 31)


@pytest.mark.parametrize(
    ("window", "code"),
    [
        ("between 2025-01-01 and 2025-11-30", "reporting_lag"),
        ("between 2025-01-01 and 2026-06-30", "after_data"),
        ("between 2000-01-01 and 2010-12-31", "before_data"),
        ("between 2010-01-01 and 2024-12-31", None),
    ],
)
def test_windows_outside_the_data_warn(tmp_path: Path, window: str, code: str | None) -> None:
    inst = Installation.from_data_dir(_data(tmp_path))
    cat = _with(CAT, "npr", update=CAT.registers["npr"].update.model_copy(update={"lag_months": 3}))
    got = {c for c in codes_of(warnings(f"index first diagnosis E11* {window}", cat, inst))
           if c in ("reporting_lag", "after_data", "before_data")}  # fmt: skip
    assert got == ({code} if code else set())


def test_a_step_window_reaches_from_the_index_window(tmp_path: Path) -> None:
    inst = Installation.from_data_dir(_data(tmp_path))
    text = "index first diagnosis E11* between 2024-01-01 and 2024-12-31\n"
    text += "include drug A10BA02 in lmr within 0..365 days after index\n"
    w = [x for x in warnings(text, CAT, inst) if x.code in ("reporting_lag", "after_data")]
    # 2024-12-31 + 365 days = 2025-12-31: inside the extract, but past lmr's complete days
    assert [x.line for x in w] == [2] and w[0].code == "reporting_lag"


def test_a_known_incomplete_period_warns() -> None:
    gap = Period(until=D(2025, 4, 1), note="person-level reporting began 1 April 2025")
    cat = _with(CAT, "rekvisition", coverage=CAT.registers["rekvisition"].coverage.model_copy(
        update={"incomplete": [gap]}))  # fmt: skip
    w = warnings("index first drug A10BK* in rekvisition between 2024-01-01 and 2024-12-31", cat)
    assert codes_of(w) == ["incomplete_period"] and "April 2025" in w[0].message
    later = "index first drug A10BK* in rekvisition between 2025-05-01 and 2025-06-30"
    assert "incomplete_period" not in codes_of(warnings(later, cat))


# ---- the faces: CLI and HTTP ------------------------------------------------------------------


def test_cli_check_prints_warnings_and_exits_zero_but_errors_exit_one(tmp_path: Path) -> None:
    f = tmp_path / "c.cohort"
    f.write_text("index first drug L01XC03\n")
    r = CliRunner().invoke(cli, ["check", str(f)])
    assert r.exit_code == 0 and "warning: L01XC03" in r.output and "L01FD01" in r.output
    f.write_text("index first diagnosis I50.X\n")
    r = CliRunner().invoke(cli, ["check", str(f)])
    assert r.exit_code == 1 and "I50X is not a code in ICD-10-SE" in r.output


def test_cli_count_carries_currency_and_warnings(tmp_path: Path) -> None:
    d = _data(tmp_path)
    f = tmp_path / "c.cohort"
    f.write_text("index first diagnosis E11* between 2025-01-01 and 2026-06-30\n")
    r = CliRunner().invoke(cli, ["count", str(f), "--data", str(d), "--exact", "--json"])
    assert r.exit_code == 0, r.output
    body = json.loads(r.output.splitlines()[-1])
    assert body["data_currency"]["release"].startswith("test-2025-12-")
    npr = next(x for x in body["data_currency"]["registers"] if x["id"] == "npr")
    assert npr["extract"] == {"start": "2006-01-01", "through": "2025-12-31"}
    assert "after_data" in [w["code"] for w in body["warnings"]]


def _service(d: Path, tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    """The HTTP service on the extracts in `d`, and a researcher's headers for project p."""
    c, h, _st = researcher_service(d, tmp_path / "s.sqlite", ("npr", "lmr"))
    return c, h


def test_http_validate_and_count_carry_warnings_and_currency(tmp_path: Path) -> None:
    d = _data(tmp_path)
    c, h = _service(d, tmp_path)
    text = "index first drug L01XC03 in lmr between 2025-01-01 and 2026-06-30\n"
    r = c.post("/v1/cohorts/validate", json={"cohort": text}, headers=h)
    assert r.status_code == 200 and r.json()["ok"] is True
    got = {x["code"]: x["severity"] for x in r.json()["diagnostics"]}
    assert got.get("retired_code") == "warning" and got.get("after_data") == "warning"
    assert r.json()["data_currency"]["extracted"] == "2025-12-31"
    r = c.post("/v1/projects/p/count", json={"cohort": text}, headers=h)
    assert r.status_code == 200, r.text
    assert {"retired_code", "after_data"} <= {x["code"] for x in r.json()["warnings"]}
    assert r.json()["data_currency"]["release"].startswith("test-2025-12-")
    r = c.post("/v1/cohorts/validate", json={"cohort": "index first diagnosis I50.X"}, headers=h)
    assert r.status_code == 200 and r.json()["ok"] is False
    assert r.json()["diagnostics"][0]["code"] == "unknown_code"


def test_one_set_of_warnings_wherever_the_cohort_is_read(tmp_path: Path) -> None:
    """The same cohort on the same data: `antal check --data`, `antal count --json`, the
    HTTP validation and count, and the report all carry the same warnings (issue 24,
    item 7; `antal check` without `--data` knows only the catalog's)."""
    import re

    d = _data(tmp_path)
    f = tmp_path / "w.cohort"
    text = ("index first drug A10BK* in lmr between 2014-01-01 and 2026-06-30\n"
            "include diagnosis I21* before index\n")  # fmt: skip
    f.write_text(text)
    r = CliRunner().invoke(cli, ["check", str(f), "--data", str(d)])
    assert r.exit_code == 0, r.output
    messages = sorted(w.message for w in warnings(text, CAT, Installation.from_data_dir(d)))
    shown = re.findall(r"warning: (.*?)(?: - |\n)", r.output)
    assert sorted(shown) == messages and len(messages) >= 3
    # without the data: the catalog's periods (npr before 2006 too), not this release's
    alone = CliRunner().invoke(cli, ["check", str(f)])
    assert sorted(re.findall(r"warning: (.*?)(?: - |\n)", alone.output)) != messages
    r = CliRunner().invoke(cli, ["count", str(f), "--data", str(d), "--exact", "--json",
                                 "--store", str(tmp_path / "c.sqlite")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (
        sorted(w["message"] for w in json.loads(r.output.splitlines()[-1])["warnings"]) == messages
    )
    c, h = _service(d, tmp_path)
    v = c.post("/v1/cohorts/validate", json={"cohort": text}, headers=h).json()
    assert sorted(x["message"] for x in v["diagnostics"]) == messages
    answer = c.post("/v1/projects/p/count", json={"cohort": text}, headers=h).json()
    assert sorted(w["message"] for w in answer["warnings"]) == messages
    from antal.api.report import render_report

    html = render_report(answer, cohort_text=text)
    assert all(m.replace("'", "&#39;") in html for m in messages)


def test_the_data_check_accepts_the_codes_of_every_period(tmp_path: Path) -> None:
    from antal.engine.datacheck import check_data

    npr = [{"lopnr": 1, "indatum": D(1995, 3, 1), "vardform": "S", "sjukhus": "18001",
            "hdia": "410A", "diagnos": "410A 250B"}]  # fmt: skip
    pop = [{"lopnr": 1, "kon": 1, "fodelsear": 1940, "fodelsemanad": 1, "lan": "18"}]
    inst = Installation.from_data_dir(write_extracts({"population": pop, "npr": npr}, tmp_path))

    def shapes(cat: Catalog) -> set[str | None]:
        return {f.column for f in check_data(inst, cat, {"npr"}) if f.kind == "code_shape"}

    assert shapes(_npr_no_periods()) == {"hdia", "diagnos"}  # ICD-10-SE only: 410A is wrong
    assert shapes(_npr_icd9()) == set()  # ICD-9 before 1997: its codes are well shaped


def test_external_causes_are_diagnoses_but_never_main(tmp_path: Path) -> None:
    day = D(2020, 5, 1)
    npr = [
        {"lopnr": 1, "indatum": day, "vardform": "S", "sjukhus": "18001", "hdia": "S720", "diagnos": "S720", "ekod": "W19"},
        {"lopnr": 2, "indatum": day, "vardform": "O", "sjukhus": "18001", "hdia": "S525", "diagnos": "S525 Z038", "ekod": "W01 Y929"},
        {"lopnr": 3, "indatum": day, "vardform": "O", "sjukhus": "18001", "hdia": "J189", "diagnos": "J189"},
    ]  # fmt: skip
    pop = [
        {"lopnr": i, "kon": 2, "fodelsear": 1940, "fodelsemanad": 1, "lan": "18"} for i in (1, 2, 3)
    ]
    inst = Installation.from_data_dir(write_extracts({"population": pop, "npr": npr}, tmp_path))
    # by hand: W19 is person 1's external cause, W0* persons 1 and 2's; none is ever a main code
    assert engine.count_exact("index first diagnosis W19", inst, CAT).count == 1
    assert engine.count_exact("index first diagnosis W0*, W1*", inst, CAT).count == 2
    assert engine.count_exact("index first diagnosis W* main", inst, CAT).count == 0
    assert engine.count_exact("index first diagnosis S* main", inst, CAT).count == 2


def test_cli_warns_of_code_systems_by_period_and_known_gaps(tmp_path: Path) -> None:
    f = tmp_path / "c.cohort"
    f.write_text(
        "index first diagnosis I21* between 2000-01-01 and 2000-12-31\n"
        "exclude diagnosis I21* within 3650 days before index\n"
        "exclude drug B01AC06 in rekvisition within 365 days before index\n"
    )
    r = CliRunner().invoke(cli, ["check", str(f)])
    assert r.exit_code == 0, r.output
    assert "c.cohort:2:9: warning: 'npr.diagnos' holds ICD-9 codes" in r.output
    assert "'npr.ekod' holds ICD-9" not in r.output  # one register, one warning per period
    assert (
        "c.cohort:3:9: warning: this window reaches back to 1999-01-01, before 'rekvisition'"
        in r.output
    )
    assert "c.cohort:1:1: warning: 'npr' is incomplete until 2001-01-01" in r.output


def test_http_warns_of_a_known_gap(tmp_path: Path) -> None:
    app = create_app(Settings(data=_data(tmp_path), store=str(tmp_path / "s.sqlite")))
    st = app.state.antal
    st.accounts.create_user("res", "R", "researcher")
    h = {"Authorization": f"Bearer {st.accounts.issue_token('res')}"}
    text = "index first drug A10BK* in rekvisition between 2024-01-01 and 2024-12-31\n"
    r = TestClient(app).post("/v1/cohorts/validate", json={"cohort": text}, headers=h)
    assert r.status_code == 200 and r.json()["ok"] is True
    assert "incomplete_period" in {x["code"] for x in r.json()["diagnostics"]}


def test_a_coding_period_of_one_lan_warns_for_that_lan() -> None:
    """Skåne coded npr's diagnoses in ICD-9 through 1997, a year after the rest of Sweden
    (issue 24): an ICD-10 window over 1997 is warned of, naming Skåne; 1998 on is not."""

    def periods(text: str) -> list[str]:
        return [w.message for w in warnings(text) if w.code == "code_system_period"]

    got = periods("index first diagnosis I21* between 1997-01-01 and 1997-12-31\n")
    assert len(got) == 1 and "in Skåne län (län 12) from 1997-01-01 until 1998-01-01" in got[0]
    assert periods("index first diagnosis I21* between 1998-01-01 and 1999-12-31\n") == []
    # ICD-9 codes given too: nothing to warn of, in Skåne or elsewhere
    assert periods("index first diagnosis I21*, 410* between 1995-01-01 and 1999-12-31\n") == []


def test_a_code_list_filter_names_the_event_that_reads_it() -> None:
    """`npr where diagnos = ...` points to `diagnosis`, which reads npr.diagnos; the cause of
    death register's contributing causes to `death ... mentioned`, not to `diagnosis`, which
    reads npr (issue 24)."""
    for text, hint in [
        ('index first npr where diagnos = "I21"', "`diagnosis E11*`"),
        ('index first dors where morsak = "I21"', "`death I21* mentioned`"),
    ]:
        with pytest.raises(engine.CohortError) as e:
            engine.check(engine.parse(text), CAT)
        d = e.value.diagnostics[0]
        assert d.code == "code_in_filter" and hint in (d.hint or ""), d.hint
    assert "diagnosis" not in (e.value.diagnostics[0].hint or "")
