"""Project routes: earlier queries and their released answers, the budget, who I am."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from antal.api import schemas as S
from antal.api.frames import count_columns
from antal.api.routes.deps import ApiError, Authed, ProjectId, member_project, state_of

__all__ = ["router"]

router = APIRouter(tags=["projects"])


@router.get("/v1/projects/{pid}/queries")
def queries(request: Request, pid: ProjectId, u: Authed) -> list[S.QueryOut]:
    """The project's earlier queries and their stored (released) answers."""
    state = state_of(request)
    member_project(state, pid, u)
    receipts = state.store.receipts(pid)
    return [_query(k, q, t, a, receipts.get(k)) for k, q, t, a in state.store.project_queries(pid)]


@router.get("/v1/projects/{pid}/queries/{key}")
def query(
    request: Request, pid: ProjectId, key: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    u: Authed,
) -> S.QueryOut:  # fmt: skip
    state = state_of(request)
    member_project(state, pid, u)
    for k, q, t, a in state.store.project_queries(pid):
        if k == key:
            return _query(k, q, t, a, state.store.receipts(pid).get(k))
    raise ApiError(404, "not_found", "no such query in this project")


@router.get("/v1/projects/{pid}/budget")
def budget(request: Request, pid: ProjectId, u: Authed) -> S.BudgetOut:
    state = state_of(request)
    p = member_project(state, pid, u)
    gate = state.gate
    gaussian = gate.params.noise != "laplace"
    return S.BudgetOut(project=p.id, total=p.budget, spent=round(p.spent, 12), left=p.left,
                       epsilon_per_query=gate.next_cost(p.id, False),
                       epsilon_per_query_with_breakdown=gate.next_cost(p.id, True),
                       noise=gate.params.noise,
                       rho_per_query=gate.cost(False) if gaussian else None,
                       rho_per_query_with_breakdown=gate.cost(True) if gaussian else None,
                       rho_left=gate.rho_left(p.id))  # fmt: skip


@router.get("/v1/me")
def me(request: Request, u: Authed) -> S.UserOut:
    return S.UserOut(id=u.id, name=u.name, role=u.role, registers=list(u.registers),
                     projects=state_of(request).accounts.projects_of(u.id))  # fmt: skip


def _query(key: str, query: str, first: str, released: str, receipt: str | None) -> S.QueryOut:
    return S.QueryOut(
        answer_key=key, query=json.loads(query), first_asked=first,
        answer=_public(json.loads(released)),
        receipt=json.loads(receipt) if receipt else None,
    )  # fmt: skip


def _public(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored answer as users see it (the same released values, in the API's shape; an
    answer stored before issue 11 is shown in the current form of counts too)."""
    return {
        "attrition": [count_columns(c) for c in stored["steps"]],
        "dims": stored["dims"],
        "breakdown": [
            {**dict(zip(stored["dims"], k, strict=True)), **count_columns(c)}
            for k, c in stored["cells"]
        ],
        "epsilon": stored["epsilon"],
        "privacy": stored["params"],
    }
