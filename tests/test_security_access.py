"""Who reaches the service and the hub, and what they find on disk (issue 22, items 4 and 8).

- Client addresses come from the socket unless the operator names trusted proxies
  (`forwarded_allow_ips`): a rotating `X-Forwarded-For` does not reset the wrong-token
  limit, tested against real `antal serve` and `antal hub serve` processes on 127.0.0.1.
- Wrong tokens are throttled per address and over all addresses; a valid token is still
  served while either limit is reached.
- Store and key files are made 0600; `/docs` is under the web pages' CSP; an unreachable
  PostgreSQL store is a clear error, not a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import write_extracts

from antal.api.accounts import Accounts
from antal.api.federation.store import HubStore

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.load import admin_cli, antal_command, free_port, serve, server_env  # noqa: E402

PER_ADDRESS = 20  # wrong tokens per client address and minute (the default)


def _population(tmp: Path) -> Path:
    rows = [{"lopnr": i, "kon": 1 + i % 2, "fodelsear": 1960 + i % 30, "fodelsemanad": 1,
             "lan": "03"} for i in range(1, 51)]  # fmt: skip
    return write_extracts({"population": rows}, tmp / "data")


def _client(base: str, address: str = "127.0.0.1") -> httpx.Client:
    """A client whose requests leave from `address` (any 127.x.y.z is this machine)."""
    return httpx.Client(base_url=base, timeout=30,
                        transport=httpx.HTTPTransport(local_address=address))  # fmt: skip


def _bearer(token: str, forwarded_for: str | None = None) -> dict[str, str]:
    h = {"Authorization": f"Bearer {token}"}
    if forwarded_for is not None:
        h["X-Forwarded-For"] = forwarded_for
    return h


def _guess(c: httpx.Client, path: str, n: int, *, rotate: bool = False, start: int = 0,
           method: str = "GET", **kw: object) -> list[int]:  # fmt: skip
    """`n` wrong tokens; with `rotate`, each from another claimed address (X-Forwarded-For)."""
    statuses = []
    for i in range(start, start + n):
        forwarded = f"203.0.113.{i % 250 + 1}, 198.51.100.{i % 250 + 1}" if rotate else None
        r = c.request(method, path, headers=_bearer(f"antal_guess{i}", forwarded), **kw)  # type: ignore[arg-type]
        assert r.status_code in (401, 429), r.text[:300]
        if r.status_code == 429:
            assert (
                r.json()["error"]["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
            )
        statuses.append(r.status_code)
    return statuses


@contextlib.contextmanager
def _service(tmp: Path, **env: str) -> Iterator[tuple[str, str]]:
    """`antal serve` (as bench.load starts it) with these settings; (base URL, a token)."""
    store = tmp / "store.sqlite"
    token = admin_cli(store, "create-user", "res", "--role", "researcher")
    with serve(_population(tmp), store, env=server_env(**env)) as base:
        yield base, token


@contextlib.contextmanager
def _hub(tmp: Path, **env: str) -> Iterator[tuple[str, str, str]]:
    """`antal hub serve` on a free loopback port; (base URL, a researcher's token, a node's)."""
    store = str(tmp / "hub.sqlite")
    hub = HubStore(store)
    acc = Accounts(hub.store)
    acc.create_user("anna", "Anna", "researcher")
    token, node_token = acc.issue_token("anna"), hub.add_node("uppsala")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp / "hub.log"
    cmd = [*antal_command(), "hub", "serve", "--store", store, "--port", str(port)]
    with log.open("ab") as f:
        p = subprocess.Popen(cmd, env=server_env(**env), stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            if p.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the hub did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield base, token, node_token
    finally:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=20)


# ---- item 4: client addresses and wrong tokens ----------------------------------------------


def test_rotating_forwarded_for_does_not_reset_the_wrong_token_limit(tmp_path: Path) -> None:
    """30 wrong tokens from 127.0.0.1, each claiming another client in X-Forwarded-For:
    uvicorn's default trusted the header from loopback, and none was throttled."""
    with _service(tmp_path, ANTAL_AUTH_FAILURES_PER_MINUTE=str(PER_ADDRESS),
                  ANTAL_AUTH_FAILURES_GLOBAL_PER_MINUTE="1000") as (base, token):  # fmt: skip
        with _client(base) as c:
            statuses = _guess(c, "/v1/me", 30, rotate=True)
            assert statuses == [401] * PER_ADDRESS + [429] * 10
            # the one who holds a valid token is served from the throttled address...
            me = c.get("/v1/me", headers=_bearer(token, "203.0.113.77"))
            assert me.status_code == 200 and me.json()["id"] == "res"
            assert c.get("/v1/me", headers=_bearer(token)).status_code == 200
            # ...and a wrong token from it is still refused unchecked against the limit
            assert _guess(c, "/v1/me", 3, start=100) == [429] * 3
        # another address has its own limit
        with _client(base, "127.0.0.2") as other:
            assert _guess(other, "/v1/me", 2, start=200) == [401] * 2


