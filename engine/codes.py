"""Shapes of the code systems the cohort language uses, to catch a code given to
the wrong kind of event (an ATC code to `diagnosis`) before it gives an empty result.
The shapes themselves are vocabulary (antal.catalog.vocabulary); this module applies them."""

from __future__ import annotations

from collections.abc import Iterable

from antal.catalog.vocabulary import (
    CODE_PREFIX_SHAPES,
    CODE_SHAPES,
    EVENT_OF_SYSTEM,
    SYSTEM_OF_EVENT,
    SYSTEMS_OF_EVENT,
)

__all__ = [
    "SYSTEM_OF_EVENT",
    "guess_system",
    "shape_regex",
    "shapes_regex",
    "system_of_code",
    "valid_code",
]


def valid_code(code: str, prefix: bool, system: str) -> bool:
    pattern = (CODE_PREFIX_SHAPES if prefix else CODE_SHAPES).get(system)  # type: ignore[call-overload]
    return bool(pattern and pattern.fullmatch(code))  # `$` would let "E11\n" through


def system_of_code(code: str, prefix: bool, event: str) -> str | None:
    """The system of a code given to an event, told by its shape (`I21*` ICD-10-SE, `410*`
    ICD-9), or None when it fits none of the event's systems."""
    for system in SYSTEMS_OF_EVENT[event]:  # type: ignore[index]
        if valid_code(code, prefix, system):
            return system
    return None


def guess_system(code: str, prefix: bool) -> tuple[str, str] | None:
    """(system, event) a code that fits none of the expected shape seems to belong to."""
    for system, event in EVENT_OF_SYSTEM.items():
        if system in CODE_SHAPES and valid_code(code, prefix, system):
            return system, event
    return None


# Systems a register held in older periods that the language has no shape of: the data
# check accepts their stored codes by a loose shape (WHO ICD-10 and KKÅ97 share the
# shapes of ICD-10-SE and KVÅ; ICD-8/ICD-7 and Op6 codes are digits first)
_SHAPE_OF = {"ICD-10": "ICD-10-SE", "KKÅ97": "KVÅ"}
_LOOSE = "[0-9][0-9A-Z]{1,5}"


def shape_regex(system: str) -> str:
    """The shape of a full code of a system as an unanchored regular expression (RE2 and
    Python alike), for checking the codes stored in an extract."""
    pattern = CODE_SHAPES.get(_SHAPE_OF.get(system, system))  # type: ignore[call-overload]
    if pattern is None:
        return _LOOSE
    return "|".join(part.strip("^$") for part in pattern.pattern.split("|"))


def shapes_regex(systems: Iterable[str]) -> str:
    """Any of several systems' shapes (a variable's systems over its coding periods)."""
    return "|".join(dict.fromkeys(shape_regex(s) for s in systems))
