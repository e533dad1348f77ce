"""Issue 11, parts 6-8: counts a program can use, quotes before paying, signed receipts.

The extract is built by hand so that every true count is known here (the oracle): 300
persons; persons 1-200 have an E11 contact in 2020 (even ids male, odd female); persons
1-3 an I21 contact. The installation's ε is large (50), so the noise is almost surely 0
and a released count equals the hand count; its threshold and rounding are written as
floats (`10.0`, `1.0`), as a YAML file may have them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import write_extracts
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from antal.api import usecases as uc
from antal.api.app import create_app
from antal.api.cli import app as cli
from antal.api.frames import breakdown_frame
from antal.api.settings import Settings, default_signing_key
from antal.privacy import (
    Gate,
    PrivacyParams,
    ReleasedCount,
    Signer,
    SigningKeyError,
    open_store,
    receipts,
)
from antal.privacy.receipts import RECEIPT_FIELDS, load_public_key, verify

ROOT = Path(__file__).resolve().parents[1]
E11 = 'cohort "T2D by sex"\nindex first diagnosis E11* between 2019-01-01 and 2021-12-31\nreport by sex\n'
I21 = "index first diagnosis I21* between 2019-01-01 and 2021-12-31\n"
runner = CliRunner()


def _tables() -> dict[str, list[dict[str, Any]]]:
    pop = [{"lopnr": i, "kon": 1 + i % 2, "fodelsear": 1950 + i % 40, "fodelsemanad": 1 + i % 12,
            "lan": "18"} for i in range(1, 301)]  # fmt: skip
    npr = [{"lopnr": i, "indatum": dt.date(2020, 1, 1) + dt.timedelta(days=i % 200), "vardform": "O",
            "sjukhus": "18001", "hdia": "E119", "diagnos": "E119"} for i in range(1, 201)]  # fmt: skip
    npr += [{"lopnr": i, "indatum": dt.date(2020, 6, 1), "vardform": "S", "sjukhus": "18001",
             "hdia": "I219", "diagnos": "I219"} for i in range(1, 4)]  # fmt: skip
    return {"population": pop, "npr": npr}


def _installation(root: Path) -> Path:
    data = write_extracts(_tables(), root / "data")
    regs = "\n".join(f"  {r}: {{parquet: {data / f'{r}.parquet'}}}" for r in ("population", "npr", "optout"))  # fmt: skip
    cfg = root / "installation.yaml"
    cfg.write_text(
        f"release: test-release\nregisters:\n{regs}\n"
        "privacy: {epsilon: 50, threshold: 10.0, rounding: 1.0, default_budget: 10}\n"
    )
    return cfg


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("receipts")
    cfg = _installation(root)
    settings = Settings(installation=cfg, store=str(root / "store.sqlite"),
                        requests_per_minute=10_000, counts_per_minute=10_000)  # fmt: skip
    app = create_app(settings)
    st = app.state.antal
    st.accounts.create_user("res", "Researcher", "researcher")
    st.accounts.create_user("other", "Other", "researcher")
    st.store.create_project("p", "Project", "forskning", 1000.0, ("npr",))
    st.store.create_project("q", "Another", "forskning", 1000.0, ("npr",))
    st.store.create_project("tight", "Small budget", "forskning", 50.0, ("npr",))
    st.store.create_project("lmr-only", "Not approved for npr", "forskning", 10.0, ("lmr",))
    for pid in ("p", "tight", "lmr-only"):
        st.accounts.add_member(pid, "res")
    st.accounts.add_member("q", "other")
    tokens = {u: st.accounts.issue_token(u) for u in ("res", "other")}
    return {"client": TestClient(app), "app": app, "root": root, "cfg": cfg,
            "settings": settings, "tokens": tokens}  # fmt: skip


def h(env: dict[str, Any], user: str = "res") -> dict[str, str]:
    return {"Authorization": f"Bearer {env['tokens'][user]}"}


def _count(env: dict[str, Any], cohort: str, pid: str = "p", user: str = "res") -> dict[str, Any]:
    r = env["client"].post(
        f"/v1/projects/{pid}/count", json={"cohort": cohort}, headers=h(env, user)
    )
    assert r.status_code == 200, r.text
    return r.json()


def _public_key(env: dict[str, Any]) -> Any:
    r = env["client"].get("/v1/receipts/public-key")  # no token: a public key is public
    assert r.status_code == 200, r.text
    return load_public_key(r.text)


# ---- 6. counts a program can use ---------------------------------------------------------


def test_counts_are_numbers_or_null_with_a_display(env: dict[str, Any]) -> None:
    a = _count(env, E11)
    fields = {"count", "suppressed", "lower", "upper", "display"}
    # the final count at the top, each step and each cell: the same five fields
    assert (a["count"], a["suppressed"], a["display"]) == (200, False, "200")
    assert a["lower"] <= 200 <= a["upper"]
    assert [(s["label"], s["count"]) for s in a["attrition"]] == [("Index event", 200)]
    assert all(fields <= set(s) for s in a["attrition"])
    cells = {c["sex"]: c for c in a["breakdown"]}
    assert set(cells) == {"male", "female", None} and all(fields <= set(c) for c in a["breakdown"])
    assert (cells["male"]["count"], cells["female"]["count"]) == (100, 100)
    unknown = cells[None]  # nobody: below the threshold, so suppressed
    assert unknown == {"sex": None, "count": None, "suppressed": True, "lower": None,
                       "upper": None, "display": "<10"}  # fmt: skip
    # the threshold and rounding once, as integers, although the file wrote 10.0 and 1.0
    privacy = a["receipt"]["privacy"]
    assert privacy["threshold"] == 10 and type(privacy["threshold"]) is int
    assert privacy["rounding"] == 1 and type(privacy["rounding"]) is int
    displays = [x["display"] for x in [a, *a["attrition"], *a["breakdown"]]]
    assert all(re.fullmatch(r"<?[0-9]+", d) for d in displays), displays
    # a program can add them up
    frame = breakdown_frame(a)
    assert str(frame["count"].dtype) == "Int64" and frame["count"].sum() == 200
    assert list(frame["suppressed"]) == [c["suppressed"] for c in a["breakdown"]]
    small = _count(env, I21)  # 3 persons: suppressed
    assert (small["count"], small["suppressed"], small["display"]) == (None, True, "<10")
    assert small["lower"] is None and small["upper"] is None


def test_the_use_case_result_gives_frames(env: dict[str, Any]) -> None:
    st = env["app"].state.antal
    counted = uc.count_released(E11, st.installation, st.catalog, st.gate, "p", "res", st.backend)
    bd = counted.breakdown_frame()
    assert list(bd.columns) == ["sex", "count", "suppressed", "lower", "upper", "display"]
    assert bd["count"].sum() == 200  # 100 + 100, the unknown cell <NA>
    assert bd.set_index("sex").loc["male", "display"] == "100"
    att = counted.attrition_frame()
    assert list(att["count"]) == [200] and str(att["count"].dtype) == "Int64"


def test_a_threshold_written_as_a_float_is_an_integer() -> None:
    p = PrivacyParams.model_validate({"threshold": 10.0, "rounding": 5.0})
    assert type(p.threshold) is int and type(p.rounding) is int
    assert ReleasedCount(None, None, None, p.threshold).display() == "<10"
    with pytest.raises(ValueError, match="threshold"):
        PrivacyParams.model_validate({"threshold": 10.5})


def _old_form(params: PrivacyParams) -> str:
    """An answer as stored before issue 11: a number with `interval`, or "<10"."""
    return json.dumps({
        "params": params.as_dict(),
        "steps": [{"count": 120, "interval": [100, 140]}, {"count": "<10"}],
        "dims": ["sex"],
        "cells": [[["female"], {"count": 60, "interval": [50, 70]}], [["male"], {"count": "<10"}]],
        "epsilon": 2 * params.epsilon, "scales": {"attrition": 4.0, "breakdown": 2.0},
    })  # fmt: skip


def _store_old(store: Any, pid: str, key: str, released: str, eps: float) -> None:
    """The rows an older version wrote for one answer of a project."""
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO answers (key, query_hash, release, params, purpose, released, created) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (key, "q" * 64, "r", "{}", "forskning", released, "2025-01-01T00:00:00+00:00"),
        )
        tx.execute("INSERT INTO charges (project_id, answer_key, epsilon, created) VALUES (%s, %s, %s, %s)",
                   (pid, key, eps, "2025-01-01T00:00:00+00:00"))  # fmt: skip
        tx.execute("UPDATE projects SET spent = spent + %s WHERE id = %s", (eps, pid))
        tx.execute("INSERT INTO project_queries (project_id, answer_key, query, first_asked) VALUES (%s, %s, %s, %s)",
                   (pid, key, '{"kind":"cohort"}', "2025-01-01T00:00:00+00:00"))  # fmt: skip


def test_an_answer_stored_by_an_older_version_reads_back(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.sqlite")
    store.create_project("p", "P", "forskning", 10.0)
    gate = Gate(store, PrivacyParams())
    key = gate.key("q" * 64, "r", "forskning")
    _store_old(store, "p", key, _old_form(gate.params), 1.0)

    def compute() -> Any:
        raise AssertionError("a stored answer reads no data")

    labels = ("Index event", "Age 40-75")
    a = gate.answer("p", "res", "q" * 64, "{}", "r", labels, ("sex",), compute)
    assert a.stored and a.epsilon_charged == 0
    out = a.to_json()
    # the values written then, in today's form
    assert out["attrition"] == [
        {"label": "Index event", "count": 120, "suppressed": False, "lower": 100, "upper": 140,
         "display": "120"},
        {"label": "Age 40-75", "count": None, "suppressed": True, "lower": None, "upper": None,
         "display": "<10"},
    ]  # fmt: skip
    assert (out["count"], out["display"]) == (None, "<10")
    assert out["breakdown"][0] == {"sex": "female", "count": 60, "suppressed": False,
                                   "lower": 50, "upper": 70, "display": "60"}  # fmt: skip
    # its first receipt is made now (none existed), signed, and kept from then on
    receipt = out["receipt"]
    assert verify(receipt, gate.signer.public) == [] and receipt["epsilon"] == 1.0
    seen = next(e for e in store.audit_entries() if e.seq == receipt["audit_seq"])
    assert seen.action == "answer_stored" and seen.ts == receipt["time"]
    again = gate.answer("p", "res", "q" * 64, "{}", "r", labels, ("sex",), compute)
    assert again.receipt() == receipt
    assert store.verify_audit() == [] and store.ledger_problems() == []


def test_old_stored_answers_through_the_api(env: dict[str, Any]) -> None:
    st = env["app"].state.antal
    cohort = "index first diagnosis E11* between 2018-01-01 and 2021-12-31\ninclude age 40..75\nreport by sex\n"  # fmt: skip
    project = st.store.project("p")
    prepared = uc.prepare_count(cohort, st.installation, st.catalog, project, approved_only=True)
    key = st.gate.key(
        prepared.query_hash, st.installation.release, "forskning", st.catalog.version()
    )
    _store_old(st.store, "p", key, _old_form(st.params), 100.0)
    one = env["client"].get(f"/v1/projects/p/queries/{key}", headers=h(env)).json()
    assert one["answer"]["attrition"][0] == {"count": 120, "suppressed": False, "lower": 100,
                                             "upper": 140, "display": "120"}  # fmt: skip
    assert one["answer"]["breakdown"][1]["display"] == "<10" and one["receipt"] is None
    a = _count(env, cohort)
    assert a["stored_answer"] and [s["display"] for s in a["attrition"]] == ["120", "<10"]
    assert verify(a["receipt"], _public_key(env)) == []
    listed = env["client"].get("/v1/projects/p/queries", headers=h(env)).json()
    assert next(q for q in listed if q["answer_key"] == key)["receipt"] == a["receipt"]


# ---- 7. quote before you pay -------------------------------------------------------------


def test_quote_reads_charges_and_audits_nothing(env: dict[str, Any]) -> None:
    st, c = env["app"].state.antal, env["client"]
    cohort = "index first diagnosis E11* between 2019-06-01 and 2021-12-31\nreport by sex\n"
    budget = c.get("/v1/projects/p/budget", headers=h(env)).json()
    entries = len(st.store.audit_entries())
    r = c.post("/v1/projects/p/quote", json={"cohort": cohort}, headers=h(env))
    assert r.status_code == 200, r.text
    q = r.json()
    # a breakdown costs ε twice (epsilon 50 in the installation file)
    assert (q["epsilon"], q["stored_answer"], q["affordable"]) == (100.0, False, True)
    assert q["budget_left"] == budget["left"] and q["budget_left_after"] == budget["left"] - 100
    assert c.get("/v1/projects/p/budget", headers=h(env)).json() == budget
    assert len(st.store.audit_entries()) == entries  # not audited: nothing read or released
    a = _count(env, cohort)
    assert a["epsilon_charged"] == q["epsilon"] and a["receipt"]["answer_key"] == q["answer_key"]
    again = c.post("/v1/projects/p/quote", json={"cohort": "# again\n" + cohort}, headers=h(env))
    assert again.json()["epsilon"] == 0 and again.json()["stored_answer"]
    assert again.json()["budget_left_after"] == a["budget_left"]
    # another project's history changes nothing: project q never asked it
    other = c.post("/v1/projects/q/quote", json={"cohort": cohort}, headers=h(env, "other"))
    assert other.json()["epsilon"] == 100.0 and not other.json()["stored_answer"]


def test_quote_refuses_what_a_count_refuses(env: dict[str, Any]) -> None:
    c = env["client"]
    small = c.post("/v1/projects/tight/quote", json={"cohort": E11}, headers=h(env)).json()
    assert small["affordable"] is False and small["budget_left_after"] == small["budget_left"] == 50
    r = c.post("/v1/projects/lmr-only/quote", json={"cohort": E11}, headers=h(env))
    assert r.status_code == 403 and r.json()["error"]["code"] == "register_not_approved"
    r = c.post("/v1/projects/q/quote", json={"cohort": E11}, headers=h(env))  # not a member
    assert r.status_code == 404
    r = c.post("/v1/projects/p/quote", json={"cohort": "index first diagnosis e11"}, headers=h(env))
    assert r.status_code == 400 and r.json()["error"]["code"] == "cohort_invalid"
    assert c.post("/v1/projects/p/quote", json={"cohort": E11}).status_code == 401


def test_quote_is_rate_limited_with_validate(env: dict[str, Any], tmp_path: Path) -> None:
    settings = Settings(installation=env["cfg"], store=str(tmp_path / "s.sqlite"),
                        checks_per_minute=3)  # fmt: skip
    app = create_app(settings)
    st = app.state.antal
    st.accounts.create_user("res", "R", "researcher")
    st.store.create_project("p", "P", "forskning", 10.0, ("npr",))
    st.accounts.add_member("p", "res")
    auth = {"Authorization": f"Bearer {st.accounts.issue_token('res')}"}
    c = TestClient(app)
    assert c.post("/v1/cohorts/validate", json={"cohort": I21}, headers=auth).status_code == 200
    for _ in range(2):
        assert c.post("/v1/projects/p/quote", json={"cohort": I21}, headers=auth).status_code == 200
    r = c.post("/v1/projects/p/quote", json={"cohort": I21}, headers=auth)
    assert r.status_code == 429 and r.headers["retry-after"]


# ---- 8. receipts that others can check ---------------------------------------------------


def _tampered(field: str, value: Any) -> Any:
    """The field's value, changed a little."""
    if field == "signature":  # one bit of the signature flipped
        raw = bytearray(base64.b64decode(value))
        raw[0] ^= 1
        return base64.b64encode(bytes(raw)).decode()
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, dict) and "threshold" in value:  # the privacy parameters
        return {**value, "threshold": value["threshold"] + 1}
    if isinstance(value, dict):  # the guarantee: a smaller ε claimed
        return {**value, "epsilon": value["epsilon"] / 2}
    if value is None:  # no title: one given
        return "Strict"
    if isinstance(value, list):  # the labels: one renamed
        return [*value[:-1], value[-1] + " (strict)"]
    if set(value) <= set("0123456789abcdef"):  # a hash or a key id: one digit changed
        return ("1" if value[0] == "0" else "0") + value[1:]
    return value + "x"


