"""The HTTP API (FastAPI): `create_app` builds the application from the one settings model,
its routers (api/routes/, one per area) and the one error shape {"error": {"code",
"message", "details"}}. Every count goes through `privacy`; there is no route for exact
counts. The routes only translate: they call `antal.api.usecases`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from antal.api.bodylimit import BodyLimit
from antal.api.routes import ROUTERS
from antal.api.routes.deps import ERRORS, ApiError, State, error_response, install_error_handlers
from antal.api.settings import Settings
from antal.engine.limits import MAX_BODY_BYTES

__all__ = ["ApiError", "create_app"]

log = logging.getLogger("antal.api")


def create_app(settings: Settings) -> FastAPI:
    state = State(settings)
    app = FastAPI(
        title="antal",
        version="0.1.0",
        description="Feasibility counts over Swedish health registers. Every count is released "
        "through differential privacy under the project's budget; exact counts have no route.",
        responses=ERRORS,  # type: ignore[arg-type]
    )
    app.state.antal = state
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    install_error_handlers(app)

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

    @app.middleware("http")
    async def _unexpected(request: Request, call_next: Any) -> Any:
        # An exception handler for Exception answers, then re-raises, and the server drops
        # the connection; catching here keeps it open. Never a traceback, never data.
        try:
            return await call_next(request)
        except RecursionError:
            log.warning("input nested too deeply on %s %s", request.method, request.url.path)
            return error_response(400, "too_deep", "the input is nested too deeply")
        except Exception as e:
            # the type only: an exception's text may quote a data value
            log.error("unexpected %s on %s %s", type(e).__name__, request.method, request.url.path)
            return error_response(500, "internal", "the server could not answer this request")

    for router in ROUTERS:
        app.include_router(router)
    return app
