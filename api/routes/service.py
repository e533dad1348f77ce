"""Service routes: health, without a token."""

from __future__ import annotations

from fastapi import APIRouter, Request

from antal.api.routes.deps import state_of

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get("/healthz", include_in_schema=True)
def health(request: Request) -> dict[str, str]:
    return {"status": "ok", "data_release": state_of(request).installation.release}