def test_receipts_carry_everything_and_break_when_edited(env: dict[str, Any]) -> None:
    a = _count(env, "index first diagnosis E11* between 2020-03-01 and 2021-12-31\n")
    r, key = a["receipt"], _public_key(env)
    assert set(r) == set(RECEIPT_FIELDS)
    st = env["app"].state.antal
    assert (r["project"], r["purpose"], r["data_release"]) == ("p", "forskning", "test-release")
    assert r["epsilon"] == a["epsilon_charged"] == 50.0 and r["privacy"]["epsilon"] == 50
    # time and sequence number are those of the release's audit entry
    entry = next(e for e in st.store.audit_entries() if e.seq == r["audit_seq"])
    assert (entry.action, entry.ts, entry.query_hash) == ("answer", r["time"], r["query_hash"])
    assert dt.datetime.fromisoformat(r["time"]).utcoffset() == dt.timedelta(0)
    assert verify(r, key) == []
    # every field edited: the signature no longer matches (or names another key)
    for field in RECEIPT_FIELDS:
        edited = {**r, field: _tampered(field, r[field])}
        assert edited[field] != r[field], field
        assert verify(edited, key), f"an edited {field} still verifies"
    assert verify({k: v for k, v in r.items() if k != "project"}, key)  # a field removed
    assert verify({**r, "note": "added"}, key)  # a field added
    assert verify(r, Signer.ephemeral().public)  # another installation's key
    # the answer's counts belong to the receipt: a changed count is caught too
    assert uc.verify_receipt(a, key) == []
    changed = json.loads(json.dumps(a))
    changed["attrition"][0]["count"] += 1
    assert uc.verify_receipt(changed, key) == [
        "the answer's released values are not those its receipt was signed for"
    ]
    # asked again: the stored answer with its original receipt, signature and all
    again = _count(env, "index first diagnosis E11* between 2020-03-01 and 2021-12-31\n")
    assert again["stored_answer"] and again["receipt"] == r


