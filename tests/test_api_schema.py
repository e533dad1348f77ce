"""Schemathesis against the real service: `antal serve` on 127.0.0.1, its own /openapi.json.

Every operation is fuzzed (derandomized, a bounded number of examples each) as an admin, as
a researcher who is a member of a project approved for npr, lmr and ndr, with an unknown
token and with none. Every response must: not be a 5xx, have a documented status code,
a documented content type, and a body that conforms to the published schema (errors
included: 401, 403, 404, 422 and 429 all have the one error shape).

Users, the projects and the tokens are made with the `antal admin` CLI against the same
store the server uses. The projects' budgets are large and the rate limits generous, so that
fuzzed counts are answered rather than refused; a refusal would still have to conform.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.load import admin_cli, serve, server_env  # noqa: E402

MAX_EXAMPLES = int(os.environ.get("ANTAL_SCHEMA_EXAMPLES", "30"))  # per operation and role
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
ROLES = ("researcher", "admin", "invalid-token", "no-token")
# Cohorts that check and count on the extract, sent now and then as the `cohort` of a body
# (besides the generated text): answers with attrition, a breakdown, stored answers, and
# a refusal for a register the project is not approved for.
COHORTS = [
    "index first diagnosis E11*\n",
    "index first diagnosis E11*\nreport by sex\n",
    "index first diagnosis I10*\ninclude age 40..75\nreport by region, sex\n",
    "index first diagnosis E11*\ninclude drug A10BA02 in lmr within 0..365 days after index\n",
    "index first diagnosis E11*\ninclude latest ndr.hba1c > 53 within 365 days before index\n",
    'index first diagnosis C50*\ninclude nkbc.her2 = "positiv"\n',
    "index first diagnosis E11*\nreport by hospital, year\n",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from antal.synthetic import generate

    root = tmp_path_factory.mktemp("schema")
    data = root / "data"
    generate(2000, 1, data)
    store = root / "store.sqlite"
    tokens = {
        "admin": admin_cli(store, "create-user", "admin", "--role", "admin"),
        "researcher": admin_cli(store, "create-user", "res", "--role", "researcher"),
    }
    for pid, member in (("fuzz", "res"), ("fuzz-admin", "admin")):
        admin_cli(
            store, "create-project", pid, "--budget", "1000", "--register", "npr",
            "--register", "lmr", "--register", "ndr", "--member", member,
        )  # fmt: skip
    env = server_env(ANTAL_REQUESTS_PER_MINUTE="100000", ANTAL_COUNTS_PER_MINUTE="100000")
    with serve(data, store, env=env) as base:
        yield {"base": base, "tokens": tokens, "store": store}


@pytest.fixture(scope="module", params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def api_schema(server: dict[str, Any], role: str) -> schemathesis.BaseSchema:
    # the researcher's path `pid` is now and then their own project, the admin's another
    # (an admin may re-approve it with a fuzzed register list, which must not change the
    # researcher's approvals)
    project = "fuzz-admin" if role == "admin" else "fuzz"
    config = schemathesis.Config.from_dict(
        {
            "seed": 1,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "dictionaries": {"projects": {"values": [project]}, "cohorts": {"values": COHORTS}},
            "parameters": {
                "path.pid": {"dictionary": "projects", "probability": 0.5},
                "body.cohort": {"dictionary": "cohorts", "probability": 0.3},
            },
        }
    )
    return schemathesis.openapi.from_url(
        server["base"] + "/openapi.json", config=config, timeout=30
    )


schema = schemathesis.pytest.from_fixture("api_schema")


def _headers(server: dict[str, Any], role: str) -> dict[str, str]:
    if role == "no-token":
        return {}
    token = server["tokens"].get(role, "antal_not_a_token")
    return {"Authorization": f"Bearer {token}"}


@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@schema.parametrize()
def test_every_operation_conforms_to_the_published_schema(
    case: schemathesis.Case, server: dict[str, Any], role: str
) -> None:
    headers = _headers(server, role)
    if role == "no-token":
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
        }
    case.call_and_validate(headers=headers, checks=CHECKS, timeout=60)


# Bodies the generator is unlikely to hit by itself: a cohort IR of the right kind whose
# fields have the wrong types. Bad input must be a 4xx in the one error shape, never a 5xx.
MALFORMED_IR = {
    "index-null": {"kind": "cohort", "index": None},
    "index-int": {"kind": "cohort", "index": 5, "steps": []},
    "index-not-an-event": {"kind": "cohort", "index": {"kind": "cohort", "index": None}},
    "steps-a-string": {"kind": "cohort", "index": "x", "steps": "abc"},
}
IR_OPERATIONS = (
    "/v1/cohorts/validate",
    "/v1/cohorts/compile",
    "/v1/projects/{pid}/count",
    "/v1/projects/{pid}/quote",
)


@pytest.mark.parametrize("path", IR_OPERATIONS)
@pytest.mark.parametrize("ir", MALFORMED_IR.values(), ids=MALFORMED_IR.keys())
def test_malformed_ir_is_bad_input_not_a_server_error(
    server: dict[str, Any], path: str, ir: dict[str, Any]
) -> None:
    schema = schemathesis.openapi.from_url(server["base"] + "/openapi.json", timeout=30)
    pid = {"pid": "fuzz"} if "{pid}" in path else None
    case = schema[path]["POST"].Case(path_parameters=pid, body={"ir": ir})
    r = case.call_and_validate(headers=_headers(server, "researcher"), checks=CHECKS, timeout=60)
    assert r.status_code in (400, 422), r.text
