"""The HTTP API (FastAPI): `create_app` builds the application from the one settings model,
its routers (api/routes/, one per area) and the one error shape {"error": {"code",
"message", "details"}}. Every count goes through `privacy`; there is no route for exact
counts. The routes only translate: they call `antal.api.usecases`."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from antal.api.bodylimit import BodyLimit
from antal.api.metrics import Metrics, MetricsMiddleware
from antal.api.routes import ROUTERS
from antal.api.routes.deps import (
    ERRORS,
    ApiError,
    State,
    install_error_handlers,
    install_request_errors,
)
from antal.api.settings import Settings
from antal.api.web import install_web
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
        # Swagger UI at /docs from vendored files (antal.api.web), no CDN; no ReDoc
        docs_url=None,
        redoc_url=None,
    )
    app.state.antal = state
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    install_error_handlers(app)

    install_request_errors(app, log, "the server could not answer this request")

    for router in ROUTERS:
        app.include_router(router)
    install_web(app)  # the workbench at /web, its static files, /docs
    app.state.metrics = Metrics("antal")
    # added last, so the outermost: it times and counts every answer, a 413 and a 500 too
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
