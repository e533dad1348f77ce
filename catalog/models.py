"""Pydantic models of catalog entries: what a registry holder publishes about a register."""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from antal.catalog.vocabulary import CodingSystem, EventKind, VariableCodeSystem

ColumnType = Literal["bigint", "integer", "smallint", "double", "varchar", "date"]

NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"

# What a register's holder may change by publishing its entry: descriptions and variables.
# Everything else (its kind, keys, dates, whether it is internal, and above all which
# cohort-language events it provides) is the installation's decision: an admin's.
HOLDER_FIELDS = frozenset(
    {"title", "holder", "holder_url", "description", "coverage", "update", "legal_basis",
     "access", "population", "variables", "keywords", "sources"}
)  # fmt: skip
# Fields that only describe (no count, check or breakdown depends on them): left out of
# the catalog's version, so that editing a description does not renew stored answers.
_DESCRIPTIVE = frozenset(
    {"title", "holder", "holder_url", "description", "legal_basis", "access",
     "population", "keywords", "sources"}
)  # fmt: skip
_DESCRIPTIVE_VARIABLE = frozenset({"description", "unit", "value_labels"})
# Fields that decide whether a count runs on an extract, never what it counts: also left
# out of the catalog's version (a stored answer stays valid).
_NOT_COUNTED = frozenset({"required"})


