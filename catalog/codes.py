"""A small bundled list of common ICD-10-SE, ATC and KVÅ codes, searchable by text.

`catalog/codes.yaml` is a convenience subset for finding a code ("diabetes", "metformin",
"mastektomi", "E11.9"); it is not the official classifications (Socialstyrelsen's ICD-10-SE
and KVÅ, the WHO's ATC), and a code missing from it is not thereby invalid. Codes are
stored upper case without dots, as in the register extracts (`E119`, not `E11.9`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from antal.catalog.errors import CatalogError
from antal.catalog.vocabulary import CODE_SYSTEMS, CodeSystem

__all__ = ["CODE_PATTERN", "SYSTEMS", "Code", "CodeSystem", "load_codes", "search_codes"]

SYSTEMS: tuple[str, ...] = CODE_SYSTEMS  # the vocabulary's, under the name this module exports

# One letter, then letters and digits. `{0,6}`, not `{1,6}`: the ATC main groups are one
# letter (`A`, `N`), and the cohort language accepts a bare `A` as a code too.
CODE_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{0,6}$")

_PATH = Path(__file__).parent / "codes.yaml"
_FIELDS = ("code", "system", "sv", "en")
# A query word that looks like a code (a letter, then letters and digits, an optional dotted
# part, an optional `*`) also matches as a code prefix: `e11`, `E11.9`, `A10B*`, `fng`.
_CODE_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)?\*?$")


@dataclass(frozen=True, slots=True)
class Code:
    """One entry of the bundled list."""

    code: str
    system: CodeSystem
    sv: str
    en: str

    @property
    def text(self) -> str:
        """The names as shown in search results: English, then Swedish."""
        return f"{self.en} / {self.sv}"


def _fold(s: str) -> str:
    """Case-insensitive form of a text: NFC (so a decomposed `å` is `å`), then casefold."""
    return unicodedata.normalize("NFC", s).casefold()


def _code_of(word: str) -> str | None:
    """The stored form of a query word that looks like a code (`e11.9` -> `E119`), or None."""
    if not _CODE_LIKE.match(word):
        return None
    return word.rstrip("*").replace(".", "").upper()


def _entry(item: Any, index: int, path: Path) -> Code:
    where = f"[{index}]"
    if not isinstance(item, dict):
        raise CatalogError(path, where, "expected a mapping {code, system, sv, en}")
    unknown = sorted(set(map(str, item)) - set(_FIELDS))
    if unknown:
        raise CatalogError(path, f"{where}.{unknown[0]}", "unknown field")
    for name in _FIELDS:
        value = item.get(name)
        if value is None:
            raise CatalogError(path, f"{where}.{name}", "required field is missing")
        if not isinstance(value, str) or not value.strip():
            raise CatalogError(
                path, f"{where}.{name}", f"expected a non-empty string, got {value!r}"
            )
    code, system = item["code"], item["system"]
    if not CODE_PATTERN.match(code):
        raise CatalogError(
            path,
            f"{where}.code",
            f"{code!r} is not an upper-case code without dots (like E119, A10BA02, FNG02)",
        )
    if system not in SYSTEMS:
        raise CatalogError(path, f"{where}.system", f"expected one of {SYSTEMS}, got {system!r}")
    return Code(code=code, system=system, sv=item["sv"].strip(), en=item["en"].strip())


@cache
def _load(path: Path) -> tuple[Code, ...]:
    from antal.catalog import _read_yaml  # here: the catalog package imports this module

    data = _read_yaml(path)
    if not isinstance(data, list):
        raise CatalogError(path, "", "expected a list of entries {code, system, sv, en}")
    codes: list[Code] = []
    seen: dict[tuple[str, str], int] = {}
    for i, item in enumerate(data):
        entry = _entry(item, i, path)
        key = (entry.code, entry.system)
        if key in seen:
            raise CatalogError(
                path, f"[{i}].code", f"{entry.system} {entry.code} is already entry [{seen[key]}]"
            )
        seen[key] = i
        codes.append(entry)
    return tuple(codes)


@cache
def _haystacks(path: Path) -> tuple[tuple[Code, str], ...]:
    return tuple((c, _fold(f"{c.sv}\n{c.en}")) for c in _load(path))


def load_codes(path: Path | None = None) -> list[Code]:
    """The bundled code list (or the one at `path`), validated; read once, then cached.

    Raises `catalog.CatalogError` naming the entry and field when the file is not usable:
    a code not matching `CODE_PATTERN`, a system not in `SYSTEMS`, a missing or empty name,
    or the same (code, system) twice.
    """
    return list(_load(path or _PATH))


def search_codes(q: str, limit: int = 50, path: Path | None = None) -> list[tuple[str, str, str]]:
    """Entries matching every whitespace-separated word of `q`, as (code, system, "en / sv").

    A word matches when it occurs in either name, case-insensitively (Swedish letters
    included: "HJÄRTSVIKT" finds "hjärtsvikt"), or when it is the start of the code, case,
    dots and a trailing `*` ignored ("e11", "E11.9" -> E119, "fng" -> FNG02). A bare "2"
    thus matches "typ 2" in a name but not the 2 inside E102.
    Entries whose code equals a word come first, then the rest ordered by code and system.
    A blank query gives no results.
    """
    words = [w for w in q.split() if w]
    if not words or limit <= 0:
        return []
    folded = [_fold(w) for w in words]
    as_codes = {c for c in (_code_of(w) for w in words) if c}
    exact = {w.upper() for w in words} | as_codes
    hits: list[Code] = []
    for entry, haystack in _haystacks(path or _PATH):
        if all(
            f in haystack or ((c := _code_of(w)) is not None and entry.code.startswith(c))
            for w, f in zip(words, folded, strict=True)
        ):
            hits.append(entry)
    hits.sort(key=lambda e: (e.code not in exact, e.code, e.system))
    return [(e.code, e.system, e.text) for e in hits[:limit]]
