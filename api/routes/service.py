"""Service routes: health, without a token; metrics, from loopback or with the metrics
token (antal.api.metrics)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from antal.api.metrics import CONTENT_TYPE, METRICS_REFUSED, metrics_allowed, render
from antal.api.routes.deps import ApiError, state_of

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get("/healthz", include_in_schema=True)
def health(request: Request) -> dict[str, str]:
    return {"status": "ok", "data_release": state_of(request).installation.release}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Prometheus text format: requests by route and status, durations, errors by code.

    From loopback, or with the `metrics_token` setting as a bearer token."""
    if not metrics_allowed(request, state_of(request).settings.metrics_token):
        raise ApiError(403, "forbidden", METRICS_REFUSED)
    return render(request.app.state.metrics.lines())
