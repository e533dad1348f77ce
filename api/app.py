"""The HTTP API (FastAPI). Every count goes through `privacy`; there is no route for exact
counts. Every error has one JSON shape: {"error": {"code", "message", "details"}}."""

import json
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from antal import engine
from antal.api import schemas as S
from antal.api.accounts import Accounts, CatalogEntries, User
from antal.api.bodylimit import BodyLimit
from antal.api.ratelimit import RateLimiter
from antal.api.release import BreakdownTooFine, prepare_release, release
from antal.api.settings import Settings
from antal.catalog import (
    HOLDER_FIELDS,
    Catalog,
    Installation,
    Register,
    load_catalog,
    load_installation,
)
from antal.catalog import bundled_dir as catalog_bundled
from antal.engine import CohortError, IRInvalid, MissingRegisterError, ir
from antal.engine.limits import MAX_BODY_BYTES
from antal.privacy import (
    AlreadyExists,
    BudgetExceeded,
    CountFailed,
    Gate,
    InvalidValue,
    NotFound,
    PrivacyParams,
    Project,
    UnknownProject,
    UnknownUser,
    open_store,
)

__all__ = ["ApiError", "create_app"]

log = logging.getLogger("antal.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self.status, self.code, self.message, self.details, self.headers = (
            status,
            code,
            message,
            details,
            headers,
        )
        super().__init__(message)


