"""The node agent: an ordinary installation that answers the hub's queries.

    agent = NodeAgent(hub_url, token, settings, {"nat-t2d": "t2d"})
    agent.run()

It only opens outbound connections (a region's firewall lets nothing in): it long-polls
the hub for work, acknowledges a task it was given (the hub shows it `running` only then,
and hears from it again every third of the hub's heartbeat window while it counts), counts
each cohort through the installation's own use case
(`antal.api.usecases.count_released`: its own catalog, approvals, ε ledger, threshold and
opt-outs) under the local project its admin mapped the hub's project to, and puts the
released answer back. Nothing leaves but what its gate released: released counts, their
intervals and the parameters they were released under. A refusal carries the node's error
code and message (not approved, budget spent, register missing, a language feature this
node's engine does not support), and is written to the installation's audit log like any
refusal (`hub_refused`, `hub_failed`; the gate's own `refused_budget` and `count_failed`
are not written twice).

A node that comes back after a crash asks for work again and is offered the task it held:
its gate answers a query it released before from its store (the same values, no new
charge), so it never answers twice with fresh noise. When the hub is down the agent waits
and retries; the installation's own users (`antal serve`, `antal count`) never depend on
the hub.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from antal.api import usecases as uc
from antal.api.settings import Settings
from antal.api.tls import client_verify, untrusted
from antal.engine import (
    BreakdownTooFine,
    CohortError,
    DataError,
    MissingColumnError,
    MissingRegisterError,
)
from antal.engine.limits import HUB_NODE_POLL_SECONDS
from antal.privacy import BudgetExceeded, CountFailed, UnknownProject
from antal.privacy.noise import epsilon_of_rho

__all__ = ["NodeAgent", "NodeRejected", "parse_project_map", "released_payload"]

log = logging.getLogger("antal.node")

_USER_AGENT = "antal-node/0.1.0"
_MAX_BACKOFF = 10.0
_HEARTBEAT_SECONDS = 60.0  # the hub's window when it does not say (an older hub)
# what the gate audits itself: a refusal for budget (`refused_budget`), a failure after the
# charge (`count_failed`)
_AUDITED_BY_GATE = frozenset({"budget_exceeded", "count_failed"})


class NodeRejected(Exception):
    """The hub refused this node's token: retrying will not help."""


def parse_project_map(items: list[str]) -> dict[str, str]:
    """`HUB=LOCAL` pairs (a bare `LOCAL` answers every hub project under LOCAL)."""
    out: dict[str, str] = {}
    for item in items:
        hub, sep, local = item.partition("=")
        if not sep:
            hub, local = "*", hub
        if not hub or not local or not uc.PROJECT_ID.match(local):
            raise ValueError(f"--project {item!r}: give HUB_PROJECT=LOCAL_PROJECT")
        out[hub] = local
    if not out:
        raise ValueError("map at least one hub project to a local one: --project HUB=LOCAL")
    return out


def released_payload(counted: uc.Counted) -> dict[str, Any]:
    """What a node puts to the hub for an answer: released values and their mechanism."""
    a = counted.answer
    scale = float(a.scales["attrition"])
    return {
        "steps": [
            {"label": label, "count": c.value, "low": c.low, "high": c.high}
            for label, c in zip(a.labels, a.steps, strict=True)
        ],
        "mechanism": a.mechanism,
        "noise": a.noise,
        "threshold": int(a.params["threshold"]),
        "rounding": int(a.params["rounding"]),
        **_loss(a, scale),
        "alpha": float(a.params["alpha"]),
        "scale": scale,
        "release": a.release,
        "query_hash": a.query_hash,
        "answer_key": a.key,
        "stored": a.stored,
        "epsilon_charged": a.epsilon_charged,
    }


def _loss(a: Any, scale: float) -> dict[str, float]:
    """The loss of the attrition's release: its ε, one measurement of the buckets at scale
    1/ε (an answer stored before issue 23: the k steps at k/ε); under gaussian noise its ρ
    (σ = 1/√(2ρ)) and the ε that ρ alone gives at the node's δ."""
    if a.noise == "laplace":
        return {"epsilon": (1 if a.mechanism == "partition" else len(a.steps)) / scale}
    rho = 1 / (2 * scale * scale)
    return {"rho": rho, "epsilon": epsilon_of_rho(rho, float(a.params["delta"]))}


def _refused(code: str, message: str) -> dict[str, Any]:
    return {"state": "refused", "error": {"code": code, "message": message}}


