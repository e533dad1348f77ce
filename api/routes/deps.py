"""What the routers share: the service's state, authentication and rate limits, and the one
mapping from typed errors (of the use cases, the engine and the privacy layer) to HTTP
statuses in the one error shape {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from antal.api import schemas as S
from antal.api import usecases as uc
from antal.api.accounts import Accounts, CatalogEntries, User
from antal.api.metrics import Metrics
from antal.api.ratelimit import AuthThrottle, RateLimiter
from antal.api.settings import Settings
from antal.engine import (
    BreakdownTooFine,
    CohortError,
    IRInvalid,
    MissingColumnError,
    MissingRegisterError,
)
from antal.privacy import (
    BudgetExceeded,
    CountFailed,
    Project,
    StoreUnavailable,
    UnknownProject,
)

__all__ = [
    "ERRORS",
    "Admin",
    "ApiError",
    "Authed",
    "Checking",
    "ProjectId",
    "State",
    "UnexpectedErrors",
    "authenticate",
    "client_address",
    "error_response",
    "install_error_handlers",
    "member_project",
    "project_out",
    "state_of",
]

T = TypeVar("T")


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


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    Metrics.count_error(code)  # /metrics: the errors answered, by code (no message, no details)
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


ERRORS = {
    400: {"model": S.ErrorBody, "description": "bad input"},
    401: {"model": S.ErrorBody, "description": "no or unknown bearer token"},
    403: {"model": S.ErrorBody, "description": "not allowed (role, project, approval or budget)"},
    404: {"model": S.ErrorBody, "description": "no such thing"},
    413: {"model": S.ErrorBody, "description": "the request body is too large"},
    422: {"model": S.ErrorBody, "description": "the request body or parameters do not validate"},
    429: {"model": S.ErrorBody, "description": "rate limit; see Retry-After"},
}


class State:
    """What the routes share; built once per app from the one settings model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.installation = uc.open_installation(settings)
        self.params = self.installation.privacy
        self.store = uc.open_store(settings)
        self.entries = CatalogEntries(self.store)
        # bundled entries, the installation's, and those holders published through the API
        self.catalog = uc.open_catalog(self.installation, self.store)
        uc.check_data(self.installation, self.catalog)  # refuse to serve failing extracts
        self.accounts = Accounts(self.store)
        # the installation's receipt key: made on first start, refused if others may read it
        self.gate = uc.open_gate(settings, self.installation, self.store)
        self.signer = self.gate.signer
        self.backend = uc.open_backend(settings, self.installation, self.catalog)
        self.requests = RateLimiter(settings.requests_per_minute)
        self.counts = RateLimiter(settings.counts_per_minute)
        self.checks = RateLimiter(settings.checks_per_minute)
        self.auth_failures = AuthThrottle(
            settings.auth_failures_per_minute, settings.auth_failures_global_per_minute
        )


def state_of(request: Request) -> State:
    return request.app.state.antal


def rate_limited(what: str, wait: float, limit: int) -> ApiError:
    after = RateLimiter.retry_after(wait)
    return ApiError(429, "rate_limited", f"too many {what}; try again in {after} s",
                    {"limit_per_minute": limit}, {"Retry-After": after})  # fmt: skip


_bearer = HTTPBearer(auto_error=False)


def client_address(request: Request) -> str:
    """The client's address: the socket's peer, or the client that a proxy the operator
    named (`forwarded_allow_ips`) forwarded for; never a header from anyone else."""
    return request.client.host if request.client else "unknown"