def test_another_projects_first_ask_gets_its_own_receipt(env: dict[str, Any]) -> None:
    cohort = "index first diagnosis E11* between 2020-04-01 and 2021-12-31\n"
    mine, theirs = _count(env, cohort), _count(env, cohort, pid="q", user="other")
    assert theirs["count"] == mine["count"] and not theirs["stored_answer"]  # the same value
    assert theirs["receipt"]["project"] == "q" and theirs["receipt"]["audit_seq"] > mine["receipt"]["audit_seq"]  # fmt: skip
    assert theirs["receipt"]["released_sha256"] == mine["receipt"]["released_sha256"]
    assert verify(theirs["receipt"], _public_key(env)) == []


def test_the_public_key_route(env: dict[str, Any]) -> None:
    body = env["client"].get("/v1/receipts/public-key").json()
    st = env["app"].state.antal
    assert body["algorithm"] == "Ed25519" and body["key_id"] == st.signer.key_id
    assert len(base64.b64decode(body["public_key"])) == 32
    pem = load_public_key(body["pem"])
    assert load_public_key(body["public_key"]) == pem == st.signer.public
    # the private half is nowhere in what the server says
    assert "PRIVATE" not in json.dumps(body) and "PRIVATE" not in repr(st.signer)


def test_the_signing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing-key.pem"
    made = Signer.from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and b"PRIVATE KEY" in path.read_bytes()
    assert Signer.from_file(path).key_id == made.key_id  # made once, kept
    os.chmod(path, 0o644)
    with pytest.raises(SigningKeyError, match="may be read by others"):
        Signer.from_file(path)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    bad.chmod(0o600)
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        Signer.from_file(bad)
    # the default: beside a SQLite store; a server restarted on it signs with the same key
    assert default_signing_key(str(tmp_path / "s.sqlite")) == tmp_path / "s.sqlite.signing-key.pem"


