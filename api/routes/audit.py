"""Audit routes (admins): the log's entries and the verification of its chain and the ledger."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from antal.api import schemas as S
from antal.api import usecases as uc
from antal.api.routes.deps import Admin, state_of

__all__ = ["router"]

router = APIRouter(tags=["audit"])


@router.get("/v1/audit")
def audit(request: Request, u: Admin, since: Annotated[int, Query(ge=0)] = 0,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[S.AuditEntryOut]:  # fmt: skip
    out = [e for e in state_of(request).store.audit_entries() if e.seq > since][:limit]
    return [
        S.AuditEntryOut(**{k: getattr(e, k) for k in S.AuditEntryOut.model_fields}) for e in out
    ]


@router.get("/v1/audit/verify")
def audit_verify(request: Request, u: Admin) -> S.AuditVerifyOut:
    found = uc.verify_audit(state_of(request).store)
    return S.AuditVerifyOut(ok=not found.problems, entries=found.entries, signed=found.signed,
                            problems=found.problems, notes=found.notes)  # fmt: skip
