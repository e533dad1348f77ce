"""The bundled catalog entries, the regions and sites, and the loader's errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from antal import catalog
from antal.catalog import (
    CatalogError,
    Register,
    load_catalog,
    load_regions,
    load_register,
    load_sites,
)

# The canonical layout of docs/extracts.md, written out here on purpose (not read from the YAML):
# register id -> its columns, in order, with their types.
EXTRACTS: dict[str, list[tuple[str, str]]] = {
    "population": [
        ("lopnr", "bigint"),
        ("kon", "smallint"),
        ("fodelsear", "smallint"),
        ("fodelsemanad", "smallint"),
        ("lan", "varchar"),
        ("kommun", "varchar"),
    ],
    "npr": [
        ("lopnr", "bigint"),
        ("indatum", "date"),
        ("utdatum", "date"),
        ("vardform", "varchar"),
        ("sjukhus", "varchar"),
        ("mvo", "varchar"),
        ("hdia", "varchar"),
        ("diagnos", "varchar"),
        ("op", "varchar"),
        ("ekod", "varchar"),
    ],
    "lmr": [
        ("lopnr", "bigint"),
        ("edatum", "date"),
        ("atc", "varchar"),
        ("antal", "double"),
        ("ddd", "double"),
        ("fdatum", "date"),
        ("doser", "varchar"),
        ("ordinationsorsak", "varchar"),
        ("arbetsplats", "varchar"),
    ],
    "rekvisition": [
        ("lopnr", "bigint"),
        ("adm_datum", "date"),
        ("atc", "varchar"),
        ("sjukhus", "varchar"),
        ("mvo", "varchar"),
    ],
    "dors": [
        ("lopnr", "bigint"),
        ("dodsdat", "date"),
        ("dodsdag_okand", "smallint"),
        ("ulorsak", "varchar"),
        ("morsak", "varchar"),
    ],
    "ndr": [
        ("lopnr", "bigint"),
        ("regdat", "date"),
        ("diabetestyp", "smallint"),
        ("hba1c", "double"),
        ("bmi", "double"),
        ("systoliskt", "double"),
    ],
    "nkbc": [
        ("lopnr", "bigint"),
        ("diagnosdatum", "date"),
        ("er", "varchar"),
        ("her2", "varchar"),
        ("stadium", "varchar"),
    ],
    "gms": [
        ("lopnr", "bigint"),
        ("provdatum", "date"),
        ("gene", "varchar"),
        ("variant", "varchar"),
        ("klass", "varchar"),
    ],
    "biobank": [
        ("lopnr", "bigint"),
        ("provdatum", "date"),
        ("provtyp", "varchar"),
        ("biobank", "varchar"),
    ],
    "optout": [("lopnr", "bigint"), ("datum", "date"), ("andamal", "varchar")],
    "migration": [("lopnr", "bigint"), ("datum", "date"), ("riktning", "varchar")],
}

DATE_COLUMNS = {
    "population": None,
    "npr": "indatum",
    "lmr": "edatum",
    "rekvisition": "adm_datum",
    "dors": "dodsdat",
    "ndr": "regdat",
    "nkbc": "diagnosdatum",
    "gms": "provdatum",
    "biobank": "provdatum",
    "optout": "datum",
    "migration": "datum",
}

KINDS = {"population": "population", "optout": "optout"}  # every other register: "events"


@pytest.fixture(scope="module")
def cat() -> catalog.Catalog:
    return load_catalog()


# --- the bundled entries -------------------------------------------------------------


def test_bundled_entries_are_exactly_the_eleven_registers(cat: catalog.Catalog) -> None:
    files = sorted(p.stem for p in catalog.bundled_dir().glob("*.yaml"))
    assert files == sorted(EXTRACTS)
    assert cat.ids() == sorted(EXTRACTS)


@pytest.mark.parametrize("rid", sorted(EXTRACTS))
def test_entry_loads_and_validates(rid: str) -> None:
    reg = load_register(catalog.bundled_dir() / f"{rid}.yaml")
    assert isinstance(reg, Register)
    assert reg.id == rid
    assert reg.kind == KINDS.get(rid, "events")
    assert reg.person_key == "lopnr"
    assert reg.date_column == DATE_COLUMNS[rid]
    for text in (reg.title, reg.description):
        assert text.sv.strip() and text.en.strip()
    assert reg.holder and reg.legal_basis and reg.access and reg.population
    assert reg.keywords
    assert reg.coverage.to_year is None  # all ongoing
    assert 1950 <= reg.coverage.from_year <= 2025
    for v in reg.variables:
        assert v.description.strip(), f"{rid}.{v.name} has no description"


@pytest.mark.parametrize("rid", sorted(EXTRACTS))
def test_entry_lists_exactly_the_columns_of_the_extract(cat: catalog.Catalog, rid: str) -> None:
    reg = cat.registers[rid]
    assert [(v.name, v.type) for v in reg.variables] == EXTRACTS[rid]


@pytest.mark.parametrize("rid", sorted(EXTRACTS))
def test_keys_and_dates_are_not_nullable(cat: catalog.Catalog, rid: str) -> None:
    reg = cat.registers[rid]
    assert reg.variable("lopnr").nullable is False
    if reg.date_column:
        assert reg.variable(reg.date_column).nullable is False


def test_site_columns(cat: catalog.Catalog) -> None:
    sites = {rid: r.site_column for rid, r in cat.registers.items() if r.site_column}
    assert sites == {"npr": "sjukhus", "rekvisition": "sjukhus"}


def test_kinds_population_and_optout(cat: catalog.Catalog) -> None:
    assert cat.population is not None and cat.population.id == "population"
    assert cat.optout is not None and cat.optout.id == "optout"
    assert cat.population.date_column is None
    assert cat.population.provides == []


def _sources(cat: catalog.Catalog, event: str) -> list[tuple[str, str, bool, str | None, str]]:
    """(register, codes column, multi, main column, date column) of each source of an event."""
    return sorted(
        (r.id, p.codes, p.multi, p.main, r.event_date(p)) for r, p in cat.sources_of(event)
    )


def test_event_providers(cat: catalog.Catalog) -> None:
    assert _sources(cat, "diagnosis") == [
        ("npr", "diagnos", True, "hdia", "indatum"),
        ("npr", "ekod", True, None, "indatum"),  # external causes: never main
    ]
    assert _sources(cat, "procedure") == [("npr", "op", True, None, "indatum")]
    assert _sources(cat, "drug") == [
        ("lmr", "atc", False, None, "edatum"),
        ("rekvisition", "atc", False, None, "adm_datum"),
    ]
    assert _sources(cat, "death") == [("dors", "ulorsak", False, None, "dodsdat")]
    # drug sources are named by register id (`drug ... in lmr, rekvisition`)
    assert all(p.source is None for _, p in cat.sources_of("drug"))
    # registers used only through `REGISTER where FILTER` provide no events
    for rid in ("population", "ndr", "nkbc", "gms", "biobank", "optout", "migration"):
        assert cat.registers[rid].provides == [], rid


def test_code_systems(cat: catalog.Catalog) -> None:
    systems = {
        (rid, v.name): v.code_system
        for rid, r in cat.registers.items()
        for v in r.variables
        if v.code_system
    }
    assert systems == {
        ("npr", "hdia"): "ICD-10-SE",
        ("npr", "diagnos"): "ICD-10-SE",
        ("npr", "op"): "KVÅ",
        ("lmr", "atc"): "ATC",
        ("rekvisition", "atc"): "ATC",
        ("npr", "ekod"): "ICD-10-SE",
        ("dors", "ulorsak"): "ICD-10-SE",
        ("dors", "morsak"): "ICD-10-SE",
        ("gms", "gene"): "HGNC",
        ("gms", "variant"): "HGVS",
    }


def test_multi_columns(cat: catalog.Catalog) -> None:
    multi = {(rid, v.name) for rid, r in cat.registers.items() for v in r.variables if v.multi}
    assert multi == {("npr", "diagnos"), ("npr", "op"), ("npr", "ekod"), ("dors", "morsak")}


def test_units(cat: catalog.Catalog) -> None:
    units = {
        (rid, v.name): v.unit for rid, r in cat.registers.items() for v in r.variables if v.unit
    }
    assert units == {
        ("ndr", "hba1c"): "mmol/mol",
        ("ndr", "bmi"): "kg/m2",
        ("ndr", "systoliskt"): "mmHg",
        ("lmr", "ddd"): "DDD",
        ("lmr", "antal"): "förpackningar",
    }


@pytest.mark.parametrize(
    ("rid", "name", "values"),
    [
        ("population", "kon", [1, 2]),
        ("npr", "vardform", ["S", "O"]),
        ("ndr", "diabetestyp", [1, 2, 3, 4, 9]),
        ("nkbc", "er", ["positiv", "negativ"]),
        ("nkbc", "her2", ["positiv", "negativ"]),
        ("nkbc", "stadium", ["0", "I", "II", "III", "IV"]),
        ("gms", "klass", ["patogen", "trolig patogen", "VUS"]),
        ("biobank", "provtyp", ["helblod", "plasma", "serum", "vavnad_ffpe", "vavnad_frusen"]),
        ("optout", "andamal", ["forskning", "kommersiell", "alla"]),
        ("dors", "dodsdag_okand", [0, 1]),
        ("migration", "riktning", ["in", "ut"]),
    ],
)
def test_closed_value_sets(
    cat: catalog.Catalog, rid: str, name: str, values: list[str | int]
) -> None:
    var = cat.registers[rid].variable(name)
    assert var is not None
    assert var.values == values
    # stored types match the column: integers for smallint, strings for varchar
    want = int if var.type == "smallint" else str
    assert all(type(x) is want for x in var.values)
    if var.value_labels is not None:
        assert set(var.value_labels) == {str(x) for x in var.values}


def test_value_labels_of_sex(cat: catalog.Catalog) -> None:
    assert cat.registers["population"].variable("kon").value_labels == {"1": "man", "2": "kvinna"}


def test_population_lan_values_are_the_regions(cat: catalog.Catalog) -> None:
    lan = cat.registers["population"].variable("lan")
    assert lan.values is not None
    assert sorted(lan.values) == sorted(r.code for r in cat.regions)


# --- sources, code systems by period, known gaps (issue 10) ----------------------------


@pytest.mark.parametrize("rid", sorted(EXTRACTS))
def test_every_entry_cites_its_sources(cat: catalog.Catalog, rid: str) -> None:
    sources = cat.registers[rid].sources
    assert sources, f"{rid} cites no source"
    for s in sources:
        assert s.title.strip()
        # a source says where to find it or what it supports
        assert s.url or s.note, (rid, s.title)
        assert s.url is None or s.url.startswith("https://"), (rid, s.url)


# The code systems a register's current codes may be stored in under its `code_system`:
# itself, and WHO's ICD-10 under ICD-10-SE (the cause-of-death register codes the WHO
# version; a cohort's ICD-10-SE codes match it at the level used).
COMPATIBLE = {("ICD-10", "ICD-10-SE")}


@pytest.mark.parametrize("rid", sorted(EXTRACTS))
def test_code_variables_have_their_systems_by_period(cat: catalog.Catalog, rid: str) -> None:
    reg = cat.registers[rid]
    for v in reg.variables:
        if v.code_system is None:
            assert not v.coding, f"{rid}.{v.name}: coding without a code_system"
            continue
        where = f"{rid}.{v.name}"
        assert v.coding, f"{where} has no code systems by period"
        # the national periods tile the register's years; a period of some län only (Skåne's
        # ICD-9 year) lies within them and overlaps the national one of its years
        national = [c for c in v.coding if c.regions is None]
        for c in v.coding:
            if c.regions is not None:
                assert c.start is not None and c.until is not None and c.regions, where
                assert any(n.overlaps(c.start, c.until) for n in national), where
        first, last = national[0], national[-1]
        # the first period begins by the register's first year
        assert first.start is None or first.start.year <= reg.coverage.from_year, where
        for a, b in itertools.pairwise(national):
            # ordered and not overlapping: each ends (exclusive) before or when the next starts
            assert a.until is not None and b.start is not None, where
            assert a.until <= b.start, where
        # the last period is ongoing, unless the register ended
        if reg.coverage.to_year is None:
            assert last.until is None, where
        else:
            assert last.until is not None and last.until.year <= reg.coverage.to_year + 1, where
        assert last.system == v.code_system or (last.system, v.code_system) in COMPATIBLE, (
            f"{where}: current system {last.system}, code_system {v.code_system}"
        )


def _periods(cat: catalog.Catalog, rid: str, name: str) -> list[tuple[str, str, str, bool]]:
    var = cat.registers[rid].variable(name)
    assert var is not None
    return [(c.system, str(c.start or "-"), str(c.until or "-"), c.historical) for c in var.coding]


def test_the_code_systems_of_the_issue(cat: catalog.Catalog) -> None:
    icd = [("ICD-9", "1987-01-01", "1997-01-01", False),
           ("ICD-9", "1997-01-01", "1998-01-01", False),  # Skåne (län 12) only
           ("ICD-10-SE", "1997-01-01", "-", False)]  # fmt: skip
    assert _periods(cat, "npr", "hdia") == icd
    assert _periods(cat, "npr", "diagnos") == icd
    assert _periods(cat, "npr", "ekod") == icd
    skane = cat.registers["npr"].variable("hdia").coding[1]
    assert skane.regions == ["12"] and skane.note is not None and "Skåne" in skane.note
    assert _periods(cat, "npr", "op") == [
        ("Op6", "-", "1997-01-01", False),
        ("KKÅ97", "1997-01-01", "2007-01-01", False),
        ("KVÅ", "2007-01-01", "-", False),
    ]
    who = [
        ("ICD-7", "-", "1969-01-01", False),
        ("ICD-8", "1969-01-01", "1987-01-01", False),
        ("ICD-9", "1987-01-01", "1997-01-01", False),
        ("ICD-10", "1997-01-01", "-", False),
    ]
    assert _periods(cat, "dors", "ulorsak") == who
    assert _periods(cat, "dors", "morsak") == who
    for rid in ("lmr", "rekvisition"):
        assert [(c.system, c.historical) for c in cat.registers[rid].variable("atc").coding] == [
            ("ATC", True)
        ]


def test_known_gaps_and_currency(cat: catalog.Catalog) -> None:
    import datetime as dt

    rek = cat.registers["rekvisition"]
    assert rek.coverage.from_year > 2006
    thin = [p for p in rek.coverage.incomplete if p.until == dt.date(2025, 4, 1)]
    assert thin and thin[0].start is None and thin[0].note
    assert thin[0].overlaps(dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert not thin[0].overlaps(dt.date(2025, 4, 1), dt.date(2025, 12, 31))
    assert "HSLF-FS 2023:33" in rek.legal_basis and "2005:363" in rek.legal_basis
    dors = cat.registers["dors"]
    assert dors.update.finalised == "yearly" and dors.update.lag_months >= 12
    npr = cat.registers["npr"]
    assert npr.coverage.incomplete and npr.coverage.incomplete[0].until == dt.date(2001, 1, 1)
    for rid, reg in cat.registers.items():
        for period in reg.coverage.incomplete:
            assert period.note, rid


def test_ethics_review_is_for_microdata_not_for_counts(cat: catalog.Catalog) -> None:
    for rid, reg in cat.registers.items():
        if "Etikprövningsmyndigheten" in reg.access:
            assert "Aggregated statistics" in reg.access and "no ethical review" in reg.access, rid


def test_suggest_misspelt_register(cat: catalog.Catalog) -> None:
    assert catalog.suggest("nrd", cat.ids()) == "ndr"  # a swap, not 'npr'
    assert catalog.suggest("lrm", cat.ids()) == "lmr"
    assert catalog.suggest("rekvistion", cat.ids()) == "rekvisition"
    assert catalog.suggest("zzzz", cat.ids()) is None


# --- regions and sites -----------------------------------------------------------------


def test_regions() -> None:
    regions = load_regions()
    assert len(regions) == 21
    codes = [r.code for r in regions]
    assert len(set(codes)) == 21
    assert 10_400_000 <= sum(r.population for r in regions) <= 10_700_000


def test_sites() -> None:
    regions = {r.code for r in load_regions()}
    sites = load_sites()
    codes = [s.code for s in sites]
    assert len(codes) == len(set(codes))
    assert all(s.region in regions for s in sites)
    assert {s.region for s in sites} == regions  # every region has at least one site


def test_catalog_carries_regions_and_sites(cat: catalog.Catalog) -> None:
    assert len(cat.regions) == 21
    assert cat.region_name("18") == "Örebro län"
    first = cat.sites[0]
    assert cat.site(first.code) == first


# --- broken entries give a precise error ----------------------------------------------

VALID = """\
id: demo
kind: events
title: {sv: Demoregistret, en: Demo register}
holder: Demo
description: {sv: Ett register., en: A register.}
coverage: {from_year: 2000}
update: {frequency: yearly, lag_months: 6}
legal_basis: Lag (1998:543) om hälsodataregister
access: Application to the holder.
population: Everyone.
date_column: datum
variables:
  - {name: lopnr, type: bigint, description: Person, nullable: false}
  - {name: datum, type: date, description: Date, nullable: false}
  - {name: kod, type: varchar, description: Code, code_system: ATC}
