"""Registry holders publish their catalog entries (issue 16, items 1, 2 and 5).

- Publishing is a workflow: YAML or JSON, read safely with the error's place; every change
  a new version (who, when, a structural diff) with one audit entry; researchers see the
  current version and read old ones.
- The holder's view: projects approved for its registers, their purposes, ε spent on
  queries reading them, the audit entries touching them, never an answer; a holder cannot
  publish or see another holder's register.
- Data releases: the catalog shows each register's release, extract period and how far it
  is final; a new release never reuses a stored answer of the old one.

Real DuckDB, real SQLite store, the service in process (and `antal serve` for the command
line's `--server`)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import write_extracts
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from antal.api.app import create_app
from antal.api.cli import app as cli_app
from antal.api.client import Client, ForbiddenError, InvalidRequestError
from antal.api.settings import Settings
from antal.catalog import bundled_dir
from antal.engine.limits import MAX_ENTRY_BYTES

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is not an installed package
    sys.path.insert(0, str(ROOT))

EPS = 0.5  # the default ε of one query without tables
NDR_YAML = (bundled_dir() / "ndr.yaml").read_text(encoding="utf-8")
T2D = "index first diagnosis E11*\ninclude latest ndr.hba1c > 53 within 365 days before index\n"
NPR_ONLY = "index first diagnosis I10*\n"


def _tables(shift: int = 0) -> dict[str, list[dict[str, Any]]]:
    """A small installation; `shift` changes the data (another release of it)."""
    pop = [{"lopnr": i, "kon": 1 + i % 2, "fodelsear": 1950 + i % 40, "fodelsemanad": 1,
            "lan": "18"} for i in range(1, 401)]  # fmt: skip
    npr = [{"lopnr": i, "indatum": dt.date(2021, 1, 1) + dt.timedelta(days=i % 300),
            "vardform": "O", "sjukhus": "18001", "hdia": "E119" if i % 3 else "I109",
            "diagnos": "E119 I109"} for i in range(1, 301 + shift)]  # fmt: skip
    ndr = [{"lopnr": i, "regdat": dt.date(2020, 6, 1), "diabetestyp": 2, "hba1c": 40.0 + i % 40}
           for i in range(1, 251)]  # fmt: skip
    return {"population": pop, "npr": npr, "ndr": ndr}


def _manifest(data: Path, release: str | None = None) -> None:
    m: dict[str, Any] = {"extracted": "2024-06-15",
                         "registers": {"ndr": {"start": "2019-01-01", "through": "2024-05-31"}}}  # fmt: skip
    if release:
        m["release"] = release
    (data / "release.yaml").write_text(yaml.safe_dump(m), encoding="utf-8")


def _app(data: Path, store: Path) -> Any:
    settings = Settings(data=data, store=str(store), requests_per_minute=10_000,
                        counts_per_minute=10_000, checks_per_minute=10_000)  # fmt: skip
    return create_app(settings)


@pytest.fixture
def svc(tmp_path: Path) -> dict[str, Any]:
    data = write_extracts(_tables(), tmp_path / "data")
    _manifest(data)
    app = _app(data, tmp_path / "store.sqlite")
    st = app.state.antal
    acc = st.accounts
    acc.create_user("admin", "Admin", "admin")
    acc.create_user("res", "Researcher", "researcher")
    acc.create_user("ndrholder", "NDR", "holder", ("ndr",))
    acc.create_user("nprholder", "NPR", "holder", ("npr",))
    st.store.create_project("t2d", "HbA1c in type 2 diabetes", "forskning", 10.0, ("npr", "ndr"))
    st.store.create_project("htn", "Hypertension", "kommersiell", 10.0, ("npr",))
    acc.add_member("t2d", "res")
    acc.add_member("htn", "res")
    tokens = {u: acc.issue_token(u) for u in ("admin", "res", "ndrholder", "nprholder")}
    c = TestClient(app)
    h = {u: {"Authorization": f"Bearer {t}"} for u, t in tokens.items()}
    return {"c": c, "h": h, "app": app, "tokens": tokens, "data": data, "tmp": tmp_path}


def _put(svc: dict[str, Any], who: str, text: str | bytes, media: str = "application/yaml",
         rid: str = "ndr") -> Any:  # fmt: skip
    return svc["c"].put(f"/v1/catalog/registers/{rid}", content=text,
                        headers={**svc["h"][who], "Content-Type": media})  # fmt: skip


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    return body["error"]


def _audit(svc: dict[str, Any], action: str) -> list[dict[str, Any]]:
    entries = svc["c"].get("/v1/audit?limit=1000", headers=svc["h"]["admin"]).json()
    return [e for e in entries if e["action"] == action]


# ---- versions -----------------------------------------------------------------------------------


def test_publish_update_read_old_versions_each_change_audited(svc: dict[str, Any]) -> None:
    c, h = svc["c"], svc["h"]
    entry = yaml.safe_load(NDR_YAML)
    entry["description"]["en"] = "Version one: visits with HbA1c."
    r = _put(svc, "ndrholder", yaml.safe_dump(entry, allow_unicode=True))
    assert r.status_code == 200, r.text
    v1 = r.json()
    assert (v1["register"], v1["version"], v1["published_by"]) == ("ndr", 1, "ndrholder")
    # the diff from the catalog's file entry: exactly the changed description
    assert v1["changes"] == [{"path": "description.en", "op": "changed",
                              "old": yaml.safe_load(NDR_YAML)["description"]["en"],
                              "new": "Version one: visits with HbA1c."}]  # fmt: skip
    # an update as JSON: a variable's description changed, one moved (not a change)
    entry2 = json.loads(json.dumps(entry, default=str))
    entry2["variables"] = entry2["variables"][::-1]
    hba1c = next(v for v in entry2["variables"] if v["name"] == "hba1c")
    hba1c["description"] = "HbA1c (IFCC), mmol/mol"
    r = _put(svc, "ndrholder", json.dumps(entry2), "application/json")
    assert r.status_code == 200, r.text
    v2 = r.json()
    assert v2["version"] == 2
    assert [(ch["path"], ch["op"], ch["new"]) for ch in v2["changes"]] == [
        ("variables.hba1c.description", "changed", "HbA1c (IFCC), mmol/mol")
    ]
    # researchers see the current version ...
    now = c.get("/v1/catalog/registers/ndr", headers=h["res"]).json()
    assert now["description"]["en"] == "Version one: visits with HbA1c."
    assert next(v for v in now["variables"] if v["name"] == "hba1c")["description"] == (
        "HbA1c (IFCC), mmol/mol"
    )
    # ... and read the old ones
    listed = c.get("/v1/catalog/registers/ndr/versions", headers=h["res"]).json()
    assert [(v["version"], v["published_by"]) for v in listed] == [
        (1, "ndrholder"),
        (2, "ndrholder"),
    ]
    assert (
        "entry" not in listed[0] and listed[1]["summary"] == "changed variables.hba1c.description"
    )
    old = c.get("/v1/catalog/registers/ndr/versions/1", headers=h["res"]).json()
    old_hba1c = next(v for v in old["entry"]["variables"] if v["name"] == "hba1c")
    assert (
        old_hba1c["description"]
        == next(v for v in yaml.safe_load(NDR_YAML)["variables"] if v["name"] == "hba1c")[
            "description"
        ]
    )
    _error(c.get("/v1/catalog/registers/ndr/versions/3", headers=h["res"]), 404, "not_found")
    _error(c.get("/v1/catalog/registers/nrd/versions", headers=h["res"]), 404, "not_found")
    # one audit entry per change, naming the register and the version; the version names it
    published = _audit(svc, "publish_register")
    assert [json.loads(e["query"])["version"] for e in published] == [1, 2]
    assert [e["actor"] for e in published] == ["ndrholder", "ndrholder"]
    assert [e["seq"] for e in published] == [v1["audit_seq"], v2["audit_seq"]]
    # publishing the current entry again is no change: no version, no audit entry
    r = _put(svc, "ndrholder", json.dumps(entry2), "application/json")
    assert r.status_code == 200 and r.json()["version"] == 2
    assert len(_audit(svc, "publish_register")) == 2
    assert c.get("/v1/audit/verify", headers=h["admin"]).json()["ok"]


def test_versions_survive_a_restart(svc: dict[str, Any]) -> None:
    """The store holds the versions: a new server on it serves the published entry."""
    entry = yaml.safe_load(NDR_YAML)
    entry["description"]["sv"] = "Publicerad"
    assert _put(svc, "ndrholder", yaml.safe_dump(entry, allow_unicode=True)).status_code == 200
    again = TestClient(_app(svc["data"], svc["tmp"] / "store.sqlite"))
    got = again.get("/v1/catalog/registers/ndr", headers=svc["h"]["res"]).json()
    assert got["description"]["sv"] == "Publicerad"
    assert len(again.get("/v1/catalog/registers/ndr/versions", headers=svc["h"]["res"]).json()) == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_versions_and_touched_registers_in_either_store(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The store's side, on SQLite and PostgreSQL: versions numbered per register with
    their audit entries, an equal entry no version, the registers an audit entry touches."""
    from antal.api.accounts import CatalogEntries
    from antal.catalog import load_catalog
    from antal.privacy import open_store

    url = str(tmp_path / "s.sqlite") if kind == "sqlite" else request.getfixturevalue("pg_dsn")
    store = open_store(url)
    entries = CatalogEntries(store)
    ndr = load_catalog().register("ndr")
    assert ndr is not None
    changed = ndr.model_copy(update={"access": "Ask the NDR."})
    v1 = entries.put(changed, "h", base=ndr)
    assert (v1.version, v1.changes) == (1, [{"path": "access", "op": "changed",
                                             "old": ndr.access, "new": "Ask the NDR."}])  # fmt: skip
    assert entries.put(changed, "h").version == 1  # no change, no version
    v2 = entries.put(ndr, "admin")
    assert v2.version == 2 and v2.changes[0]["new"] == ndr.access
    assert [v.entry.access for v in entries.versions("ndr")] == ["Ask the NDR.", ndr.access]
    assert entries.version("ndr", 1).entry == changed and entries.version("ndr", 3) is None
    assert entries.all() == [ndr]
    store.create_project("p", "t", "forskning", 1.0, ("ndr", "npr"))
    store.set_registers("p", ("npr",))  # touches ndr (withdrawn) and npr
    touched = [(e.action, e.actor) for e in store.audit_touching("ndr")]
    assert touched == [("publish_register", "h"), ("publish_register", "admin"),
                       ("create_project", "admin"), ("approve_registers", "admin")]  # fmt: skip
    assert [e.action for e in store.audit_touching("npr")] == [
        "create_project",
        "approve_registers",
    ]
    assert store.verify_audit() == []


