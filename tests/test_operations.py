"""Operations (docs/operations.md): TLS for the hub and the service, the node agent's trust,
/healthz and /metrics, and the systemd units under deploy/.

The TLS test follows docs/operations.md: it runs the page's ```sh tls-certificate block
(openssl) as written, then its ```sh tls-hub and ```sh tls-node commands as real
processes, changing only the hub's address and port (127.0.0.1 and a free port, where the
page says 0.0.0.0, hub.region.example and 8100), and a query goes through.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from test_federation import COHORT, EXACT, SEEDS, Net, Proc, _antal
from typer.testing import CliRunner

from antal import engine
from antal.api.cli import app as cli
from antal.api.client import Client, ConnectionFailedError
from antal.api.federation.hub import create_hub_app
from antal.api.federation.settings import HubSettings
from antal.catalog import load_catalog
from antal.engine.reference import evaluate
from antal.privacy import open_store
from antal.synthetic import generate

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
DEPLOY = ROOT / "deploy"
CAT = load_catalog()


def doc_block(name: str) -> str:
    """The body of docs/operations.md's ```sh NAME block."""
    text = OPERATIONS.read_text(encoding="utf-8")
    m = re.search(rf"^```sh {re.escape(name)}\n(.*?)^```\s*$", text, re.S | re.M)
    assert m, f"docs/operations.md has no ```sh {name} block"
    return m.group(1)


def doc_command(name: str) -> list[str]:
    """A block's one command, its continuation lines joined, as words."""
    return shlex.split(doc_block(name).replace("\\\n", " "))


# ---- the Prometheus text format, checked line by line ---------------------------------------

