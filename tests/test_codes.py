"""The bundled code list (catalog/codes.yaml): it loads, its codes have the right shape,
and search_codes finds codes by name, by code and by dotted code."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from antal.catalog import CatalogError
from antal.catalog.code_lists import load_code_lists
from antal.catalog.codes import SYSTEMS, Code, load_codes, search_codes

# The shape of a code in each system, written out here (not taken from catalog/codes.py).
SHAPES: dict[str, re.Pattern[str]] = {
    # a letter, two digits, up to three more characters: E11, E119, U071
    "ICD-10-SE": re.compile(r"^[A-Z][0-9]{2}[0-9A-Z]{0,3}$"),
    # ATC levels 1-5: A, A10, A10B, A10BA, A10BA02
    "ATC": re.compile(r"^[ABCDGHJLMNPRSV]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$"),
    # surgical: three letters and two digits (FNG02); non-surgical: two letters, three digits
    "KVÅ": re.compile(r"^([A-Z]{3}[0-9]{2}|[A-Z]{2}[0-9]{3})$"),
}


def codes_of(q: str, limit: int = 50) -> list[str]:
    return [code for code, _system, _text in search_codes(q, limit)]


def test_loads_and_validates() -> None:
    codes = load_codes()
    assert 250 <= len(codes) <= 600
    assert all(isinstance(c, Code) for c in codes)
    assert {c.system for c in codes} == set(SYSTEMS)
    assert all(c.sv.strip() and c.en.strip() for c in codes)
    assert load_codes() == codes  # cached, and a copy each time
    load_codes().clear()
    assert len(load_codes()) == len(codes)


def test_no_duplicates() -> None:
    counts = Counter((c.code, c.system) for c in load_codes())
    assert [key for key, n in counts.items() if n > 1] == []


@pytest.mark.parametrize("system", sorted(SHAPES))
def test_code_shapes(system: str) -> None:
    codes = [c.code for c in load_codes() if c.system == system]
    assert codes
    assert [c for c in codes if not SHAPES[system].match(c)] == []


def test_requested_codes_present() -> None:
    have = {(c.code, c.system) for c in load_codes()}
    for code in ("E10", "E11", "E119", "I10", "I21", "I214", "I22", "I48", "I50", "J44", "J441"):
        assert (code, "ICD-10-SE") in have
    for code in ("C18", "C34", "C50", "C61", "C91", "C92", "F00", "F03", "G30", "N18", "A41"):
        assert (code, "ICD-10-SE") in have
    for code in ("A", "N", "A10BA02", "B01AF02", "C10AA05", "L04AB04", "L01FF02", "L02BA01"):
        assert (code, "ATC") in have
    for code in ("JKA21", "FNG05", "NFB49"):
        assert (code, "KVÅ") in have


def test_search_metformin_first() -> None:
    assert codes_of("metformin")[0] == "A10BA02"
    assert codes_of("Metformin")[0] == "A10BA02"


def test_search_dotted_and_lower_case_code() -> None:
    assert codes_of("E11.9") == ["E119"]
    assert codes_of("e119") == ["E119"]
    e11 = codes_of("e11")
    assert e11[0] == "E11"
    assert "E119" in e11 and "E10" not in e11
    assert codes_of("E11*") == e11
    assert codes_of("fng") == ["FNG02", "FNG05"]  # a KVÅ prefix, letters only


def test_search_swedish() -> None:
    assert codes_of("hjärtsvikt")[0] == "I50"
    assert "I50" in codes_of("HJÄRTSVIKT")
    assert "HAB40" in codes_of("mastektomi")
    assert "HAB40" in codes_of("MASTEKTOMI partiell")


def test_search_every_word() -> None:
    assert "C50" in codes_of("breast cancer")
    assert "C61" not in codes_of("breast cancer")
    hits = codes_of("diabetes typ 2")
    assert hits and all(c.startswith("E11") for c in hits)


def test_search_result_shape_and_limit() -> None:
    result = search_codes("diabetes", limit=3)
    assert len(result) == 3
    code, system, text = result[0]
    assert (code, system) == ("A10", "ATC")  # "Diabetesmedel": ATC A10 sorts before E10
    assert " / " in text and "diabetes" in text.lower()
    assert codes_of("diabetes") == sorted(codes_of("diabetes"))  # no exact hit: by code


def test_exact_code_first() -> None:
    # "A" is the ATC main group and also a letter in most names: the exact code comes first
    assert codes_of("a")[0] == "A"


def test_search_nothing() -> None:
    assert search_codes("xyzzy") == []
    assert search_codes("") == []
    assert search_codes("   ") == []
    assert search_codes("diabetes", limit=0) == []


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ('- {code: E11.9, system: ICD-10-SE, sv: "a", en: "b"}\n', "[0].code", "without dots"),
        ('- {code: e119, system: ICD-10-SE, sv: "a", en: "b"}\n', "[0].code", "upper-case"),
        ('- {code: E119, system: ICD10, sv: "a", en: "b"}\n', "[0].system", "expected one of"),
        ('- {code: E119, system: ICD-10-SE, sv: "a"}\n', "[0].en", "missing"),
        ('- {code: E119, system: ICD-10-SE, sv: "", en: "b"}\n', "[0].sv", "non-empty"),
        ('- {code: E119, system: ATC, sv: "a", en: "b", x: 1}\n', "[0].x", "unknown"),
        (
            '- {code: E119, system: ICD-10-SE, sv: "a", en: "b"}\n'
            '- {code: E119, system: ICD-10-SE, sv: "c", en: "d"}\n',
            "[1].code",
            "already",
        ),
    ],
)
def test_bad_files_rejected(tmp_path: Path, text: str, field: str, message: str) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_codes(path)
    assert err.value.field == field
    assert message in err.value.message


def _alterations(tmp_path: Path, line: str) -> Path:
    """An installation's catalog directory whose alterations file has one change."""
    (tmp_path / "codelists").mkdir(parents=True)
    (tmp_path / "codelists" / "local-alterations.yaml").write_text(
        f"changes:\n  - {line}\n", encoding="utf-8"
    )
    return tmp_path


def test_a_split_keeps_its_old_code(tmp_path: Path) -> None:
    """`split: true`: the substance moved out of a code that lives on, so the old code is
    not retired, but the new one still names it as an older code (docs/codes.md)."""
    d = _alterations(
        tmp_path, "{old: R03AK07, new: R03AK90, year: 2030, substance: x, split: true}"
    )
    lists = load_code_lists(d)
    assert lists.judge("R03AK07", False, "ATC").retired is None
    assert [r.old for r in lists.judge("R03AK90", False, "ATC").replaces] == ["R03AK07"]
    plain = load_code_lists(
        _alterations(tmp_path / "b", "{old: R03AK91, new: R03AK92, year: 2030, substance: y}")
    )
    assert plain.judge("R03AK91", False, "ATC").retired is not None


def test_a_split_that_is_not_true_or_false_is_refused(tmp_path: Path) -> None:
    d = _alterations(
        tmp_path, '{old: R03AK07, new: R03AK90, year: 2030, substance: x, split: "yes"}'
    )
    with pytest.raises(CatalogError) as err:
        load_code_lists(d)
    assert err.value.field == "changes.0" and "split is true or false" in err.value.message