class FieldError(ValueError):
    """A check across fields that failed on one of them; the loader reports that field.

    A `ValueError` because pydantic turns only those into validation errors; it never
    leaves the catalog: `load_catalog` reads its `field` and raises a `CatalogError`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Model(BaseModel):
    # validators built on first validation, not on import (pydantic's `defer_build`):
    # a command that reads no catalog entry of a kind does not pay for building its model
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Text(_Model):
    sv: str
    en: str


class Source(_Model):
    """Where a fact in an entry comes from: a publication, a regulation, a web page."""

    title: str = Field(min_length=1, max_length=500)
    url: str | None = Field(default=None, max_length=500)
    note: str | None = Field(default=None, max_length=1000)  # what it supports


class Period(_Model):
    """A span of dates: from `start` (inclusive; None = since the register began) until
    `until` (exclusive; None = ongoing)."""

    start: dt.date | None = None
    until: dt.date | None = None
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.start is not None and self.until is not None and self.until <= self.start:
            raise ValueError("until must be after start")
        return self

    def overlaps(self, lo: dt.date, hi: dt.date) -> bool:
        """Whether the inclusive span [lo, hi] has a day in this period."""
        return (self.start is None or hi >= self.start) and (self.until is None or lo < self.until)


class Coding(Period):
    """The code system a code variable holds during a period of the register.

    `historical`: records keep the code valid at their date (a renamed ATC code is the old
    one in older rows), so a cohort over both periods needs both codes."""

    system: CodingSystem
    historical: bool = False
    # the län (codes) where the period applies, when the regions differed (Skåne coded
    # ICD-9 a year longer than the rest of Sweden); None: everywhere
    regions: list[str] | None = None


class Variable(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    type: ColumnType
    description: str
    code_system: VariableCodeSystem | None = None
    unit: str | None = None
    values: list[str | int] | None = None  # allowed values, when the set is closed
    value_labels: dict[str, str] | None = None
    nullable: bool = True
    # codes stored space-separated in one string (npr.diagnos, npr.op)
    multi: bool = False
    # for a code variable: its code system by period, oldest first (`code_system` is the
    # current one); empty means `code_system` throughout
    coding: list[Coding] = []

    @property
    def systems(self) -> tuple[str, ...]:
        """Every code system the variable holds, over its periods (oldest first, a system
        once) and the current one (`code_system`) last: what a code of it may be."""
        current = [self.code_system] if self.code_system else []
        return tuple(dict.fromkeys([*(c.system for c in self.coding), *current]))

    @model_validator(mode="after")
    def _values_fit_the_type(self) -> Variable:
        # a closed set's values become SQL literals of the column's type (the data check),
        # and a holder may publish them: each must be a value of that type, nothing else
        if self.values is not None:
            if self.type == "varchar":
                ok = all(isinstance(x, str) and len(x) <= 200 for x in self.values)
            elif self.type in ("bigint", "integer", "smallint"):
                ok = all(type(x) is int and abs(x) < 2**63 for x in self.values)
            else:
                ok = False
            if not ok:
                what = (
                    "strings of at most 200 characters"
                    if self.type == "varchar"
                    else ("whole numbers" if self.type.endswith("int") else "left out")
                )
                raise ValueError(f"values of a {self.type} variable must be {what}")
        return self


class EventSource(_Model):
    """A cohort-language event this register provides, and from which columns."""

    event: EventKind
    codes: str  # the column holding the codes
    multi: bool = False  # codes are space-separated in that column
    main: str | None = None  # column of the main code (`diagnosis ... main`)
    # column of the other codes of the record, space-separated (`death ... mentioned`: the
    # contributing causes of death, which `codes`, the underlying cause, leaves out)
    mentioned: str | None = None
    date: str | None = None  # defaults to the register's date column
    source: str | None = None  # name used in `drug ... in SOURCE`; defaults to register id
    # the starts of the codes `codes` can hold (external causes: V, W, X, Y, and ICD-9's
    # E8, E9); None: any code of its system. An event none of whose codes can start so
    # does not read the column (engine/check.py `event_sources`): a release without it
    # still counts every other diagnosis; the data check counts codes outside them
    holds: list[str] | None = Field(default=None, min_length=1)


class Coverage(_Model):
    from_year: int
    to_year: int | None = None  # None: ongoing
    # periods for which the register is known to be incomplete (reporting began, a
    # region missing), each with a note saying what is missing; a window reaching one
    # gets a warning
    incomplete: list[Period] = []

    @model_validator(mode="after")
    def _ordered(self) -> Coverage:
        if self.to_year is not None and self.to_year < self.from_year:
            raise ValueError("to_year must not be before from_year")
        return self


class Update(_Model):
    frequency: str
    # how long after a date (`monthly`) or after the end of its year (`yearly`) the
    # register's records of that date are complete; the months before are preliminary
    lag_months: int = Field(ge=0, le=120)
    finalised: Literal["monthly", "yearly"] = "monthly"
    note: str | None = Field(default=None, max_length=1000)


class Register(_Model):
    id: str = Field(pattern=NAME_PATTERN)
    kind: Literal["population", "events", "optout"] = "events"
    title: Text
    holder: str
    holder_url: str | None = None
    description: Text
    coverage: Coverage
    update: Update
    legal_basis: str
    access: str
    population: str
    person_key: str = "lopnr"
    date_column: str | None = None
    site_column: str | None = None  # hospital of a record (for `report by hospital`)
    clinic_column: str | None = None  # clinic (mvo) of a record (for `report by clinic`)
    variables: list[Variable]
    provides: list[EventSource] = []
    keywords: list[str] = []
    sources: list[Source] = []  # where the entry's facts come from
    # internal registers are used by the installation only (the opt-outs): no cohort reads them
    internal: bool = False
    # columns every extract of this register must hold besides its person key and date
    # column (`required_columns`); any other variable may be missing from an extract, and
    # only a cohort that reads it is refused (engine/check.py `columns_read`)
    required: list[str] = []

    @field_validator("variables")
    @classmethod
    def _unique(cls, vs: list[Variable]) -> list[Variable]:
        seen: set[str] = set()
        for v in vs:
            if v.name in seen:
                raise ValueError(f"variable {v.name!r} is listed twice")
            seen.add(v.name)
        return vs

    @model_validator(mode="after")
    def _columns_exist(self) -> Register:
        names = [v.name for v in self.variables]
        refs = [("person_key", self.person_key)]
        if self.date_column:
            refs.append(("date_column", self.date_column))
        if self.site_column:
            refs.append(("site_column", self.site_column))
        if self.clinic_column:
            refs.append(("clinic_column", self.clinic_column))
        refs += [(f"required.{i}", c) for i, c in enumerate(self.required)]
        for i, p in enumerate(self.provides):
            refs.append((f"provides.{i}.codes", p.codes))
            if p.main:
                refs.append((f"provides.{i}.main", p.main))
            if p.date:
                refs.append((f"provides.{i}.date", p.date))
        for where, col in refs:
            if col not in names:
                hint = difflib.get_close_matches(col, names, n=1, cutoff=0.6)
                also = f" - did you mean {hint[0]!r}?" if hint else ""
                raise FieldError(
                    where,
                    f"names {col!r}, which is not among the variables ({', '.join(names)}){also}",
                )
        if self.kind == "events" and not self.date_column:
            raise FieldError("date_column", "an events register needs a date_column")
        return self

    @property
    def is_internal(self) -> bool:
        return self.internal or self.kind == "optout"

    @property
    def required_columns(self) -> frozenset[str]:
        """The columns an extract of this register cannot be used without: its person key,
        its date column and those it declares `required`. The data check fails on a missing
        one; any other missing column is a note (engine/datacheck.py)."""
        return frozenset(filter(None, [self.person_key, self.date_column, *self.required]))

    def semantics(self) -> dict[str, object]:
        """The entry without what only describes it: what checks and counts depend on."""
        d = self.model_dump(mode="json", exclude=set(_DESCRIPTIVE | _NOT_COUNTED))
        d["variables"] = [
            {k: v for k, v in var.items() if k not in _DESCRIPTIVE_VARIABLE}
            for var in d["variables"]
        ]
        return d

    def data_version(self) -> str:
        """A hash of what the register's counts depend on, whatever the order in which its
        variables are listed: reordering an entry's variables or editing its descriptions
        (its holder's name among them) keeps it."""
        d = self.semantics()
        d["variables"] = sorted(d["variables"], key=lambda v: v["name"])
        blob = json.dumps(d, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)

    def event_date(self, source: EventSource) -> str:
        return source.date or self.date_column or ""


class HealthcareRegion(_Model):
    """One of the six healthcare regions (sjukvårdsregioner)."""

    code: str = Field(pattern=r"^[a-z][a-z-]*$")
    name: str


class Region(_Model):
    code: str = Field(pattern=r"^[0-9]{2}$")
    name: str
    region: str
    population: int = Field(gt=0)
    sjukvardsregion: str = Field(pattern=r"^[a-z][a-z-]*$")  # the healthcare region of the län
    # kommuner of the län that belong to another healthcare region (Halland): code -> kommuner
    split: dict[str, list[str]] = {}


class Site(_Model):
    code: str = Field(pattern=r"^[0-9A-Z]{5}$")
    name: str
    region: str = Field(pattern=r"^[0-9]{2}$")
    # its healthcare region when its län is split between two (else the län's)
    sjukvardsregion: str | None = Field(default=None, pattern=r"^[a-z][a-z-]*$")


class Clinic(_Model):
    """A clinic (medicinskt verksamhetsområde, mvo) code of the registers."""

    code: str = Field(pattern=r"^[0-9A-Z]{3}$")
    name: str
