"""The HTTP API in process: every route, every role, every forbidden access, one error shape."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_extracts
from fastapi.testclient import TestClient

from antal.api.app import create_app
from antal.api.settings import Settings

T2D = "index first diagnosis E11*\ninclude drug A10BA02 in lmr within 0..365 days after index\nreport by sex\n"


def _tables() -> dict[str, list[dict]]:
    pop = [{"lopnr": i, "kon": 1 + i % 2, "fodelsear": 1950 + i % 40, "fodelsemanad": 1 + i % 12, "lan": "18"}
           for i in range(1, 501)]  # fmt: skip
    npr = [{"lopnr": i, "indatum": dt.date(2020, 1, 1) + dt.timedelta(days=i % 200), "vardform": "O",
            "sjukhus": "18001", "hdia": "E119", "diagnos": "E119 I10"} for i in range(1, 401)]  # fmt: skip
    lmr = [{"lopnr": i, "edatum": dt.date(2020, 9, 1), "atc": "A10BA02"} for i in range(1, 301)]
    nkbc = [
        {"lopnr": i, "diagnosdatum": dt.date(2019, 1, 1), "her2": "positiv"} for i in range(1, 50)
    ]
    return {"population": pop, "npr": npr, "lmr": lmr, "nkbc": nkbc}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("api")
    data = write_extracts(_tables(), root / "data")
    settings = Settings(
        data=data,
        store=str(root / "store.sqlite"),
        requests_per_minute=10_000,
        counts_per_minute=10_000,
    )
    app = create_app(settings)
    st = app.state.antal
    acc = st.accounts
    acc.create_user("admin", "Admin", "admin")
    acc.create_user("res", "Researcher", "researcher")
    acc.create_user("other", "Other researcher", "researcher")
    acc.create_user("holder", "NDR holder", "holder", ("ndr",))
    st.store.create_project("t2d", "T2D feasibility", "forskning", 10.0, ("npr", "lmr"))
    st.store.create_project("secret", "Someone else's", "forskning", 10.0, ("npr",))
    acc.add_member("t2d", "res")
    acc.add_member("secret", "other")
    tokens = {u: acc.issue_token(u) for u in ("admin", "res", "other", "holder")}
    return {"client": TestClient(app), "tokens": tokens, "app": app}


def h(env: dict[str, Any], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {env['tokens'][user]}"}


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


ROUTES = [
    ("get", "/v1/catalog/registers", None),
    ("get", "/v1/catalog/registers/ndr", None),
    ("get", "/v1/catalog/regions", None),
    ("get", "/v1/catalog/sites", None),
    ("get", "/v1/catalog/code-systems", None),
    ("get", "/v1/catalog/search?q=diabetes", None),
    ("post", "/v1/cohorts/validate", {"cohort": T2D}),
    ("post", "/v1/cohorts/compile", {"cohort": T2D}),
    ("post", "/v1/projects/t2d/count", {"cohort": T2D}),
    ("post", "/v1/projects/t2d/quote", {"cohort": T2D}),
    ("get", "/v1/projects/t2d/queries", None),
    ("get", "/v1/projects/t2d/budget", None),
    ("get", "/v1/me", None),
    ("get", "/v1/audit", None),
    ("get", "/v1/audit/verify", None),
    ("get", "/v1/admin/projects", None),
    ("get", "/v1/admin/users", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_needs_a_token(env: dict[str, Any], method: str, path: str, body: Any) -> None:
    c = env["client"]
    r = getattr(c, method)(path, **({"json": body} if body else {}))
    assert_error(r, 401, "unauthenticated")
    assert r.headers.get("www-authenticate") == "Bearer"
    r = getattr(c, method)(
        path,
        headers={"Authorization": "Bearer antal_not_a_token"},
        **({"json": body} if body else {}),
    )
    assert_error(r, 401, "unauthenticated")


def test_catalog_routes(env: dict[str, Any]) -> None:
    c = env["client"]
    regs = c.get("/v1/catalog/registers", headers=h(env, "res")).json()
    assert {r["id"] for r in regs} >= {"npr", "lmr", "ndr", "population"}
    ndr = c.get("/v1/catalog/registers/ndr", headers=h(env, "res")).json()
    assert any(v["name"] == "hba1c" and v["unit"] == "mmol/mol" for v in ndr["variables"])
    e = assert_error(c.get("/v1/catalog/registers/nrd", headers=h(env, "res")), 404, "not_found")
    assert "did you mean 'ndr'?" in e["message"]
    assert len(c.get("/v1/catalog/regions", headers=h(env, "res")).json()) == 21
    assert all(s["region"] for s in c.get("/v1/catalog/sites", headers=h(env, "res")).json())
    systems = {
        x["code_system"] for x in c.get("/v1/catalog/code-systems", headers=h(env, "res")).json()
    }
    assert systems >= {"ICD-10-SE", "ATC", "KVÅ"}
    hits = c.get("/v1/catalog/search", params={"q": "hba1c"}, headers=h(env, "res")).json()
    assert any(x["kind"] == "variable" and x["register_id"] == "ndr" for x in hits)
    hits = c.get("/v1/catalog/search", params={"q": "metformin"}, headers=h(env, "res")).json()
    assert any(x["kind"] == "code" and x["name"] == "A10BA02" for x in hits)
    assert_error(c.get("/v1/catalog/search", headers=h(env, "res")), 422, "invalid_request")


def test_validate_and_compile_do_not_charge(env: dict[str, Any]) -> None:
    c = env["client"]
    before = c.get("/v1/projects/t2d/budget", headers=h(env, "res")).json()
    ok = c.post("/v1/cohorts/validate", json={"cohort": T2D}, headers=h(env, "res")).json()
    assert ok["ok"] and ok["steps"][0] == "Index event" and ok["query_hash"]
    bad = c.post(
        "/v1/cohorts/validate",
        json={"cohort": "index first diagnosis E11\ninclude nrd.x > 1"},
        headers=h(env, "res"),
    ).json()
    assert (
        not bad["ok"]
        and bad["diagnostics"][0]["line"] == 2
        and bad["diagnostics"][0]["column"] == 9
    )
    assert bad["diagnostics"][0]["hint"] == "did you mean 'ndr'?"
    sql = c.post(
        "/v1/cohorts/compile", json={"cohort": T2D, "dialect": "postgres"}, headers=h(env, "res")
    ).json()
    assert "GROUPING SETS" in sql["sql"] and sql["dialect"] == "postgres"
    e = assert_error(
        c.post(
            "/v1/cohorts/compile",
            json={"cohort": "index first diagnosis e11"},
            headers=h(env, "res"),
        ),
        400,
        "cohort_invalid",
    )
    assert e["details"]["diagnostics"][0]["column"] == 23
    after = c.get("/v1/projects/t2d/budget", headers=h(env, "res")).json()
    assert after == before


def test_count_releases_with_receipt_and_stored_answers(env: dict[str, Any]) -> None:
    c = env["client"]
    r = c.post("/v1/projects/t2d/count", json={"cohort": T2D}, headers=h(env, "res"))
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["epsilon_charged"] == 1.0 and not a["stored_answer"]  # attrition + breakdown
    assert a["receipt"]["purpose"] == "forskning" and len(a["receipt"]["query_hash"]) == 64
    assert next(s["label"] for s in a["attrition"]) == "Index event"
    assert {b["sex"] for b in a["breakdown"]} == {"female", "male", None}
    # the same query, spelled differently: the stored answer, free
    again = c.post(
        "/v1/projects/t2d/count",
        json={"cohort": "codeset d = E11*\n" + T2D.replace("E11*", "@d")},
        headers=h(env, "res"),
    ).json()
    assert again["stored_answer"] and again["epsilon_charged"] == 0
    assert again["attrition"] == a["attrition"] and again["breakdown"] == a["breakdown"]
    qs = c.get("/v1/projects/t2d/queries", headers=h(env, "res")).json()
    assert any(q["answer_key"] == a["receipt"]["answer_key"] for q in qs)
    one = c.get(
        f"/v1/projects/t2d/queries/{a['receipt']['answer_key']}", headers=h(env, "res")
    ).json()
    assert one["answer"]["attrition"] == [
        {k: v for k, v in s.items() if k != "label"} for s in a["attrition"]
    ]
    # the JSON IR form counts the same query
    from antal import engine
    from antal.engine import ir

    ir_json = ir.to_json(engine.parse(T2D))
    via_ir = c.post("/v1/projects/t2d/count", json={"ir": ir_json}, headers=h(env, "res")).json()
    assert via_ir["stored_answer"] and via_ir["attrition"] == a["attrition"]


def test_forbidden_accesses(env: dict[str, Any]) -> None:
    c = env["client"]
    # a researcher cannot see, count in or read another project (and cannot tell it exists)
    for path in (
        "/v1/projects/secret/budget",
        "/v1/projects/secret/queries",
        "/v1/projects/nosuch/budget",
    ):
        assert_error(c.get(path, headers=h(env, "res")), 404, "not_found")
    assert_error(
        c.post("/v1/projects/secret/count", json={"cohort": T2D}, headers=h(env, "res")),
        404,
        "not_found",
    )
    # only approved registers
    e = assert_error(
        c.post("/v1/projects/t2d/count", json={"cohort": 'index first diagnosis C50*\ninclude nkbc.her2 = "positiv"'}, headers=h(env, "res")),
        403, "register_not_approved",
    )  # fmt: skip
    assert e["details"]["registers"] == ["nkbc"]
    # the refusal is in the audit log, as every refusal of a release is (docs/privacy.md),
    # with the question's hash and the registers, and nothing charged; the log verifies
    audit = c.get("/v1/audit", headers=h(env, "admin")).json()
    refused = [x for x in audit if x["action"] == "refused_registers"]
    assert len(refused) == 1 and refused[0]["project_id"] == "t2d" and refused[0]["epsilon"] == 0
    assert refused[0]["query_hash"] and json.loads(refused[0]["released"])["registers"] == ["nkbc"]
    assert c.get("/v1/audit/verify", headers=h(env, "admin")).json()["ok"] is True
    # admin-only routes
    for user in ("res", "holder"):
        for path in ("/v1/audit", "/v1/audit/verify", "/v1/admin/projects", "/v1/admin/users"):
            assert_error(c.get(path, headers=h(env, user)), 403, "forbidden")
        assert_error(
            c.post(
                "/v1/admin/users",
                json={"id": "x", "name": "x", "role": "admin"},
                headers=h(env, user),
            ),
            403,
            "forbidden",
        )
        assert_error(
            c.post(
                "/v1/admin/projects",
                json={"id": "x", "title": "x", "purpose": "forskning"},
                headers=h(env, user),
            ),
            403,
            "forbidden",
        )
        assert_error(
            c.put(
                "/v1/admin/projects/t2d/registers",
                json={"registers": ["nkbc"]},
                headers=h(env, user),
            ),
            403,
            "forbidden",
        )
        assert_error(
            c.post("/v1/admin/projects/t2d/members", json={"user": user}, headers=h(env, user)),
            403,
            "forbidden",
        )
        assert_error(
            c.post(f"/v1/admin/users/{user}/tokens", headers=h(env, user)), 403, "forbidden"
        )
    # a holder is not a project member either
    assert_error(
        c.post("/v1/projects/t2d/count", json={"cohort": T2D}, headers=h(env, "holder")), 404
    )


def test_admin_routes_and_audit(env: dict[str, Any]) -> None:
    c = env["client"]
    r = c.post(
        "/v1/admin/users",
        json={"id": "newbie", "name": "New", "role": "researcher"},
        headers=h(env, "admin"),
    )
    assert r.status_code == 201
    assert_error(
        c.post(
            "/v1/admin/users",
            json={"id": "newbie", "name": "New", "role": "researcher"},
            headers=h(env, "admin"),
        ),
        400,
    )
    tok = c.post("/v1/admin/users/newbie/tokens", headers=h(env, "admin")).json()["token"]
    assert_error(c.post("/v1/admin/users/nobody/tokens", headers=h(env, "admin")), 404)
    p = c.post("/v1/admin/projects", json={"id": "p2", "title": "P2", "purpose": "kommersiell", "budget": 1.0, "registers": ["npr"]},
               headers=h(env, "admin"))  # fmt: skip
    assert p.status_code == 201 and p.json()["purpose"] == "kommersiell"
    assert_error(c.post("/v1/admin/projects", json={"id": "p3", "title": "x", "purpose": "forskning", "registers": ["nrd"]},
                        headers=h(env, "admin")), 400, "unknown_register")  # fmt: skip
    assert (
        c.post(
            "/v1/admin/projects/p2/members", json={"user": "newbie"}, headers=h(env, "admin")
        ).status_code
        == 201
    )
    ok = c.put(
        "/v1/admin/projects/p2/registers",
        json={"registers": ["npr", "lmr"]},
        headers=h(env, "admin"),
    )
    assert ok.json()["registers"] == ["lmr", "npr"]
    me = c.get("/v1/me", headers={"Authorization": f"Bearer {tok}"}).json()
    assert me["projects"] == ["p2"] and me["role"] == "researcher"
    # budget refusal is a 403 with what is left; nothing partial
    nb = {"Authorization": f"Bearer {tok}"}
    first = c.post(
        "/v1/projects/p2/count", json={"cohort": "index first diagnosis E11*"}, headers=nb
    )
    assert first.status_code == 200
    assert (
        c.post(
            "/v1/projects/p2/count", json={"cohort": "index first diagnosis E119"}, headers=nb
        ).status_code
        == 200
    )
    e = assert_error(
        c.post("/v1/projects/p2/count", json={"cohort": "index first diagnosis E10*"}, headers=nb),
        403,
        "budget_exceeded",
    )
    assert e["details"] == {"needed": 0.5, "left": 0.0}
    assert "has ε 0 left" in e["message"]
    assert c.get("/v1/projects/p2/budget", headers=nb).json()["left"] == 0.0
    audit = c.get("/v1/audit", headers=h(env, "admin")).json()
    assert any(x["action"] == "refused_budget" for x in audit)
    assert c.get("/v1/audit/verify", headers=h(env, "admin")).json()["ok"] is True
    assert len(c.get("/v1/admin/users", headers=h(env, "admin")).json()) >= 5


def test_bad_input_gets_4xx_in_one_shape(env: dict[str, Any]) -> None:
    c = env["client"]
    hd = h(env, "res")
    assert_error(c.post("/v1/cohorts/validate", json={}, headers=hd), 422, "invalid_request")
    assert_error(c.post("/v1/cohorts/validate", json={"cohort": "x", "ir": {}}, headers=hd), 422)
    assert_error(
        c.post(
            "/v1/cohorts/validate",
            content=b"not json",
            headers={**hd, "content-type": "application/json"},
        ),
        422,
    )
    assert_error(
        c.post("/v1/projects/t2d/count", json={"ir": {"kind": "nonsense"}}, headers=hd),
        400,
        "ir_invalid",
    )
    assert_error(
        c.post("/v1/cohorts/compile", json={"cohort": T2D, "dialect": "oracle"}, headers=hd), 422
    )
    assert_error(c.get("/v1/nowhere", headers=hd), 404, "not_found")
    assert_error(c.delete("/v1/me", headers=hd), 405)
    assert_error(c.get("/v1/projects/BAD!/budget", headers=hd), 422)
    # a cohort never reaches the database when it does not check, and says where
    e = assert_error(
        c.post(
            "/v1/projects/t2d/count", json={"cohort": "index first diagnosis A10BA02"}, headers=hd
        ),
        400,
        "cohort_invalid",
    )
    assert e["details"]["diagnostics"][0]["hint"] == "it looks like an ATC code: use `drug`"


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    data = write_extracts(_tables(), tmp_path / "data")
    app = create_app(
        Settings(
            data=data, store=str(tmp_path / "s.sqlite"), requests_per_minute=5, counts_per_minute=2
        )
    )
    acc = app.state.antal.accounts
    acc.create_user("u", "U", "researcher")
    app.state.antal.store.create_project("p", "P", "forskning", 10, ("npr",))
    acc.add_member("p", "u")
    hd = {"Authorization": f"Bearer {acc.issue_token('u')}"}
    c = TestClient(app)
    codes = [
        c.post(
            "/v1/projects/p/count", json={"cohort": "index first diagnosis E11*"}, headers=hd
        ).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    for _ in range(2):
        c.get("/v1/me", headers=hd)
    r = c.get("/v1/me", headers=hd)
    e = assert_error(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1 and e["details"]["limit_per_minute"] == 5


def test_no_route_gives_exact_counts(env: dict[str, Any]) -> None:
    schema = env["client"].get("/openapi.json").json()
    paths = " ".join(schema["paths"])
    assert "exact" not in paths
    for path, ops in schema["paths"].items():
        for op in ops.values():
            params = [p["name"] for p in op.get("parameters", [])]
            assert "exact" not in params, path


def test_a_holder_publishes_its_own_register_only(env: dict[str, Any]) -> None:
    c = env["client"]
    entry = c.get("/v1/catalog/registers/ndr", headers=h(env, "holder")).json()
    entry["description"]["en"] = "Updated by the NDR: visits with HbA1c, BMI and blood pressure."
    r = c.put("/v1/catalog/registers/ndr", json=entry, headers=h(env, "holder"))
    assert r.status_code == 200, r.text
    assert (
        c.get("/v1/catalog/registers/ndr", headers=h(env, "res"))
        .json()["description"]["en"]
        .startswith("Updated by the NDR")
    )
    npr = c.get("/v1/catalog/registers/npr", headers=h(env, "holder")).json()
    assert_error(
        c.put("/v1/catalog/registers/npr", json=npr, headers=h(env, "holder")), 403, "forbidden"
    )
    assert_error(
        c.put("/v1/catalog/registers/ndr", json=entry, headers=h(env, "res")), 403, "forbidden"
    )
    assert_error(
        c.put("/v1/catalog/registers/ndr", json={**entry, "id": "nkbc"}, headers=h(env, "holder")),
        400,
    )
    broken = {**entry, "date_column": "nope"}
    assert_error(
        c.put("/v1/catalog/registers/ndr", json=broken, headers=h(env, "holder")),
        422,
        "entry_invalid",
    )
    assert any(
        x["action"] == "publish_register"
        for x in c.get("/v1/audit", headers=h(env, "admin")).json()
    )
