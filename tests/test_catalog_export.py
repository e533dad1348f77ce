"""Issue 16, items 3 and 4: the HealthDCAT-AP export (SHACL-validated) and availability counts.

The availability oracle is DuckDB run by hand over the Parquet files (not the engine's
statement), and the export is checked with pySHACL against the vendored Release 8 shapes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient
from rdflib import Graph, URIRef
from rdflib.namespace import DCTERMS

from antal.api.app import create_app
from antal.api.availability import (
    availability_json,
    dataset_facts,
    release_availability,
    stored_availability,
)
from antal.api.settings import Settings
from antal.catalog import Installation, load_catalog
from antal.catalog.dcat import (
    HEALTHDCATAP_NS,
    catalog_graph,
    dataset_graph,
    serialize,
    validate,
)
from antal.engine.backends import get_backend
from antal.privacy import PrivacyParams, open_store
from antal.privacy.availability import presence_risk, shown_from
from tests.conftest import write_extracts

BASE = "http://antal.test"
CATALOG = load_catalog()


# ---- item 3: HealthDCAT-AP -----------------------------------------------------------------


@pytest.mark.parametrize("rid", CATALOG.ids())
def test_every_bundled_register_conforms(rid: str) -> None:
    for fmt in ("turtle", "jsonld"):  # the same graph after a round trip through each format
        text = serialize(dataset_graph(CATALOG.register(rid), BASE), fmt)  # type: ignore[arg-type]
        g = Graph().parse(data=text, format="json-ld" if fmt == "jsonld" else "turtle")
        v = validate(g)
        assert v.violations == (), v.violations
        # what remains are warnings of recommended properties antal does not know
        assert all("Less than 1 values" in m for _f, _p, m in v.warnings), v.warnings


def test_the_whole_catalog_conforms_and_lists_every_register() -> None:
    g = catalog_graph(list(CATALOG.registers.values()), BASE)
    v = validate(g)
    assert v.violations == ()
    datasets = set(
        g.objects(URIRef(BASE + "/v1/catalog"), URIRef("http://www.w3.org/ns/dcat#dataset"))
    )
    assert datasets == {URIRef(f"{BASE}/v1/catalog/registers/{r}") for r in CATALOG.ids()}
    # the one warning outside "recommended property missing": the publisher is no EU body
    others = [w for w in v.warnings if "Less than 1 values" not in w[2]]
    assert [w[1] for w in others] == ["http://purl.org/dc/terms/publisher"]


def test_validation_finds_a_missing_mandatory_property() -> None:
    """The shapes do check: access rights and the variables (the patched sh:or) removed."""
    g = dataset_graph(CATALOG.register("npr"), BASE)
    ds = URIRef(BASE + "/v1/catalog/registers/npr")
    g.remove((ds, DCTERMS.accessRights, None))
    assert {p for _f, p, _m in validate(g).violations} == {str(DCTERMS.accessRights)}
    g = dataset_graph(CATALOG.register("npr"), BASE)
    g.remove((ds, URIRef(HEALTHDCATAP_NS + "hasVariables"), None))
    assert any("hasVariables" in m for _f, _p, m in validate(g).violations)


def test_the_namespace_is_configurable() -> None:
    ns = "https://example.org/healthdcatap#"
    g = dataset_graph(CATALOG.register("lmr"), BASE, ns=ns)
    assert (None, URIRef(ns + "healthCategory"), None) in g
    assert (None, URIRef(HEALTHDCATAP_NS + "healthCategory"), None) not in g
    assert validate(g, ns=ns).conforms
    assert not validate(g).conforms  # against the release's own namespace it lacks them


def test_variables_are_a_csvw_table_of_the_entry() -> None:
    reg = CATALOG.register("ndr")
    g = dataset_graph(reg, BASE)
    csvw = "http://www.w3.org/ns/csvw#"
    names = {str(o) for o in g.objects(None, URIRef(csvw + "name"))}
    assert names == {v.name for v in reg.variables}


# ---- item 4: availability counts -----------------------------------------------------------


def _tables() -> dict[str, list[dict[str, Any]]]:
    pop = [{"lopnr": i, "kon": 1 + i % 2, "fodelsear": 1950 + i % 40, "fodelsemanad": 1,
            "lan": "18"} for i in range(1, 301)]  # fmt: skip
    npr = []
    for i in range(1, 241):
        year = 2019 + i % 3
        diag = "E119 I10" if i % 2 else "E110"
        npr.append({"lopnr": i, "indatum": dt.date(year, 3, 1), "vardform": "O",
                    "sjukhus": "18001", "hdia": diag.split()[0], "diagnos": diag})  # fmt: skip
    npr.append({"lopnr": 7, "indatum": dt.date(2020, 5, 1), "vardform": "S",  # a second visit
                "sjukhus": "18001", "hdia": "J45", "diagnos": "J45"})  # fmt: skip
    optout = [{"lopnr": 2, "datum": dt.date(2024, 1, 1), "andamal": "forskning"},
              {"lopnr": 3, "datum": dt.date(2024, 1, 1), "andamal": "kommersiell"}]  # fmt: skip
    return {"population": pop, "npr": npr, "optout": optout}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_extracts(_tables(), tmp_path_factory.mktemp("avail") / "data")


def _exact(data: Path) -> tuple[dict[tuple[Any, ...], int], int, int]:
    """Persons per (variable, level, value, year), by hand in DuckDB over the Parquet."""
    con = duckdb.connect()
    npr, opt = str(data / "npr.parquet"), str(data / "optout.parquet")
    keep = f"lopnr NOT IN (SELECT lopnr FROM '{opt}' WHERE andamal IN ('forskning', 'alla'))"
    rows = con.execute(
        f"SELECT lopnr, year(indatum) AS y, diagnos, hdia, utdatum, vardform, sjukhus, mvo FROM '{npr}' WHERE {keep}"
    ).fetchall()
    cells: dict[tuple[Any, ...], set[int]] = {}
    for p, y, diagnos, hdia, *rest in rows:
        for var, codes in (("diagnos", diagnos.split()), ("hdia", [hdia])):
            for c in codes:
                cells.setdefault((var, "code", c, y), set()).add(p)
                cells.setdefault((var, "prefix", c[:3], y), set()).add(p)
        for var, value in zip(("utdatum", "vardform", "sjukhus", "mvo"), rest, strict=True):
            if value is not None:
                cells.setdefault((var, "any", "", y), set()).add(p)
    persons = con.execute(f"SELECT count(DISTINCT lopnr) FROM '{npr}' WHERE {keep}").fetchone()[0]
    records = con.execute(f"SELECT count(*) FROM '{npr}' WHERE {keep}").fetchone()[0]
    return {k: len(v) for k, v in cells.items()}, persons, records


def _setup(data: Path, tmp: Path, params: PrivacyParams) -> tuple[Any, ...]:
    inst = Installation.from_data_dir(data)
    store = open_store(str(tmp / "store.sqlite"))
    return inst, store, get_backend("duckdb", inst, CATALOG), params


def test_released_at_huge_epsilon_equals_the_exact_counts(data: Path, tmp_path: Path) -> None:
    inst, store, backend, params = _setup(
        data, tmp_path, PrivacyParams(epsilon=1e9, default_budget=1e10, threshold=10)
    )
    answer = release_availability(CATALOG, inst, store, params, backend, "npr", "t",
                                  bound=1000, record_bound=1000)  # fmt: skip
    exact, persons, records = _exact(data)
    assert answer.steps[0].value == persons and answer.steps[1].value == records
    shown = {key: c.value for key, c in answer.cells}
    assert shown == {k: n for k, n in exact.items() if n >= 10}  # suppressed below 10: absent
    assert ("diagnos", "code", "J45", 2020) not in shown  # one person: below the threshold
    assert exact[("diagnos", "prefix", "E11", 2020)] >= 10
    for _key, c in answer.cells:  # intervals around the value, as every released count
        assert c.low is not None and c.high is not None and c.low <= c.value <= c.high
    # persons by five-year band of age at their first record, every band, by hand
    con = duckdb.connect()
    npr, opt, pop = (str(data / f"{r}.parquet") for r in ("npr", "optout", "population"))
    first = (
        f"SELECT (year(min(indatum)) - any_value(fodelsear)) // 5 * 5 AS band FROM '{npr}' "
        f"JOIN '{pop}' USING (lopnr) WHERE lopnr NOT IN (SELECT lopnr FROM '{opt}' "
        f"WHERE andamal IN ('forskning', 'alla')) GROUP BY lopnr"
    )
    by_band = dict(con.execute(f"SELECT band, count(*) FROM ({first}) GROUP BY band").fetchall())
    bands = answer.steps[2:]
    assert len(bands) == 26
    for i, b in enumerate(bands):
        n = by_band.get(5 * i, 0)
        assert b.value == (n if n >= 10 else None), (5 * i, n, b)
    facts = dataset_facts(answer)
    assert facts.min_age is not None and facts.max_age is not None
    assert 0 <= facts.min_age <= min(k for k, n in by_band.items() if n >= 10) + 4
    assert facts.max_age >= max(k for k, n in by_band.items() if n >= 10)


def test_charged_once_per_release_to_the_holder_and_never_recomputed(
    data: Path, tmp_path: Path
) -> None:
    inst, store, backend, params = _setup(data, tmp_path, PrivacyParams(epsilon=0.5))
    first = release_availability(CATALOG, inst, store, params, backend, "npr", "holder")
    holder = store.project("catalog:socialstyrelsen")  # npr's holder: Socialstyrelsen
    assert holder is not None and holder.spent == pytest.approx(0.5)
    assert first.epsilon_charged == pytest.approx(0.5) and not first.stored

    class Unreadable:  # a backend that fails if the data is read again
        def run(self, _q: Any) -> Any:
            raise AssertionError("recomputed")

    again = release_availability(CATALOG, inst, store, params, Unreadable(), "npr", "holder")  # type: ignore[arg-type]
    assert again.stored and again.epsilon_charged == 0.0
    assert store.project("catalog:socialstyrelsen").spent == pytest.approx(0.5)
    assert availability_json(again, CATALOG.register("npr")) == {
        **availability_json(first, CATALOG.register("npr")), "epsilon_charged": 0.0,
        "stored_answer": True,
    }  # fmt: skip
    # read back without charging (the catalog, code search and the export do this)
    read = stored_availability(CATALOG, inst, store, params, "npr")
    assert read is not None and read.cells == first.cells
    assert store.project("catalog:socialstyrelsen").spent == pytest.approx(0.5)
    # no researcher project was touched; a new data release is a new release (and charge)
    assert [p.id for p in store.projects()] == ["catalog:socialstyrelsen"]
    other = Installation.from_data_dir(data, release="next-release")
    release_availability(CATALOG, other, store, params, backend, "npr", "holder")
    assert store.project("catalog:socialstyrelsen").spent == pytest.approx(1.0)


def test_small_epsilon_shows_only_cells_far_above_the_noise(data: Path, tmp_path: Path) -> None:
    inst, store, backend, params = _setup(data, tmp_path, PrivacyParams(epsilon=0.5))
    answer = release_availability(CATALOG, inst, store, params, backend, "npr", "t")
    least = shown_from(0.5, 20, 10)
    assert least > 10 and presence_risk(0.5, 20, 10) < 1e-6
    # 240 persons: no cell reaches the bound of the noise, so nothing is shown
    assert all(c.value >= least for _k, c in answer.cells)
    assert json.loads(json.dumps(availability_json(answer, CATALOG.register("npr"))))["cells"] == [
        {"variable": k[0], "level": k[1], "value": k[2], "year": k[3], **c.to_json()}
        for k, c in answer.cells
    ]


def test_export_shows_released_persons_never_raw(data: Path, tmp_path: Path) -> None:
    inst, store, backend, params = _setup(data, tmp_path, PrivacyParams(epsilon=0.5, rounding=5))
    assert dataset_facts(stored_availability(CATALOG, inst, store, params, "npr")).persons is None
    answer = release_availability(CATALOG, inst, store, params, backend, "npr", "t")
    facts = dataset_facts(stored_availability(CATALOG, inst, store, params, "npr"))
    assert facts.persons == answer.steps[0].value and facts.persons % 5 == 0  # rounded
    g = dataset_graph(CATALOG.register("npr"), BASE, facts)
    n = URIRef(HEALTHDCATAP_NS + "numberOfUniqueIndividuals")
    assert [int(o) for o in g.objects(None, n)] == [facts.persons]
    assert validate(g).conforms


# ---- the service ---------------------------------------------------------------------------


def test_routes(data: Path, tmp_path: Path) -> None:
    app = create_app(Settings(data=data, store=str(tmp_path / "s.sqlite"),
                              requests_per_minute=10_000))  # fmt: skip
    acc = app.state.antal.accounts
    acc.create_user("res", "Researcher", "researcher")
    acc.create_user("holder", "NPR holder", "holder", ("npr",))
    tok = {u: {"Authorization": f"Bearer {acc.issue_token(u)}"} for u in ("res", "holder")}
    c = TestClient(app)
    r = c.get("/v1/catalog/export", headers={**tok["res"], "Accept": "application/ld+json"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/ld+json")
    assert validate(Graph().parse(data=r.text, format="json-ld")).conforms
    r = c.get("/v1/catalog/export?register=npr&format=turtle", headers=tok["res"])
    assert r.headers["content-type"].startswith("text/turtle") and "healthdcatap:hdab" in r.text
    assert c.get("/v1/catalog/export?register=nope", headers=tok["res"]).status_code == 404
    assert c.get("/v1/catalog/registers/npr/availability", headers=tok["res"]).status_code == 404
    assert c.post("/v1/catalog/registers/npr/availability", headers=tok["res"]).status_code == 403
    r = c.post("/v1/catalog/registers/npr/availability", headers=tok["holder"])
    assert r.status_code == 200 and r.json()["epsilon_charged"] > 0
    r2 = c.get("/v1/catalog/registers/npr/availability", headers=tok["res"])
    assert r2.status_code == 200 and r2.json()["cells"] == r.json()["cells"]
    hits = c.get("/v1/catalog/search?q=E11", headers=tok["res"]).json()
    code = next(h for h in hits if h["kind"] == "code" and h["name"] == "E11")
    assert [a["register"] for a in code["availability"]] == ["npr"]


def test_the_holder_sets_the_availability_epsilon(data: Path, tmp_path: Path) -> None:
    params = PrivacyParams(epsilon=0.5, availability_epsilon=2.0, default_budget=5)
    inst, store, backend, params = _setup(data, tmp_path, params)
    answer = release_availability(CATALOG, inst, store, params, backend, "npr", "t")
    assert answer.epsilon_charged == pytest.approx(2.0) and answer.params["epsilon"] == 2.0
    assert store.project("catalog:socialstyrelsen").spent == pytest.approx(2.0)
    assert params.fingerprint() == PrivacyParams(epsilon=0.5).fingerprint()  # counts' keys stay


def test_cli_export_validates_and_refuses_a_bad_namespace() -> None:
    from typer.testing import CliRunner

    from antal.api.cli import app

    r = CliRunner().invoke(app, ["catalog", "export", "--register", "npr", "--validate"])
    assert r.exit_code == 0, r.output
    assert "SHACL: 0 violations" in r.output and "healthdcatap:hdab" in r.output
    r = CliRunner().invoke(app, ["catalog", "export", "--healthdcatap-ns", "http://a>b"])
    assert r.exit_code == 2 and "not a namespace IRI" in r.output


def test_a_register_without_data_is_refused_before_any_charge(data: Path, tmp_path: Path) -> None:
    from antal.engine import MissingRegisterError

    inst, store, backend, params = _setup(data, tmp_path, PrivacyParams())
    without = dataclasses.replace(
        inst, sources={k: v for k, v in inst.sources.items() if k != "lmr"}
    )
    with pytest.raises(MissingRegisterError):
        release_availability(CATALOG, without, store, params, backend, "lmr", "t")
    assert store.projects() == []  # not even the holder's project was made