# ---- bad input ------------------------------------------------------------------------------------


def test_bad_entries_are_refused_with_where_and_nothing_changes(svc: dict[str, Any]) -> None:
    c, h = svc["c"], svc["h"]
    before = c.get("/v1/catalog/registers/ndr", headers=h["res"]).json()
    lines = NDR_YAML.splitlines()
    # a type that is not one of the catalog's, on a known line
    i = next(n for n, ln in enumerate(lines) if ln.strip() == "type: double")
    bad = "\n".join([*lines[:i], lines[i].replace("double", "float"), *lines[i + 1 :]]) + "\n"
    e = _error(_put(svc, "ndrholder", bad), 422, "entry_invalid")
    assert e["details"]["line"] == i + 1 and e["details"]["column"] == lines[i].index("double") + 1
    assert e["details"]["field"].startswith("variables.") and e["details"]["field"].endswith(
        ".type"
    )
    # not YAML at all: the place of the syntax error
    e = _error(_put(svc, "ndrholder", "id: ndr\ntitle: [unclosed\n"), 422, "entry_invalid")
    assert e["details"]["line"] is not None and "YAML" in e["message"]
    # an unknown field, a cross-field check (named by its field), in JSON
    doc = yaml.safe_load(NDR_YAML)
    e = _error(_put(svc, "ndrholder", json.dumps({**doc, "colour": "blue"}, default=str),
                    "application/json"), 422, "entry_invalid")  # fmt: skip
    assert e["details"]["field"] == "colour" and "unknown field" in e["message"]
    e = _error(_put(svc, "ndrholder", json.dumps({**doc, "date_column": "nope"}, default=str),
                    "application/json"), 422, "entry_invalid")  # fmt: skip
    assert e["details"]["field"] == "date_column" and "nope" in e["message"]
    # a Python object tag: the safe loader constructs none
    e = _error(_put(svc, "ndrholder", "!!python/object/apply:os.system ['true']\n"), 422,
               "entry_invalid")  # fmt: skip
    # aliases that explode, and a recursive one: refused by the bounds
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join(['*' + chr(97 + k)] * 10)}]\n" for k in range(6)
    )
    assert "at most" in _error(_put(svc, "ndrholder", bomb), 422, "entry_invalid")["message"]
    assert "nests" in _error(_put(svc, "ndrholder", "a: &x [1, *x]\n"), 422,
                             "entry_invalid")["message"]  # fmt: skip
    # too large for an entry (below the service's body limit)
    big = NDR_YAML + "#" * MAX_ENTRY_BYTES + "\n"
    assert (
        str(MAX_ENTRY_BYTES) in _error(_put(svc, "ndrholder", big), 422, "entry_invalid")["message"]
    )
    # neither YAML nor JSON
    e = _error(_put(svc, "ndrholder", NDR_YAML, "text/plain"), 415, "unsupported_media_type")
    assert "application/yaml" in e["details"]["accepted"]
    # the id the path names
    other = NDR_YAML.replace("id: ndr", "id: nkbc", 1)
    _error(_put(svc, "admin", other), 400, "invalid")
    assert c.get("/v1/catalog/registers/ndr", headers=h["res"]).json() == before
    assert c.get("/v1/catalog/registers/ndr/versions", headers=h["res"]).json() == []
    assert _audit(svc, "publish_register") == []


