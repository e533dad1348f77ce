"""What a cohort may ask for: the documented bounds on every input the engine accepts.

One owner for the numbers (docs/security.md lists them): the parser, IR decoding, the
checker, the compiler and the HTTP service all read them from here. Every bound is far
beyond a meaningful clinical question and far below what would let a request exhaust the
server or make SQL evaluation fail on some rows but not others (a data-dependent error is
a membership oracle: see docs/security.md).
"""

from __future__ import annotations

import datetime as dt

__all__ = [
    "AGE_MAX",
    "AVAILABILITY_MAX_CELLS_PER_PERSON",
    "AVAILABILITY_MAX_RECORDS_PER_PERSON",
    "COUNT_MAX",
    "DATE_MAX",
    "DATE_MIN",
    "ENGINE_MEMORY",
    "FORECAST_MAX_HISTORY",
    "FORECAST_MAX_MONTHS",
    "HUB_DEADLINE_SECONDS",
    "HUB_MAX_WAIT_SECONDS",
    "HUB_MIN_NODES_SHOWN",
    "HUB_NODE_MAX_PERSONS",
    "HUB_NODE_MAX_ROUNDING",
    "HUB_NODE_MAX_THRESHOLD",
    "HUB_NODE_POLL_SECONDS",
    "MAX_BODY_BYTES",
    "MAX_CODESETS",
    "MAX_CODES_PER_SET",
    "MAX_CODE_CHARS",
    "MAX_CODE_EXPANSION",
    "MAX_CRITERIA",
    "MAX_DEPTH",
    "MAX_ENTRY_BYTES",
    "MAX_ENTRY_DEPTH",
    "MAX_ENTRY_NODES",
    "MAX_IR_BYTES",
    "MAX_IR_JSON_DEPTH",
    "MAX_IR_NODES",
    "MAX_REPORTS",
    "MAX_REPORT_DIMS",
    "MAX_REPORT_MONTHS",
    "MAX_STRING_CHARS",
    "MAX_TEXT_BYTES",
    "MAX_VALUES_PER_LIST",
    "NUMBER_ABS_MAX",
    "PREPARE_MEMORY",
    "QUERY_SECONDS",
    "WINDOW_DAYS_MAX",
]

# --- size of a request ----------------------------------------------------------------
MAX_TEXT_BYTES = 64 * 1024  # cohort text, UTF-8 encoded
MAX_IR_BYTES = 256 * 1024  # a JSON IR document
# an HTTP request body: the largest cohort text JSON-escaped (\uXXXX: at most 6 bytes per
# byte of text) or the largest IR, plus room for the rest of the envelope
MAX_BODY_BYTES = max(6 * MAX_TEXT_BYTES, MAX_IR_BYTES) + 16 * 1024
# nodes in one cohort's IR, after codeset expansion (each code pattern is a node: one
# range of categories like A00..Z99 alone is 2,600 of them)
MAX_IR_NODES = 20_000
MAX_DEPTH = 32  # nesting of conditions and register filters (parentheses, not, and/or)
# nesting of JSON objects and arrays in an IR document: every condition level is an
# object and a list, plus the levels from the cohort down to a condition
MAX_IR_JSON_DEPTH = 4 * MAX_DEPTH + 16
MAX_CRITERIA = 100  # include/exclude steps
MAX_CODESETS = 200  # named codesets in one cohort
MAX_CODES_PER_SET = 2_000  # code patterns (a range counts once) in one codeset or event
MAX_VALUES_PER_LIST = 1_000  # values in one `in (...)` filter or region list
MAX_REPORT_DIMS = 4  # dimensions in one `report by`
MAX_REPORTS = 8  # `report by` statements (tables) in one cohort
MAX_REPORT_MONTHS = 240  # months of a forecast (with its back-test) shown in a feasibility report
MAX_STRING_CHARS = 200  # one string literal (a label, a filter value)
# code patterns copied while expanding the codesets and ranges of one cohort text, before
# de-duplication: bounds the work of a chain of sets that refer to each other many times
MAX_CODE_EXPANSION = 200_000
MAX_CODE_CHARS = 16  # one code as written, without its dot and star (real codes have <= 7)

# --- a published catalog entry (catalog/entries.py) -------------------------------------
MAX_ENTRY_BYTES = 256 * 1024  # its YAML or JSON text (the largest bundled entry is ~10 KiB)
MAX_ENTRY_NODES = 20_000  # values (scalars, mappings, lists) in it
MAX_ENTRY_DEPTH = 16  # nesting of mappings and lists (an entry needs about 6)

# --- values ---------------------------------------------------------------------------
WINDOW_DAYS_MAX = 36_525  # |days| in a window relative to the index date: 100 years
COUNT_MAX = 1_000  # N in `at least / at most / exactly N`
AGE_MAX = 130  # ages and age-band widths, in whole years
NUMBER_ABS_MAX = 1e12  # a numeric filter value; finite, and |x| at most this
DATE_MIN = dt.date(1900, 1, 1)  # calendar dates in windows and filters
DATE_MAX = dt.date(2100, 12, 31)

# --- forecast (privacy/forecast.py) ---------------------------------------------------------
FORECAST_MAX_MONTHS = 60  # months forecast ahead: five years, beyond any recruitment plan
FORECAST_MAX_HISTORY = 1_200  # months of a released series given to the forecast (100 years)

# --- running --------------------------------------------------------------------------
QUERY_SECONDS = 60.0  # default time budget of one count on the database (settings may lower it)
ENGINE_MEMORY = "4GB"  # default memory limit of the embedded database (DuckDB `memory_limit`)
# default memory limit of `antal prepare`'s DuckDB (its sorts spill to disk beyond it)
PREPARE_MEMORY = "2GB"

# --- the federated network (api/federation) -----------------------------------------
HUB_DEADLINE_SECONDS = 300.0  # a query's default wait for its nodes (MII: minutes per site)
HUB_MAX_WAIT_SECONDS = 60.0  # the longest one long-poll request is held open
HUB_NODE_POLL_SECONDS = 25.0  # a node's long-poll for work (below common proxy timeouts)
HUB_MIN_NODES_SHOWN = 3  # per-node counts only when this many nodes report above threshold
# What a node's answer may say (api/federation/hub.py checks every answer against them):
# the most persons a node's count may reach unless an admin says its population
# (`antal hub nodes add --persons`): Sweden's population, 10 587 710 at the end of 2024
# (SCB, Befolkningsstatistik, "Folkmängd i riket"), with room for growth
HUB_NODE_MAX_PERSONS = 11_000_000
HUB_NODE_MAX_THRESHOLD = 1_000  # a node's small-cell threshold (MII and antal: 10)
HUB_NODE_MAX_ROUNDING = 1_000  # a node's rounding step (MII: 10)

# Availability counts (engine/availability.py): each person counts in at most this many
# (code or variable, year) cells of a register, and with at most this many records; the
# noise of the release is proportional to them (privacy/availability.py)
AVAILABILITY_MAX_CELLS_PER_PERSON = 20
AVAILABILITY_MAX_RECORDS_PER_PERSON = 100