def test_a_restarted_server_keeps_its_key(env: dict[str, Any]) -> None:
    again = create_app(env["settings"])
    assert again.state.antal.signer.key_id == env["app"].state.antal.signer.key_id
    assert default_signing_key(env["settings"].store).exists()


# ---- the command line -------------------------------------------------------------------------


def _cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in [k for k in os.environ if k.startswith("ANTAL_")]:
        monkeypatch.delenv(k)


def test_cli_quote_count_and_verify(env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    _cli_env(monkeypatch)
    store = tmp_path / "cli.sqlite"
    f = tmp_path / "t2d.cohort"
    f.write_text(E11)
    base = ["count", str(f), "--config", str(env["cfg"]), "--store", str(store)]
    # a quote on a store that does not exist yet: the price of a first count, nothing made
    r = runner.invoke(cli, [*base, "--quote", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["epsilon"] == 100.0 and not store.exists()
    r = runner.invoke(cli, [*base, "--quote"])
    assert "would cost ε 100" in r.stdout and "Nothing was read or charged" in r.stdout
    r = runner.invoke(cli, [*base, "--budget", "500", "--json"])
    assert r.exit_code == 0, r.output
    answer = json.loads(r.stdout)
    assert answer["count"] == 200 and answer["receipt"]["project"] == "local"
    key_file = default_signing_key(str(store))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    r = runner.invoke(cli, [*base, "--quote", "--json"])
    assert json.loads(r.stdout)["epsilon"] == 0 and json.loads(r.stdout)["budget_left_after"] == 400
    r = runner.invoke(cli, [*base, "--quote", "--exact"])
    assert r.exit_code == 2
    saved = tmp_path / "answer.json"
    saved.write_text(json.dumps(answer))
    # the store's own key, then the public key as a file
    r = runner.invoke(cli, ["receipt", "verify", str(saved), "--store", str(store)])
    assert r.exit_code == 0 and "answer and receipt valid: project local" in r.stdout, r.output
    pem = tmp_path / "public.pem"
    pem.write_text(json.dumps({"public_key": base64.b64encode(
        Signer.from_file(key_file).public.public_bytes_raw()).decode()}))  # fmt: skip
    only = tmp_path / "receipt.json"
    only.write_text(json.dumps(answer["receipt"]))
    r = runner.invoke(cli, ["receipt", "verify", str(only), "--public-key", str(pem)])
    assert r.exit_code == 0 and "receipt valid" in r.stdout, r.output
    # tampered: exit 1 and why
    for edit in ({"count": 201}, {"receipt": {**answer["receipt"], "purpose": "kommersiell"}}):
        saved.write_text(json.dumps({**answer, **edit}))
        r = runner.invoke(cli, ["receipt", "verify", str(saved), "--store", str(store)])
        assert r.exit_code == 1 and "receipt not valid" in r.output, r.output
    r = runner.invoke(cli, ["receipt", "verify", str(tmp_path / "nosuch.json"), "--store", str(store)])  # fmt: skip
    assert r.exit_code == 2 and "no such file" in r.output
    r = runner.invoke(cli, ["receipt", "verify", str(only), "--store", str(tmp_path / "none.sqlite")])  # fmt: skip
    assert r.exit_code == 2 and "no signing key" in r.output
    assert not default_signing_key(str(tmp_path / "none.sqlite")).exists()  # nothing made


def test_cli_verify_against_a_running_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    if str(ROOT) not in sys.path:  # `bench` is not an installed package
        sys.path.insert(0, str(ROOT))
    from bench.load import serve, server_env

    cfg = _installation(tmp_path)
    store = tmp_path / "store.sqlite"
    f = tmp_path / "c.cohort"
    f.write_text(I21)
    _cli_env(monkeypatch)
    r = runner.invoke(cli, ["count", str(f), "--config", str(cfg), "--store", str(store),
                            "--budget", "500", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    saved = tmp_path / "answer.json"
    saved.write_text(r.stdout)
    data = tmp_path / "data"
    with serve(data, store, env=server_env()) as url:  # the same store: the same key
        ok = runner.invoke(cli, ["receipt", "verify", str(saved), "--url", url])
        assert ok.exit_code == 0, ok.output
        other = Signer.ephemeral()
        forged = json.loads(saved.read_text())
        forged["receipt"] = other.sign({k: v for k, v in forged["receipt"].items()
                                        if k not in ("key_id", "signature")})  # fmt: skip
        saved.write_text(json.dumps(forged))
        bad = runner.invoke(cli, ["receipt", "verify", str(saved), "--url", url + "/v1/receipts/public-key"])  # fmt: skip
        assert bad.exit_code == 1 and "names signing key" in bad.output


# ---- issue 22, 5: a receipt binds the question (its hash, title and labels) and every value --

BROAD = 'cohort "T2D"\nindex first diagnosis E11* between 2019-01-01 and 2021-12-31\ninclude "Any age": age 0..120\n'  # fmt: skip
STRICT = 'cohort "T2D, strict"\nindex first diagnosis E11* between 2019-01-01 and 2021-12-31\ninclude "HbA1c over 70, age 40-45": age 40..45\n'  # fmt: skip
# the broad cohort's meaning under the strict one's names: the same query hash
BROAD_NAMED_STRICT = BROAD.replace('"T2D"', '"T2D, strict"').replace(
    '"Any age"', '"HbA1c over 70, age 40-45"'
)


@pytest.fixture(scope="module")
def named(env: dict[str, Any]) -> dict[str, Any]:
    """Project `names`: the broad cohort released (200 persons), its public key as a file."""
    st = env["app"].state.antal
    st.store.create_project("names", "Names", "forskning", 1000.0, ("npr",))
    st.accounts.add_member("names", "res")
    broad = _count(env, BROAD, pid="names")
    assert broad["count"] == 200 and not broad["stored_answer"]
    key = env["root"] / "public-key.json"
    key.write_text(env["client"].get("/v1/receipts/public-key").text)
    return {"broad": broad, "key": key}


def _verify(env: dict[str, Any], named: dict[str, Any], tmp_path: Path, doc: Any,
            cohort: str | None = None) -> Any:  # fmt: skip
    """`antal receipt verify` of `doc` (with `cohort` as a .cohort file)."""
    f = tmp_path / "answer.json"
    f.write_text(json.dumps(doc), encoding="utf-8")
    args = ["receipt", "verify", str(f), "--public-key", str(named["key"])]
    if cohort is not None:
        c = tmp_path / "question.cohort"
        c.write_text(cohort, encoding="utf-8")
        args += ["--cohort", str(c), "--config", str(env["cfg"]), "--store", env["settings"].store]
    return runner.invoke(cli, args)


def test_a_relabelled_answer_is_refused(env: dict[str, Any], named: dict[str, Any],
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The attack: a broad cohort's released answer shown with a strict cohort's labels."""
    _cli_env(monkeypatch)
    broad = named["broad"]
    relabelled = json.loads(json.dumps(broad))
    relabelled["attrition"][1]["label"] = "HbA1c over 70, age 40-45"
    accepted = 0
    # the relabelled answer alone, with the strict cohort, with the broad meaning under the
    # strict names (the same query hash): each refused, saying what does not match
    for cohort, why in [
        (None, "step labels are not those its receipt was signed for: step 1 is "
               "'HbA1c over 70, age 40-45' in the answer, 'Any age' in the receipt"),
        (STRICT, "the cohort is not the question the receipt was signed for: its query hash"),
        (BROAD_NAMED_STRICT, "the cohort's title is 'T2D, strict', the receipt was signed for 'T2D'"),
    ]:  # fmt: skip
        out = _verify(env, named, tmp_path, relabelled, cohort)
        accepted += out.exit_code == 0
        assert out.exit_code == 1 and "receipt not valid" in out.output, out.output
        assert why in " ".join(out.output.split()), out.output
    # the untouched answer asked with another cohort: refused too, answer and receipt alone
    for doc in (broad, broad["receipt"]):
        for cohort in (STRICT, BROAD_NAMED_STRICT):
            out = _verify(env, named, tmp_path, doc, cohort)
            accepted += out.exit_code == 0
            assert out.exit_code == 1 and "receipt not valid" in out.output, out.output
    out = _verify(env, named, tmp_path, broad, BROAD_NAMED_STRICT)
    assert "the cohort's step labels are not those the receipt was signed for: step 1 is " \
        "'HbA1c over 70, age 40-45' in the cohort, 'Any age' in the receipt" in " ".join(out.output.split())  # fmt: skip
    assert accepted == 0  # the figure for issue 22: relabelled receipts accepted
    r = broad["receipt"]
    assert r["version"] == 3 and r["title"] == "T2D" and r["labels"] == ["Index event", "Any age"]
    # the untouched answer with its own cohort (spelled otherwise: a comment) is valid
    for doc in (broad, broad["receipt"]):
        ok = _verify(env, named, tmp_path, doc, "# the same question\n" + BROAD)
        assert ok.exit_code == 0, ok.output
        assert "valid, the question of" in ok.output and "receipt version 3" in ok.output
    # a cohort that does not parse: the compiler's file:line:col, exit 1, nothing checked
    bad = _verify(env, named, tmp_path, broad, "index first diagnosis E11*\nbogus\n")
    assert bad.exit_code == 1 and "question.cohort:2:1" in bad.output, bad.output


def test_every_value_shown_is_signed(env: dict[str, Any], tmp_path: Path) -> None:
    """Each table's cells, their names and the title are bound: a version 1 receipt covered
    the first table's codes and counts only."""
    st = env["app"].state.antal
    key = _public_key(env)
    two = "index first diagnosis E11* between 2019-01-01 and 2021-12-31\nreport by sex\nreport by region\n"  # fmt: skip
    a = _count(env, two, pid="names")
    assert [t["dims"] for t in a["tables"]] == [["sex"], ["region"]]
    assert uc.verify_receipt(a, key) == []

    def shown(d: dict[str, Any], table: int) -> dict[str, Any]:
        return next(c for c in d["tables"][table]["breakdown"] if c["count"] is not None)

    edits = [
        lambda d: shown(d, 1).update(count=shown(d, 1)["count"] + 1),
        lambda d: shown(d, 1).update(region_name="Uppsala län"),
        lambda d: shown(d, 0).update(sex="other"),
        lambda d: d["breakdown"][0].update(sex="other"),
        lambda d: d["attrition"][0].update(display="999"),
    ]
    for edit in edits:
        changed = json.loads(json.dumps(a))
        edit(changed)
        assert changed != a
        assert uc.verify_receipt(changed, key) == [
            "the answer's released values are not those its receipt was signed for"
        ]
    # the cohort, checked as counting checks it, against the receipt
    v = uc.validate(two, st.catalog)
    assert uc.verify_receipt(a, key, v) == []
    titled = uc.validate('cohort "Another name"\n' + two, st.catalog)
    assert titled.query_hash == v.query_hash  # a title is a name: the same question hash
    assert uc.verify_receipt(a, key, titled) == [
        "the cohort's title is 'Another name', the receipt was signed for None"
    ]


def test_the_same_answer_under_other_names_has_its_own_receipt(
    env: dict[str, Any], named: dict[str, Any]
) -> None:
    """A stored answer asked with other labels: free, the same values, a receipt for those
    labels (made then and kept); the first names keep their first receipt."""
    first = named["broad"]
    other = _count(env, BROAD_NAMED_STRICT, pid="names")
    assert other["stored_answer"] and other["epsilon_charged"] == 0
    assert [s["count"] for s in other["attrition"]] == [s["count"] for s in first["attrition"]]
    r = other["receipt"]
    assert (r["title"], r["labels"]) == ("T2D, strict", ["Index event", "HbA1c over 70, age 40-45"])  # fmt: skip
    assert r["answer_key"] == first["receipt"]["answer_key"]
    assert r["audit_seq"] > first["receipt"]["audit_seq"] and r["epsilon"] == first["receipt"]["epsilon"]  # fmt: skip
    key = _public_key(env)
    assert uc.verify_receipt(other, key) == [] and uc.verify_receipt(first, key) == []
    assert _count(env, BROAD_NAMED_STRICT, pid="names")["receipt"] == r
    assert _count(env, "# again\n" + BROAD, pid="names")["receipt"] == first["receipt"]
    # the project's query list shows the first receipt it was given
    listed = env["client"].get("/v1/projects/names/queries", headers=h(env)).json()
    mine = next(q for q in listed if q["answer_key"] == r["answer_key"])
    assert mine["receipt"] == first["receipt"]


def test_a_version_1_receipt_still_verifies_as_what_it_is(
    env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written before issue 22 holds version 1 receipts: they are listed and verify,
    with a note that they do not bind the labels; the answer asked again gets a version 2."""
    _cli_env(monkeypatch)
    st = env["app"].state.antal
    st.store.create_project("old", "Old", "forskning", 1000.0, ("npr",))
    st.accounts.add_member("old", "res")
    cohort = "index first diagnosis E11* between 2019-02-01 and 2021-12-31\n"
    project = st.store.project("old")
    prepared = uc.prepare_count(cohort, st.installation, st.catalog, project, approved_only=True)
    key = st.gate.key(prepared.query_hash, st.installation.release, "forskning", st.catalog.version())  # fmt: skip
    old = ReleasedCount(150, 140, 160, 10).to_json()
    released = json.dumps({"params": st.params.as_dict(), "steps": [old], "dims": [], "cells": [],
                           "epsilon": 50.0, "scales": {"attrition": 1.0}})  # fmt: skip
    _store_old(st.store, "old", key, released, 50.0)
    v1 = st.signer.sign({
        "version": 1, "project": "old", "purpose": "forskning", "query_hash": prepared.query_hash,
        "data_release": st.installation.release, "answer_key": key, "privacy": st.params.as_dict(),
        "epsilon": 50.0, "released_sha256": receipts.released_digest([old], [], []),
        "time": "2025-01-01T00:00:00+00:00", "audit_seq": 1,
    })  # fmt: skip
    with st.store.transaction() as tx:
        tx.execute("INSERT INTO receipts (project_id, answer_key, receipt, created) VALUES (%s, %s, %s, %s)",
                   ("old", key, json.dumps(v1), "2025-01-01T00:00:00+00:00"))  # fmt: skip
    pub = _public_key(env)
    listed = env["client"].get("/v1/projects/old/queries", headers=h(env)).json()
    assert listed[0]["receipt"] == v1 and verify(listed[0]["receipt"], pub) == []
    # an answer of it in the shape counts have, with the version 1 receipt: valid, with a note
    answer = {**old, "attrition": [{"label": "anything", **old}], "dims": [], "breakdown": [],
              "receipt": v1}  # fmt: skip
    assert uc.verify_receipt(answer, pub) == []
    named_file = tmp_path / "k.json"
    named_file.write_text(env["client"].get("/v1/receipts/public-key").text)
    f = tmp_path / "old.json"
    f.write_text(json.dumps(answer))
    c = tmp_path / "old.cohort"
    c.write_text(cohort)
    r = runner.invoke(cli, ["receipt", "verify", str(f), "--public-key", str(named_file),
                            "--cohort", str(c), "--config", str(env["cfg"]),
                            "--store", env["settings"].store])  # fmt: skip
    assert r.exit_code == 0 and "receipt version 1" in r.output, r.output
    assert "note: a version 1 receipt" in r.output
    assert "not the title, the step labels or the names" in " ".join(r.output.split())
    # its counts edited: refused as before
    f.write_text(json.dumps({**answer, "attrition": [{"label": "x", **old, "count": 151}]}))
    r = runner.invoke(cli, ["receipt", "verify", str(f), "--public-key", str(named_file)])
    assert r.exit_code == 1, r.output
    # asked again: the stored answer with a version 2 receipt of its names, listed from then on
    again = _count(env, cohort, pid="old")
    assert again["stored_answer"] and again["receipt"]["version"] == 3
    assert again["receipt"]["labels"] == ["Index event"] and verify(again["receipt"], pub) == []
    listed = env["client"].get("/v1/projects/old/queries", headers=h(env)).json()
    assert listed[0]["receipt"] == again["receipt"]
    # a receipt of a version antal does not know
    assert verify({**v1, "version": 4}, pub) == ["the receipt's version is 4, not one antal knows (1, 2, 3)"]  # fmt: skip
