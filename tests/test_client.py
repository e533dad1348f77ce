"""The Python client against a real `antal serve` on loopback, and the quickstart notebook.

The server runs in a subprocess over a small synthetic extract; users, projects and tokens
are made with the `antal admin` command line on the same store (some before the server
starts, some while it runs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from antal.api.client import (
    AuthError,
    BudgetExceededError,
    Client,
    ClientError,
    CohortInvalidError,
    ConnectionFailedError,
    CountResult,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
)
from antal.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOK = EXAMPLES / "antal_quickstart.ipynb"
T2D_FILE = EXAMPLES / "t2d_metformin.cohort"
APPROVED = ("npr", "lmr", "rekvisition", "ndr")


def _antal() -> list[str]:
    """The `antal` console script of this interpreter's environment."""
    here = Path(sys.executable).parent / "antal"
    found = str(here) if here.exists() else shutil.which("antal")
    if not found:
        pytest.fail("the `antal` command is not installed: pip install -e '.[test]'")
    return [found]


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`antal serve` in a subprocess, and `antal admin` on its store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.store = root / "store.sqlite"
        self.log = root / "server.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANTAL_")}
        # high limits: the tests and the notebook send many requests; 429 is tested apart
        self.env.update(
            ANTAL_REQUESTS_PER_MINUTE="100000", ANTAL_COUNTS_PER_MINUTE="100000", ANTAL_THREADS="2"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.tokens: dict[str, str] = {}

    def admin(self, *args: str) -> str:
        r = subprocess.run(
            [*_antal(), "admin", *args, "--store", str(self.store)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, f"antal admin {' '.join(args)}: {r.stderr}"
        return r.stdout.strip()

    def user(self, uid: str) -> str:
        self.tokens[uid] = self.admin("create-user", uid)
        assert self.tokens[uid].startswith("antal_"), self.tokens[uid]
        return self.tokens[uid]

    def project(
        self, pid: str, member: str, budget: float, *registers: str, purpose: str = "forskning"
    ) -> None:
        regs = [a for r in registers for a in ("--register", r)]
        self.admin("create-project", pid, "--budget", str(budget), "--member", member,
                   "--purpose", purpose, *regs)  # fmt: skip

    def start(self) -> None:
        for _attempt in range(3):  # another process may take the free port first
            port = _free_port()
            with self.log.open("wb") as log:
                self.proc = subprocess.Popen(
                    [*_antal(), "serve", "--data", str(self.data), "--store", str(self.store),
                     "--port", str(port)],
                    env=self.env, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            self.url = f"http://127.0.0.1:{port}"
            if self._wait_healthy(timeout=60):
                return
        pytest.fail(f"antal serve did not start:\n{self.log.read_text()}")

    def _wait_healthy(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # exited (e.g. the port was taken)
                return False
            with contextlib.suppress(httpx.TransportError):
                r = httpx.get(f"{self.url}/healthz", timeout=2)
                if r.status_code == 200 and r.json()["status"] == "ok":
                    return True
            time.sleep(0.2)
        self.stop()
        return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("client"))
    generate(3000, 1, srv.data)
    # before the server starts ...
    srv.user("res")
    srv.project("t2d", "res", 10.0, *APPROVED)
    srv.start()
    try:
        # ... and while it runs: each request reads the store afresh
        srv.user("poor")
        srv.project("tiny", "poor", 1.0, "npr")
        srv.user("nb")
        # another purpose: stored answers are shared by projects of one purpose, and the
        # notebook's first count of the example must be fresh whatever ran before it
        srv.project("nb", "nb", 10.0, *APPROVED, purpose="kommersiell")
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, server.tokens["res"], timeout=60) as c:
        yield c


# ---- against the real server -------------------------------------------------------------------


def test_me_search_and_catalog(client: Client) -> None:
    me = client.me()
    assert me["id"] == "res" and me["role"] == "researcher" and me["projects"] == ["t2d"]
    hits = client.search("hba1c")
    assert isinstance(hits, pd.DataFrame) and len(hits) > 0
    assert list(hits.columns) == ["kind", "register_id", "name", "description", "code_system"]
    assert ((hits["kind"] == "variable") & (hits["register_id"] == "ndr")).any()
    assert ((hits["kind"] == "register") & (hits["register_id"] == "ndr")).any()
    codes = client.search("metformin")
    assert ((codes["kind"] == "code") & (codes["name"] == "A10BA02")).any()
    regs = client.registers()
    assert {"npr", "lmr", "ndr", "population"} <= set(regs["id"])
    assert any(v["name"] == "hba1c" for v in client.register("ndr")["variables"])
    with pytest.raises(NotFoundError) as e:
        client.register("nrd")
    assert e.value.status == 404 and e.value.code == "not_found"
    assert "did you mean 'ndr'?" in e.value.message


def test_validate_ok_and_bad(client: Client) -> None:
    ok = client.validate(T2D_FILE.read_text())
    assert ok.ok and ok and len(ok.query_hash or "") == 64
    assert ok.steps[0] == "Index event" and "ndr" in ok.registers
    assert ok.raise_for_errors() is ok
    assert "Validation: ok" in repr(ok)
    bad = client.validate("index first diagnosis E11\ninclude nrd.x > 1")
    assert not bad.ok and bad.query_hash is None
    d = bad.diagnostics[0]
    assert (d["line"], d["column"], d["hint"]) == (2, 9, "did you mean 'ndr'?")
    assert "include nrd.x > 1" in repr(bad)  # the source line, with a caret under it
    with pytest.raises(CohortInvalidError) as e:
        bad.raise_for_errors()
    assert str(e.value) == "2:9: unknown register 'nrd' - did you mean 'ndr'?"
    assert e.value.diagnostics == bad.diagnostics and e.value.code == "cohort_invalid"
    assert "        ^" in e.value.format()


def test_compile_and_its_cohort_errors(client: Client) -> None:
    assert "GROUPING SETS" in client.compile(T2D_FILE, dialect="postgres")
    with pytest.raises(CohortInvalidError) as e:
        client.compile("index first diagnosis e11")
    assert e.value.status == 400 and e.value.diagnostics[0]["column"] == 23
    with pytest.raises(CohortInvalidError) as e:  # counting a bad cohort: never reaches the data
        client.count("t2d", "index first diagnosis A10BA02")
    assert e.value.diagnostics[0]["hint"] == "it looks like an ATC code: use `drug`"


def test_count_frames_stored_answer_and_budget(client: Client) -> None:
    before = client.budget("t2d")
    res = client.count("t2d", T2D_FILE.read_text())
    assert isinstance(res, CountResult) and not res.stored_answer
    assert res.epsilon_charged > 0
    after = client.budget("t2d")
    assert after.spent == pytest.approx(before.spent + res.epsilon_charged)
    assert after.left == pytest.approx(before.left - res.epsilon_charged) == res.budget_left
    assert after.total == before.total == 10.0
    att = res.attrition
    columns = ["count", "suppressed", "lower", "upper", "display"]
    assert list(att.columns) == ["step", "label", *columns]
    # the index and the example's eight steps
    assert list(att["step"]) == list(range(8)) and att["label"][0] == "Index event"
    steps = res.raw["attrition"]
    for (_, row), s in zip(att.iterrows(), steps, strict=True):  # a number, or <NA> and "<10"
        assert row["suppressed"] == s["suppressed"] == (s["count"] is None)
        if row["suppressed"]:
            assert row["display"] == "<10" and pd.isna(row["count"]) and pd.isna(row["lower"])
        else:
            assert row["lower"] <= row["count"] <= row["upper"]
            assert row["display"] == str(row["count"]) == str(s["count"])
    assert [str(att[c].dtype) for c in ("count", "lower", "upper")] == ["Int64"] * 3
    assert att["count"][0] == steps[0]["count"] > 10  # 3000 persons: the index step is shown
    assert res.count == steps[-1]["count"] and res.display == steps[-1]["display"]
    assert res.attrition_frame().equals(att)
    bd = res.breakdown
    assert list(bd.columns) == ["region", "region_name", "sex", *columns]
    assert set(bd["sex"]) == {"female", "male", None} and len(bd) == 3 * (
        21 + 1
    )  # 21 län and unknown
    # a program can add the counts up: the cells shown, by hand from the JSON
    shown = [c["count"] for c in res.raw["breakdown"] if not c["suppressed"]]
    assert bd["count"].sum() == sum(shown) and str(bd["count"].dtype) == "Int64"
    assert int(bd["suppressed"].sum()) == len(res.raw["breakdown"]) - len(shown)
    assert res.receipt["purpose"] == "forskning" and len(res.receipt["answer_key"]) == 64
    assert res.receipt["project"] == "t2d" and res.receipt["privacy"]["threshold"] == 10
    text = repr(res)
    assert "Index event" in text and "about " in text and "ε charged" in text
    assert "<table>" in res._repr_html_()
    # the same question again, spelled differently: the stored answer, free
    again = client.count("t2d", T2D_FILE.read_text().replace("@t2d", "E11*"))
    assert again.stored_answer and again.epsilon_charged == 0
    assert again.attrition.equals(att) and again.breakdown.equals(bd)
    assert "stored answer, nothing charged" in repr(again)
    assert again.receipt == res.receipt  # the original receipt, signature and all
    assert client.budget("t2d") == after
    qs = client.queries("t2d")
    assert res.receipt["answer_key"] in set(qs["answer_key"])
    row = qs[qs["answer_key"] == res.receipt["answer_key"]].iloc[0]
    assert row["title"] == "New metformin users with type 2 diabetes, uncontrolled on it, 40-75"
    assert (pd.isna(row["count"]) and res.count is None) or row["count"] == res.count
    assert row["display"] == res.display and row["receipt"] == res.receipt


def test_quote_says_the_cost_and_charges_nothing(client: Client) -> None:
    text = (
        'cohort "quoted"\nindex first diagnosis I21* between 2016-01-01 and 2020-12-31\n'
        "report by sex\n"
    )
    before = client.budget("t2d")
    q = client.quote("t2d", text)
    # a breakdown: ε for the attrition and ε again for the table (budget route: the prices)
    assert q.epsilon == before.epsilon_per_query * 2 and not q.stored_answer and q.affordable
    assert q.budget_left == before.left
    assert q.budget_left_after == pytest.approx(before.left - q.epsilon)
    assert client.budget("t2d") == before  # nothing charged
    assert q.answer_key not in set(client.queries("t2d")["answer_key"])  # nothing released
    res = client.count("t2d", text)
    assert res.receipt["answer_key"] == q.answer_key and res.epsilon_charged == q.epsilon
    again = client.quote("t2d", text.replace("quoted", "asked again"))  # asked before: free
    assert again.stored_answer and again.epsilon == 0 and again.budget_left_after == res.budget_left
    assert "nothing (stored answer)" in repr(again)
    key = client.public_key()
    assert key["algorithm"] == "Ed25519" and key["key_id"] == res.receipt["key_id"]


def test_report_and_plot(client: Client) -> None:
    """`Client.report`: the HTML page of the project's released answer (free after the
    count); `plot()`: the funnel and the breakdown as an Altair chart of the same values."""
    text = 'cohort "T2D by sex"\nindex first diagnosis E11*\ninclude age 40..75\nreport by sex\n'
    res = client.count("t2d", text)
    left = client.budget("t2d").left
    page = client.report("t2d", text)
    assert client.budget("t2d").left == left  # the stored answer: nothing charged
    assert page.startswith("<!DOCTYPE html>") and '<h1 id="question">T2D by sex</h1>' in page
    assert res.receipt["answer_key"] in page and page.count("<svg") == 2  # funnel, by sex
    assert "<script" not in page
    spec = res.plot().to_dict()
    funnel, by_sex = (sub["data"]["values"] for sub in spec["vconcat"])
    assert [r["label"] for r in funnel] == [
        f"{i}. {s}" for i, s in enumerate(res.attrition["label"])
    ]
    assert [r["value"] for r in funnel] == [
        None if pd.isna(n) else int(n) for n in res.attrition["count"]
    ]
    shown = res.breakdown[~res.breakdown["suppressed"]]
    assert [r["value"] for r in by_sex] == [int(n) for n in shown["count"]]
    with pytest.raises(InvalidRequestError, match="forecast_months"):
        client.report("t2d", text, forecast_months=0)


def test_report_with_an_enrolment_plan(client: Client) -> None:
    """`Client.report(..., plan={...})` takes `Client.plan`'s arguments: the report's plan
    section holds the figures `Client.plan` gives of the same stored answer, at no charge."""
    text = 'cohort "Sites"\nindex first npr between 2015-01-01 and 2023-12-31\nreport by hospital\n'
    ask = {"target": 30, "sites": ["01001", "12001"], "start": dt.date(2026, 1, 1),
           "site_starts": {"12001": dt.date(2026, 3, 1)}, "capture": 0.5, "by": "2029-12-31"}  # fmt: skip
    client.count("t2d", text)
    left = client.budget("t2d").left
    page = client.report("t2d", text, plan=ask)
    plan = client.plan("t2d", text, **ask)
    assert client.budget("t2d").left == left  # both from the stored answer
    assert plan["answer"]["stored_answer"] and plan["sites"][1]["start"] == "2026-03-01"
    tt = plan["time_to_target"]
    assert '<section id="plan">' in page
    assert f"median <b>{tt['median']}</b> ({tt['median_months']:.1f} months)" in page
    for s in plan["sites"]:
        assert f"<td>{s['site']}</td>" in page and f"<td>{s['start']}</td>" in page
    with pytest.raises(TypeError, match="colour"):
        client.report("t2d", text, plan={**ask, "colour": "red"})


def test_count_with_the_builder_and_ir(client: Client) -> None:
    from antal.engine import ir
    from antal.engine.builder import Cohort, age, diagnosis, drug, first

    built = (
        Cohort("T2D on metformin, by sex")
        .index(first(diagnosis("E11*")).between("2016-01-01", "2023-12-31"))
        .include(age(40, 75), "Age 40-75 at index")
        .include(drug("A10BA02").within(0, 365, "after"), "Metformin within a year")
        .report("sex")
    )
    assert client.validate(built).ok
    res = client.count("t2d", built)
    assert list(res.attrition["label"]) == [
        "Index event",
        "Age 40-75 at index",
        "Metformin within a year",
    ]
    assert list(res.breakdown.columns) == [
        "sex",
        "count",
        "suppressed",
        "lower",
        "upper",
        "display",
    ]
    # the same cohort as a JSON IR dict, and as an IR object: the stored answer
    via_dict = client.count("t2d", ir.to_json(built.ir))
    via_ir = client.count("t2d", built.ir)
    assert via_dict.stored_answer and via_ir.stored_answer
    assert via_dict.attrition.equals(res.attrition)
    with pytest.raises(TypeError, match="a cohort is"):
        client.count("t2d", 42)  # type: ignore[arg-type]


def test_forbidden_and_not_found(client: Client, server: Server) -> None:
    with pytest.raises(ForbiddenError) as e:
        client.count("t2d", 'index first diagnosis C50*\ninclude nkbc.her2 = "positiv"')
    assert e.value.status == 403 and e.value.code == "register_not_approved"
    assert e.value.details == {"registers": ["nkbc"], "approved": sorted(APPROVED)}
    assert not isinstance(e.value, BudgetExceededError)
    # another's project looks the same as none at all
    for project in ("tiny", "nosuch"):
        with pytest.raises(NotFoundError):
            client.budget(project)
    with pytest.raises(InvalidRequestError) as e2:
        client.budget("BAD!")
    assert e2.value.status == 422 and e2.value.code == "invalid_request"


def test_budget_exhaustion(server: Server) -> None:
    with Client(server.url, server.tokens["poor"]) as c:
        first = c.count("tiny", "index first diagnosis E11*\nreport by sex")
        assert first.epsilon_charged == 1.0 and first.budget_left == 0.0
        with pytest.raises(BudgetExceededError) as e:
            c.count("tiny", "index first diagnosis E10*")
        assert e.value.status == 403 and e.value.code == "budget_exceeded"
        assert e.value.left == 0.0 and e.value.needed == 0.5
        assert isinstance(e.value, ForbiddenError) and isinstance(e.value, ClientError)
        b = c.budget("tiny")
        assert (b.total, b.spent, b.left) == (1.0, 1.0, 0.0)
        # a stored answer is still free when the budget is spent
        assert c.count("tiny", "index first diagnosis E11*\nreport by sex").stored_answer


def test_auth_and_connection_errors(server: Server) -> None:
    with Client(server.url, "antal_not_a_token") as c, pytest.raises(AuthError) as e:
        c.me()
    assert e.value.status == 401 and e.value.code == "unauthenticated"
    dead = f"http://127.0.0.1:{_free_port()}"
    with Client(dead, "x", timeout=5) as c, pytest.raises(ConnectionFailedError) as e2:
        c.me()
    assert e2.value.status is None and "antal serve" in e2.value.message


def test_client_reads_the_environment(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTAL_URL", server.url + "/")
    monkeypatch.setenv("ANTAL_TOKEN", server.tokens["res"])
    with Client() as c:
        assert c.me()["id"] == "res"
    monkeypatch.delenv("ANTAL_TOKEN")
    with pytest.raises(ValueError, match="antal admin create-user"):
        Client()


# ---- error mapping and 429, with a mock transport -----------------------------------------------


def _mock(*responses: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return httpx.MockTransport(handler), seen


def _err(status: int, code: str, details: Any = None, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code}!", "details": details}}
    return httpx.Response(status, json=body, headers=headers)


def test_rate_limited_with_and_without_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    t, seen = _mock(_err(429, "rate_limited", {"limit_per_minute": 5}, **{"Retry-After": "7"}))
    with Client("http://antal.test", "tok", transport=t) as c, pytest.raises(RateLimitedError) as e:
        c.me()
    assert e.value.retry_after == 7.0 and e.value.status == 429 and slept == []
    assert seen[0].headers["authorization"] == "Bearer tok"
    me = httpx.Response(200, json={"id": "u"})
    t, seen = _mock(_err(429, "rate_limited", **{"Retry-After": "3"}), me)
    with Client("http://antal.test", "tok", transport=t, retry=True) as c:
        assert c.me() == {"id": "u"}
    assert slept == [3.0] and len(seen) == 2
    # retried once only
    t, seen = _mock(*(_err(429, "rate_limited", **{"Retry-After": "1"}) for _ in range(2)))
    c = Client("http://antal.test", "tok", transport=t, retry=True)
    with c, pytest.raises(RateLimitedError):
        c.me()
    assert len(seen) == 2


def test_other_error_answers() -> None:
    cases: list[tuple[httpx.Response, type[ClientError], str]] = [
        (_err(400, "breakdown_too_fine", {"cells": 9999, "limit": 5000}), InvalidRequestError, "breakdown_too_fine"),
        (_err(403, "forbidden"), ForbiddenError, "forbidden"),
        (_err(500, "internal"), ClientError, "internal"),
        (httpx.Response(502, text="<html>bad gateway</html>"), ClientError, "http_error"),
    ]  # fmt: skip
    for response, kind, code in cases:
        t, _ = _mock(response)
        with Client("http://antal.test", "tok", transport=t) as c, pytest.raises(kind) as e:
            c.me()
        assert type(e.value) is kind and e.value.code == code
        assert e.value.status == response.status_code


# ---- the quickstart notebook ----------------------------------------------------------------------


def test_quickstart_notebook_is_committed_without_outputs() -> None:
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_quickstart_notebook_runs(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("ANTAL_URL", server.url)
    monkeypatch.setenv("ANTAL_TOKEN", server.tokens["nb"])
    monkeypatch.setenv("ANTAL_PROJECT", "nb")
    # the kernel writes its profile and connection files here, not in the home directory
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb,
        kernel_name="python3",  # ipykernel's own spec, installed with it in this environment
        timeout=120,
        startup_timeout=120,
        resources={"metadata": {"path": str(EXAMPLES)}},  # the notebook's working directory
    ).execute()  # raises CellExecutionError on the first failing cell
    outputs = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", out
            outputs.append(out.get("text", "") + str(out.get("data", {}).get("text/plain", "")))
    text = "\n".join(outputs)
    assert "2:16: unknown register 'nrd' - did you mean 'ndr'?" in text, text
    assert "Index event" in text and "Insulin in the 2 years after" in text  # the attrition
    assert "stored answer: True | ε charged: 0.0" in text  # the repeat
    assert "T2D on metformin, by sex" in text  # the builder's cohort, in the queries
    assert "stored answer: False | ε charged: 1.0" in text  # the first count of the example
    with Client(server.url, server.tokens["nb"]) as c:  # two fresh counts, one repeat
        assert len(c.queries("nb")) == 2 and c.budget("nb").spent == 2.0
