"""A budget a sponsor can work with (issue 23, item 6): the quote says how many more asks
of this shape the budget allows; an exhausted budget's refusal names the way forward; an
admin raises a budget (never below what was spent), audited, from the command line and the
HTTP API."""

from __future__ import annotations

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
from antal.api.settings import Settings
from antal.privacy import BudgetExceeded, Gate, PrivacyParams, TrueCounts
from antal.privacy.mechanism import TrueTable


def _true() -> TrueCounts:
    return TrueCounts(("i", "s"), (900, 890), tables=(
        TrueTable(("d",), {("a",): 445, ("b",): 445}, [("a",), ("b",)]),))  # fmt: skip


def _ask(gate: Gate, qhash: str) -> Any:
    return gate.answer("p", "u", qhash, qhash, "rel", ("i", "s"), ("d",), _true)


def test_the_quote_counts_the_asks_left_and_the_refusal_names_the_way_forward(
    tmp_path: Path,
) -> None:
    # opened as every command opens it: with the installation's key (its log is signed)
    store = uc.open_store(Settings(store=str(tmp_path / "s.sqlite")))
    store.create_project("p", "t", "forskning", 2.5)
    gate = Gate(store, PrivacyParams(epsilon=0.5))
    q = gate.quote("p", "h1", "rel", has_breakdown=True)
    # an ask with tables costs 2ε = 1.0: after this one, 1.5 left, enough for one more
    assert q.epsilon == 1.0 and q.asks_left == 1 and q.to_json()["asks_left"] == 1
    _ask(gate, "h1")
    assert gate.quote("p", "h1", "rel", has_breakdown=True).asks_left is None  # stored: free
    assert gate.quote("p", "h2", "rel", has_breakdown=True).asks_left == 0
    _ask(gate, "h2")
    with pytest.raises(BudgetExceeded) as e:
        _ask(gate, "h3")
    text = str(e.value)
    assert "new project" in text and "antal admin set-budget p EPSILON" in text
    # the admin's way forward: raised, audited with the old and the new budget
    r = CliRunner().invoke(app, ["admin", "set-budget", "p", "4", "--store",
                                 str(tmp_path / "s.sqlite")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "budget ε 4" in r.output and "left ε 2" in r.output
    entry = [a for a in store.audit_entries() if a.action == "set_budget"][-1]
    assert json.loads(entry.query) == {"budget": 4.0, "was": 2.5}
    assert _ask(gate, "h3").epsilon_charged == 1.0
    # never below what was spent (3.0), and a clear message, exit 2
    r = CliRunner().invoke(app, ["admin", "set-budget", "p", "1", "--store",
                                 str(tmp_path / "s.sqlite")])  # fmt: skip
    assert r.exit_code == 2 and "spent ε 3" in r.output and "Traceback" not in r.output
    assert store.project("p").budget == 4.0
    assert store.ledger_problems() == []


def test_an_admin_sets_a_budget_over_http(tmp_path: Path) -> None:
    data = write_extracts({"population": [{"lopnr": 1, "kon": 1, "fodelsear": 1950,
                                           "fodelsemanad": 1, "lan": "18"}]}, tmp_path / "d")  # fmt: skip
    a = create_app(Settings(data=data, store=str(tmp_path / "s.sqlite")))
    acc = a.state.antal.accounts
    acc.create_user("boss", "Boss", "admin")
    acc.create_user("res", "Res", "researcher")
    a.state.antal.store.create_project("p", "t", "forskning", 1.0)
    c = TestClient(a)
    h = {u: {"Authorization": f"Bearer {acc.issue_token(u)}"} for u in ("boss", "res")}
    r = c.put("/v1/admin/projects/p/budget", json={"budget": 5}, headers=h["boss"])
    assert r.status_code == 200 and r.json()["budget"] == 5.0, r.text
    assert c.put("/v1/admin/projects/p/budget", json={"budget": 9},
                 headers=h["res"]).status_code == 403  # fmt: skip
    r = c.put("/v1/admin/projects/nope/budget", json={"budget": 9}, headers=h["boss"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
