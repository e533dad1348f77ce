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
