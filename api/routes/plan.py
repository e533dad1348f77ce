"""The enrolment plan route: a cohort counted for a project (its stored answer when asked
before: free) and the plan computed from its released site table (no further charge)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from antal.api import planning
from antal.api import schemas as S
from antal.api.routes.cohorts import _COUNT_FAILED, _cohort
from antal.api.routes.deps import Authed, ProjectId, member_project, rate_limited, state_of
from antal.catalog import Catalog

__all__ = ["request_of", "router"]

router = APIRouter(tags=["cohorts"])


def request_of(catalog: Catalog, body: S.PlanAsk) -> planning.PlanRequest:
    """The plan a body asks, checked against the catalog (the plan route's body, a
    report's `plan`): `Invalid` (400) with the reason, before anything is counted."""
    return planning.plan_request(
        catalog, target=body.target, sites=body.sites, start=body.start,
        site_starts=body.site_starts, capture=body.capture, consent=body.consent,
        screen_fail=body.screen_fail, by=body.by,
    )  # fmt: skip


@router.post("/v1/projects/{pid}/plan", responses=_COUNT_FAILED)  # type: ignore[arg-type]
def plan(request: Request, pid: ProjectId, body: S.PlanIn, u: Authed) -> dict[str, Any]:
    """An enrolment plan at the sites asked: the cohort counted like a count (free when its answer is stored), and from its released `report by hospital` table the expected enrolment per site and month, the time to reach the target with its 90% interval and the chance of reaching it by a date (no further charge)."""
    state = state_of(request)
    member_project(state, pid, u)
    req = request_of(state.catalog, body)
    cohort = _cohort(body)
    wait = state.counts.check(u.id)
    if wait is not None:
        raise rate_limited("counts", wait, state.settings.counts_per_minute)
    res = planning.plan_count(cohort, state.installation, state.catalog, state.gate, pid, u.id,
                              state.backend, req, approved_only=True)  # fmt: skip
    return res.to_json()
