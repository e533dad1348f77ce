"""Request and response bodies of the HTTP API (they make the published OpenAPI schema)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

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
    """A released count. The threshold and rounding are stated once, in the receipt's
    `privacy`, not with every count."""

    count: int | None = Field(description="the released (noisy) count; null when suppressed")
    suppressed: bool = Field(description="below the threshold: shown as `display`, e.g. <10")
    lower: int | None = Field(description="the 95% interval's lower end; null when suppressed")
    upper: int | None = Field(description="the 95% interval's upper end; null when suppressed")
    display: str = Field(description='what to show: "1240", or "<10" when suppressed')


class Step(Released):
    label: str


class Guarantee(BaseModel):
    """What the release of an answer guarantees alone (docs/privacy.md)."""

    noise: Literal["laplace", "gaussian"] = Field(
        description="`laplace`: pure ε-DP (δ 0); `gaussian`: ρ-zCDP, stated as (ε, δ)"
    )
    rho: float | None = Field(None, description="gaussian: the ρ of the release")
    epsilon: float = Field(description="the ε of the release alone (at δ for gaussian)")
    delta: float = Field(description="0 for laplace")
    unit: Literal["persons", "episodes"] = Field(
        description="what the counts count: persons, or an `index each` cohort's episodes"
    )
    contribution: int = Field(
        ge=1, description="the most units one person adds (K episodes; 1 for persons)"
    )


class _ReceiptFields(BaseModel):
    project: str
    purpose: str
    query_hash: str = Field(
        description="the canonical cohort's IR hash (the same for every spelling of its meaning)"
    )
    data_release: str
    answer_key: str
    privacy: dict[str, float | int | str] = Field(
        description="the parameters it was released under"
    )
    epsilon: float = Field(description="what the project was charged for this answer")
    time: str = Field(description="when the project received it (UTC, ISO 8601)")
    audit_seq: int = Field(description="the audit log entry of the release")
    key_id: str = Field(description="the signing key (see GET /v1/receipts/public-key)")
    signature: str = Field(description="Ed25519, base64")


class Receipt(_ReceiptFields):
    """Signed by the installation (Ed25519 over every other field as canonical JSON: keys
    sorted, no spaces, UTF-8); check with `antal receipt verify` (`--cohort` to check the
    question too) and the key of `GET /v1/receipts/public-key`. It binds the question as
    shown (query hash, title, step labels) and every value shown. A stored answer asked with
    the same names comes back with its original receipt."""

    version: Literal[3]
    title: str | None = Field(description="the cohort's title as shown (null: none)")
    labels: list[str] = Field(description="the step labels as shown, the index step first")
    released_sha256: str = Field(
        description="SHA-256 of every released value shown (steps, breakdown cells with "
        "their codes and names, every table)"
    )
    guarantee: Guarantee


class ReceiptV2(_ReceiptFields):
    """A receipt made before version 3 (kept in older stores, still valid): it does not
    state the release's guarantee apart from the ε charged (all were pure ε then)."""

    version: Literal[2]
    title: str | None
    labels: list[str]
    released_sha256: str


class ReceiptV1(_ReceiptFields):
    """A receipt made before version 2 (kept in older stores, still valid): it does not
    sign the title, the step labels or the names of breakdown cells."""

    version: Literal[1]
    released_sha256: str = Field(description="SHA-256 of the released counts (labels aside)")


AnyReceipt = Annotated[Receipt | ReceiptV2 | ReceiptV1, Field(discriminator="version")]


class PublicKeyOut(BaseModel):
    algorithm: Literal["Ed25519"]
    key_id: str
    public_key: str = Field(description="the 32 raw bytes, base64")
    pem: str = Field(description="the same key as PEM (SubjectPublicKeyInfo)")


class QuoteOut(BaseModel):
    project: str
    epsilon: float = Field(description="what the count would charge now: 0 for a stored answer")
    stored_answer: bool = Field(description="the project asked this before: its answer, free")
    budget_left: float
    budget_left_after: float = Field(
        description="left after the count (unchanged when it would be refused)"
    )
    affordable: bool = Field(description="false: the count would be refused (budget_exceeded)")
    asks_left: int | None = Field(
        None,
        description="how many more asks of this shape (at its full price) the budget allows "
        "after this one; null when this one is free (its stored answer)",
    )
    query_hash: str
    answer_key: str


class TableOut(BaseModel):
    dims: list[str]
    report: int = Field(description="the position of its `report by` in the cohort")
    level: int = Field(description="0: the table as asked; 1, 2...: its roll-up levels")
    breakdown: list[dict[str, bool | Scalar]] = Field(
        description="one object per cell: the dimensions' values, their names, the count fields"
    )