def test_an_entry_the_data_does_not_bear_out_is_refused(svc: dict[str, Any]) -> None:
    doc = yaml.safe_load(NDR_YAML)
    doc["variables"].append({"name": "ldl", "type": "double", "description": "LDL"})
    e = _error(_put(svc, "ndrholder", yaml.safe_dump(doc, allow_unicode=True)), 422,
               "entry_does_not_match_data")  # fmt: skip
    assert [p["column"] for p in e["details"]["problems"]] == ["ldl"]
    doc = yaml.safe_load(NDR_YAML)
    for v in doc["variables"]:
        if v["name"] == "hba1c":
            v["type"] = "varchar"
    e = _error(_put(svc, "ndrholder", yaml.safe_dump(doc, allow_unicode=True)), 422,
               "entry_does_not_match_data")  # fmt: skip
    assert [(p["column"], p["kind"]) for p in e["details"]["problems"]] == [("hba1c", "wrong_type")]
    assert svc["c"].get("/v1/catalog/registers/ndr/versions", headers=svc["h"]["res"]).json() == []


def test_codes_are_checked_against_the_system_of_their_period(svc: dict[str, Any]) -> None:
    """The extract's npr codes of 2021 are ICD-10-SE (E119, I109): an entry saying its
    diagnoses were ICD-9 until 2022 is refused, naming the columns; the bundled periods
    (ICD-10-SE since 1997) are accepted."""
    doc = yaml.safe_load((bundled_dir() / "npr.yaml").read_text(encoding="utf-8"))
    wrong = [{"system": "ICD-9", "start": "1987-01-01", "until": "2022-01-01"},
             {"system": "ICD-10-SE", "start": "2022-01-01"}]  # fmt: skip
    for v in doc["variables"]:
        if v["name"] in ("hdia", "diagnos"):
            v["coding"] = wrong
    e = _error(_put(svc, "nprholder", yaml.safe_dump(doc, allow_unicode=True), rid="npr"),
               422, "entry_does_not_match_data")  # fmt: skip
    assert sorted((p["column"], p["kind"]) for p in e["details"]["problems"]) == [
        ("diagnos", "code_period"),
        ("hdia", "code_period"),
    ]
    assert "ICD-9 1987-01-01..2022-01-01" in e["message"]
    doc = yaml.safe_load((bundled_dir() / "npr.yaml").read_text(encoding="utf-8"))
    doc["description"]["en"] = "Checked by period."
    r = _put(svc, "nprholder", yaml.safe_dump(doc, allow_unicode=True), rid="npr")
    assert r.status_code == 200, r.text


