"""Request and response bodies of the HTTP API (they make the published OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from antal.catalog.vocabulary import Dialect, Purpose, Role

Scalar = str | int | float | None


class ErrorDetail(BaseModel):
    code: str = Field(
        description="stable machine-readable kind, e.g. cohort_invalid, budget_exceeded"
    )
    message: str
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    """The one shape of every error response."""

    error: ErrorDetail


class CohortIn(BaseModel):
    """A cohort as text (the cohort language) or as its JSON IR."""

    model_config = ConfigDict(extra="forbid")
    cohort: str | None = Field(None, max_length=100_000, description="cohort-language text")
    ir: dict[str, Any] | None = Field(None, description="the JSON form of the IR")

    @model_validator(mode="after")
    def _one(self) -> CohortIn:
        if (self.cohort is None) == (self.ir is None):
            raise ValueError("give exactly one of `cohort` (text) or `ir` (JSON)")
        return self


class CompileIn(CohortIn):
    dialect: Dialect = "duckdb"


class Diagnostic(BaseModel):
    line: int
    column: int
    message: str
    hint: str | None = None
    code: str
    severity: Literal["error", "warning"] = "error"


class ExtractPeriod(BaseModel):
    start: str | None
    through: str | None


class Gap(BaseModel):
    start: str | None
    until: str | None
    note: str | None


class RegisterCurrency(BaseModel):
    id: str = Field(description="the register")
    coverage: dict[str, int | None] = Field(description="the register's own coverage, years")
    extract: ExtractPeriod = Field(description="the days this data release covers")
    complete_through: str | None = Field(description="records up to this day are final")
    lag_months: int
    finalised: Literal["monthly", "yearly"]
    lag_note: str | None
    incomplete: list[Gap] = Field(description="periods the register is known to be thin")


class DataCurrency(BaseModel):
    release: str | None
    extracted: str | None = Field(description="the day the extracts were taken")
    registers: list[RegisterCurrency]
    note: str | None = None


class ValidateOut(BaseModel):
    ok: bool
    diagnostics: list[Diagnostic] = Field(description="errors, or (when ok) warnings")
    query_hash: str | None = None
    steps: list[str] = []
    registers: list[str] = []
    data_currency: DataCurrency | None = None


class CompileOut(BaseModel):
    sql: str
    dialect: str
    query_hash: str
    registers: list[str]


class Released(BaseModel):
    count: int | str = Field(description='a number, or "<T" when below the threshold')
    interval: list[int] | None = Field(None, description="95% interval (absent when suppressed)")


class Step(Released):
    label: str


class Receipt(BaseModel):
    query_hash: str
    data_release: str
    purpose: str
    privacy: dict[str, float | int]
    answer_key: str


class CountOut(BaseModel):
    count: int | str
    attrition: list[Step]
    dims: list[str] = Field(description="the breakdown's dimensions, in `report by` order")
    breakdown: list[dict[str, Scalar | list[int]]]
    breakdown_note: str | None = None
    epsilon_charged: float
    budget_left: float
    stored_answer: bool
    receipt: Receipt
    warnings: list[Diagnostic] = Field(
        default=[],
        description="what the count may not answer as asked (retired codes, "
        "windows reaching into a register's reporting lag or before its data)",
    )
    data_currency: DataCurrency


class BudgetOut(BaseModel):
    project: str
    total: float
    spent: float
    left: float
    epsilon_per_query: float = Field(description="ε of a count without a breakdown")
    epsilon_per_query_with_breakdown: float = Field(description="ε of a count with `report by`")


class QueryOut(BaseModel):
    answer_key: str
    query: dict[str, Any]
    first_asked: str
    answer: dict[str, Any]


class ProjectOut(BaseModel):
    id: str
    title: str
    purpose: str
    budget: float
    spent: float
    registers: list[str]


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    title: str = Field(min_length=1, max_length=200)
    purpose: Purpose
    budget: float = Field(10.0, ge=0, le=1000)
    registers: list[str] = []


class ApprovalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    registers: list[str]


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    name: str = Field(min_length=1, max_length=200)
    role: Role
    registers: list[str] = []


class UserOut(BaseModel):
    id: str
    name: str
    role: str
    registers: list[str]
    projects: list[str] = []


class TokenOut(BaseModel):
    user: str
    token: str = Field(description="shown once; only its hash is stored")


class TokensRevokedOut(BaseModel):
    user: str
    revoked: int = Field(description="how many live tokens were revoked")


class AuditEntryOut(BaseModel):
    seq: int
    ts: str
    actor: str
    project_id: str | None
    action: str
    query_hash: str | None
    query: str | None
    epsilon: float
    released: str | None
    hash: str


class AuditVerifyOut(BaseModel):
    ok: bool
    entries: int
    problems: list[str]


class SearchHit(BaseModel):
    kind: Literal["register", "variable", "code"]
    register_id: str | None = None
    name: str
    description: str
    code_system: str | None = None


class ReportIn(CohortIn):
    """A cohort (text or JSON IR) for the feasibility report, and optionally its forecast."""

    forecast: dict[str, Any] | None = Field(
        None,
        description="a recruitment forecast of this cohort, as antal's forecast answers it "
        "(`forecast`: months with `mean`, `interval50`, `interval90`; `backtest`); shown as given",
    )
