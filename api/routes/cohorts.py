"""Cohort routes: validate and compile (no data, no charge), quote what a count would cost
(no data, no charge), and count for a project (released through the privacy layer, charged
to its budget)."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from antal.api import schemas as S
from antal.api import usecases as uc
from antal.api.routes.deps import (
    Authed,
    Checking,
    ProjectId,
    member_project,
    rate_limited,
    state_of,
)
from antal.engine import ir

__all__ = ["router"]

router = APIRouter(tags=["cohorts"])

_COUNT_FAILED = {
    503: {
        "model": S.ErrorBody,
        "description": "the count could not be computed (charged; the same answer whatever failed)",
    }
}


def _cohort(body: S.CohortIn) -> str | ir.Cohort:
    return body.cohort if body.cohort is not None else uc.cohort_from_json(body.ir)


def _json(model: BaseModel) -> Response:
    """A response model, validated once as it was made, as JSON: FastAPI would validate it
    again, in a worker thread of its own for a route like these (the service's most asked)."""
    return Response(model.model_dump_json(), media_type="application/json")


# A stored answer's response, kept by everything it is made of: the answer as the gate keeps
# it shown, the charge, the budget left, the stored flag, the receipt (its signature covers
# every field of it), and the cohort's warnings and data currency (the objects of the kept
# preparation, held here, so their ids stay theirs). The next ask of the same makes the same.
_STORED_KEPT = 256
_stored_responses: dict[tuple[Any, ...], tuple[Any, Any, bytes]] = {}


def _count_json(counted: uc.Counted) -> Response:
    a = counted.answer
    if a.shown_json is None:  # released now: shown once
        return _json(S.CountOut.model_validate(counted.to_json()))
    key = (a.shown_json, a.epsilon_charged, a.budget_left, a.stored,
           a.signed_receipt.get("signature"), id(counted.warnings), id(counted.currency))  # fmt: skip
    kept = _stored_responses.get(key)
    if kept is not None and kept[0] is counted.warnings and kept[1] is counted.currency:
        return Response(kept[2], media_type="application/json")
    body = S.CountOut.model_validate(counted.to_json()).model_dump_json().encode()
    if len(_stored_responses) >= _STORED_KEPT:
        with contextlib.suppress(RuntimeError, StopIteration, KeyError):  # another thread's
            _stored_responses.pop(next(iter(_stored_responses)))
    _stored_responses[key] = (counted.warnings, counted.currency, body)
    return Response(body, media_type="application/json")


@router.post("/v1/cohorts/validate", response_model=S.ValidateOut)
def validate(request: Request, body: S.CohortIn, u: Checking) -> Response:
    """Parse and check a cohort; no data is read and nothing is charged."""
    state = state_of(request)
    v = uc.validate(_cohort(body), state.catalog, state.installation)
    if v.error is not None:
        diags = [S.Diagnostic.model_validate(d.to_json()) for d in v.error.diagnostics]
        return _json(S.ValidateOut(ok=False, diagnostics=diags))
    return _json(S.ValidateOut(
        ok=True, diagnostics=[S.Diagnostic.model_validate(w.to_json()) for w in v.warnings],
        query_hash=v.query_hash, steps=list(v.steps), registers=list(v.registers),
        data_currency=v.currency.to_json() if v.currency else None,
    ))  # fmt: skip


@router.post("/v1/cohorts/compile")
def compile_(request: Request, body: S.CompileIn, u: Checking) -> S.CompileOut:
    """The one SQL statement of a cohort; no data is read and nothing is charged."""
    state = state_of(request)
    c = uc.compile_cohort(_cohort(body), state.catalog, state.installation)
    return S.CompileOut(sql=c.sql(body.dialect), dialect=body.dialect, query_hash=c.query_hash,
                        registers=c.registers)  # fmt: skip


@router.post("/v1/projects/{pid}/quote")
def quote(request: Request, pid: ProjectId, body: S.CohortIn, u: Checking) -> S.QuoteOut:
    """What counting a cohort would cost the project now (0 if its answer is stored) and the
    budget left after; no data is read, nothing is charged, released or audited."""
    state = state_of(request)
    member_project(state, pid, u)
    q = uc.quote_count(
        _cohort(body), state.installation, state.catalog, state.gate, pid, approved_only=True
    )
    return S.QuoteOut.model_validate(q.to_json())


@router.post("/v1/projects/{pid}/count", response_model=S.CountOut, responses=_COUNT_FAILED)  # type: ignore[arg-type]
def count(request: Request, pid: ProjectId, body: S.CohortIn, u: Authed) -> Response:
    """Count a cohort for a project: released through differential privacy, charged to its budget."""
    state = state_of(request)
    member_project(state, pid, u)
    wait = state.counts.check(u.id)
    if wait is not None:
        raise rate_limited("counts", wait, state.settings.counts_per_minute)
    answer = uc.count_released(
        _cohort(body), state.installation, state.catalog, state.gate, pid, u.id, state.backend,
        approved_only=True,
    )  # fmt: skip
    return _count_json(answer)


@router.post("/v1/projects/{pid}/forecast", responses=_COUNT_FAILED)  # type: ignore[arg-type]
def forecast(request: Request, pid: ProjectId, body: S.ForecastIn, u: Authed) -> dict[str, Any]:
    """Recruitment rate and forecast: newly eligible persons per month, released as one query (charged like a count with tables), and a forecast of the coming months (no further charge)."""
    state = state_of(request)
    member_project(state, pid, u)
    wait = state.counts.check(u.id)
    if wait is not None:
        raise rate_limited("counts", wait, state.settings.counts_per_minute)
    res = uc.forecast_count(
        _cohort(body), state.installation, state.catalog, state.gate, pid, u.id, state.backend,
        months=body.months, by=body.by, approved_only=True,
    )  # fmt: skip
    return res.to_json()
