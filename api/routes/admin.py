"""Administration routes (admins): users, tokens, projects, approvals, members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from antal.api import schemas as S
from antal.api import usecases as uc
from antal.api.routes.deps import Admin, ProjectId, project_out, state_of

__all__ = ["router"]

router = APIRouter(tags=["admin"])

UserId = Annotated[str, Path(max_length=64)]


@router.post("/v1/admin/users", status_code=201)
def create_user(request: Request, body: S.UserIn, u: Admin) -> S.UserOut:
    nu = uc.create_user(
        state_of(request).accounts, body.id, body.name, body.role, tuple(body.registers), u.id
    )
    return S.UserOut(id=nu.id, name=nu.name, role=nu.role, registers=list(nu.registers))


@router.post("/v1/admin/users/{uid}/tokens", status_code=201)
def create_token(request: Request, uid: UserId, u: Admin) -> S.TokenOut:
    return S.TokenOut(user=uid, token=uc.issue_token(state_of(request).accounts, uid, u.id))


@router.delete("/v1/admin/users/{uid}/tokens")
def revoke_tokens(request: Request, uid: UserId, u: Admin) -> S.TokensRevokedOut:
    """Revoke every token of a user (audited); the user and their memberships stay."""
    return S.TokensRevokedOut(
        user=uid, revoked=uc.revoke_tokens(state_of(request).accounts, uid, u.id)
    )


@router.post("/v1/admin/projects", status_code=201)
def create_project(request: Request, body: S.ProjectIn, u: Admin) -> S.ProjectOut:
    state = state_of(request)
    p = uc.create_project(
        state.store, state.accounts, state.catalog, body.id, body.title, body.purpose,
        body.budget, tuple(body.registers), actor=u.id,
    )  # fmt: skip
    return project_out(p)


@router.put("/v1/admin/projects/{pid}/budget")
def set_budget(request: Request, pid: ProjectId, body: S.BudgetIn, u: Admin) -> S.ProjectOut:
    """Set a project's total ε budget (never below what it spent); audited."""
    return project_out(uc.set_budget(state_of(request).store, pid, body.budget, u.id))


@router.put("/v1/admin/projects/{pid}/registers")
def approve(request: Request, pid: ProjectId, body: S.ApprovalIn, u: Admin) -> S.ProjectOut:
    state = state_of(request)
    return project_out(
        uc.set_registers(state.store, state.catalog, pid, tuple(body.registers), u.id)
    )


@router.post("/v1/admin/projects/{pid}/registers")
def add_registers(request: Request, pid: ProjectId, body: S.ApprovalIn, u: Admin) -> S.ProjectOut:
    """Add registers to a project's approvals; those it has stay."""
    state = state_of(request)
    return project_out(
        uc.approve_registers(state.store, state.catalog, pid, tuple(body.registers), u.id)
    )


@router.delete("/v1/admin/projects/{pid}/registers/{register_id}")
def revoke_register(
    request: Request, pid: ProjectId, register_id: Annotated[str, Path(max_length=64)], u: Admin
) -> S.ProjectOut:
    """Remove one register from a project's approvals."""
    return project_out(uc.revoke_registers(state_of(request).store, pid, (register_id,), u.id))


@router.post("/v1/admin/projects/{pid}/members", status_code=201)
def add_member(request: Request, pid: ProjectId, body: S.MemberIn, u: Admin) -> S.UserOut:
    state = state_of(request)
    m = uc.add_member(state.accounts, pid, body.user, u.id)
    return S.UserOut(id=m.id, name=m.name, role=m.role, registers=list(m.registers),
                     projects=state.accounts.projects_of(m.id))  # fmt: skip


@router.get("/v1/admin/projects")
def list_projects(request: Request, u: Admin) -> list[S.ProjectOut]:
    return [project_out(p) for p in state_of(request).store.projects()]


@router.get("/v1/admin/users")
def list_users(request: Request, u: Admin) -> list[S.UserOut]:
    accounts = state_of(request).accounts
    return [S.UserOut(id=x.id, name=x.name, role=x.role, registers=list(x.registers),
                      projects=accounts.projects_of(x.id)) for x in accounts.users()]  # fmt: skip