class CountOut(Released):
    """The final count's fields (count, suppressed, lower, upper, display) at the top."""

    attrition: list[Step]
    dims: list[str] = Field(description="the breakdown's dimensions, in `report by` order")
    breakdown: list[dict[str, bool | Scalar]] = Field(
        description="one object per cell: the dimensions' values and the count fields"
    )
    breakdown_note: str | None = None
    tables: list[TableOut] | None = Field(
        None, description="every released table, when there are several (or roll-up levels)"
    )
    epsilon_charged: float
    budget_left: float
    stored_answer: bool
    mechanism: Literal["partition", "cumulative"] = Field(
        "partition",
        description="how the attrition was released: `partition` (the buckets of the index "
        "pool, docs/privacy.md), or `cumulative` for an answer stored before that",
    )
    mechanism_note: str | None = None
    noise: Literal["laplace", "gaussian"] = Field(
        "laplace", description="the noise the answer was released under (docs/privacy.md)"
    )
    unit: Literal["persons", "episodes"] = Field(
        "persons",
        description="what the counts count: persons, or episodes (person, index date) of an "
        "`index each` cohort (docs/language.md)",
    )
    contribution: int = Field(
        1,
        ge=1,
        description="the most units one person adds to the counts: 1 for persons, K for "
        "episodes; the noise is K times a person's at the same ε (docs/privacy.md)",
    )
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
    epsilon_per_query: float = Field(
        description="ε a count without a breakdown would add now (gaussian noise: less for "
        "each ask after, as ρ composes)"
    )
    epsilon_per_query_with_breakdown: float = Field(
        description="ε a count with `report by` would add now"
    )
    noise: Literal["laplace", "gaussian"] = "laplace"
    rho_per_query: float | None = Field(None, description="gaussian: ρ of a count")
    rho_per_query_with_breakdown: float | None = Field(
        None, description="gaussian: ρ of a count with `report by`"
    )
    rho_left: float | None = Field(
        None, description="gaussian: the ρ left (that of the budget's ε at δ, less spent)"
    )


class QueryOut(BaseModel):
    answer_key: str
    query: dict[str, Any]
    first_asked: str
    answer: dict[str, Any] = Field(
        description="attrition, dims, breakdown (counts as in a count's answer), epsilon, privacy"
    )
    receipt: AnyReceipt | None = Field(
        None,
        description="the project's first signed receipt of it (version 1 from an older store; "
        "null for an answer stored before receipts)",
    )


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


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    budget: float = Field(ge=0, le=1000, description="the project's new total ε")


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
    signed: int = Field(
        0, description="entries whose signed head checks under the installation's key"
    )
    problems: list[str]
    notes: list[str] = Field([], description="what is not a problem but should be known, "
                             "such as entries written before the audit log was signed")  # fmt: skip


class SearchHit(BaseModel):
    kind: Literal["register", "variable", "code"]
    register_id: str | None = None
    name: str
    description: str
    code_system: str | None = None
    # a code's released availability: per register, persons with it by year (issue 16)
    availability: list[dict[str, Any]] | None = None


class ReportIn(CohortIn):
    """A cohort (text or JSON IR) for the feasibility report, and whether to forecast it.
    Every number a report shows is one the installation released: a request names what to
    show, never a number to draw."""

    forecast_months: int | None = Field(
        None,
        ge=1,
        le=60,
        description="also release the cohort's monthly series (as the forecast route does: "
        "charged unless asked before) and show the forecast of this many months ahead, "
        "computed from it",
    )
    plan: PlanAsk | None = Field(
        None,
        description="also show the enrolment plan of these sites, computed from the cohort's "
        "released `report by hospital` table as the plan route computes it (no further charge)",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_numbers(cls, data: Any) -> Any:
        # the field of earlier versions, refused by name: a forecast made elsewhere would be
        # shown beside the receipt as if it were released
        if isinstance(data, dict) and "forecast" in data:
            raise ValueError(
                "`forecast` is not accepted: a report shows only numbers the installation "
                "released, and computes the forecast itself (`forecast_months`)"
            )
        return data


class PlanAsk(BaseModel):
    """An enrolment plan asked of a cohort with `report by hospital` (docs/sponsor.md): the
    plan route's body, and a report's `plan`."""

    model_config = ConfigDict(extra="forbid")
    target: int = Field(description="how many persons to enrol (at least 1)")
    sites: list[Annotated[str, Field(max_length=200)]] = Field(
        max_length=200, description="the sites: hospital names (as the answer shows them) or codes"
    )
    start: dt.date | None = Field(
        None, description="when the sites start (default: next month's first day)"
    )
    site_starts: dict[str, dt.date] = Field(
        default_factory=dict, max_length=200, description="a later start per site (name or code)"
    )
    capture: float = Field(1.0, description="share of eligible persons screened, in (0, 1]")
    consent: float = Field(1.0, description="share of those screened who consent, in (0, 1]")
    screen_fail: float = Field(
        0.0, description="share of those who consent who fail screening, in [0, 1)"
    )
    by: dt.date | None = Field(None, description="the chance of reaching the target by this date")


class PlanIn(PlanAsk, CohortIn):
    """A cohort with `report by hospital` and the enrolment plan asked of it (docs/sponsor.md)."""


class ForecastIn(CohortIn):
    """A cohort (index event) and the forecast asked of it."""

    months: int = Field(18, ge=1, le=60, description="how many months ahead")
    by: Literal["hospital", "region", "sjukvardsregion"] | None = Field(
        None, description="also a forecast per group"
    )
