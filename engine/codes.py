"""Shapes of the code systems the cohort language uses, to catch a code given to
the wrong kind of event (an ATC code to `diagnosis`) before it gives an empty result."""

from __future__ import annotations

import re

__all__ = ["SYSTEM_OF_EVENT", "guess_system", "shape_regex", "valid_code"]

# A full code or any leading part of one (a prefix written `X*` may stop early).
# ATC codes start with one of the 14 anatomical main groups.
_FULL = {
    "ICD-10-SE": re.compile(r"^[A-Z][0-9]{2}[0-9A-Z]{0,3}$"),
    "ATC": re.compile(r"^[ABCDGHJLMNPRSV][0-9]{2}[A-Z]{2}[0-9]{2}$"),
    "KVÅ": re.compile(r"^[A-Z]{3}[0-9]{2}$|^[A-Z]{2}[0-9]{3}$"),
}
_PREFIX = {
    "ICD-10-SE": re.compile(r"^[A-Z]([0-9]([0-9][0-9A-Z]{0,3})?)?$"),
    "ATC": re.compile(r"^[ABCDGHJLMNPRSV]([0-9]([0-9]([A-Z]([A-Z]([0-9][0-9]?)?)?)?)?)?$"),
    "KVÅ": re.compile(r"^[A-Z]{1,3}$|^[A-Z]{3}[0-9]{0,2}$|^[A-Z]{2}[0-9]{0,3}$"),
}

SYSTEM_OF_EVENT = {
    "diagnosis": "ICD-10-SE",
    "death": "ICD-10-SE",
    "procedure": "KVÅ",
    "drug": "ATC",
}
_EVENT_OF_SYSTEM = {"ICD-10-SE": "diagnosis", "ATC": "drug", "KVÅ": "procedure"}


def valid_code(code: str, prefix: bool, system: str) -> bool:
    pattern = (_PREFIX if prefix else _FULL).get(system)
    return bool(pattern and pattern.fullmatch(code))  # `$` would let "E11\n" through


def guess_system(code: str, prefix: bool) -> tuple[str, str] | None:
    """(system, event) a code that fits none of the expected shape seems to belong to."""
    for system, event in _EVENT_OF_SYSTEM.items():
        if valid_code(code, prefix, system):
            return system, event
    return None


def shape_regex(system: str) -> str:
    """The shape of a full code of a system as an unanchored regular expression (RE2 and
    Python alike), for checking the codes stored in an extract."""
    return "|".join(part.strip("^$") for part in _FULL[system].pattern.split("|"))