provides:
  - {event: drug, codes: kod}
"""


def _write(tmp_path: Path, text: str, name: str = "demo") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        load_register(path)
    assert info.value.path == str(path)
    return info.value


def test_valid_template_loads(tmp_path: Path) -> None:
    reg = load_register(_write(tmp_path, VALID))
    assert reg.id == "demo"
    assert reg.event_date(reg.provides[0]) == "datum"


def test_missing_required_field(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID.replace("holder: Demo\n", "")))
    assert err.field == "holder"
    assert err.message == "required field is missing"


def test_missing_nested_field(tmp_path: Path) -> None:
    err = _error(
        _write(tmp_path, VALID.replace("{sv: Demoregistret, en: Demo register}", "{sv: D}"))
    )
    assert err.field == "title.en"
    assert err.message == "required field is missing"


def test_wrong_type_literal(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID.replace("type: varchar", "type: text")))
    assert err.field == "variables.2.type"
    assert "'text'" in err.message
    for literal in ("bigint", "smallint", "double", "varchar", "date"):
        assert f"'{literal}'" in err.message
    assert str(err) == f"{err.path}: variables.2.type: {err.message}"


def test_wrong_code_system(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID.replace("code_system: ATC", "code_system: ICD10")))
    assert err.field == "variables.2.code_system"
    assert "'ICD10'" in err.message and "'ICD-10-SE'" in err.message


def test_date_column_not_a_variable(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID.replace("date_column: datum", "date_column: dtum")))
    assert err.field == "date_column"
    assert "'dtum'" in err.message
    assert "not among the variables" in err.message
    assert "did you mean 'datum'" in err.message


def test_provides_column_not_a_variable(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID.replace("codes: kod", "codes: atc")))
    assert err.field == "provides.0.codes"
    assert "'atc'" in err.message and "not among the variables" in err.message


def test_events_register_needs_a_date_column(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID.replace("date_column: datum\n", "")))
    assert err.field == "date_column"
    assert "needs a date_column" in err.message


def test_variable_listed_twice(tmp_path: Path) -> None:
    text = VALID.replace("name: kod,", "name: datum,")
    err = _error(_write(tmp_path, text))
    assert err.field == "variables"
    assert err.message == "variable 'datum' is listed twice"


def test_unknown_field(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID + "colour: red\n"))
    assert err.field == "colour"
    assert err.message == "unknown field"


def test_unknown_field_in_variable(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID.replace("description: Code,", "descr: Code,")))
    # the misspelt key is unknown, and the real one then missing: the first error is reported
    assert err.field in {"variables.2.descr", "variables.2.description"}


def test_invalid_yaml(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID.replace("holder: Demo", "holder: [Demo")))
    assert err.field == ""
    assert err.message.startswith("not valid YAML")
    assert "line" in err.message and "column" in err.message


def test_not_a_mapping(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, "- just\n- a list\n"))
    assert err.field == ""
    assert err.message == "expected a mapping of fields"


def test_id_differs_from_file_name(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID, name="other"))
    assert err.field == "id"
    assert "'other'" in err.message and "'demo'" in err.message


def test_bad_coverage_order(tmp_path: Path) -> None:
    text = VALID.replace("{from_year: 2000}", "{from_year: 2000, to_year: 1990}")
    err = _error(_write(tmp_path, text))
    assert err.field == "coverage"
    assert err.message == "to_year must not be before from_year"


def test_load_catalog_reports_the_broken_file(tmp_path: Path) -> None:
    good = _write(tmp_path, VALID)
    bad = _write(tmp_path, VALID.replace("demo", "demo2").replace("type: date", "type: datetime"))
    assert good.exists()
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)
    assert info.value.path == str(bad)
    assert info.value.field == "variables.1.type"


def test_load_catalog_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path / "missing")
    assert "not a directory" in info.value.message


def test_later_directory_overrides_bundled_entry(tmp_path: Path) -> None:
    entry = yaml.safe_load((catalog.bundled_dir() / "ndr.yaml").read_text(encoding="utf-8"))
    entry["holder"] = "Local copy"
    (tmp_path / "ndr.yaml").write_text(yaml.safe_dump(entry, allow_unicode=True), encoding="utf-8")
    cat = load_catalog(catalog.bundled_dir(), tmp_path)
    assert cat.registers["ndr"].holder == "Local copy"
    assert cat.ids() == sorted(EXTRACTS)