def test_the_bundled_entries_fit_the_synthetic_data_period_by_period(tmp_path: Path) -> None:
    """The check by period refuses nothing the bundled catalog says of the synthetic
    extracts (their codes follow the catalog's periods: ICD-10-SE since 1997, ...)."""
    from antal.catalog import Installation, load_catalog
    from antal.engine.datacheck import check_data
    from antal.synthetic import generate

    generate(3000, 1, tmp_path / "syn")
    found = check_data(Installation.from_data_dir(tmp_path / "syn"), load_catalog(),
                       by_period=True)  # fmt: skip
    assert found == []


@pytest.mark.parametrize(
    "path",
    ["/v1/catalog/registers/ndr/versions", "/v1/catalog/registers/ndr/versions/1",
     "/v1/holder/registers", "/v1/holder/registers/ndr"],
)  # fmt: skip
def test_the_new_routes_need_a_token(svc: dict[str, Any], path: str) -> None:
    _error(svc["c"].get(path), 401, "unauthenticated")
    r = svc["c"].put("/v1/catalog/registers/ndr", content=NDR_YAML,
                     headers={"Content-Type": "application/yaml"})  # fmt: skip
    _error(r, 401, "unauthenticated")


# ---- who may publish and see what ------------------------------------------------------------


def test_a_holder_cannot_publish_or_see_another_holders_register(svc: dict[str, Any]) -> None:
    c, h = svc["c"], svc["h"]
    npr = (bundled_dir() / "npr.yaml").read_text(encoding="utf-8")
    e = _error(_put(svc, "ndrholder", npr, rid="npr"), 403, "forbidden")
    assert "npr" in e["message"]
    # the same answer for a register that does not exist, and for a bad entry: no oracle
    assert _error(_put(svc, "ndrholder", "x: [", rid="nosuch"), 403, "forbidden")
    _error(_put(svc, "res", NDR_YAML), 403, "forbidden")
    # the holder's view: its own registers only
    mine = c.get("/v1/holder/registers", headers=h["ndrholder"]).json()
    assert [r["register"] for r in mine] == ["ndr"]
    _error(c.get("/v1/holder/registers/npr", headers=h["ndrholder"]), 403, "forbidden")
    _error(c.get("/v1/holder/registers/nosuch", headers=h["ndrholder"]), 403, "forbidden")
    _error(c.get("/v1/holder/registers", headers=h["res"]), 403, "forbidden")
    assert c.get("/v1/holder/registers/npr", headers=h["nprholder"]).status_code == 200
    assert c.get("/v1/holder/registers/npr", headers=h["admin"]).status_code == 200