def authenticate(
    request: Request,
    cred: HTTPAuthorizationCredentials | None,
    throttle: AuthThrottle,
    lookup: Callable[[str], T | None],
) -> T:
    """The one bearer-token check of the service and the hub: `lookup(token)` (by the
    token's hash, so no comparison tells how much of a guess was right) names its holder.

    A valid token is served whatever the throttle says; an unknown one is answered 401
    while the failures of its address and of the server are under their limits (and
    counted), else 429 (and not counted). So nobody sharing a guesser's address, or the
    server with a guesser elsewhere, is locked out, and a missing token does not count."""
    if cred is None or cred.scheme.lower() != "bearer":
        raise ApiError(401, "unauthenticated", "send `Authorization: Bearer <token>`",
                       headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    found = lookup(cred.credentials)
    if found is not None:
        return found
    refused = throttle.failed(client_address(request))
    if refused is not None:
        after = RateLimiter.retry_after(refused.wait)
        where = "from this address" if refused.scope == "address" else "on this server"
        raise ApiError(429, "rate_limited",
                       f"too many failed authentications {where}; try again in {after} s",
                       {"limit_per_minute": refused.limit, "scope": refused.scope},
                       {"Retry-After": after})  # fmt: skip
    raise ApiError(401, "unauthenticated", "unknown or revoked token",
                   headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


def current_user(
    request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    state = state_of(request)
    u = authenticate(request, cred, state.auth_failures, state.accounts.authenticate)
    wait = state.requests.check(u.id)
    if wait is not None:
        raise rate_limited("requests", wait, state.settings.requests_per_minute)
    return u


async def checking_user(request: Request, u: Annotated[User, Depends(current_user)]) -> User:
    """A user of a free route that parses cohorts or searches: limited on its own. On the
    event loop (a counter in memory): a sync dependency costs a hop to a worker thread."""
    state = state_of(request)
    wait = state.checks.check(u.id)
    if wait is not None:
        raise rate_limited("checks", wait, state.settings.checks_per_minute)
    return u


async def admin_user(u: Annotated[User, Depends(current_user)]) -> User:
    if u.role != "admin":
        raise ApiError(403, "forbidden", "this needs the role admin")
    return u


Authed = Annotated[User, Depends(current_user)]
Checking = Annotated[User, Depends(checking_user)]
Admin = Annotated[User, Depends(admin_user)]
ProjectId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", max_length=63)]


def member_project(state: State, pid: str, u: User) -> Project:
    project = state.store.project(pid)
    if project is None or (u.role != "admin" and not state.accounts.is_member(pid, u.id)):
        # the same answer whether the project exists or not: names of others' projects stay private
        raise ApiError(404, "not_found", f"no project {pid!r} of yours")
    return project


def project_out(p: Project) -> S.ProjectOut:
    return S.ProjectOut(id=p.id, title=p.title, purpose=p.purpose, budget=p.budget, spent=p.spent,
                        registers=list(p.registers))  # fmt: skip


def _status(e: uc.UseCaseError) -> int:
    if isinstance(e, uc.NotFound):
        return 404
    if isinstance(e, uc.NotApproved | uc.Forbidden):
        return 403
    if isinstance(e, uc.EntryMismatch):
        return 422
    return 400


def install_request_errors(app: FastAPI, log: logging.Logger, unexpected: str) -> None:
    """The answers every antal server (the service, the federation hub) gives to what
    goes wrong around its routes, in the one JSON error shape: HTTP errors, invalid
    requests, input nested too deeply, and any other exception (`unexpected` as the 500's
    message; the log names the exception's type only: its text may quote a data value)."""

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        return error_response(e.status_code, code, str(e.detail), None, getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
            for err in e.errors()
        ]
        first = problems[0] if problems else {"where": "", "message": "invalid request"}
        return error_response(
            422, "invalid_request", f"{first['where']}: {first['message']}", {"problems": problems}
        )

    app.add_middleware(UnexpectedErrors, log=log, message=unexpected)


class UnexpectedErrors:
    """Any exception of the app answered in the one error shape: 400 `too_deep` for input
    nested too deeply, else 500 with the server's `message`; never a traceback, never
    data (the log names the exception's type only). An exception handler for Exception
    answers, then re-raises, and the server drops the connection; catching here keeps it
    open. Pure ASGI: Starlette's `@app.middleware("http")` runs every request in a task of
    its own and cost a third of what the service spent on a request that reads the store."""

    def __init__(self, app: ASGIApp, log: logging.Logger, message: str) -> None:
        self.app, self.log, self.message = app, log, message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as e:
            if started:  # an answer begun cannot be replaced: the server ends it
                raise
            where = (scope.get("method", ""), scope.get("path", ""))
            if isinstance(e, RecursionError):
                self.log.warning("input nested too deeply on %s %s", *where)
                answer = error_response(400, "too_deep", "the input is nested too deeply")
            else:
                self.log.error("unexpected %s on %s %s", type(e).__name__, *where)
                answer = error_response(500, "internal", self.message)
            await answer(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Typed errors → status and code, here only (the routes just call the use cases)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.code, e.message, e.details, e.headers)

    @app.exception_handler(uc.UseCaseError)
    async def _use_case(request: Request, e: uc.UseCaseError) -> JSONResponse:
        return error_response(_status(e), e.code, e.message, e.details)

    @app.exception_handler(CohortError)
    async def _cohort(request: Request, e: CohortError) -> JSONResponse:
        diags = [S.Diagnostic(line=d.line, column=d.column, message=d.message, hint=d.hint, code=d.code).model_dump()
                 for d in e.diagnostics]  # fmt: skip
        return error_response(400, "cohort_invalid", str(e), {"diagnostics": diags})

    @app.exception_handler(IRInvalid)
    async def _ir(request: Request, e: IRInvalid) -> JSONResponse:
        return error_response(400, "ir_invalid", str(e))

    @app.exception_handler(BreakdownTooFine)
    async def _too_fine(request: Request, e: BreakdownTooFine) -> JSONResponse:
        return error_response(
            400, "breakdown_too_fine", str(e), {"cells": e.cells, "limit": e.limit}
        )

    @app.exception_handler(MissingRegisterError)
    async def _missing(request: Request, e: MissingRegisterError) -> JSONResponse:
        return error_response(400, "register_missing", str(e), {"registers": e.registers})

    @app.exception_handler(MissingColumnError)
    async def _missing_column(request: Request, e: MissingColumnError) -> JSONResponse:
        return error_response(400, "column_missing", str(e), {"columns": [
            {"register": r, "column": c, "file": f} for r, c, f in e.columns]})  # fmt: skip

    @app.exception_handler(BudgetExceeded)
    async def _budget(request: Request, e: BudgetExceeded) -> JSONResponse:
        return error_response(403, "budget_exceeded", str(e), {"needed": e.needed, "left": e.left})

    @app.exception_handler(CountFailed)
    async def _failed(request: Request, e: CountFailed) -> JSONResponse:
        # charged; one status and one text whatever failed (see privacy.gate)
        return error_response(503, "count_failed", str(e),
                              {"epsilon_charged": e.charged, "budget_left": e.left})  # fmt: skip

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, e: StoreUnavailable) -> JSONResponse:
        # the operator's log names the store and the reason; the client is told neither
        logging.getLogger("antal.api").error("%s", e)
        return error_response(
            503, "store_unavailable", "the store cannot be reached; try again later"
        )

    @app.exception_handler(UnknownProject)
    async def _unknown_project(request: Request, e: UnknownProject) -> JSONResponse:
        return error_response(404, "not_found", f"no project {e.project_id!r} of yours")
