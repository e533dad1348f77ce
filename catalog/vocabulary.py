"""antal's vocabulary: every closed set of names, defined once and imported where used.

Purposes, roles, SQL dialects, backends, code systems with the shapes of their codes,
event kinds, breakdown dimensions and the values of sex. Each is a `Literal` type (what
pydantic models, dataclass fields and type checkers use) and a tuple of its values
(what a loop, a membership test or a CLI check uses), the tuple derived from the type so
that the two cannot drift. The catalog is the bottom layer, so everything may import it.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

__all__ = [
    "AGE_BAND",
    "BACKENDS",
    "CODE_EXAMPLES",
    "CODE_PREFIX_SHAPES",
    "CODE_SHAPES",
    "CODE_SYSTEMS",
    "CODING_SYSTEMS",
    "DIALECTS",
    "DIMENSIONS",
    "DIMENSION_KEYS",
    "EVENT_KINDS",
    "EVENT_OF_SYSTEM",
    "OPTOUT_ALL",
    "OPTOUT_PURPOSES",
    "PLACEMENTS",
    "PURPOSES",
    "ROLES",
    "SEXES",
    "SITE_DIMENSIONS",
    "SYSTEMS_OF_EVENT",
    "SYSTEM_OF_EVENT",
    "VARIABLE_CODE_SYSTEMS",
    "BackendName",
    "CodeSystem",
    "CodingSystem",
    "Dialect",
    "DimensionName",
    "EventKind",
    "OptoutPurpose",
    "Placement",
    "Purpose",
    "Role",
    "SexName",
    "VariableCodeSystem",
]

# ---- purposes (ändamål) --------------------------------------------------------------------
# A project's purpose decides whose opt-outs apply: a person who opted out of it, or of
# everything (`alla`), is left out of every count of that project.
Purpose = Literal["forskning", "kommersiell"]
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)
OPTOUT_ALL: Literal["alla"] = "alla"
OptoutPurpose = Literal["forskning", "kommersiell", "alla"]  # the opt-out register's `andamal`
OPTOUT_PURPOSES: tuple[OptoutPurpose, ...] = get_args(OptoutPurpose)

# ---- the service's roles -------------------------------------------------------------------
Role = Literal["researcher", "holder", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

# ---- where SQL runs -------------------------------------------------------------------------
Dialect = Literal["duckdb", "postgres", "spark"]  # sqlglot dialects `antal sql` renders
DIALECTS: tuple[Dialect, ...] = get_args(Dialect)
BackendName = Literal["duckdb", "postgres", "spark"]  # backends that run a count (engine/backends)
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)
# where a register's extract lives (catalog/installation.py's DataSource): files, or tables
Placement = Literal["parquet", "duckdb", "postgres"]
PLACEMENTS: tuple[Placement, ...] = get_args(Placement)

# ---- events and their code systems ----------------------------------------------------------
EventKind = Literal["diagnosis", "procedure", "drug", "death"]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
CodeSystem = Literal["ICD-10-SE", "ATC", "KVÅ"]  # the systems of event codes
CODE_SYSTEMS: tuple[CodeSystem, ...] = get_args(CodeSystem)
# a catalog variable may also hold genomic names (genes, variants)
VariableCodeSystem = Literal["ICD-10-SE", "ATC", "KVÅ", "HGNC", "HGVS"]
VARIABLE_CODE_SYSTEMS: tuple[VariableCodeSystem, ...] = get_args(VariableCodeSystem)
# The code systems a register's code columns have used over time (a catalog entry's
# `coding` periods): the current ones, plus WHO's ICD-10 (the cause-of-death register) and
# the older Swedish editions: ICD-9 (KS 87, 1987-1996), ICD-8 (1969-1986), ICD-7
# (1958-1968), the surgical procedure classifications KKÅ97 (1997-2006) and Op6 (before
# 1997). A cohort may give ICD-9 codes (digits first: `410*`); the others are named in
# warnings only.
CodingSystem = Literal[
    "ICD-10-SE", "ICD-10", "ICD-9", "ICD-8", "ICD-7", "ATC", "KVÅ", "KKÅ97", "Op6",
    "HGNC", "HGVS",
]  # fmt: skip
CODING_SYSTEMS: tuple[CodingSystem, ...] = get_args(CodingSystem)

# A cohort's codes for an event may be of these systems, told apart by their shapes: ICD-9
# codes (digits first) reach the registers' records from before 1997.
SYSTEMS_OF_EVENT: dict[EventKind, tuple[CodingSystem, ...]] = {
    "diagnosis": ("ICD-10-SE", "ICD-9"),
    "death": ("ICD-10-SE", "ICD-9"),
    "procedure": ("KVÅ",),
    "drug": ("ATC",),
}
SYSTEM_OF_EVENT: dict[EventKind, CodeSystem] = {
    "diagnosis": "ICD-10-SE",
    "death": "ICD-10-SE",
    "procedure": "KVÅ",
    "drug": "ATC",
}
# the event a code of a system belongs to (for "did you mean `drug`?")
EVENT_OF_SYSTEM: dict[CodingSystem, EventKind] = {
    "ICD-10-SE": "diagnosis",
    "ICD-9": "diagnosis",
    "ATC": "drug",
    "KVÅ": "procedure",
}

# The shape of a full code of each system (upper case, no dots, as stored in the extracts).
# ATC codes start with one of the 14 anatomical main groups.
# ICD-9 (the Swedish edition KS 87) has three digits and an optional fourth character,
# a letter in the Swedish edition (410A) or a digit.
CODE_SHAPES: dict[CodingSystem, re.Pattern[str]] = {
    "ICD-10-SE": re.compile(r"^[A-Z][0-9]{2}[0-9A-Z]{0,3}$"),
    "ICD-9": re.compile(r"^[0-9]{3}[0-9A-Z]?$"),
    "ATC": re.compile(r"^[ABCDGHJLMNPRSV][0-9]{2}[A-Z]{2}[0-9]{2}$"),
    "KVÅ": re.compile(r"^[A-Z]{3}[0-9]{2}$|^[A-Z]{2}[0-9]{3}$"),
}
# Any leading part of a full code (a prefix written `X*` may stop early).
CODE_PREFIX_SHAPES: dict[CodingSystem, re.Pattern[str]] = {
    "ICD-10-SE": re.compile(r"^[A-Z]([0-9]([0-9][0-9A-Z]{0,3})?)?$"),
    "ICD-9": re.compile(r"^[0-9]{1,3}$|^[0-9]{3}[0-9A-Z]$"),
    "ATC": re.compile(r"^[ABCDGHJLMNPRSV]([0-9]([0-9]([A-Z]([A-Z]([0-9][0-9]?)?)?)?)?)?$"),
    "KVÅ": re.compile(r"^[A-Z]{1,3}$|^[A-Z]{3}[0-9]{0,2}$|^[A-Z]{2}[0-9]{0,3}$"),
}
CODE_EXAMPLES: dict[CodingSystem, str] = {
    "ICD-10-SE": "E11, E119, I21*",
    "ICD-9": "410*, 410A, 250*",
    "ATC": "A10BA02, A10B*",
    "KVÅ": "FNG02, HAC*",
}

# ---- breakdowns (`report by`) ----------------------------------------------------------------
# The named dimensions; `age N` (an age band N years wide) is the one with a parameter.
# region: län of residence; sjukvardsregion: healthcare region of residence; year, quarter,
# month: of the index date; hospital, clinic: of the index event.
DimensionName = Literal[
    "region", "sex", "year", "hospital", "sjukvardsregion", "month", "quarter", "clinic"
]
DIMENSIONS: tuple[DimensionName, ...] = get_args(DimensionName)
# the dimensions whose values are sites a sponsor picks and ranks: their tables mark the
# sites whose interval does not separate them from the threshold or from their neighbours
SITE_DIMENSIONS: tuple[DimensionName, ...] = ("hospital", "clinic")
AGE_BAND: Literal["age"] = "age"  # the key of `age N` among them (one per `report by`)
DIMENSION_KEYS: tuple[str, ...] = (*DIMENSIONS, AGE_BAND)

# ---- demographics ----------------------------------------------------------------------------
SexName = Literal["female", "male"]
SEXES: tuple[SexName, ...] = get_args(SexName)
