"""The holder's view: for each of a registry holder's own registers, the projects approved
for it, the ε spent on queries reading it and the audit entries touching it; no answers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from antal.api import usecases as uc
from antal.api.routes.deps import Authed, state_of

__all__ = ["router"]

router = APIRouter(tags=["holder"])

Limit = Annotated[int, Query(ge=1, le=1000, description="newest audit entries per register")]


@router.get("/v1/holder/registers")
def holder_registers(request: Request, u: Authed, limit: Limit = 100) -> list[dict[str, Any]]:
    """Each of your registers (a holder's own; every register for an admin): the projects
    approved for it and their purposes, the ε they spent on queries reading it, and the
    audit entries touching it (queries, approvals, published versions), never an answer.
    Anyone else: 403."""
    state = state_of(request)
    return uc.holder_overview(state.store, state.catalog, u, limit=limit)


@router.get("/v1/holder/registers/{register_id}")
def holder_register(
    request: Request, register_id: Annotated[str, Path(max_length=64)], u: Authed,
    limit: Limit = 100,
) -> dict[str, Any]:  # fmt: skip
    """One of your registers, as in `/v1/holder/registers`; another's register: 403."""
    state = state_of(request)
    (one,) = uc.holder_overview(state.store, state.catalog, u, register_id, limit=limit)
    return one