def test_the_holders_view_shows_projects_spending_and_audit_but_no_answers(
    svc: dict[str, Any],
) -> None:
    c, h = svc["c"], svc["h"]
    # t2d reads npr and ndr (one query, ε 0.5); htn reads npr only; t2d asks again (stored)
    a = c.post("/v1/projects/t2d/count", json={"cohort": T2D}, headers=h["res"]).json()
    assert a["epsilon_charged"] == EPS
    assert c.post("/v1/projects/t2d/count", json={"cohort": T2D},
                  headers=h["res"]).json()["stored_answer"]  # fmt: skip
    b = c.post("/v1/projects/htn/count", json={"cohort": NPR_ONLY}, headers=h["res"]).json()
    assert b["epsilon_charged"] == EPS
    assert c.post("/v1/projects/t2d/count", json={"cohort": NPR_ONLY},
                  headers=h["res"]).json()["epsilon_charged"] == EPS  # fmt: skip
    (ndr,) = c.get("/v1/holder/registers", headers=h["ndrholder"]).json()
    assert ndr["register"] == "ndr"
    # approved projects and their purposes: t2d only (htn is not approved for ndr)
    assert [(p["id"], p["purpose"], p["title"], p["approved"]) for p in ndr["projects"]] == [
        ("t2d", "forskning", "HbA1c in type 2 diabetes", True)
    ]
    # ε spent on queries reading ndr: t2d's one charge of T2D (the stored answer is free;
    # its NPR_ONLY query does not read ndr)
    assert ndr["epsilon_spent"] == EPS and ndr["projects"][0]["epsilon_spent"] == EPS
    assert ndr["projects"][0]["queries"] == 1
    actions = [e["action"] for e in ndr["audit"]]
    assert actions == ["create_project", "charge", "answer", "answer_stored"]
    assert {e["query_hash"] for e in ndr["audit"] if e["action"] != "create_project"} == {
        a["receipt"]["query_hash"]
    }
    # npr's holder sees every project reading npr and all three charges
    (npr,) = c.get("/v1/holder/registers", headers=h["nprholder"]).json()
    assert {(p["id"], p["epsilon_spent"]) for p in npr["projects"]} == {("t2d", 2 * EPS),
                                                                        ("htn", EPS)}  # fmt: skip
    assert npr["epsilon_spent"] == 3 * EPS
    # never an answer: no released values, no counts of the answers anywhere in the view
    for view in (ndr, npr):
        text = json.dumps(view)
        assert "released" not in text and "display" not in text and "lower" not in text
        assert all(set(e) == {"seq", "ts", "actor", "project_id", "action", "query_hash",
                              "query", "epsilon"} for e in view["audit"])  # fmt: skip
    # an approval change and a published version touch the register too
    assert c.post("/v1/admin/projects/htn/registers", json={"registers": ["ndr"]},
                  headers=h["admin"]).status_code in (200, 201)  # fmt: skip
    doc = yaml.safe_load(NDR_YAML)
    doc["keywords"] = [*doc.get("keywords", []), "HbA1c"]
    assert _put(svc, "ndrholder", yaml.safe_dump(doc, allow_unicode=True)).status_code == 200
    (ndr,) = c.get("/v1/holder/registers", headers=h["ndrholder"]).json()
    assert [e["action"] for e in ndr["audit"]][-2:] == ["approve_registers", "publish_register"]
    assert ("htn", "kommersiell", True) in [(p["id"], p["purpose"], p["approved"])
                                            for p in ndr["projects"]]  # fmt: skip