def test_forwarded_for_is_believed_from_named_proxies_only(tmp_path: Path) -> None:
    """With `forwarded_allow_ips` naming 127.0.0.1 (the operator's proxy), each forwarded
    client has its own limit; a peer that is not named (127.0.0.2) is counted by its
    socket address whatever header it sends."""
    with _service(tmp_path, ANTAL_AUTH_FAILURES_PER_MINUTE="5",
                  ANTAL_AUTH_FAILURES_GLOBAL_PER_MINUTE="1000",
                  ANTAL_FORWARDED_ALLOW_IPS="127.0.0.1") as (base, _):  # fmt: skip
        with _client(base) as proxy:
            assert _guess(proxy, "/v1/me", 12, rotate=True) == [401] * 12
        with _client(base, "127.0.0.2") as direct:
            assert _guess(direct, "/v1/me", 8, rotate=True) == [401] * 5 + [429] * 3


def test_a_global_cap_holds_across_addresses_and_valid_tokens_still_pass(tmp_path: Path) -> None:
    """Ten loopback addresses, 6 wrong tokens each: under the per-address limit every one,
    but the global cap (30 a minute) answers the rest 429; valid tokens are still served."""
    with _service(tmp_path, ANTAL_AUTH_FAILURES_PER_MINUTE=str(PER_ADDRESS),
                  ANTAL_AUTH_FAILURES_GLOBAL_PER_MINUTE="30") as (base, token):  # fmt: skip
        statuses: list[int] = []
        for k in range(10):
            with _client(base, f"127.0.0.{k + 2}") as c:
                statuses += _guess(c, "/v1/me", 6, start=10 * k)
        assert statuses.count(401) == 30 and statuses.count(429) == 30
        assert statuses[:30] == [401] * 30
        with _client(base, "127.0.0.50") as fresh:  # an address never seen: the cap holds
            assert _guess(fresh, "/v1/me", 2, start=500) == [429, 429]
            assert fresh.get("/v1/me", headers=_bearer(token)).status_code == 200


def test_the_hub_throttles_the_same_way(tmp_path: Path) -> None:
    """The hub shares the service's authentication: rotating X-Forwarded-For does not reset
    its limit, its global cap holds, and researchers and nodes with valid tokens pass."""
    with _hub(tmp_path, ANTAL_HUB_AUTH_FAILURES_PER_MINUTE=str(PER_ADDRESS),
              ANTAL_HUB_AUTH_FAILURES_GLOBAL_PER_MINUTE="25") as (base, token, node):  # fmt: skip
        with _client(base) as c:
            statuses = _guess(c, "/v1/hub/nodes", 30, rotate=True)
            assert statuses == [401] * PER_ADDRESS + [429] * 10
            assert c.get("/v1/hub/nodes", headers=_bearer(token, "203.0.113.9")).status_code == 200
            work = c.post("/v1/node/work", json={"wait": 0}, headers=_bearer(node))
            assert work.status_code == 204, work.text
            # a node's route is throttled alike
            assert _guess(c, "/v1/node/work", 2, method="POST", json={"wait": 0}) == [429] * 2
        with _client(base, "127.0.0.2") as other:  # 20 of the 25 are spent: 5 more, then 429
            assert _guess(other, "/v1/hub/nodes", 8, start=300) == [401] * 5 + [429] * 3
            assert other.get("/v1/hub/nodes", headers=_bearer(token)).status_code == 200


