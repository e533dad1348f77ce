"""The hub's HTTP API: researchers submit a cohort and wait; nodes pull work and put their
released answers (docs/federation.md, docs/api.md#the-hub).

Waiting is a long-poll: the request is held until every node has answered, the wait the
request asked for ends, or (while it is ahead) the query's deadline passes; then the
answer is 200 when complete and 206 with what the hub has otherwise (Samply.Beam's
convention). Every state lives in the hub's store, so a restarted hub carries on: the
waits are only a way of answering sooner, never where anything is kept.

The hub never computes a count: it checks the cohort against the bundled catalog (to
refuse a cohort that would need linkage across nodes), queues it, and adds up what the
nodes released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from antal.api import usecases as uc
from antal.api.accounts import Accounts, User
from antal.api.bodylimit import BodyLimit
from antal.api.federation.results import query_view, unreachable
from antal.api.federation.schemas import HubQueryIn, NodeAnswer, NodeResult, WorkIn
from antal.api.federation.settings import HubSettings
from antal.api.federation.store import FINAL, Conflict, HubStore, NoSuchTask, QueryRow
from antal.api.metrics import (
    CONTENT_TYPE,
    METRICS_REFUSED,
    Metrics,
    MetricsMiddleware,
    family,
    metrics_allowed,
    render,
    sample,
)
from antal.api.ratelimit import AuthThrottle, RateLimiter
from antal.api.routes.deps import (
    ERRORS,
    ApiError,
    authenticate,
    install_error_handlers,
    install_request_errors,
)
from antal.api.web import install_hub_web
from antal.catalog import Catalog
from antal.engine import ir
from antal.engine.limits import HUB_NODE_MAX_PERSONS, MAX_BODY_BYTES
from antal.privacy.mechanism import attrition_bounds, dlap_accuracy

__all__ = ["HubState", "answer_problem", "create_hub_app", "linkage_problem"]

log = logging.getLogger("antal.hub")

T = TypeVar("T")

# how often a waiting request looks at the store when nothing in this process told it of a
# change (another hub process, or the command line adding a node)
_RECHECK_SECONDS = 1.0


class HubState:
    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self.hub = HubStore(settings.store)
        self.accounts = Accounts(self.hub.store)
        self.catalog: Catalog = uc.open_catalog()  # the bundled catalog: cohorts are checked
        self.auth_failures = AuthThrottle(
            settings.auth_failures_per_minute, settings.auth_failures_global_per_minute
        )
        self.requests = RateLimiter(settings.requests_per_minute)
        self._events: dict[str, asyncio.Event] = {}
        self._labels: dict[str, tuple[tuple[str, ...], int]] = {}

    def _compiled(self, q: QueryRow) -> tuple[tuple[str, ...], int]:
        if q.id not in self._labels:
            if len(self._labels) > 10_000:
                self._labels.clear()
            v = uc.validate(q.cohort, self.catalog)
            k = ir.contribution(v.checked.index) if v.checked is not None else 1
            self._labels[q.id] = (v.steps, k)
        return self._labels[q.id]

    def labels(self, q: QueryRow) -> tuple[str, ...]:
        """The query's step labels as the hub compiles its cohort (checked when it was
        submitted): the number of steps every node's answer must have, and what is shown."""
        return self._compiled(q)[0]

    def contribution(self, q: QueryRow) -> int:
        """K of the query's cohort as the hub compiles it (engine.ir.contribution): the
        episodes one person can add, by which every node's noise must be scaled."""
        return self._compiled(q)[1]

    def liveness(self) -> dict[str, Any]:
        """What a query's view needs to show a node `unreachable` (results.query_view)."""
        return {"seen": {n.name: n.last_seen for n in self.hub.nodes()},
                "heartbeat": self.settings.heartbeat_seconds}  # fmt: skip

    # A change wakes the requests waiting on it in this process: a new task wakes its
    # node's poll (`node:NAME`), an answer wakes the waits on its query (`query:QID`).
    def event(self, key: str) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    def notify(self, *keys: str) -> None:
        for key in keys:
            ev = self._events.pop(key, None)
            if ev is not None:
                ev.set()


def _state(request: Request) -> HubState:
    return request.app.state.hub