def _failed(code: str, message: str) -> dict[str, Any]:
    return {"state": "failed", "error": {"code": code, "message": message}}


def _why(e: httpx.TransportError) -> str:
    """What kept the agent from the hub: a certificate it does not trust said as such (the
    operator's fix is --ca-cert), anything else by its type."""
    cause = untrusted(e)
    if cause is not None:
        return (f"the hub's TLS certificate is not trusted: {cause.verify_message}; give its "
                "certificate authority with --ca-cert FILE")  # fmt: skip
    return type(e).__name__


class NodeAgent:
    def __init__(
        self,
        hub_url: str,
        token: str,
        settings: Settings,
        projects: dict[str, str],
        *,
        poll_seconds: float = HUB_NODE_POLL_SECONDS,
        say: Callable[[str], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        ca_cert: Path | None = None,
    ) -> None:
        verify = client_verify(ca_cert)  # first: a bad CA file is said before the data open
        self.projects = projects
        self.poll_seconds = poll_seconds
        self.say = say or log.info
        self.installation = uc.open_installation(settings)
        self.catalog = uc.catalog_for(settings, self.installation)
        uc.check_data(self.installation, self.catalog)  # refuse to join on failing extracts
        self.store = uc.open_store(settings)
        # the installation's own key: receipts of node answers verify with its public key
        self.gate = uc.open_gate(settings, self.installation, self.store)
        self.backend = uc.open_backend(settings, self.installation, self.catalog)
        self.heartbeat = _HEARTBEAT_SECONDS
        self.http = httpx.Client(
            base_url=hub_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": _USER_AGENT},
            timeout=httpx.Timeout(30.0, read=poll_seconds + 30.0),
            transport=transport,
            verify=verify,
        )

    def close(self) -> None:
        self.http.close()
        self.backend.close()

    # ---- one task -----------------------------------------------------------------------

    def answer(self, task: dict[str, Any]) -> dict[str, Any]:
        """The node's result for one task: its released answer, or a refusal or failure
        with its code and message (never a traceback, never a value from the data), which
        is audited here unless the gate audited it."""
        result = self._result(task)
        code = (result.get("error") or {}).get("code")
        if code is not None and code not in _AUDITED_BY_GATE:
            try:
                self._audit(task, result)
            except Exception as e:  # the refusal releases nothing: it is still sent
                log.error("could not audit the refusal of %s: %s", task["query_id"],
                          type(e).__name__)  # fmt: skip
        return result

    def _audit(self, task: dict[str, Any], result: dict[str, Any]) -> None:
        """A refusal or failure sent to the hub, in the installation's audit log: actor
        `hub:<user>`, the local project, the hub's query hash, and what was sent."""
        local = self.projects.get(task["project"]) or self.projects.get("*")
        sent = json.dumps({"hub_query": task["query_id"], "hub_project": task["project"],
                           **result["error"]}, sort_keys=True)  # fmt: skip
        with self.store.transaction() as tx:
            tx.audit(f"hub:{task.get('submitted_by', 'unknown')}", local,
                     f"hub_{result['state']}", task.get("query_hash"), None, 0.0, sent)  # fmt: skip

    def _result(self, task: dict[str, Any]) -> dict[str, Any]:
        hub_project = task["project"]
        local = self.projects.get(hub_project) or self.projects.get("*")
        if local is None:
            return _refused("not_approved",
                            f"this node answers no hub project {hub_project!r} (no local project is mapped to it)")  # fmt: skip
        try:
            counted = uc.count_released(
                task["cohort"], self.installation, self.catalog, self.gate, local,
                f"hub:{task.get('submitted_by', 'unknown')}", self.backend, approved_only=True,
            )  # fmt: skip
        except BudgetExceeded as e:
            return _refused("budget_exceeded", str(e))
        except UnknownProject:
            return _refused("not_approved", f"the local project {local!r} does not exist")
        except uc.NotApproved as e:
            return _refused("register_not_approved", e.message)
        except MissingRegisterError as e:
            return _refused("register_missing", str(e))
        except MissingColumnError as e:
            return _refused("column_missing", str(e))
        except CohortError as e:
            # this node's engine does not accept the cohort (a newer language feature)
            return _refused("cohort_unsupported", str(e))
        except BreakdownTooFine as e:
            return _refused("breakdown_too_fine", str(e))
        except uc.UseCaseError as e:
            return _refused(e.code, e.message)
        except CountFailed as e:  # charged; one text whatever failed (see privacy.gate)
            return _failed("count_failed", str(e))
        except DataError:
            return _failed("data_error", "this node's extracts cannot be counted on now")
        except Exception as e:  # the type only: a message may quote a data value
            log.error("unexpected %s while answering %s", type(e).__name__, task["query_id"])
            return _failed("internal", f"the node could not answer ({type(e).__name__})")
        return {"state": "succeeded", "answer": released_payload(counted)}

    # ---- talking to the hub -----------------------------------------------------------------

    def poll(self) -> dict[str, Any] | None:
        """One long-poll for work: a task, or None when the wait ended with none."""
        r = self.http.post("/v1/node/work", json={"holds": sorted(self.installation.sources),
                                                  "wait": self.poll_seconds})  # fmt: skip
        if r.status_code == 204:
            return None
        r.raise_for_status()
        body = r.json()
        self.heartbeat = float(body.get("heartbeat_seconds") or _HEARTBEAT_SECONDS)
        return body["task"]

    def acknowledge(self, qid: str) -> None:
        """Tell the hub this node has its task (or, again, that it is still counting it);
        the count goes on whatever the hub answers (an older hub has no such route)."""
        try:
            r = self.http.post(f"/v1/node/tasks/{qid}/ack")
        except httpx.TransportError as e:
            self.say(f"hub unreachable ({type(e).__name__}) acknowledging {qid}; counting on")
            return
        if not r.is_success and r.status_code != 404:
            self.say(f"the hub answered {r.status_code} to the acknowledgement of {qid}")

    @contextlib.contextmanager
    def counting(self, qid: str) -> Iterator[None]:
        """Acknowledge the task, and again every third of the hub's heartbeat window until
        the block ends: a long count is not shown `unreachable`."""
        self.acknowledge(qid)
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat / 3):
                self.acknowledge(qid)

        t = threading.Thread(target=beat, name=f"ack-{qid}", daemon=True)
        t.start()
        try:
            yield
        finally:
            done.set()
            t.join()

    def put(self, qid: str, result: dict[str, Any], stop: threading.Event) -> str | None:
        """Put a result until the hub takes it (it may be down: wait and retry); the hub's
        word (`stored`, `duplicate`), or None when stopped or refused for good."""
        backoff = 0.5
        while not stop.is_set():
            try:
                r = self.http.put(f"/v1/node/tasks/{qid}", json=result)
            except httpx.TransportError as e:
                self.say(f"hub unreachable ({type(e).__name__}); retrying the answer to {qid}")
            else:
                if r.is_success:
                    return str(r.json().get("result"))
                if r.status_code in (404, 409, 422):  # the hub will not take it, ever
                    self.say(f"the hub refused the answer to {qid}: {r.status_code} {r.text[:300]}")
                    return None
                self.say(f"the hub answered {r.status_code} to {qid}; retrying")
            stop.wait(backoff)
            backoff = min(_MAX_BACKOFF, backoff * 2)
        return None

    def step(self, stop: threading.Event) -> bool:
        """Poll once and answer what came; whether there was a task."""
        task = self.poll()
        if task is None:
            return False
        self.say(f"query {task['query_id']} (hub project {task['project']})")
        with self.counting(task["query_id"]):
            result = self.answer(task)
        code = (result.get("error") or {}).get("code", "")
        said = self.put(task["query_id"], result, stop)
        self.say(f"query {task['query_id']}: {result['state']} {code} -> hub: {said}")
        return True

    def run(self, stop: threading.Event | None = None) -> None:
        """Poll and answer until `stop` is set; a hub that is down is waited for."""
        stop = stop or threading.Event()
        backoff = 0.5
        while not stop.is_set():
            try:
                self.step(stop)
                backoff = 0.5
            except httpx.HTTPStatusError as e:
                if e.response.status_code == 401:
                    raise NodeRejected(
                        "the hub does not know this node's token (antal hub nodes add NAME "
                        "prints one)"
                    ) from None
                self.say(
                    f"cannot poll the hub ({e.response.status_code}); retrying in {backoff:g} s"
                )
                stop.wait(backoff)
                backoff = min(_MAX_BACKOFF, backoff * 2)
            except httpx.TransportError as e:
                self.say(f"cannot poll the hub ({_why(e)}); retrying in {backoff:g} s")
                stop.wait(backoff)
                backoff = min(_MAX_BACKOFF, backoff * 2)
            except KeyboardInterrupt:  # pragma: no cover - interactive
                break