def test_the_throttle_forgets_idle_addresses() -> None:
    """One address per guess (IPv6 gives an attacker billions): the per-address table keeps
    only the addresses of the last window, at most about twice the global cap."""
    from antal.api.ratelimit import AuthThrottle

    t = AuthThrottle(per_address=3, overall=50, window=0.05)
    refused = 0
    for i in range(2000):
        refused += t.failed(f"2001:db8::{i:x}") is not None
        assert len(t.per_address) <= 2 * 50 + 1
        if i % 100 == 99:
            time.sleep(0.06)  # a new window
    assert refused == 2000 - 20 * 50  # 50 answered per window, 20 windows


def test_trusted_proxies_must_be_addresses(tmp_path: Path) -> None:
    """uvicorn takes what is not an address as a literal matching nothing: a typo would
    leave the proxy untrusted (everyone one client) or trust what was not meant."""
    from typer.testing import CliRunner

    from antal.api.cli import app as cli_app
    from antal.api.federation.settings import HubSettings
    from antal.api.settings import Settings

    assert Settings(forwarded_allow_ips=" 10.0.0.5, 10.1.0.0/16,::1").forwarded_allow_ips == (
        "10.0.0.5,10.1.0.0/16,::1"
    )
    assert HubSettings(forwarded_allow_ips="*").forwarded_allow_ips == "*"
    assert Settings().forwarded_allow_ips is None and HubSettings().forwarded_allow_ips is None
    for bad in ("proxy.local", "10.0.0.1/8", "10.0.0.0/33"):
        r = CliRunner().invoke(
            cli_app, ["serve", "--data", str(tmp_path)], env={"ANTAL_FORWARDED_ALLOW_IPS": bad}
        )
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert "forwarded_allow_ips" in r.output and repr(bad) in r.output, r.output