async def _wait_until(
    state: HubState, key: str, probe: Callable[[], T | None], seconds: float
) -> T | None:
    """`probe()` (run off the event loop) until it returns something or `seconds` pass."""
    end = time.monotonic() + seconds
    while True:
        ev = state.event(key)
        got = await run_in_threadpool(probe)
        left = end - time.monotonic()
        if got is not None or left <= 0:
            return got
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ev.wait(), timeout=min(_RECHECK_SECONDS, left))


# ---- authentication ---------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False)


def researcher(
    request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    state = _state(request)
    u = authenticate(request, cred, state.auth_failures, state.accounts.authenticate)
    wait = state.requests.check(u.id)
    if wait is not None:
        after = RateLimiter.retry_after(wait)
        raise ApiError(429, "rate_limited", f"too many requests; try again in {after} s",
                       {"limit_per_minute": state.settings.requests_per_minute},
                       {"Retry-After": after})  # fmt: skip
    return u


def node_name(
    request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    state = _state(request)
    return authenticate(request, cred, state.auth_failures, state.hub.node_of)


Researcher = Annotated[User, Depends(researcher)]
Node = Annotated[str, Depends(node_name)]
QueryId = Annotated[str, Path(pattern=r"^q[0-9a-f]{16}$", max_length=17)]


# ---- the linkage rule ---------------------------------------------------------------------------


def linkage_problem(
    registers: tuple[str, ...], holds: dict[str, tuple[str, ...] | None]
) -> ApiError | None:
    """A count can be summed over nodes only when each node holds every register the
    cohort reads: a cohort whose criteria span registers held by different nodes (an NPR
    diagnosis and an NDR value) needs the persons linked across them, which summing counts
    cannot do. Nodes that have not said what they hold yet are not judged (a node lacking
    a register refuses with `register_missing` itself)."""
    known = {n: set(h) for n, h in holds.items() if h is not None}
    lacking = {n: sorted(set(registers) - h) for n, h in known.items() if set(registers) - h}
    if not lacking:
        return None
    holders = {r: sorted(n for n, h in known.items() if r in h) for r in registers}
    details = {"lacking": lacking, "holders": holders}
    nowhere = sorted(r for r in registers if known and not holders[r])
    if nowhere:
        return ApiError(400, "register_missing",
                        f"no node holds {', '.join(nowhere)}: this cohort cannot be answered here",
                        details)  # fmt: skip
    spans = "; ".join(f"{n} lacks {', '.join(rs)}" for n, rs in sorted(lacking.items()))
    return ApiError(
        400, "needs_linkage",
        f"this cohort reads {', '.join(registers)}, and not every node holds all of them "
        f"({spans}). Adding up counts of nodes that hold different registers would need "
        "the persons linked across them; ask only the nodes that hold every register "
        "(`nodes`), or ask the register holders for a linked extract",
        details,
    )  # fmt: skip


# ---- routes -----------------------------------------------------------------------------------

router = APIRouter(tags=["hub"])


def _complete(state: HubState, qid: str) -> bool | None:
    found = state.hub.query(qid)
    return True if found and all(t.state in FINAL for t in found[1]) else None


def _view(state: HubState, qid: str, viewer: str) -> dict[str, Any]:
    """The query as `viewer` is shown it, under the per-node secrecy rule (results.py): the
    node sets of the totals it was shown before are read, and the one shown now recorded."""
    found = state.hub.query(qid)
    assert found is not None
    q = found[0]
    view = query_view(*found, min_nodes_shown=state.settings.min_nodes_shown,
                      shown_before=state.hub.shown(viewer, q.query_hash),
                      labels=state.labels(q), **state.liveness())  # fmt: skip
    if view["total"] is not None:
        state.hub.record_shown(viewer, q.query_hash, view["total"]["over_nodes"])
    return view


async def _answer(state: HubState, q: QueryRow, wait: float, viewer: str) -> JSONResponse:
    # wait for every node, at most `wait` and (while it is ahead) not past the deadline
    limit = min(wait, state.settings.max_wait_seconds)
    if time.time() < q.deadline:
        limit = min(limit, max(0.0, q.deadline - time.time()))
    await _wait_until(state, f"query:{q.id}", lambda: _complete(state, q.id), limit)
    view = await run_in_threadpool(_view, state, q.id, viewer)
    return JSONResponse(view, status_code=200 if view["complete"] else 206,
                        headers={"Location": f"/v1/hub/queries/{q.id}"})  # fmt: skip


def _visible(state: HubState, qid: str, u: User) -> QueryRow:
    found = state.hub.query(qid)
    q = found[0] if found else None
    if q is None or not (
        u.role == "admin" or q.submitted_by == u.id or state.accounts.is_member(q.project, u.id)
    ):
        raise ApiError(404, "not_found", f"no query {qid!r} of yours")
    return q


_PARTIAL = {206: {"description": "partial: not every node has answered (same body)"}}


@router.post("/v1/hub/queries", status_code=200, responses=_PARTIAL)
async def submit(request: Request, body: HubQueryIn, u: Researcher) -> JSONResponse:
    """Submit a cohort to the hub's nodes; waits up to `wait` seconds (200 complete, 206 partial)."""
    state = _state(request)

    def prepare() -> QueryRow:
        if u.role != "admin" and not state.accounts.is_member(body.project, u.id):
            raise ApiError(404, "not_found", f"no project {body.project!r} of yours")
        v = uc.validate(body.cohort, state.catalog)
        if v.error is not None:
            raise v.error
        assert v.checked is not None
        implicit = {r.id for r in (state.catalog.population, state.catalog.optout) if r}
        registers = tuple(r for r in v.registers if r not in implicit)
        every = {n.name: n.holds for n in state.hub.nodes()}
        asked = body.nodes if body.nodes is not None else sorted(every)
        unknown = sorted(set(asked) - set(every))
        if unknown:
            raise ApiError(400, "unknown_node", f"no node {', '.join(unknown)} in this hub",
                           {"nodes": unknown, "known": sorted(every)})  # fmt: skip
        if not asked:
            raise ApiError(400, "no_nodes", "the hub has no nodes to ask (antal hub nodes add)")
        problem = linkage_problem(registers, {n: every[n] for n in asked})
        if problem is not None:
            raise problem
        qid = state.hub.submit(
            project=body.project, user=u.id, title=v.checked.title or "cohort",
            cohort=body.cohort, query_hash=v.query_hash or "", registers=registers,
            nodes=sorted(set(asked)),
            deadline_seconds=body.deadline_seconds or state.settings.deadline_seconds,
        )  # fmt: skip
        found = state.hub.query(qid)
        assert found is not None
        return found[0]

    q = await run_in_threadpool(prepare)
    found = await run_in_threadpool(state.hub.query, q.id)
    state.notify(*(f"node:{t.node}" for t in (found[1] if found else [])))
    return await _answer(state, q, body.wait, u.id)


@router.get("/v1/hub/queries")
def queries(request: Request, u: Researcher) -> list[dict[str, Any]]:
    """The queries this researcher submitted, newest first, with their per-node status."""
    state = _state(request)
    out = []
    for q in state.hub.queries(None if u.role == "admin" else u.id):
        found = state.hub.query(q.id)
        assert found is not None
        # no total here (so nothing to record): the per-node status only
        view = query_view(
            *found, min_nodes_shown=state.settings.min_nodes_shown, **state.liveness()
        )
        out.append({k: view[k] for k in ("id", "project", "title", "created", "deadline",
                                          "complete", "answered", "missing")})  # fmt: skip
    return out


@router.get("/v1/hub/queries/{qid}", responses=_PARTIAL)
async def query(
    request: Request,
    qid: QueryId,
    u: Researcher,
    wait: Annotated[float, Query(ge=0, le=600)] = 0,
) -> JSONResponse:
    """A query's per-node status and combined total; `wait` long-polls (200 complete, 206 partial)."""
    state = _state(request)
    q = await run_in_threadpool(_visible, state, qid, u)
    return await _answer(state, q, wait, u.id)


@router.get("/v1/hub/nodes")
def nodes(request: Request, u: Researcher) -> list[dict[str, Any]]:
    """The hub's nodes: name, the registers the hub takes each to hold (an admin's word, or
    its first report), what it reported where that differs, when it was last seen, whether
    it is `unreachable` (not heard from within the heartbeat window) or `reachable`, and
    how many of its answers the hub refused as invalid."""
    state = _state(request)
    at, beat = time.time(), state.settings.heartbeat_seconds
    return [
        {"name": n.name, "holds": None if n.holds is None else list(n.holds),
         "reported_holds": None if n.reported is None else list(n.reported),
         "last_seen": n.last_seen,
         "status": "unreachable" if unreachable(n.last_seen, beat, at) else "reachable",
         "invalid_answers": n.invalid_answers}
        for n in state.hub.nodes()
    ]  # fmt: skip


def answer_problem(
    answer: NodeAnswer, labels: tuple[str, ...], persons: int, contribution: int = 1
) -> str | None:
    """What is wrong with a node's answer given the query and the node (None: nothing). The
    schema has checked what any attrition is (NodeAnswer: bounded counts, threshold and
    rounding, non-increasing steps inside their intervals); here: as many steps as the
    cohort has, no count above the node's population (times `contribution` K, the episodes
    one person can add to an `index each` cohort), an interval as wide as the stated noise
    makes it, and the noise the stated ε, steps and K give."""
    k = len(answer.steps)
    if labels and k != len(labels):
        return f"{k} steps, but the cohort has {len(labels)}"
    # a partition's buckets are one measurement at K/ε (Gaussian: σ = K/√(2ρ)); a
    # cumulative release's k steps at k/ε (older nodes: before `index each`, K = 1)
    per = contribution if answer.mechanism == "partition" else k
    if answer.noise == "gaussian":
        if answer.mechanism != "partition" or answer.rho is None:
            return "gaussian noise on a release that is not a partition, or without its ρ"
        if not math.isclose(answer.scale, per / math.sqrt(2 * answer.rho), rel_tol=1e-6):
            return f"a noise scale of {answer.scale:g}, not {per} / √(2 ρ {answer.rho:g})"
    elif not math.isclose(answer.scale, per / answer.epsilon, rel_tol=1e-6):
        return f"a noise scale of {answer.scale:g}, not {per} / ε {answer.epsilon:g}"
    if answer.mechanism == "partition":  # step i adds up k - i buckets
        widths = attrition_bounds(k, answer.scale, answer.alpha, answer.noise)
    else:
        widths = [2 * dlap_accuracy(answer.scale, answer.alpha)] * k
    for i, step in enumerate(answer.steps):
        if step.count is None:
            continue
        width = widths[i] + 2 * answer.rounding + 1
        if step.count > persons * contribution:
            return f"step {i}: {step.count} counted, more than the node's {persons} persons can be"
        assert step.low is not None and step.high is not None  # the schema's check
        if step.high - step.low > width:
            return f"step {i}: an interval {step.high - step.low} wide; the stated noise gives {width:.0f}"
    return None


@router.post("/v1/node/work", responses={204: {"description": "no work within the wait"}})
async def work(request: Request, body: WorkIn, node: Node) -> Response:
    """A node's long-poll for work: its oldest unanswered task (marked offered until the
    node acknowledges it: `POST /v1/node/tasks/{qid}/ack`), or 204."""
    state = _state(request)
    await run_in_threadpool(state.hub.seen, node, body.holds)
    # held at most half the heartbeat window: a live node is heard from within it
    beat = state.settings.heartbeat_seconds
    wait = min(body.wait, state.settings.max_wait_seconds, beat / 2)
    got = await _wait_until(state, f"node:{node}", lambda: state.hub.claim(node), wait)
    if got is None:
        return Response(status_code=204)
    q, t = got
    state.notify(f"query:{q.id}")  # the task shows as offered
    return JSONResponse({"task": {
        "query_id": q.id, "project": q.project, "cohort": q.cohort, "query_hash": q.query_hash,
        "submitted_by": q.submitted_by, "deadline": q.deadline, "claims": t.claims,
    }, "heartbeat_seconds": beat})  # fmt: skip


@router.post("/v1/node/tasks/{qid}/ack")
async def acknowledge(request: Request, qid: QueryId, node: Node) -> dict[str, Any]:
    """A node has its task and counts it: the task is `running` from now. Sent again while
    the node counts (every third of `heartbeat_seconds`), it is the node's heartbeat."""
    state = _state(request)
    try:
        st = await run_in_threadpool(state.hub.acknowledge, node, qid)
    except NoSuchTask:
        raise ApiError(404, "not_found", f"no task of query {qid!r} for node {node!r}") from None
    state.notify(f"query:{qid}")
    return {"state": st, "heartbeat_seconds": state.settings.heartbeat_seconds}


@router.put(
    "/v1/node/tasks/{qid}",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": NodeResult.model_json_schema()}}}},
)  # fmt: skip
async def put_result(request: Request, qid: QueryId, node: Node) -> dict[str, str]:
    """A node's released answer, refusal or failure for one query (idempotent). An answer
    that is not what this query and this node can release is refused (422) and recorded
    against the node: its task fails with `invalid_answer`."""
    state = _state(request)
    raw = await request.body()

    def store() -> str:
        found = state.hub.query(qid)
        if found is None or not any(t.node == node for t in found[1]):
            raise ApiError(404, "not_found", f"no task of query {qid!r} for node {node!r}")
        try:
            body = NodeResult.model_validate_json(raw)
        except ValidationError as e:
            problem = "; ".join(
                f"{'.'.join(str(x) for x in err['loc']) or 'body'}: {err['msg']}"
                for err in e.errors()[:5]
            )[:1000]
            return _invalid(problem)
        if body.answer is not None:
            info = state.hub.node(node)
            persons = (info.persons if info and info.persons else None) or HUB_NODE_MAX_PERSONS
            problem = answer_problem(body.answer, state.labels(found[0]), persons,
                                     state.contribution(found[0]))  # fmt: skip
            if problem is not None:
                return _invalid(problem)
        try:
            return state.hub.put(
                node, qid, body.state,
                body.answer.model_dump() if body.answer else None,
                body.error.code if body.error else None,
                body.error.message if body.error else None,
            )  # fmt: skip
        except NoSuchTask:
            raise ApiError(
                404, "not_found", f"no task of query {qid!r} for node {node!r}"
            ) from None
        except Conflict as e:
            raise ApiError(409, "conflict", str(e)) from None

    def _invalid(problem: str) -> NoReturn:
        state.hub.reject(node, qid, problem)
        log.warning("refused an invalid answer of node %s to %s", node, qid)
        state.notify(f"query:{qid}")
        raise ApiError(422, "invalid_answer", f"the hub refused this answer: {problem}",
                       {"node": node, "query": qid})  # fmt: skip

    result = await run_in_threadpool(store)
    state.notify(f"query:{qid}")
    return {"result": result}


@router.get("/healthz")
def health() -> dict[str, str]:
    """The hub is up: `{"status": "ok", "role": "hub"}`, without a token."""
    return {"status": "ok", "role": "hub"}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Prometheus text format: requests, durations, errors by code, queries, tasks, nodes.

    The hub's requests by route and status, their durations, errors by code, and its
    queries, tasks by state and nodes by reachability: from loopback, or with the
    `metrics_token` setting as a bearer token."""
    state: HubState = request.app.state.hub
    if not metrics_allowed(request, state.settings.metrics_token):
        raise ApiError(403, "forbidden", METRICS_REFUSED)
    queries, tasks = state.hub.tallies()
    at = time.time()
    gone = [unreachable(n.last_seen, state.settings.heartbeat_seconds, at)
            for n in state.hub.nodes()]  # fmt: skip
    lines = request.app.state.metrics.lines()
    lines += family("antal_hub_queries", "gauge", "queries the hub's store holds",
                    [sample("antal_hub_queries", queries)])  # fmt: skip
    lines += family("antal_hub_tasks", "gauge",
                    "nodes' tasks by stored state (timed out is computed when shown)",
                    [sample("antal_hub_tasks", n, state=s) for s, n in sorted(tasks.items())])  # fmt: skip
    lines += family("antal_hub_nodes", "gauge",
                    "registered nodes, reachable (heard from within the heartbeat window) or not",
                    [sample("antal_hub_nodes", gone.count(False), status="reachable"),
                     sample("antal_hub_nodes", gone.count(True), status="unreachable")])  # fmt: skip
    return render(lines)


def create_hub_app(settings: HubSettings) -> FastAPI:
    app = FastAPI(
        title="antal hub",
        version="0.1.0",
        description="A federated network of antal nodes: the hub queues a cohort, every "
        "node answers it under its own privacy rules, the hub adds up the released answers.",
        responses=ERRORS,  # type: ignore[arg-type]
        docs_url=None,  # Swagger UI from vendored files (antal.api.web), no CDN; no ReDoc
        redoc_url=None,
    )
    app.state.hub = HubState(settings)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    install_error_handlers(app)

    install_request_errors(app, log, "the hub could not answer this request")
    app.include_router(router)
    install_hub_web(app)  # the per-node status page at /web, its static files, /docs
    app.state.metrics = Metrics("antal_hub")
    # added last, so the outermost: it times and counts every answer, a 413 and a 500 too
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
