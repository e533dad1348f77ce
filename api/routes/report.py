"""The feasibility report route: one self-contained HTML page (antal.api.report) of a cohort
for a project. The count in it is released exactly as `POST /v1/projects/{pid}/count`
releases it: a cohort the project counted before is its stored answer, free; a new one is
charged like a count. So a report is always of the project's own answer, with its receipt,
and asking for it after counting costs nothing. Its forecast, when asked for, is computed
here from the released monthly series, and its enrolment plan from the released site table
(`usecases.report_count`, as `antal report`): the request names what to show, never a
number to draw."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from antal.api import schemas as S
from antal.api import usecases as uc
from antal.api.report import DATE_INDEX_NOTE, render_report
from antal.api.routes.deps import (
    Authed,
    ProjectId,
    member_project,
    rate_limited,
    state_of,
)
from antal.api.routes.plan import request_of
from antal.engine import ir

__all__ = ["CSP", "router"]

router = APIRouter(tags=["cohorts"])

# the page's own policy, also sent as a header: no script, no request of any kind
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_RESPONSES = {
    200: {"content": {"text/html": {"schema": {"type": "string"}}},
          "description": "the report: one HTML page, no script, no external resource"},
    503: {"model": S.ErrorBody,
          "description": "the count could not be computed (charged; the same answer whatever failed)"},
}  # fmt: skip

NO_FORECAST = "none was asked for with the request (`forecast_months`)"


# `Response`, not `HTMLResponse`: that would document the error answers as text/html
# too. They are the one JSON error shape; only the 200 answer is HTML.
@router.post(
    "/v1/projects/{pid}/report",
    response_class=Response,
    responses=_RESPONSES,  # type: ignore[arg-type]
)
def report(request: Request, pid: ProjectId, body: S.ReportIn, u: Authed) -> HTMLResponse:
    """The feasibility report of a cohort (HTML): released and charged like a count, free when the project asked it before."""
    state = state_of(request)
    member_project(state, pid, u)
    plan = request_of(state.catalog, body.plan) if body.plan is not None else None
    wait = state.counts.check(u.id)
    if wait is not None:
        raise rate_limited("counts", wait, state.settings.counts_per_minute)
    cohort = body.cohort if body.cohort is not None else uc.cohort_from_json(body.ir)
    # every number comes from the store: the answer, the forecast of its released series and
    # the plan of its released site table
    reported = uc.report_count(
        cohort, state.installation, state.catalog, state.gate, pid, u.id, state.backend,
        forecast_months=body.forecast_months, plan=plan, approved_only=True,
    )  # fmt: skip
    date_index = isinstance(reported.checked.index, ir.IndexDate)
    html = render_report(
        reported.counted, cohort_text=body.cohort, cohort_json=body.ir,
        title=reported.checked.title, project=pid, forecast=reported.forecast,
        no_forecast=reported.no_forecast or (DATE_INDEX_NOTE if date_index else NO_FORECAST),
        plan=reported.plan, no_plan=reported.no_plan,
    )  # fmt: skip
    return HTMLResponse(
        html, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
    )