# ---- data releases -------------------------------------------------------------------------------


def test_the_catalog_shows_each_registers_release_coverage_and_lag(svc: dict[str, Any]) -> None:
    c, h, app = svc["c"], svc["h"], svc["app"]
    regs = {r["id"]: r for r in c.get("/v1/catalog/registers", headers=h["res"]).json()}
    ndr = regs["ndr"]["data"]
    assert ndr["release"] == app.state.antal.installation.release and ndr["held"]
    assert ndr["extracted"] == "2024-06-15"
    assert ndr["extract"] == {"start": "2019-01-01", "through": "2024-05-31"}
    # NDR's lag is one month (catalog): records final through 2024-05-15, before `through`
    assert ndr["lag_months"] == 1 and ndr["complete_through"] == "2024-05-15"
    # npr: no stated period: through the extraction day, with three months' lag
    npr = regs["npr"]["data"]
    assert npr["lag_months"] == 3 and npr["extract"]["through"] == "2024-06-15"
    assert npr["complete_through"] == "2024-03-15"
    # a register this installation holds no data of says so
    assert regs["gms"]["data"]["held"] is True  # every canonical file is written


def test_a_new_release_never_reuses_an_old_answer(tmp_path: Path) -> None:
    """Stored answers are keyed by the data release: the same cohort on a new extract is
    a new answer (charged), and the old release's answer is not served."""
    store = tmp_path / "store.sqlite"
    d1 = write_extracts(_tables(), tmp_path / "r1")
    app1 = _app(d1, store)
    acc = app1.state.antal.accounts
    acc.create_user("res", "R", "researcher")
    app1.state.antal.store.create_project("t2d", "T2D", "forskning", 10.0, ("npr", "ndr"))
    acc.add_member("t2d", "res")
    tok = {"Authorization": f"Bearer {acc.issue_token('res')}"}
    c1 = TestClient(app1)
    first = c1.post("/v1/projects/t2d/count", json={"cohort": NPR_ONLY}, headers=tok).json()
    assert c1.post("/v1/projects/t2d/count", json={"cohort": NPR_ONLY},
                   headers=tok).json()["stored_answer"]  # fmt: skip
    d2 = write_extracts(_tables(shift=30), tmp_path / "r2")  # 30 more records
    app2 = _app(d2, store)
    r1, r2 = app1.state.antal.installation.release, app2.state.antal.installation.release
    assert r1 != r2
    c2 = TestClient(app2)
    second = c2.post("/v1/projects/t2d/count", json={"cohort": NPR_ONLY}, headers=tok).json()
    assert not second["stored_answer"] and second["epsilon_charged"] == EPS
    assert (first["receipt"]["data_release"], second["receipt"]["data_release"]) == (r1, r2)
    assert second["receipt"]["answer_key"] != first["receipt"]["answer_key"]
    assert second["receipt"]["query_hash"] == first["receipt"]["query_hash"]