# ---- item 8: files on disk, /docs, an unreachable store -------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a file made without a mode is 0644."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_files_are_private_from_the_start(tmp_path: Path, umask_022: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The store (and its -wal and -shm) was made 0644: token hashes, budgets, answers and
    the audit log readable by every local user. It must be 0600 before SQLite first opens
    it, so there is no moment when another user can open it."""
    from antal.api.federation.store import HubStore
    from antal.privacy import Signer
    from antal.privacy.store import SQLiteStore

    seen: dict[str, int | None] = {}
    real = sqlite3.connect

    def spy(database: str, *a: object, **kw: object) -> sqlite3.Connection:
        p = Path(database)
        seen.setdefault(str(p), _mode(p) if p.exists() else None)
        return real(database, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", spy)
    path = tmp_path / "s" / "store.sqlite"
    store = SQLiteStore(path)
    HubStore(str(tmp_path / "hub.sqlite"))
    assert seen == {str(path): 0o600, str(tmp_path / "hub.sqlite"): 0o600}
    with store.transaction() as tx:  # while it is open, SQLite keeps its -wal and -shm
        tx.execute(
            "INSERT INTO users (id, name, role, created) VALUES ('u', 'U', 'researcher', '')"
        )
        files = [path.with_name(path.name + end) for end in ("", "-wal", "-shm")]
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert _mode(tmp_path / "hub.sqlite") == 0o600
    # the receipt key, made beside the store
    key = tmp_path / "s" / "store.sqlite.signing-key.pem"
    Signer.from_file(key)
    assert _mode(key) == 0o600
    # through the command line: `antal admin` makes the store it is given
    cli_store = tmp_path / "cli" / "store.sqlite"
    admin_cli(cli_store, "create-user", "res", "--role", "researcher")
    assert _mode(cli_store) == 0o600


def test_an_existing_readable_store_is_made_private(tmp_path: Path, umask_022: None) -> None:
    """A store made before (0644, its -wal and -shm too while another process has it open)
    is tightened to its owner when it is next opened."""
    from antal.privacy.store import SQLiteStore

    path = tmp_path / "store.sqlite"
    SQLiteStore(path).create_project("p", "P", "forskning", 1.0)
    other = sqlite3.connect(path)  # another process's open store: -wal and -shm stay
    try:
        other.execute("SELECT count(*) FROM projects").fetchone()
        files = [path.with_name(path.name + end) for end in ("", "-wal", "-shm")]
        for f in files:
            f.chmod(0o644)
        store = SQLiteStore(path)
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert store.project("p") is not None
    finally:
        other.close()


@pytest.mark.parametrize("which", ["service", "hub"])
def test_docs_is_under_the_web_pages_policy(which: str, tmp_path: Path) -> None:
    """/docs had no Content-Security-Policy, and FastAPI's page starts Swagger UI with an
    inline script that the workbench's policy would block: the start is a file now, the
    options JSON, and every script of the page is one of the server's own files."""
    from fastapi.testclient import TestClient

    from antal.api.app import create_app
    from antal.api.federation.hub import create_hub_app
    from antal.api.federation.settings import HubSettings
    from antal.api.settings import Settings
    from antal.api.web import CSP

    if which == "service":
        app = create_app(Settings(data=_population(tmp_path), store=str(tmp_path / "s.sqlite")))
    else:
        app = create_hub_app(HubSettings(store=str(tmp_path / "hub.sqlite")))
    c = TestClient(app)
    r = c.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP
    script_src = next(d for d in CSP.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'self'" in script_src
    assert r.headers["x-content-type-options"] == "nosniff"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", r.text, re.S)
    config, sources = None, []
    for attrs, body in scripts:
        if 'type="application/json"' in attrs:  # data, never run
            config = json.loads(body)
            continue
        assert body.strip() == "", f"an inline script: {body[:80]}"
        (src,) = re.findall(r'src="([^"]+)"', attrs)
        assert src.startswith("/web/static/"), src  # 'self', nothing from elsewhere
        js = c.get(src)
        assert js.status_code == 200 and "javascript" in js.headers["content-type"], src
        sources.append(js.text)
    assert config is not None and config["validatorUrl"] is None
    assert c.get(config["url"]).json()["info"]["title"] == app.title
    # the bundle, then the start, which reads the options from that element
    assert len(sources) == 2 and "SwaggerUIBundle" in sources[0]
    assert 'getElementById("swagger-config")' in sources[1] and 'id="swagger-config"' in r.text
    for css in re.findall(r'<link[^>]*href="([^"]+)"', r.text):
        assert css.startswith("/web/static/") and c.get(css).status_code == 200


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nobody listens there


@pytest.fixture
def own_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ANTAL_* from the caller; the user data directory (where a PostgreSQL store's
    signing key and audit anchor go by default) under tmp_path, not the real one."""
    for k in list(os.environ):
        if k.startswith("ANTAL_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "antal"


def test_an_unreachable_postgresql_store_is_a_message_not_a_traceback(
    tmp_path: Path, own_data_dir: Path
) -> None:
    from typer.testing import CliRunner

    from antal.api.cli import app as cli_app

    url = f"postgresql://antal:hunter2@127.0.0.1:{_closed_port()}/antal"
    data = _population(tmp_path)
    for args in (
        ["audit", "verify", "--store", url],
        ["admin", "create-user", "res", "--store", url],
        ["serve", "--data", str(data), "--store", url],
        ["hub", "serve", "--store", url],
    ):
        r = CliRunner().invoke(cli_app, args)
        assert r.exit_code == 2 and isinstance(r.exception, SystemExit), (
            args,
            r.output,
            r.exception,
        )
        assert "cannot connect to the store postgresql://antal:***@127.0.0.1" in r.output, r.output
        assert "Connection refused" in r.output and "hunter2" not in r.output
        assert "Traceback" not in r.output
        if "serve" in args:
            assert "cannot start:" in r.output


def test_a_store_that_goes_away_answers_503(
    pg_dsn: str, tmp_path: Path, own_data_dir: Path
) -> None:
    """A PostgreSQL store that disappears under a running service: every request that needs
    it is a 503 in the one error shape, naming neither the store nor the reason."""
    import psycopg
    from fastapi.testclient import TestClient

    from antal.api.app import create_app
    from antal.api.settings import Settings

    app = create_app(Settings(data=_population(tmp_path), store=pg_dsn, signing_key=tmp_path / "key.pem",
                              audit_anchor=tmp_path / "anchor.jsonl"))  # fmt: skip
    st = app.state.antal
    st.accounts.create_user("res", "R", "researcher")
    auth = {"Authorization": f"Bearer {st.accounts.issue_token('res')}"}
    c = TestClient(app)
    assert c.get("/v1/me", headers=auth).status_code == 200
    server, name = pg_dsn.rsplit("/", 1)
    with psycopg.connect(server + "/postgres", autocommit=True) as con:
        con.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    r = c.get("/v1/me", headers=auth)
    assert r.status_code == 503, r.text
    assert r.json() == {"error": {"code": "store_unavailable", "details": None,
                                  "message": "the store cannot be reached; try again later"}}  # fmt: skip
