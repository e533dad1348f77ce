"""Project routes: earlier queries and their released answers, the budget, who I am."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from antal.api import schemas as S
from antal.api.routes.deps import ApiError, Authed, ProjectId, member_project, state_of

__all__ = ["router"]

router = APIRouter(tags=["projects"])


@router.get("/v1/projects/{pid}/queries")
def queries(request: Request, pid: ProjectId, u: Authed) -> list[S.QueryOut]:
    """The project's earlier queries and their stored (released) answers."""
    state = state_of(request)
    member_project(state, pid, u)
    return [
        S.QueryOut(answer_key=k, query=json.loads(q), first_asked=t, answer=_public(json.loads(a)))
        for k, q, t, a in state.store.project_queries(pid)
    ]


@router.get("/v1/projects/{pid}/queries/{key}")
def query(
    request: Request, pid: ProjectId, key: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    u: Authed,
) -> S.QueryOut:  # fmt: skip
    state = state_of(request)
    member_project(state, pid, u)
    for k, q, t, a in state.store.project_queries(pid):
        if k == key:
            return S.QueryOut(
                answer_key=k, query=json.loads(q), first_asked=t, answer=_public(json.loads(a))
            )
    raise ApiError(404, "not_found", "no such query in this project")


@router.get("/v1/projects/{pid}/budget")
def budget(request: Request, pid: ProjectId, u: Authed) -> S.BudgetOut:
    state = state_of(request)
    p = member_project(state, pid, u)
    return S.BudgetOut(project=p.id, total=p.budget, spent=round(p.spent, 12), left=p.left,
                       epsilon_per_query=state.gate.cost(False),
                       epsilon_per_query_with_breakdown=state.gate.cost(True))  # fmt: skip


@router.get("/v1/me")
def me(request: Request, u: Authed) -> S.UserOut:
    return S.UserOut(id=u.id, name=u.name, role=u.role, registers=list(u.registers),
                     projects=state_of(request).accounts.projects_of(u.id))  # fmt: skip


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