# ---- the client and the command line ---------------------------------------------------------


def test_the_command_line_publishes_to_the_local_store(svc: dict[str, Any], tmp_path: Path) -> None:
    runner = CliRunner()
    store = svc["tmp"] / "cli.sqlite"
    path = tmp_path / "ndr.yaml"
    doc = yaml.safe_load(NDR_YAML)
    doc["title"]["en"] = "The diabetes register, as published"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    r = runner.invoke(cli_app, ["catalog", "publish", str(path), "--data", str(svc["data"]),
                                "--store", str(store)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "ndr version 1" in r.output and "changed title.en" in r.output
    r = runner.invoke(cli_app, ["catalog", "history", "ndr", "--store", str(store), "--json"])
    assert r.exit_code == 0, r.output
    assert [v["version"] for v in json.loads(r.output)] == [1]
    r = runner.invoke(cli_app, ["catalog", "show", "ndr", "--store", str(store), "--json"])
    assert json.loads(r.output)["entry"]["title"]["en"] == "The diabetes register, as published"
    # a bad entry: a message with its place, exit 2, no traceback
    bad = tmp_path / "bad.yaml"
    bad.write_text(NDR_YAML.replace("type: double", "type: float", 1), encoding="utf-8")
    r = runner.invoke(cli_app, ["catalog", "publish", str(bad), "--data", str(svc["data"]),
                                "--store", str(store)])  # fmt: skip
    assert r.exit_code == 2 and "line" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli_app, ["holder", "overview", "ndr", "--store", str(store), "--json"])
    assert r.exit_code == 0, r.output
    assert [e["action"] for e in json.loads(r.output)[0]["audit"]] == ["publish_register"]


def test_the_command_line_against_a_server(tmp_path: Path) -> None:
    """`--server`: what researchers see on a real `antal serve`, and a holder publishing."""
    from bench.load import admin_cli, serve, server_env

    data = write_extracts(_tables(), tmp_path / "data")
    _manifest(data, release="region-2024-06")
    store = tmp_path / "store.sqlite"
    holder = admin_cli(store, "create-user", "ndrholder", "--role", "holder", "--register", "ndr")
    res = admin_cli(store, "create-user", "res", "--role", "researcher")
    path = tmp_path / "ndr.json"
    doc = yaml.safe_load(NDR_YAML)
    doc["description"]["en"] = "Published over HTTP."
    path.write_text(json.dumps(doc, default=str), encoding="utf-8")
    runner = CliRunner()
    with serve(data, store, env=server_env()) as base:
        r = runner.invoke(cli_app, ["catalog", "publish", str(path), "--server", base,
                                    "--token", holder])  # fmt: skip
        assert r.exit_code == 0, r.output
        assert "ndr version 1" in r.output
        r = runner.invoke(cli_app, ["catalog", "show", "ndr", "--server", base, "--token", res,
                                    "--json"])  # fmt: skip
        shown = json.loads(r.output)
        assert shown["entry"]["description"]["en"] == "Published over HTTP."
        # the installation's release id (named by the manifest; content may be added to it)
        release = httpx.get(base + "/healthz").json()["data_release"]
        assert shown["data"]["release"] == release and release.startswith("region-2024-06")
        r = runner.invoke(cli_app, ["catalog", "history", "ndr", "--server", base,
                                    "--token", res])  # fmt: skip
        assert r.exit_code == 0 and "ndrholder" in r.output
        r = runner.invoke(cli_app, ["holder", "overview", "--server", base, "--token", res])
        assert r.exit_code == 3 and "holder" in r.output
        npr = bundled_dir() / "npr.yaml"
        r = runner.invoke(cli_app, ["catalog", "publish", str(npr), "--server", base,
                                    "--token", holder])  # fmt: skip
        assert r.exit_code == 3 and "npr" in r.output
        r = runner.invoke(cli_app, ["holder", "overview", "--server", base, "--token", holder,
                                    "--json"])  # fmt: skip
        assert [e["action"] for e in json.loads(r.output)[0]["audit"]] == ["publish_register"]
        # the Python client: the same workflow
        doc["access"] = "Apply to the NDR's steering group."
        path = tmp_path / "ndr.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        with Client(base, holder) as cl:
            v = cl.publish_catalog_entry(path)
            assert (v["version"], v["summary"]) == (2, "changed access")
            assert list(cl.catalog_versions("ndr")["version"]) == [1, 2]
            assert cl.catalog_version("ndr", 1)["entry"]["description"]["en"] == (
                "Published over HTTP."
            )
            assert cl.register_data("ndr")["extract"] == {"start": "2019-01-01",
                                                          "through": "2024-05-31"}  # fmt: skip
            with pytest.raises(InvalidRequestError) as e:
                cl.publish_catalog_entry(NDR_YAML.replace("type: double", "type: float", 1))
            assert e.value.code == "entry_invalid" and e.value.details["line"] is not None
            with pytest.raises(ForbiddenError):
                cl.publish_catalog_entry(npr)
            (view,) = cl.holder_overview()
            assert view["register"] == "ndr" and len(view["audit"]) == 2
            with pytest.raises(ForbiddenError):
                cl.holder_overview("npr")


# ---- issue 22, item 1: availability cannot be averaged by editing the entry ---------------------


def test_availability_is_released_once_however_the_holder_edits_its_entry(
    svc: dict[str, Any],
) -> None:
    """The attack: a holder renames its `holder` (a fresh `catalog:<holder>` budget) or
    reorders its variables (a fresh answer key) and releases again, until the mean of the
    noisy releases is exact; or names another holder to spend that holder's budget. Every
    edit now asks for the same release: one release per data release, one charge, paid by
    the holder the installation's files assign the register to."""
    c, h, store = svc["c"], svc["h"], svc["app"].state.antal.store
    path = "/v1/catalog/registers/ndr/availability"
    first = c.post(path, headers=h["ndrholder"])
    assert first.status_code == 200, first.text
    assert first.json()["epsilon_charged"] > 0
    doc = yaml.safe_load(NDR_YAML)
    owners = [p.id for p in store.projects() if p.id.startswith("catalog:")]
    assert owners == ["catalog:nationella-diabetesregistret-registercentrum-v-stra-g-taland"]
    spent = store.project(owners[0]).spent
    releases = {json.dumps(first.json()["cells"]), json.dumps(first.json()["persons"])}
    for i in range(6):
        doc["holder"] = ["Någon annan", "Socialstyrelsen", f"Holder {i}"][i % 3]
        doc["variables"] = list(reversed(doc["variables"])) if i % 2 else doc["variables"]
        doc["description"]["en"] = f"edited {i}"
        r = _put(svc, "ndrholder", yaml.safe_dump(doc, allow_unicode=True))
        assert r.status_code in (200, 201), r.text
        again = c.post(path, headers=h["ndrholder"])
        assert again.status_code == 200, again.text
        body = again.json()
        assert body["stored_answer"] is True and body["epsilon_charged"] == 0.0
        releases.add(json.dumps(body["cells"]))
        releases.add(json.dumps(body["persons"]))
    assert len(releases) == 2  # one release: the same cells and the same persons each time
    # only the assigned holder's budget was ever charged; no other holder's was touched
    assert [p.id for p in store.projects() if p.id.startswith("catalog:")] == owners
    assert store.project(owners[0]).spent == spent
    # Socialstyrelsen's own release of NPR is made and charged to its own, full budget
    npr = c.post("/v1/catalog/registers/npr/availability", headers=h["nprholder"])
    assert npr.status_code == 200, npr.text
    assert npr.json()["epsilon_charged"] == pytest.approx(spent)
    assert store.project("catalog:socialstyrelsen").spent == pytest.approx(spent)