_HELP = re.compile(r"^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$")
_TYPE = re.compile(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$")
_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9.e+-]+|\+Inf|NaN)$'
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name; fails on any line that is not HELP, TYPE or a sample of the family
    its TYPE line announced (a histogram's _bucket, _sum, _count), and on a family without
    HELP and TYPE."""
    assert text.endswith("\n")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    helped: set[str] = set()
    family, kind = None, None
    for line in text.splitlines():
        if m := _HELP.match(line):
            helped.add(m.group(1))
            continue
        if m := _TYPE.match(line):
            family, kind = m.group(1), m.group(2)
            assert family in helped, f"TYPE before HELP: {line}"
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        name = m.group(1)
        allowed = {family} | ({f"{family}_bucket", f"{family}_sum", f"{family}_count"}
                              if kind == "histogram" else set())  # fmt: skip
        assert name in allowed, f"{name} outside its family {family}"
        labels = dict(_LABEL.findall(m.group(2) or ""))
        out.setdefault(name, []).append((labels, float(m.group(3))))
    return out


def _value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(v for lab, v in samples.get(name, []) if labels.items() <= lab.items())


# ---- TLS options -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/operations.md's self-signed certificate, made by its openssl block as written."""
    # .ci/run installs openssl where it is missing: no skip, the doc's steps must run
    assert shutil.which("openssl") is not None, "openssl is needed (see .ci/run)"
    d = tmp_path_factory.mktemp("tls")
    r = subprocess.run(["bash", "-e", "-c", doc_block("tls-certificate")], cwd=d,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (d / "hub.crt").exists() and (d / "hub.key").stat().st_mode & 0o077 == 0
    return d


@pytest.mark.parametrize("command", [["hub", "serve"], ["serve"]])
def test_tls_options_refuse_a_lone_file_an_unreadable_one_and_a_wrong_key(
    command: list[str], cert: Path, tmp_path: Path
) -> None:
    store = ["--store", str(tmp_path / "s.sqlite")]
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["bash", "-e", "-c", doc_block("tls-certificate")], cwd=other, check=True,
                   capture_output=True)  # fmt: skip
    crt, key = str(cert / "hub.crt"), str(cert / "hub.key")
    cases = {
        ("--tls-cert", crt): "tls_key is not",
        ("--tls-key", key): "tls_cert is not",
        ("--tls-cert", crt, "--tls-key", str(tmp_path / "none.key")): "none.key",
        ("--tls-cert", crt, "--tls-key", str(other / "hub.key")): "not the certificate's",
        ("--tls-cert", key, "--tls-key", key): "not a certificate and its private key",
    }
    for args, said in cases.items():
        r = CliRunner().invoke(cli, [*command, *store, *args])
        assert r.exit_code == 2, (args, r.output)
        assert "cannot start" in r.output and said in " ".join(r.output.split()), (args, r.output)
        assert "Traceback" not in r.output
    # the setting, as an environment variable, is checked the same way
    prefix = "ANTAL_HUB_" if command == ["hub", "serve"] else "ANTAL_"
    r = CliRunner().invoke(cli, [*command, *store], env={f"{prefix}TLS_KEY": key})
    assert r.exit_code == 2 and "tls_cert is not" in " ".join(r.output.split()), r.output


# ---- the hub over TLS, as docs/operations.md says ------------------------------------------------


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """One region's small synthetic extract and its exact attrition (the reference)."""
    d = tmp_path_factory.mktemp("region")
    generate(5_000, SEEDS["r1"], d)
    checked = engine.check(engine.parse(COHORT), CAT)
    tables = {
        r: pq.read_table(d / f"{r}.parquet").to_pylist() for r in ("population", "npr", "optout")
    }
    return d, evaluate(checked, tables, CAT).counts()


class Here(Proc):
    """A process started in a directory (the page's commands name files relative to it)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str], cwd: Path) -> None:
        self.log = log
        with log.open("ab") as f:
            self.p = subprocess.Popen(args, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=cwd)


class TlsNet(Net):
    """A hub started by docs/operations.md's tls-hub command, in its directory."""

    def start_tls_hub(self, cert: Path) -> None:
        for f in ("hub.crt", "hub.key"):
            shutil.copy(cert / f, self.root / f)
        cmd = doc_command("tls-hub")
        assert cmd[:2] == ["antal", "hub"] and "--tls-cert" in cmd and "--tls-key" in cmd
        cmd = [*_antal(), *cmd[1:]]
        cmd[cmd.index("--port") + 1] = str(self.port)
        cmd[cmd.index("--host") + 1] = "127.0.0.1"
        self.hub = Here(cmd, self.root / "hub.log", {**self.env, **self.hub_env}, self.root)
        self.url = f"https://127.0.0.1:{self.port}"
        trust = ssl.create_default_context(cafile=str(self.root / "hub.crt"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", verify=trust, timeout=2).status_code == 200:
                    return
            if self.hub.p.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"the hub did not start:\n{(self.root / 'hub.log').read_text()}")


def test_a_hub_over_tls_as_operations_md_says(
    tmp_path: Path, cert: Path, region: tuple[Path, list[int]]
) -> None:
    data, truth = region
    net = TlsNet(tmp_path, {"r1": data})
    try:
        net.start_tls_hub(cert)
        trust = ssl.create_default_context(cafile=str(tmp_path / "hub.crt"))
        plain = f"http://127.0.0.1:{net.port}/healthz"

        # plain http to the TLS port gets no answer; a client that does not trust the
        # certificate refuses it; one that trusts it (--ca-cert, curl --cacert) is answered
        with pytest.raises(httpx.TransportError):
            httpx.get(plain, timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{net.url}/healthz", timeout=5)
        assert httpx.get(f"{net.url}/healthz", verify=trust).json() == {
            "status": "ok",
            "role": "hub",
        }

        # the node: the page's installation file and store in its directory
        shutil.copy(net.node_config("r1", EXACT), tmp_path / "installation.yaml")
        open_store(str(tmp_path / "node.sqlite")).create_project(
            "t2d", "t2d", "forskning", 1e12, ("npr", "lmr", "ndr"))  # fmt: skip
        cmd = doc_command("tls-node")
        assert cmd[:2] == ["antal", "node"] and "--ca-cert" in cmd
        cmd = [*_antal(), *cmd[1:]]
        cmd[cmd.index("https://hub.region.example:8100")] = net.url
        env = {**net.env, "ANTAL_NODE_TOKEN": net.node_tokens["r1"]}
        cmd[cmd.index("$ANTAL_NODE_TOKEN")] = env["ANTAL_NODE_TOKEN"]  # what the shell does

        # the same node without --ca-cert says why it cannot reach the hub, and keeps trying
        i = cmd.index("--ca-cert")
        untrusting = Here([*cmd[:i], *cmd[i + 2:]], tmp_path / "untrusting.log", env, tmp_path)  # fmt: skip
        deadline = time.monotonic() + 30
        while "not trusted" not in (tmp_path / "untrusting.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "untrusting.log").read_text()
            time.sleep(0.2)
        assert untrusting.p.poll() is None  # still retrying: a hub's certificate can be fixed
        untrusting.kill()
        assert "--ca-cert" in (tmp_path / "untrusting.log").read_text()

        net.nodes["r1"] = Here(cmd, tmp_path / "r1.log", env, tmp_path)
        net.wait_seen("r1")

        # a researcher's client without the CA refuses the hub; with it, the query is answered
        t0 = time.monotonic()
        with pytest.raises(ConnectionFailedError, match="not trusted") as e, \
                Client(net.url, net.token, timeout=10) as c:  # fmt: skip
            c.hub_submit("nat", COHORT, nodes=["r1"], wait=0)
        assert e.value.code == "tls_untrusted" and time.monotonic() - t0 < 5  # not retried
        with Client(net.url, net.token, timeout=120, ca_cert=tmp_path / "hub.crt") as c:
            res = c.hub_submit("nat", COHORT, nodes=["r1"], wait=60)
        assert res.complete, res.raw
        assert [s["total"] for s in res.raw["attrition"]] == truth  # exact mode: the data's counts

        # /metrics on loopback, over TLS, in Prometheus' text format
        r = httpx.get(f"{net.url}/metrics", verify=trust)
        assert r.status_code == 200 and r.headers["content-type"].startswith(
            "text/plain; version=0.0.4"
        )
        m = parse_prometheus(r.text)
        # one submission (answered at once: 206, not yet complete), then asked for its answer
        assert (
            _value(m, "antal_hub_http_requests_total", method="POST", route="/v1/hub/queries") == 1
        )
        assert (
            _value(m, "antal_hub_http_requests_total", route="/v1/hub/queries/{qid}", status="200")
            >= 1
        )
        assert _value(m, "antal_hub_http_requests_total", route="/v1/node/work") >= 1
        assert _value(m, "antal_hub_tasks", state="succeeded") == 1
        assert _value(m, "antal_hub_queries") == 1
        assert _value(m, "antal_hub_nodes", status="reachable") == 1
        assert _value(m, "antal_hub_nodes", status="unreachable") == 2  # r2, r3: never started
        assert _value(m, "antal_hub_http_request_duration_seconds_count",
                      route="/v1/hub/queries") == 1  # fmt: skip
        # the put answer and the acknowledgement, by their template: no query id in /metrics
        assert _value(m, "antal_hub_http_requests_total", route="/v1/node/tasks/{qid}") == 1
        assert res.id not in r.text
        assert "T2D" not in r.text and "anna" not in r.text and "nat" not in r.text
    finally:
        net.close()


# ---- /healthz and /metrics of the service and the hub (in process) -----------------------------


def test_the_services_metrics_count_routes_and_refusals_and_need_loopback_or_the_token(
    tmp_path: Path, region: tuple[Path, list[int]]
) -> None:
    from antal.api.app import create_app
    from antal.api.settings import Settings

    token = "m" * 24
    application = create_app(Settings(data=region[0], store=str(tmp_path / "s.sqlite"),
                                      metrics_token=token))  # fmt: skip
    st = application.state.antal
    st.accounts.create_user("res", "R", "researcher")
    st.store.create_project("p", "P", "forskning", 0.6, ("npr",))
    st.accounts.add_member("p", "res")
    c = TestClient(application)  # its client address is "testclient": not loopback
    h = {"Authorization": f"Bearer {st.accounts.issue_token('res')}"}
    assert c.get("/healthz").json()["status"] == "ok"
    body = {"cohort": COHORT}
    assert c.post("/v1/projects/p/count", json=body, headers=h).status_code == 200
    r = c.post("/v1/projects/p/count", json={"cohort": COHORT + "include age 50..60\n"}, headers=h)
    assert r.json()["error"]["code"] == "budget_exceeded"
    wrong = {"Authorization": "Bearer wrong"}
    assert c.post("/v1/projects/p/count", json=body, headers=wrong).status_code == 401

    refused = c.get("/metrics")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert c.get("/metrics", headers={"Authorization": "Bearer " + "x" * 24}).status_code == 403
    r = c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    m = parse_prometheus(r.text)
    count = "/v1/projects/{pid}/count"
    assert _value(m, "antal_http_requests_total", route=count, status="200") == 1
    assert _value(m, "antal_http_requests_total", route=count, status="403") == 1
    assert _value(m, "antal_http_errors_total", code="budget_exceeded") == 1
    assert _value(m, "antal_http_errors_total", code="unauthenticated") == 1
    assert _value(m, "antal_http_errors_total", code="forbidden") == 2  # /metrics refused
    assert _value(m, "antal_http_requests_total", route=count, status="401") == 1
    assert _value(m, "antal_http_request_duration_seconds_count", route=count) == 3
    buckets = [v for lab, v in m["antal_http_request_duration_seconds_bucket"]
               if lab["route"] == count]  # fmt: skip
    assert buckets == sorted(buckets) and buckets[-1] == 3  # cumulative, +Inf holds all
    # no project, user, cohort or raw path in it
    assert not re.search(r"T2D|res\b|\"p\"|/v1/projects/p/", r.text)
    # an unknown path is "other", not the path (which could carry anything)
    c.get("/no/such/path/123")
    m = parse_prometheus(c.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text)
    assert _value(m, "antal_http_requests_total", route="other", status="404") == 1


def test_the_hubs_metrics_need_loopback_or_the_token(tmp_path: Path) -> None:
    c = TestClient(create_hub_app(HubSettings(store=str(tmp_path / "h.sqlite"))))
    assert c.get("/healthz").json() == {"status": "ok", "role": "hub"}
    assert c.get("/metrics").status_code == 403
    # without a metrics token, no bearer opens it
    assert c.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 403
    with pytest.raises(ValueError, match="at least 16"):
        HubSettings(store=str(tmp_path / "h.sqlite"), metrics_token="short")


# ---- deploy/ ---------------------------------------------------------------------------------------


def _options(words: list[str]) -> tuple[list[str], list[str]]:
    """An `antal ...` command's subcommand words and its options."""
    assert Path(words[0]).name == "antal", words
    sub = []
    for w in words[1:]:
        if not re.fullmatch(r"[a-z]+", w):
            break
        sub.append(w)
    return sub, [w.split("=")[0] for w in words if w.startswith("--")]


def _commands() -> list[tuple[str, list[str]]]:
    """Every systemd unit's ExecStart, and the page's tls-hub and tls-node commands."""
    out = []
    for unit in sorted(DEPLOY.glob("*.service")):
        lines = [ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart=")]
        assert len(lines) == 1, unit
        out.append((unit.name, shlex.split(lines[0].removeprefix("ExecStart="))))
    out += [(f"operations.md {b}", doc_command(b)) for b in ("tls-hub", "tls-node")]
    return out


def test_the_deploy_units_name_commands_and_options_that_exist() -> None:
    units = {p.name for p in DEPLOY.glob("*.service")}
    assert units == {"antal-hub.service", "antal-node.service", "antal-serve.service"}
    assert (DEPLOY / "Containerfile").exists()
    for where, words in _commands():
        sub, options = _options(words)
        r = CliRunner().invoke(cli, [*sub, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
        assert r.exit_code == 0, (where, r.output)
        shown = set(re.findall(r"--[a-z][a-z-]*", r.output))
        missing = [o for o in options if o not in shown]
        assert not missing, f"{where}: `antal {' '.join(sub)}` has no {missing}"
    # a unit whose command runs as root, or restarts on a settings error, is a bug
    for unit in DEPLOY.glob("*.service"):
        text = unit.read_text()
        assert "User=antal" in text and "RestartPreventExitStatus=2" in text, unit.name