def _error(status: int, code: str, message: str, details: dict[str, Any] | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


_ERRORS = {
    400: {"model": S.ErrorBody, "description": "bad input"},
    401: {"model": S.ErrorBody, "description": "no or unknown bearer token"},
    403: {"model": S.ErrorBody, "description": "not allowed (role, project, approval or budget)"},
    404: {"model": S.ErrorBody, "description": "no such thing"},
    413: {"model": S.ErrorBody, "description": "the request body is too large"},
    422: {"model": S.ErrorBody, "description": "the request body or parameters do not validate"},
    429: {"model": S.ErrorBody, "description": "rate limit; see Retry-After"},
}
_COUNT_FAILED = {
    503: {
        "model": S.ErrorBody,
        "description": "the count could not be computed (charged; the same answer whatever failed)",
    }
}


class State:
    """What the routes share; built once per app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.installation:
            self.installation = load_installation(settings.installation)
        elif settings.data:
            self.installation = Installation.from_data_dir(settings.data)
        else:
            raise ValueError(
                "configure `data` (a directory of extracts) or `installation` (a config file)"
            )
        self.catalog: Catalog = load_catalog(catalog_bundled(), *self.installation.catalog_dirs)
        self.params = PrivacyParams(**self.installation.privacy)  # type: ignore[arg-type]
        self.store = open_store(settings.store)
        self.entries = CatalogEntries(self.store)
        for reg in self.entries.all():  # entries that holders published through the API
            self.catalog.registers[reg.id] = reg
        # refuse to serve extracts that fail the data check (raises engine.DataError)
        from antal.engine.datacheck import check_data, format_findings

        findings = check_data(self.installation, self.catalog)
        if findings:
            raise engine.DataError(
                f"the extracts fail the data check:\n{format_findings(findings)}", findings
            )
        self.accounts = Accounts(self.store)
        self.gate = Gate(self.store, self.params)
        self.backend = engine.get_backend(
            "duckdb", self.installation, self.catalog, threads=settings.threads,
            memory_limit=settings.memory_limit, query_seconds=settings.query_seconds,
        )  # fmt: skip
        self.requests = RateLimiter(settings.requests_per_minute)
        self.counts = RateLimiter(settings.counts_per_minute)
        self.checks = RateLimiter(settings.checks_per_minute)
        self.auth_failures = RateLimiter(settings.auth_failures_per_minute)


_bearer = HTTPBearer(auto_error=False)


def _state(request: Request) -> "State":
    return request.app.state.antal


def current_user(
    request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    state = _state(request)
    if cred is None or cred.scheme.lower() != "bearer":
        raise ApiError(401, "unauthenticated", "send `Authorization: Bearer <token>`",
                       headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    # Guessing tokens: after a number of wrong ones from an address, every token from it
    # (right or wrong, unchecked) is answered 429 until the oldest failure is a minute old.
    address = request.client.host if request.client else "unknown"
    wait = state.auth_failures.blocked(address)
    if wait is not None:
        raise ApiError(429, "rate_limited",
                       f"too many failed authentications; try again in {RateLimiter.retry_after(wait)} s",
                       {"limit_per_minute": state.settings.auth_failures_per_minute},
                       {"Retry-After": RateLimiter.retry_after(wait)})  # fmt: skip
    u = state.accounts.authenticate(cred.credentials)
    if u is None:
        state.auth_failures.hit(address)
        raise ApiError(
            401,
            "unauthenticated",
            "unknown or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    wait = state.requests.check(u.id)
    if wait is not None:
        raise ApiError(429, "rate_limited", f"too many requests; try again in {RateLimiter.retry_after(wait)} s",
                       {"limit_per_minute": state.settings.requests_per_minute},
                       {"Retry-After": RateLimiter.retry_after(wait)})  # fmt: skip
    return u


def checking_user(request: Request, u: Annotated[User, Depends(current_user)]) -> User:
    """A user of a free route that parses cohorts or searches: limited on its own."""
    state = _state(request)
    wait = state.checks.check(u.id)
    if wait is not None:
        raise ApiError(429, "rate_limited", f"too many checks; try again in {RateLimiter.retry_after(wait)} s",
                       {"limit_per_minute": state.settings.checks_per_minute},
                       {"Retry-After": RateLimiter.retry_after(wait)})  # fmt: skip
    return u


def admin_user(u: Annotated[User, Depends(current_user)]) -> User:
    if u.role != "admin":
        raise ApiError(403, "forbidden", "this needs the role admin")
    return u


Authed = Annotated[User, Depends(current_user)]
Checking = Annotated[User, Depends(checking_user)]
Admin = Annotated[User, Depends(admin_user)]
ProjectId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", max_length=63)]


def create_app(settings: Settings) -> FastAPI:
    state = State(settings)
    app = FastAPI(
        title="antal",
        version="0.1.0",
        description="Feasibility counts over Swedish health registers. Every count is released "
        "through differential privacy under the project's budget; exact counts have no route.",
        responses=_ERRORS,  # type: ignore[arg-type]
    )
    app.state.antal = state
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    # ---- errors: one shape ------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.code, e.message, e.details, e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        return _error(e.status_code, code, str(e.detail), None, getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
            for err in e.errors()
        ]
        first = problems[0] if problems else {"where": "", "message": "invalid request"}
        return _error(
            422, "invalid_request", f"{first['where']}: {first['message']}", {"problems": problems}
        )

    @app.middleware("http")
    async def _unexpected(request: Request, call_next: Any) -> Any:
        # An exception handler for Exception answers, then re-raises, and the server drops
        # the connection; catching here keeps it open. Never a traceback, never data.
        try:
            return await call_next(request)
        except RecursionError:
            log.warning("input nested too deeply on %s %s", request.method, request.url.path)
            return _error(400, "too_deep", "the input is nested too deeply")
        except Exception as e:
            # the type only: an exception's text may quote a data value
            log.error("unexpected %s on %s %s", type(e).__name__, request.method, request.url.path)
            return _error(500, "internal", "the server could not answer this request")

    def member_project(pid: str, u: User) -> Any:
        project = state.store.project(pid)
        if project is None or (u.role != "admin" and not state.accounts.is_member(pid, u.id)):
            # the same answer whether the project exists or not: names of others' projects stay private
            raise ApiError(404, "not_found", f"no project {pid!r} of yours")
        return project

    # ---- catalog ----------------------------------------------------------------------------
    @app.get("/v1/catalog/registers", tags=["catalog"])
    def registers(u: Authed) -> list[dict[str, Any]]:
        return [
            {"id": r.id, "title": r.title.model_dump(), "holder": r.holder, "kind": r.kind,
             "coverage": r.coverage.model_dump(), "events": sorted({p.event for p in r.provides}),
             "internal": r.is_internal}
            for r in state.catalog.registers.values()
        ]  # fmt: skip

    @app.get("/v1/catalog/registers/{register_id}", tags=["catalog"])
    def register(register_id: Annotated[str, Path(max_length=64)], u: Authed) -> dict[str, Any]:
        reg = state.catalog.register(register_id)
        if reg is None:
            from antal.catalog import suggest

            hint = suggest(register_id, state.catalog.ids())
            raise ApiError(
                404,
                "not_found",
                f"unknown register '{register_id}'"
                + (f" - did you mean '{hint}'?" if hint else ""),
            )
        return reg.model_dump(mode="json")

    @app.put("/v1/catalog/registers/{register_id}", tags=["catalog"])
    def publish_register(
        register_id: Annotated[str, Path(pattern=r"^[a-z_][a-z0-9_]*$", max_length=64)],
        entry: Register,
        u: Authed,
    ) -> dict[str, Any]:
        """Publish a register's catalog entry: its holder (or an admin) only."""
        if u.role != "admin" and not (u.role == "holder" and register_id in u.registers):
            raise ApiError(
                403,
                "forbidden",
                f"only the holder of '{register_id}' or an admin may publish its entry",
            )
        if entry.id != register_id:
            raise ApiError(
                400, "invalid", f"the entry's id is {entry.id!r}, the path says {register_id!r}"
            )
        old = state.catalog.register(register_id)
        if old is not None and (old.kind, old.person_key) != (entry.kind, entry.person_key):
            raise ApiError(400, "invalid", "an entry keeps its kind and person key")
        if u.role != "admin":
            # a holder describes its register; which events it provides (and its kind, keys,
            # dates, internal flag) is the installation's decision, an admin's
            base = old or Register.model_validate(
                {**entry.model_dump(), "kind": "events", "provides": [], "internal": False,
                 "site_column": None}
            )  # fmt: skip
            fixed = sorted(
                f for f in Register.model_fields
                if f not in HOLDER_FIELDS and getattr(entry, f) != getattr(base, f)
            )  # fmt: skip
            if fixed:
                raise ApiError(
                    403,
                    "forbidden",
                    f"a holder publishes descriptions and variables only; {', '.join(fixed)} "
                    "can be changed by an admin",
                    {"fields": fixed},
                )
        state.entries.put(entry, actor=u.id)
        state.catalog.registers[register_id] = entry
        return entry.model_dump(mode="json")

    @app.get("/v1/catalog/regions", tags=["catalog"])
    def regions(u: Authed) -> list[dict[str, Any]]:
        return [r.model_dump() for r in state.catalog.regions]

    @app.get("/v1/catalog/sites", tags=["catalog"])
    def sites(u: Authed) -> list[dict[str, Any]]:
        return [s.model_dump() for s in state.catalog.sites]

    @app.get("/v1/catalog/code-systems", tags=["catalog"])
    def code_systems(u: Authed) -> list[dict[str, Any]]:
        out: dict[str, set[str]] = {}
        for reg in state.catalog.registers.values():
            for v in reg.variables:
                if v.code_system:
                    out.setdefault(v.code_system, set()).add(f"{reg.id}.{v.name}")
        return [{"code_system": k, "variables": sorted(v)} for k, v in sorted(out.items())]

    @app.get("/v1/catalog/search", tags=["catalog"])
    def search(
        u: Checking, q: Annotated[str, Query(min_length=1, max_length=100)]
    ) -> list[S.SearchHit]:
        from antal.catalog.codes import search_codes

        words = q.lower().split()
        hits: list[S.SearchHit] = []

        def match(*texts: str | None) -> bool:
            blob = " ".join(t for t in texts if t).lower()
            return all(w in blob for w in words)

        for reg in state.catalog.registers.values():
            if match(
                reg.id,
                reg.title.sv,
                reg.title.en,
                reg.description.en,
                reg.description.sv,
                *reg.keywords,
            ):
                hits.append(
                    S.SearchHit(
                        kind="register", register_id=reg.id, name=reg.id, description=reg.title.en
                    )
                )
            for v in reg.variables:
                if match(reg.id, v.name, v.description, v.code_system, v.unit):
                    hits.append(S.SearchHit(kind="variable", register_id=reg.id, name=v.name,
                                            description=v.description, code_system=v.code_system))  # fmt: skip
        for code, system, text in search_codes(q):
            hits.append(S.SearchHit(kind="code", name=code, description=text, code_system=system))
        return hits[:200]

    # ---- cohorts ------------------------------------------------------------------------------
    def to_ir(body: S.CohortIn) -> ir.Cohort:
        if body.cohort is not None:
            return engine.parse(body.cohort)
        try:
            node = ir.from_json(body.ir or {})
        except IRInvalid as e:
            raise ApiError(400, "ir_invalid", f"not a valid cohort IR: {e}") from None
        if not isinstance(node, ir.Cohort):
            raise ApiError(400, "ir_invalid", "the IR's top node must be of kind 'cohort'")
        return node

    def cohort_error(e: CohortError) -> ApiError:
        diags = [S.Diagnostic(line=d.line, column=d.column, message=d.message, hint=d.hint, code=d.code).model_dump()
                 for d in e.diagnostics]  # fmt: skip
        return ApiError(400, "cohort_invalid", str(e), {"diagnostics": diags})

    @app.post("/v1/cohorts/validate", tags=["cohorts"])
    def validate(body: S.CohortIn, u: Checking) -> S.ValidateOut:
        """Parse and check a cohort; no data is read and nothing is charged."""
        try:
            checked, compiled = engine.prepare(to_ir(body), state.catalog)
        except CohortError as e:
            diags = [S.Diagnostic(line=d.line, column=d.column, message=d.message, hint=d.hint, code=d.code)
                     for d in e.diagnostics]  # fmt: skip
            return S.ValidateOut(ok=False, diagnostics=diags)
        return S.ValidateOut(ok=True, diagnostics=[], query_hash=ir.ir_hash(checked),
                             steps=list(compiled.labels), registers=sorted(compiled.registers))  # fmt: skip

    @app.post("/v1/cohorts/compile", tags=["cohorts"])
    def compile_(body: S.CompileIn, u: Checking) -> S.CompileOut:
        """The one SQL statement of a cohort; no data is read and nothing is charged."""
        try:
            checked, compiled = engine.prepare(to_ir(body), state.catalog, state.installation)
        except CohortError as e:
            raise cohort_error(e) from None
        except MissingRegisterError as e:
            raise ApiError(400, "register_missing", str(e), {"registers": e.registers}) from None
        return S.CompileOut(sql=compiled.sql(body.dialect, pretty=True), dialect=body.dialect,
                            query_hash=ir.ir_hash(checked), registers=sorted(compiled.registers))  # fmt: skip

    @app.post("/v1/projects/{pid}/count", tags=["cohorts"], responses=_COUNT_FAILED)  # type: ignore[arg-type]
    def count(pid: ProjectId, body: S.CohortIn, u: Authed) -> S.CountOut:
        """Count a cohort for a project: released through differential privacy, charged to its budget."""
        project = member_project(pid, u)
        wait = state.counts.check(u.id)
        if wait is not None:
            raise ApiError(429, "rate_limited", f"too many counts; try again in {RateLimiter.retry_after(wait)} s",
                           {"limit_per_minute": state.settings.counts_per_minute},
                           {"Retry-After": RateLimiter.retry_after(wait)})  # fmt: skip
        try:
            checked, compiled = prepare_release(
                to_ir(body), state.installation, state.catalog, project.purpose
            )
        except CohortError as e:
            raise cohort_error(e) from None
        except MissingRegisterError as e:
            raise ApiError(400, "register_missing", str(e), {"registers": e.registers}) from None
        implicit = {r.id for r in (state.catalog.population, state.catalog.optout) if r is not None}
        unapproved = sorted(set(compiled.registers) - implicit - set(project.registers))
        if unapproved:
            raise ApiError(403, "register_not_approved",
                           f"project {pid!r} is not approved for {', '.join(unapproved)}",
                           {"registers": unapproved, "approved": list(project.registers)})  # fmt: skip
        try:
            answer = release(
                checked, compiled, state.installation, state.catalog, state.gate, pid, u.id,
                state.backend,
            )  # fmt: skip
        except BudgetExceeded as e:
            raise ApiError(
                403, "budget_exceeded", str(e), {"needed": e.needed, "left": e.left}
            ) from None
        except CountFailed as e:
            # charged; one status and one text whatever failed (see privacy.gate)
            raise ApiError(
                503, "count_failed", str(e), {"epsilon_charged": e.charged, "budget_left": e.left}
            ) from None
        except BreakdownTooFine as e:
            raise ApiError(
                400, "breakdown_too_fine", str(e), {"cells": e.cells, "limit": e.limit}
            ) from None
        except UnknownProject:
            raise ApiError(404, "not_found", f"no project {pid!r} of yours") from None
        return S.CountOut.model_validate(answer.to_json())

    @app.get("/v1/projects/{pid}/queries", tags=["projects"])
    def queries(pid: ProjectId, u: Authed) -> list[S.QueryOut]:
        """The project's earlier queries and their stored (released) answers."""
        member_project(pid, u)
        return [
            S.QueryOut(
                answer_key=k, query=json.loads(q), first_asked=t, answer=_public(json.loads(a))
            )
            for k, q, t, a in state.store.project_queries(pid)
        ]

    @app.get("/v1/projects/{pid}/queries/{key}", tags=["projects"])
    def query(
        pid: ProjectId, key: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], u: Authed
    ) -> S.QueryOut:
        member_project(pid, u)
        for k, q, t, a in state.store.project_queries(pid):
            if k == key:
                return S.QueryOut(
                    answer_key=k, query=json.loads(q), first_asked=t, answer=_public(json.loads(a))
                )
        raise ApiError(404, "not_found", "no such query in this project")

    @app.get("/v1/projects/{pid}/budget", tags=["projects"])
    def budget(pid: ProjectId, u: Authed) -> S.BudgetOut:
        p = member_project(pid, u)
        return S.BudgetOut(project=p.id, total=p.budget, spent=round(p.spent, 12), left=p.left,
                           epsilon_per_query=state.gate.cost(False),
                           epsilon_per_query_with_breakdown=state.gate.cost(True))  # fmt: skip

    @app.get("/v1/me", tags=["projects"])
    def me(u: Authed) -> S.UserOut:
        return S.UserOut(id=u.id, name=u.name, role=u.role, registers=list(u.registers),
                         projects=state.accounts.projects_of(u.id))  # fmt: skip

    # ---- audit (admin) --------------------------------------------------------------------------
    @app.get("/v1/audit", tags=["audit"])
    def audit(u: Admin, since: Annotated[int, Query(ge=0)] = 0,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[S.AuditEntryOut]:  # fmt: skip
        out = [e for e in state.store.audit_entries() if e.seq > since][:limit]
        return [
            S.AuditEntryOut(**{k: getattr(e, k) for k in S.AuditEntryOut.model_fields}) for e in out
        ]

    @app.get("/v1/audit/verify", tags=["audit"])
    def audit_verify(u: Admin) -> S.AuditVerifyOut:
        problems = state.store.verify_audit() + state.store.ledger_problems()
        return S.AuditVerifyOut(
            ok=not problems, entries=len(state.store.audit_entries()), problems=problems
        )

    # ---- administration -----------------------------------------------------------------------
    @app.post("/v1/admin/users", tags=["admin"], status_code=201)
    def create_user(body: S.UserIn, u: Admin) -> S.UserOut:
        try:
            nu = state.accounts.create_user(
                body.id, body.name, body.role, tuple(body.registers), actor=u.id
            )
        except (AlreadyExists, InvalidValue) as e:
            raise ApiError(400, "invalid", str(e)) from None
        return S.UserOut(id=nu.id, name=nu.name, role=nu.role, registers=list(nu.registers))

    @app.post("/v1/admin/users/{uid}/tokens", tags=["admin"], status_code=201)
    def create_token(uid: Annotated[str, Path(max_length=64)], u: Admin) -> S.TokenOut:
        try:
            return S.TokenOut(user=uid, token=state.accounts.issue_token(uid, actor=u.id))
        except UnknownUser:
            raise ApiError(404, "not_found", f"no user {uid!r}") from None

    @app.post("/v1/admin/projects", tags=["admin"], status_code=201)
    def create_project(body: S.ProjectIn, u: Admin) -> S.ProjectOut:
        unknown = sorted(set(body.registers) - set(state.catalog.ids()))
        if unknown:
            raise ApiError(400, "unknown_register", f"unknown register(s) {', '.join(unknown)}")
        try:
            p = state.store.create_project(
                body.id, body.title, body.purpose, body.budget, tuple(body.registers), actor=u.id
            )
        except AlreadyExists:
            raise ApiError(400, "invalid", f"project {body.id!r} exists") from None
        return _project_out(p)

    @app.put("/v1/admin/projects/{pid}/registers", tags=["admin"])
    def approve(pid: ProjectId, body: S.ApprovalIn, u: Admin) -> S.ProjectOut:
        if state.store.project(pid) is None:
            raise ApiError(404, "not_found", f"no project {pid!r}")
        unknown = sorted(set(body.registers) - set(state.catalog.ids()))
        if unknown:
            raise ApiError(400, "unknown_register", f"unknown register(s) {', '.join(unknown)}")
        state.store.set_registers(pid, tuple(body.registers), actor=u.id)
        p = state.store.project(pid)
        assert p is not None
        return _project_out(p)

    @app.post("/v1/admin/projects/{pid}/members", tags=["admin"], status_code=201)
    def add_member(pid: ProjectId, body: S.MemberIn, u: Admin) -> S.UserOut:
        try:
            state.accounts.add_member(pid, body.user, actor=u.id)
        except NotFound as e:
            raise ApiError(404, "not_found", str(e)) from None
        m = state.accounts.user(body.user)
        assert m is not None
        return S.UserOut(id=m.id, name=m.name, role=m.role, registers=list(m.registers),
                         projects=state.accounts.projects_of(m.id))  # fmt: skip

    @app.get("/v1/admin/projects", tags=["admin"])
    def list_projects(u: Admin) -> list[S.ProjectOut]:
        return [_project_out(p) for p in state.store.projects()]

    @app.get("/v1/admin/users", tags=["admin"])
    def list_users(u: Admin) -> list[S.UserOut]:
        return [S.UserOut(id=x.id, name=x.name, role=x.role, registers=list(x.registers),
                          projects=state.accounts.projects_of(x.id)) for x in state.accounts.users()]  # fmt: skip

    @app.get("/healthz", tags=["service"], include_in_schema=True)
    def health() -> dict[str, str]:
        return {"status": "ok", "data_release": state.installation.release}

    return app


def _project_out(p: Project) -> S.ProjectOut:
    return S.ProjectOut(id=p.id, title=p.title, purpose=p.purpose, budget=p.budget, spent=p.spent,
                        registers=list(p.registers))  # fmt: skip


def _public(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored answer as users see it (the same released values, in the API's shape)."""
    return {
        "attrition": stored["steps"],
        "dims": stored["dims"],
        "breakdown": [
            {**dict(zip(stored["dims"], k, strict=True)), **c} for k, c in stored["cells"]
        ],
        "epsilon": stored["epsilon"],
        "privacy": stored["params"],
    }
