"""One settings model for the command line and the server (issue 9, part 5): one default
store, ANTAL_STORE read by every command, read-only commands that never create a store,
--purpose/--budget that must fit an existing project, approvals that add and revoke,
token revocation, the typed privacy section, and the settings' backend, threads and
memory limit reaching DuckDB from the command line. Real files, real DuckDB, a real store."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_extracts
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from antal.api import usecases as uc
from antal.api.app import create_app
from antal.api.cli import app
from antal.api.settings import Settings, default_store
from antal.catalog import CatalogError, load_catalog, load_installation
from antal.privacy import PrivacyParams, open_store

CAT = load_catalog()
COHORT = "index first diagnosis I48*\nreport by sex\n"
# a released count of COHORT costs ε 0.5 for the attrition and 0.5 more for the breakdown


def tables() -> dict[str, list[dict[str, Any]]]:
    pop = [{"lopnr": i, "kon": 1 + i % 2, "fodelsear": 1950, "fodelsemanad": 1, "lan": "18"}
           for i in range(1, 61)]  # fmt: skip
    npr = [{"lopnr": i, "indatum": dt.date(2020, 1, i % 28 + 1), "vardform": "O",
            "sjukhus": "18001", "hdia": "I489", "diagnos": "I489 I10"} for i in range(1, 41)]  # fmt: skip
    lmr = [{"lopnr": i, "edatum": dt.date(2020, 3, 1), "atc": "B01AF02"} for i in range(1, 11)]
    return {"population": pop, "npr": npr, "lmr": lmr}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_extracts(tables(), tmp_path_factory.mktemp("settings") / "data")


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    f = tmp_path / "c.cohort"
    f.write_text(COHORT, encoding="utf-8")
    return f


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ANTAL_* from the caller's environment; the user data directory under tmp_path."""
    import os

    for k in list(os.environ):
        if k.startswith("ANTAL_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "antal"


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    r = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in r.output, r.output
    return r


# ---- one store ----------------------------------------------------------------------------


def test_one_default_store_for_count_audit_admin_and_server(
    clean_env: Path, data: Path, cohort: Path
) -> None:
    expected = clean_env / "store.sqlite"
    assert Path(default_store()) == expected
    assert Path(Settings().store) == expected  # what `antal serve` opens without --store
    r = cli("count", str(cohort), "--data", str(data), "--json")
    assert r.exit_code == 0, r.output
    assert expected.is_file()  # `antal count` charged the same store
    st = open_store(expected)
    assert st.project("local") is not None and st.project("local").spent == 1.0  # type: ignore[union-attr]
    r = cli("admin", "create-user", "anna", "--no-token")
    assert r.exit_code == 0, r.output
    from antal.api.accounts import Accounts

    assert Accounts(st).user("anna") is not None  # `antal admin` wrote to it too
    r = cli("audit", "verify")
    assert r.exit_code == 0 and str(expected) in r.output, r.output
    entries = len(st.audit_entries())
    assert f"intact: {entries} entries" in r.output and entries >= 3


def test_antal_store_is_read_by_every_command(
    clean_env: Path, data: Path, cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "chosen.sqlite"
    monkeypatch.setenv("ANTAL_STORE", str(store))
    assert cli("count", str(cohort), "--data", str(data), "--json").exit_code == 0
    assert cli("admin", "create-user", "bo", "--no-token").exit_code == 0
    r = cli("audit", "verify")
    assert r.exit_code == 0 and str(store) in r.output, r.output
    st = open_store(store)
    assert st.project("local").spent == 1.0  # type: ignore[union-attr]
    assert [e.action for e in st.audit_entries()].count("create_user") == 1
    assert not (clean_env / "store.sqlite").exists()  # the default store was not touched
    # and the server opens the same one
    assert Settings().store == str(store)


def test_read_only_commands_never_create_a_store(clean_env: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "store.sqlite"
    r = cli("audit", "verify", "--store", str(missing))
    assert r.exit_code == 2 and "no store at" in r.output and "intact" not in r.output, r.output
    assert not missing.exists() and not missing.parent.exists()
    # the default store, when nothing was ever done, is missing too
    r = cli("audit", "verify")
    assert r.exit_code == 2 and "no store at" in r.output
    assert not (clean_env / "store.sqlite").exists()


def test_read_only_on_an_empty_postgres_database(pg_dsn: str) -> None:
    from antal.privacy.store import store_exists

    assert not store_exists(pg_dsn)
    r = cli("audit", "verify", "--store", pg_dsn)
    assert r.exit_code == 2 and "no store at" in r.output
    assert not store_exists(pg_dsn)  # no tables were made
    open_store(pg_dsn)
    assert store_exists(pg_dsn)
    assert cli("audit", "verify", "--store", pg_dsn).exit_code == 0


# ---- an existing project's purpose and budget ---------------------------------------------


def test_purpose_and_budget_that_do_not_fit_an_existing_project_are_errors(
    clean_env: Path, data: Path, cohort: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "s.sqlite")
    base = ["count", str(cohort), "--data", str(data), "--store", store, "--json"]
    r = cli(*base, "--purpose", "forskning", "--budget", "3")
    assert r.exit_code == 0, r.output
    st = open_store(store)
    assert (st.project("local").purpose, st.project("local").budget) == ("forskning", 3.0)  # type: ignore[union-attr]
    audit_before = len(st.audit_entries())
    # a kommersiell question must not be answered with forskning opt-outs
    r = cli(*base, "--purpose", "kommersiell")
    assert r.exit_code == 2, r.output
    assert "its purpose is forskning, not kommersiell" in r.output
    r = cli(*base, "--budget", "7")
    assert r.exit_code == 2 and "its budget is ε 3, not 7" in r.output, r.output
    assert len(st.audit_entries()) == audit_before  # refused before anything was charged
    assert st.project("local").spent == 1.0  # type: ignore[union-attr]
    # the project's own values, or none, are fine; another project gets its own purpose
    assert cli(*base, "--purpose", "forskning", "--budget", "3").exit_code == 0
    assert cli(*base).exit_code == 0
    r = cli(*base, "--project", "k", "--purpose", "kommersiell")
    assert r.exit_code == 0 and json.loads(r.output)["receipt"]["purpose"] == "kommersiell"
    # --budget means nothing to --exact: said, not ignored
    r = cli("count", str(cohort), "--data", str(data), "--exact", "--budget", "2")
    assert r.exit_code == 2 and "does not apply to --exact" in r.output


# ---- approvals and tokens: command line ---------------------------------------------------


def test_admin_approve_adds_and_revoke_removes(clean_env: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "s.sqlite")
    r = cli("admin", "create-project", "p", "--register", "npr", "--store", store)
    assert r.exit_code == 0, r.output
    r = cli("admin", "approve", "p", "lmr", "ndr", "--store", store)
    assert r.exit_code == 0, r.output
    st = open_store(store)
    assert st.project("p").registers == ("lmr", "ndr", "npr")  # type: ignore[union-attr]
    r = cli("admin", "revoke", "p", "npr", "ndr", "--store", store)
    assert r.exit_code == 0, r.output
    assert st.project("p").registers == ("lmr",)  # type: ignore[union-attr]
    # revoking what is not approved, or approving what does not exist, says so
    r = cli("admin", "revoke", "p", "nkbc", "--store", store)
    assert r.exit_code == 2 and "not approved for nkbc" in r.output
    r = cli("admin", "approve", "p", "nrd", "--store", store)
    assert r.exit_code == 2 and "unknown register(s) nrd" in r.output
    r = cli("admin", "approve", "nope", "npr", "--store", store)
    assert r.exit_code == 2 and "no project 'nope'" in r.output
    assert st.project("p").registers == ("lmr",)  # type: ignore[union-attr]
    actions = [(e.action, e.query) for e in st.audit_entries() if e.project_id == "p"]
    assert ("approve_registers", "lmr,ndr") in actions
    assert ("revoke_registers", "ndr,npr") in actions
    # signed by the installation's key: checked with it, as `antal audit verify` does
    assert cli("audit", "verify", "--store", store).exit_code == 0


def test_admin_revoke_tokens_locks_the_user_out(
    clean_env: Path, data: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "s.sqlite")
    r = cli("admin", "create-user", "anna", "--store", store)
    assert r.exit_code == 0, r.output
    first = r.stdout.strip().splitlines()[-1]
    second = cli("admin", "create-token", "anna", "--store", store).stdout.strip()
    client = TestClient(create_app(Settings(data=data, store=store)))
    for tok in (first, second):
        assert client.get("/v1/me", headers={"Authorization": f"Bearer {tok}"}).status_code == 200
    r = cli("admin", "revoke-tokens", "anna", "--store", store)
    assert r.exit_code == 0 and "2 token(s) of anna revoked" in r.output, r.output
    for tok in (first, second):
        r2 = client.get("/v1/me", headers={"Authorization": f"Bearer {tok}"})
        assert r2.status_code == 401 and r2.json()["error"]["message"] == "unknown or revoked token"
    # a new token works again; revoking an unknown user is an error
    third = cli("admin", "create-token", "anna", "--store", store).stdout.strip()
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {third}"}).status_code == 200
    r = cli("admin", "revoke-tokens", "nobody", "--store", store)
    assert r.exit_code == 2 and "no user 'nobody'" in r.output
    audit = [(e.actor, e.action, e.query) for e in open_store(store).audit_entries()]
    assert ("cli-admin", "revoke_tokens", "anna 2") in audit


# ---- approvals and tokens: HTTP -----------------------------------------------------------


@pytest.fixture
def service(data: Path, tmp_path: Path) -> dict[str, Any]:
    application = create_app(Settings(data=data, store=str(tmp_path / "s.sqlite")))
    st = application.state.antal
    st.accounts.create_user("admin", "Admin", "admin")
    st.accounts.create_user("res", "Researcher", "researcher")
    st.store.create_project("p", "P", "forskning", 10.0, ("npr",))
    st.accounts.add_member("p", "res")
    tokens = {u: st.accounts.issue_token(u) for u in ("admin", "res")}
    return {"client": TestClient(application), "tokens": tokens, "state": st}


def _h(service: dict[str, Any], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {service['tokens'][user]}"}


def test_http_approvals_add_remove_and_replace(service: dict[str, Any]) -> None:
    c, admin = service["client"], _h(service, "admin")
    lmr_cohort = "index first diagnosis I48*\ninclude drug B01AF* in lmr after index\n"
    r = c.post("/v1/projects/p/count", json={"cohort": lmr_cohort}, headers=_h(service, "res"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "register_not_approved"
    # POST adds: npr stays
    r = c.post("/v1/admin/projects/p/registers", json={"registers": ["lmr"]}, headers=admin)
    assert r.status_code == 200 and r.json()["registers"] == ["lmr", "npr"], r.json()
    r = c.post("/v1/projects/p/count", json={"cohort": lmr_cohort}, headers=_h(service, "res"))
    assert r.status_code == 200, r.json()
    # DELETE removes one; the researcher's count is refused again
    r = c.delete("/v1/admin/projects/p/registers/lmr", headers=admin)
    assert r.status_code == 200 and r.json()["registers"] == ["npr"]
    r = c.post("/v1/projects/p/count", json={"cohort": lmr_cohort}, headers=_h(service, "res"))
    assert r.status_code == 403 and r.json()["error"]["details"]["registers"] == ["lmr"]
    r = c.delete("/v1/admin/projects/p/registers/lmr", headers=admin)
    assert r.status_code == 400 and "not approved for lmr" in r.json()["error"]["message"]
    r = c.post("/v1/admin/projects/p/registers", json={"registers": ["nrd"]}, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_register"
    r = c.post("/v1/admin/projects/zz/registers", json={"registers": ["npr"]}, headers=admin)
    assert r.status_code == 404
    # PUT still replaces (documented)
    r = c.put("/v1/admin/projects/p/registers", json={"registers": ["ndr"]}, headers=admin)
    assert r.status_code == 200 and r.json()["registers"] == ["ndr"]
    # researchers may do none of it
    for call in (
        lambda h: c.post("/v1/admin/projects/p/registers", json={"registers": ["lmr"]}, headers=h),
        lambda h: c.delete("/v1/admin/projects/p/registers/ndr", headers=h),
    ):
        r = call(_h(service, "res"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert service["state"].store.project("p").registers == ("ndr",)
    actions = [e.action for e in service["state"].store.audit_entries() if e.project_id == "p"]
    assert actions.count("approve_registers") == 2 and actions.count("revoke_registers") == 1


def test_http_token_revocation(service: dict[str, Any]) -> None:
    c, admin = service["client"], _h(service, "admin")
    assert c.get("/v1/me", headers=_h(service, "res")).status_code == 200
    r = c.delete("/v1/admin/users/res/tokens", headers=_h(service, "res"))
    assert r.status_code == 403  # not an admin: nothing revoked
    assert c.get("/v1/me", headers=_h(service, "res")).status_code == 200
    r = c.delete("/v1/admin/users/res/tokens", headers=admin)
    assert r.status_code == 200 and r.json() == {"user": "res", "revoked": 1}
    r = c.get("/v1/me", headers=_h(service, "res"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    r = c.delete("/v1/admin/users/nobody/tokens", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    audit = [(e.actor, e.action) for e in service["state"].store.audit_entries()]
    assert ("admin", "revoke_tokens") in audit
    # still a member: a new token works for the same project
    tok = c.post("/v1/admin/users/res/tokens", headers=admin).json()["token"]
    r = c.get("/v1/projects/p/budget", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200


# ---- typed privacy section ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("{epsilon: 0}", "privacy.epsilon"),
        ("{epsilon: -1}", "privacy.epsilon"),
        ("{threshold: 10.5}", "privacy.threshold"),
        ("{rounding: 0}", "privacy.rounding"),
        ("{alpha: 1}", "privacy.alpha"),
        ("{epsilonn: 1}", "privacy.epsilonn"),
        ("{epsilon: lots}", "privacy.epsilon"),
    ],
)
def test_privacy_section_is_typed(data: Path, tmp_path: Path, section: str, field: str) -> None:
    cfg = tmp_path / "installation.yaml"
    cfg.write_text(
        f"registers:\n  population: {{parquet: {data / 'population.parquet'}}}\n"
        f"privacy: {section}\n"
    )
    with pytest.raises(CatalogError) as e:
        load_installation(cfg)
    assert field in str(e.value)


def test_privacy_section_values_are_typed(data: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "installation.yaml"
    cfg.write_text(
        f"registers:\n  population: {{parquet: {data / 'population.parquet'}}}\n"
        "privacy: {epsilon: 1, threshold: 5, rounding: 5}\n"
    )
    p = load_installation(cfg).privacy
    assert isinstance(p, PrivacyParams)
    assert (p.epsilon, p.threshold, p.rounding, p.default_budget) == (1.0, 5, 5, 10.0)
    assert type(p.threshold) is int and type(p.epsilon) is float


# ---- backend, threads and memory from the settings ----------------------------------------


def test_settings_reach_duckdb(data: Path) -> None:
    inst = uc.open_installation(Settings(data=data))
    be = uc.open_backend(Settings(data=data, threads=1, memory_limit="512MB"), inst, CAT)
    try:
        threads, memory = be.con.execute(  # type: ignore[attr-defined]
            "SELECT current_setting('threads'), current_setting('memory_limit')"
        ).fetchone()
    finally:
        be.close()
    assert int(threads) == 1 and memory.replace(" ", "") in ("488.2MiB", "512.0MB", "512MB")


def test_the_command_line_uses_the_settings_backend_threads_and_memory(
    clean_env: Path, data: Path, cohort: Path
) -> None:
    args = ["count", str(cohort), "--data", str(data), "--exact", "--json"]
    assert cli(*args).exit_code == 0
    # a memory limit too small for any query: the count fails, so the limit reached DuckDB
    r = cli(*args, env={"ANTAL_MEMORY_LIMIT": "1KB"})
    assert r.exit_code == 2 and "could not be read" in r.output, r.output
    # the kind of failure is named (the driver's class, never its message)
    assert "(OutOfMemoryException)" in r.output, r.output
    r = cli(*args, env={"ANTAL_THREADS": "0"})
    assert r.exit_code == 2 and "threads" in r.output
    r = cli(*args, env={"ANTAL_BACKEND": "oracle"})
    assert r.exit_code == 2 and "backend" in r.output
    # and a settings file (ANTAL_CONFIG) names the data for every command
    cfg = clean_env.parent.parent / "antal.yaml"
    cfg.write_text(f"data: {data}\n")
    r = cli("count", str(cohort), "--exact", "--json", env={"ANTAL_CONFIG": str(cfg)})
    assert r.exit_code == 0 and json.loads(r.output)["count"] == 40, r.output
    r = cli("data", "check", env={"ANTAL_DATA": str(data)})
    assert r.exit_code == 0 and "data check passed" in r.output


def test_the_command_line_sees_the_catalog_the_server_publishes(
    data: Path, tmp_path: Path, clean_env: Path
) -> None:
    """An entry published to the store is the catalog for `antal data check` and `antal
    count` too, not only for `antal serve`: the faces count under one catalog."""
    from antal.api.accounts import CatalogEntries

    store = tmp_path / "s.sqlite"
    st = open_store(str(store))
    ndr = load_catalog().registers["ndr"]
    ldl = ndr.variables[0].model_copy(update={"name": "ldl", "type": "double", "nullable": True,
                                              "code_system": None, "values": None})  # fmt: skip
    # as if an admin had published it before the extract lost the column
    CatalogEntries(st).put(ndr.model_copy(update={"variables": [*ndr.variables, ldl]}), "admin")
    runner = CliRunner()
    check = ["data", "check", "--data", str(data)]
    r = runner.invoke(app, check, env={"ANTAL_STORE": str(tmp_path / "none")})
    assert r.exit_code == 0, r.output  # the bundled catalog: the extract matches it
    r = runner.invoke(app, check, env={"ANTAL_STORE": str(store)})
    # the published entry's column is seen: missing from the extract, a note (issue 25: only
    # a cohort that reads it is refused), and a count that reads it is refused by name
    assert r.exit_code == 0 and "note:" in r.output and "ldl" in r.output, r.output
    cohort = tmp_path / "ldl.cohort"
    cohort.write_text("index 2024-01-01\ninclude ndr where ldl > 3 before index\n")
    count = ["count", str(cohort), "--data", str(data), "--exact"]
    r = runner.invoke(app, count, env={"ANTAL_STORE": str(store)})
    assert r.exit_code != 0 and "ldl" in r.output and "ndr" in r.output, r.output
    r = runner.invoke(app, count, env={"ANTAL_STORE": str(tmp_path / "none")})
    assert r.exit_code != 0 and "ldl" in r.output, r.output  # the bundled catalog has no ldl
    assert not (tmp_path / "none").exists()  # looking for published entries creates no store
