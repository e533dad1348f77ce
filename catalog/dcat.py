"""HealthDCAT-AP (Release 8, NON_PUBLIC) descriptions of the catalog's registers, with rdflib.

Every register becomes a `dcat:Dataset` whose access rights are NON_PUBLIC (its rows never
leave the holder; antal releases counts only), and the whole catalog a `dcat:Catalog` of
them. What the profile makes mandatory for a non-public health dataset is always there:
access rights, applicable legislation (the EHDS Regulation), a distribution (antal's count
service: statistics, never rows), identifier, theme (HEAL), contact point, keywords, type,
provenance, health category, health data access body, and `hasStructuredData` with the
variables as a CSVW table group. The optional health properties are added where antal knows
them: coding systems, population coverage, legal basis, the register's period, language
and update frequency, and — only from an availability release of the privacy layer
(`privacy/availability.py`), never from a raw count — the number of unique individuals and
of records, rounded and protected, and the typical ages.

Every controlled-vocabulary concept the graph uses states its `skos:inScheme` and its scheme
is a titled `skos:ConceptScheme`: the profile's shapes check membership that way
(`catalog/shacl/healthdcat-ap-r8/vocabularies.ttl` holds the concepts, copied from the
release's vocabularies). `validate()` runs pySHACL with the release's NON_PUBLIC shape set
(`catalog/shacl/healthdcat-ap-r8/README.md` says what was vendored and patched).

The `healthdcatap:` namespace is provisional in the release ("to be changed when the
HealthDCAT-AP namespace is created"): every function takes it as `ns`, and validation
rewrites the shapes to the same namespace, so a new namespace is one argument.
docs/catalog-export.md lists the mapping, the DCAT-AP-SE differences and the warnings left.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from rdflib import Graph, Namespace, URIRef
from rdflib import Literal as Lit
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

from antal.catalog.models import Register

__all__ = [
    "FORMATS",
    "HEALTHDCATAP_NS",
    "MEDIA_TYPES",
    "NS_PATTERN",
    "DatasetFacts",
    "ExportFormat",
    "Validation",
    "catalog_graph",
    "check_ns",
    "dataset_graph",
    "serialize",
    "shapes_dir",
    "validate",
]

# The release's namespace for its own terms, marked provisional in the shapes themselves.
HEALTHDCATAP_NS = "http://healthdataportal.eu/ns/health#"

ExportFormat = Literal["turtle", "jsonld"]
FORMATS: tuple[ExportFormat, ...] = ("turtle", "jsonld")
MEDIA_TYPES: dict[ExportFormat, str] = {"turtle": "text/turtle", "jsonld": "application/ld+json"}

DCATAP = Namespace("http://data.europa.eu/r5r/")
CSVW = Namespace("http://www.w3.org/ns/csvw#")
CV = Namespace("http://data.europa.eu/m8g/")
DPV = Namespace("https://w3id.org/dpv#")
DPV_PD = Namespace("https://w3id.org/dpv/dpv-pd#")
GEODCATAP = Namespace("http://data.europa.eu/930/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")

_EU = "http://publications.europa.eu/resource/authority/"
_HDEU = "https://hdeu-dcat.data.health.europa.eu/resource/authority/"
# the EHDS Regulation, (EU) 2025/327: the profile's usage note names it as the legislation
EHDS = URIRef("http://data.europa.eu/eli/reg/2025/327/oj")
NON_PUBLIC = URIRef(_EU + "access-right/NON_PUBLIC")
HEAL = URIRef(_EU + "data-theme/HEAL")
# antal's distribution gives statistics (released counts), never rows
STATISTICAL = URIRef(_EU + "dataset-type/STATISTICAL")
SWEDISH = URIRef(_EU + "language/SWE")

# each register's category under Article 51 of the EHDS Regulation (the Health Categories
# vocabulary): the national and quality registers are population-based health data
# registries; the biobanks' sample register is biobank data; the population registers are
# administrative data
_CATEGORY = {"biobank": "EINS", "population": "HRAD", "migration": "HRAD"}
_DEFAULT_CATEGORY = "PHDR"
# antal's code systems in the Coding Systems vocabulary (ICD-10-SE is a national
# modification of ICD-10, KVÅ a national procedure classification); HGVS has no concept
_CODING = {"ICD-10-SE": "ICD-10-NAT", "ATC": "ATC", "KVÅ": "PROC-CODES-NAT", "HGNC": "HGNC"}
# a register's `update.frequency` (free text) by its first word, in the Frequency vocabulary
_FREQUENCY = {"monthly": "MONTHLY", "yearly": "ANNUAL", "continuous": "CONT", "daily": "DAILY"}
# CSVW datatypes of antal's column types
_DATATYPE = {"bigint": "integer", "integer": "integer", "smallint": "integer",
             "double": "double", "varchar": "string", "date": "date"}  # fmt: skip


NS_PATTERN = r"^https?://[A-Za-z0-9._~/#%-]+[/#]$"  # an IRI namespace: ends in / or #


def check_ns(ns: str) -> str:
    """A healthdcatap namespace given by a user: an http(s) IRI ending in `/` or `#`."""
    if not re.match(NS_PATTERN, ns):
        raise ValueError(f"not a namespace IRI (http(s)://..., ending in / or #): {ns!r}")
    return ns


def shapes_dir() -> Path:
    """The vendored HealthDCAT-AP Release 8 shape set."""
    return Path(__file__).parent / "shacl" / "healthdcat-ap-r8"


@dataclass(frozen=True)
class DatasetFacts:
    """What antal adds to a register's entry from outside the catalog: only released values.

    `persons` and `records` come from the register's availability release (rounded, noisy,
    and None when suppressed); `min_age`/`max_age` from its released age bands; `release` is
    the data release they describe and `hdab` the health data access body (name, URL),
    by default the register's holder."""

    persons: int | None = None
    records: int | None = None
    min_age: int | None = None
    max_age: int | None = None
    release: str | None = None
    hdab: tuple[str, str] | None = None


@dataclass
class _Builder:
    g: Graph
    base: str
    h: Namespace
    concepts: Graph = field(default_factory=lambda: _vocabularies())

    def concept(self, iri: URIRef) -> URIRef:
        """Add a vocabulary concept with its scheme (both from the vendored extract)."""
        for t in self.concepts.triples((iri, None, None)):
            self.g.add(t)
        for scheme in self.concepts.objects(iri, SKOS.inScheme):
            for t in self.concepts.triples((scheme, None, None)):
                self.g.add(t)
        if (iri, SKOS.inScheme, None) not in self.g:  # a concept missing from the extract
            raise KeyError(f"{iri} is not in catalog/shacl/healthdcat-ap-r8/vocabularies.ttl")
        return iri

    def iri(self, *parts: str) -> URIRef:
        return URIRef(self.base.rstrip("/") + "/" + "/".join(parts))

    def agent(self, name: str, url: str, key: str) -> URIRef:
        """A health agent: a foaf:Agent with exactly one cv:ContactPoint (the profile's
        HealthAgent shape), the contact a page."""
        node = self.iri("agents", key)
        if (node, RDF.type, FOAF.Agent) not in self.g:
            self.g.add((node, RDF.type, FOAF.Agent))
            self.g.add((node, FOAF.name, Lit(name)))
            cp = self.iri("agents", key, "contact")
            self.g.add((node, CV.contactPoint, cp))
            self.g.add((cp, RDF.type, CV.ContactPoint))
            self.g.add((cp, CV.contactPage, URIRef(url)))
        return node


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "agent"


def dataset_graph(
    reg: Register,
    base: str,
    facts: DatasetFacts | None = None,
    *,
    ns: str = HEALTHDCATAP_NS,
    graph: Graph | None = None,
) -> Graph:
    """The HealthDCAT-AP description of one register, its IRIs under `base` (the service's
    URL); added to `graph` when given (the catalog's)."""
    facts = facts or DatasetFacts()
    g = graph if graph is not None else _new_graph(check_ns(ns))
    b = _Builder(g, base, Namespace(ns))
    h = b.h
    ds = b.iri("v1", "catalog", "registers", reg.id)
    contact_url = reg.holder_url or base

    g.add((ds, RDF.type, DCAT.Dataset))
    g.add((ds, DCTERMS.identifier, Lit(reg.id)))
    for lang in ("sv", "en"):
        g.add((ds, DCTERMS.title, Lit(getattr(reg.title, lang), lang=lang)))
        g.add((ds, DCTERMS.description, Lit(getattr(reg.description, lang), lang=lang)))
    g.add((ds, DCTERMS.accessRights, b.concept(NON_PUBLIC)))
    g.add((ds, DCATAP.applicableLegislation, EHDS))
    g.add((ds, DCAT.theme, b.concept(HEAL)))
    g.add((ds, DCTERMS.type, b.concept(STATISTICAL)))
    g.add((ds, DCTERMS.language, b.concept(SWEDISH)))
    for kw in reg.keywords or [reg.id, reg.title.en]:
        g.add((ds, DCAT.keyword, Lit(kw)))
    category = _CATEGORY.get(reg.id, _DEFAULT_CATEGORY)
    g.add((ds, h.healthCategory, b.concept(URIRef(_HDEU + "healthcategories/" + category))))

    # contact point: a vcard:Kind with a URL (the profile's Kind shape)
    kind = b.iri("v1", "catalog", "registers", reg.id, "contact")
    g.add((ds, DCAT.contactPoint, kind))
    g.add((kind, RDF.type, VCARD.Kind))
    g.add((kind, VCARD.fn, Lit(reg.holder)))
    g.add((kind, VCARD.hasURL, URIRef(contact_url)))
    # the holder is the data custodian; the health data access body is configurable (a
    # Swedish HDAB is not designated yet), by default the holder too
    holder = b.agent(reg.holder, contact_url, _slug(reg.holder))
    g.add((ds, GEODCATAP.custodian, holder))
    hdab = b.agent(*facts.hdab, "hdab-" + _slug(facts.hdab[0])) if facts.hdab else holder
    g.add((ds, h.hdab, hdab))

    # provenance: who keeps the register and how it is updated
    prov = b.iri("v1", "catalog", "registers", reg.id, "provenance")
    g.add((ds, DCTERMS.provenance, prov))
    g.add((prov, RDF.type, DCTERMS.ProvenanceStatement))
    text = f"Kept by {reg.holder}; updated {reg.update.frequency}, records complete after {reg.update.lag_months} months."
    if reg.update.note:
        text += " " + reg.update.note
    g.add((prov, RDFS.label, Lit(text, lang="en")))

    # the distribution: antal's count service over this register (statistics only)
    dist = b.iri("v1", "catalog", "registers", reg.id, "distribution")
    g.add((ds, DCAT.distribution, dist))
    g.add((dist, RDF.type, DCAT.Distribution))
    g.add((dist, DCATAP.applicableLegislation, EHDS))
    g.add((dist, DCAT.accessURL, b.iri("v1", "cohorts", "validate")))
    g.add((dist, DCTERMS.title, Lit("antal feasibility counts", lang="en")))
    g.add((dist, DCTERMS.description, Lit(
        "Patient counts of cohorts over this register, released through antal's privacy "
        "layer (differential privacy under a project's budget, small counts suppressed); "
        f"no row leaves the holder. Access: {reg.access}", lang="en")))  # fmt: skip
    # the analytics distribution: the register's released availability counts
    ana = b.iri("v1", "catalog", "registers", reg.id, "availability")
    g.add((ds, h.analytics, ana))
    g.add((ana, RDF.type, DCAT.Distribution))
    g.add((ana, DCATAP.applicableLegislation, EHDS))
    g.add((ana, DCAT.accessURL, ana))
    g.add((ana, DCTERMS.title, Lit("Availability counts", lang="en")))
    g.add((ana, DCTERMS.description, Lit(
        "How many persons have each code, code group and variable, by year: released once "
        "per data release through antal's privacy layer, suppressed below its threshold.",
        lang="en")))  # fmt: skip

    # the variables: one CSVW table of the register's columns
    _variables(b, ds, reg)

    # optional health properties antal knows
    for system in sorted({s for v in reg.variables for s in v.systems if s in _CODING}):
        g.add(
            (ds, h.hasCodingSystem, b.concept(URIRef(_HDEU + "coding-system/" + _CODING[system])))
        )
    g.add((ds, h.populationCoverage, Lit(reg.population, lang="en")))
    basis = b.iri("v1", "catalog", "registers", reg.id, "legal-basis")
    g.add((ds, DPV.hasLegalBasis, basis))
    g.add((basis, RDF.type, DPV.LegalBasis))
    g.add((basis, DCTERMS.description, Lit(reg.legal_basis)))
    g.add((ds, DPV.hasPersonalData, DPV_PD.HealthRecord))
    g.add((DPV_PD.HealthRecord, RDF.type, DPV.PersonalData))
    freq = _FREQUENCY.get(reg.update.frequency.split()[0].lower()) if reg.update.frequency else None
    if freq:
        g.add((ds, DCTERMS.accrualPeriodicity, b.concept(URIRef(_EU + "frequency/" + freq))))
    period = b.iri("v1", "catalog", "registers", reg.id, "period")
    g.add((ds, DCTERMS.temporal, period))
    g.add((period, RDF.type, DCTERMS.PeriodOfTime))
    g.add((period, DCAT.startDate, Lit(dt.date(reg.coverage.from_year, 1, 1))))
    if reg.coverage.to_year is not None:
        g.add((period, DCAT.endDate, Lit(dt.date(reg.coverage.to_year, 12, 31))))
    if reg.holder_url:
        g.add((ds, DCAT.landingPage, URIRef(reg.holder_url)))
        g.add((URIRef(reg.holder_url), RDF.type, FOAF.Document))
    for src in reg.sources:
        if src.url:
            g.add((ds, DCTERMS.isReferencedBy, URIRef(src.url)))
            g.add((ds, FOAF.page, URIRef(src.url)))
            g.add((URIRef(src.url), RDF.type, FOAF.Document))
            g.add((URIRef(src.url), DCTERMS.title, Lit(src.title)))
    # released (never raw) figures: rounded, noisy, and absent when suppressed
    for prop, value in ((h.numberOfUniqueIndividuals, facts.persons),
                        (h.numberOfRecords, facts.records),
                        (h.minTypicalAge, facts.min_age), (h.maxTypicalAge, facts.max_age)):  # fmt: skip
        if value is not None:
            g.add((ds, prop, Lit(int(value), datatype=XSD.nonNegativeInteger)))
    if facts.release:
        g.add((ds, URIRef(str(DCAT) + "version"), Lit(facts.release)))  # DCAT 3
    return g


def _variables(b: _Builder, ds: URIRef, reg: Register) -> None:
    g, h = b.g, b.h
    group = b.iri("v1", "catalog", "registers", reg.id, "variables")
    table = b.iri("v1", "catalog", "registers", reg.id, "variables", "table")
    g.add((ds, h.hasStructuredData, Lit(True)))
    g.add((ds, h.hasVariables, group))
    g.add((group, RDF.type, CSVW.TableGroup))
    g.add((group, DCTERMS.title, Lit(f"Variables of {reg.title.en}", lang="en")))
    g.add((group, CSVW.table, table))
    g.add((table, RDF.type, CSVW.Table))
    g.add((table, DCTERMS.title, Lit(reg.id)))
    for v in reg.variables:
        col = b.iri("v1", "catalog", "registers", reg.id, "variables", v.name)
        g.add((table, CSVW.column, col))
        g.add((col, RDF.type, CSVW.Column))
        g.add((col, CSVW.name, Lit(v.name)))
        g.add((col, CSVW.title, Lit(v.name)))
        g.add((col, DCTERMS.description, Lit(v.description)))
        g.add((col, CSVW.datatype, Lit(_DATATYPE[v.type])))
        g.add((col, CSVW.required, Lit(not v.nullable)))


def catalog_graph(
    registers: list[Register],
    base: str,
    facts: dict[str, DatasetFacts] | None = None,
    *,
    ns: str = HEALTHDCATAP_NS,
    title: str = "antal catalog",
    publisher: tuple[str, str] | None = None,
) -> Graph:
    """The whole catalog: a dcat:Catalog of every register's dataset. `publisher` is the
    installation (name, URL), by default named by `title` at `base`."""
    g = _new_graph(check_ns(ns))
    b = _Builder(g, base, Namespace(ns))
    cat = b.iri("v1", "catalog")
    g.add((cat, RDF.type, DCAT.Catalog))
    g.add((cat, DCTERMS.title, Lit(title, lang="en")))
    g.add((cat, DCTERMS.description, Lit(
        "Swedish health and quality registers described for feasibility counts: what each "
        "holds, and how many persons have each code, released through a privacy layer.",
        lang="en")))  # fmt: skip
    g.add((cat, DCATAP.applicableLegislation, EHDS))
    g.add((cat, DCTERMS.language, b.concept(SWEDISH)))
    g.add((cat, DCAT.themeTaxonomy, URIRef(_EU + "data-theme")))
    name, url = publisher or (title, base)
    g.add((cat, DCTERMS.publisher, b.agent(name, url, "publisher")))
    for reg in registers:
        dataset_graph(reg, base, (facts or {}).get(reg.id), ns=ns, graph=g)
        g.add((cat, DCAT.dataset, b.iri("v1", "catalog", "registers", reg.id)))
    return g


def _new_graph(ns: str) -> Graph:
    g = Graph(bind_namespaces="none")  # only the prefixes the export uses
    for prefix, n in (("rdf", RDF), ("rdfs", RDFS), ("xsd", XSD), ("dcat", DCAT), ("dct", DCTERMS), ("foaf", FOAF), ("vcard", VCARD),
                      ("skos", SKOS), ("dcatap", DCATAP), ("csvw", CSVW), ("cv", CV),
                      ("dpv", DPV), ("dpv-pd", DPV_PD), ("geodcatap", GEODCATAP),
                      ("healthdcatap", Namespace(ns))):  # fmt: skip
        g.bind(prefix, n, override=True)
    return g


def serialize(g: Graph, fmt: ExportFormat) -> str:
    """Turtle, or JSON-LD (expanded terms compacted with the graph's prefixes)."""
    if fmt == "jsonld":
        context = {p: str(n) for p, n in g.namespaces() if p}
        return g.serialize(format="json-ld", context=context, indent=2)
    return g.serialize(format="turtle")


@cache
def _vocabularies() -> Graph:
    g = Graph()
    g.parse(shapes_dir() / "vocabularies.ttl", format="turtle")
    return g


# ---- validation ----------------------------------------------------------------------------

# The release's NON_PUBLIC file set, as its validator configuration names it (less
# `deprecated/deprecateduris.ttl`, which the copy we vendor from does not carry).
_NON_PUBLIC_FILES = (
    "shapes/graph-guard.ttl",
    "imports/mdr_imports.ttl",
    "imports/imports.ttl",
    "ranges/range.ttl",
    "shapes/non-public-shapes.ttl",
    "controlled-vocabularies/mdr-vocabularies.shape.ttl",
    "recommended/non-public-shapes_recommended.ttl",
)
_SH = Namespace("http://www.w3.org/ns/shacl#")


@dataclass(frozen=True)
class Validation:
    """pySHACL's results on an export: (focus node, path, message) per result."""

    violations: tuple[tuple[str, str, str], ...]
    warnings: tuple[tuple[str, str, str], ...]

    @property
    def conforms(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        def rows(rs: tuple[tuple[str, str, str], ...]) -> list[dict[str, str]]:
            return [{"focus": f, "path": p, "message": m} for f, p, m in rs]

        return {"conforms": self.conforms, "violations": rows(self.violations),
                "warnings": rows(self.warnings)}  # fmt: skip


@cache
def _shapes(ns: str) -> Graph:
    sg = Graph()
    for f in _NON_PUBLIC_FILES:
        data = (shapes_dir() / f).read_text(encoding="utf-8")
        if ns != HEALTHDCATAP_NS:  # the provisional namespace, moved with the export's
            data = data.replace(f"<{HEALTHDCATAP_NS}>", f"<{ns}>")
        sg.parse(data=data, format="turtle")
    _patch_pathless(sg)
    return sg


def _patch_pathless(sg: Graph) -> None:
    """The one patch pySHACL needs (catalog/shacl/healthdcat-ap-r8/README.md): the NON_PUBLIC
    Dataset shape has an `sh:property` without `sh:path` (the `sh:or` "hasStructuredData
    true needs hasVariables"), which pySHACL refuses as a malformed property shape. Its
    constraint is about the focus node itself, so it becomes a node shape of its own with
    the same targets, `sh:or`, severity and message: the check is kept, not dropped."""
    for shape, _p, prop in list(sg.triples((None, _SH.property, None))):
        if (prop, _SH.path, None) in sg:
            continue
        sg.remove((shape, _SH.property, prop))
        sg.add((prop, RDF.type, _SH.NodeShape))
        for target in sg.objects(shape, _SH.targetClass):
            sg.add((prop, _SH.targetClass, target))


def validate(g: Graph, *, ns: str = HEALTHDCATAP_NS) -> Validation:
    """Validate an export with pySHACL against the vendored NON_PUBLIC shape set.

    Results nested under a failed `sh:node` (pySHACL's `sh:detail`) are folded into the
    result that holds them, as the HealthData@EU validator (a Jena-based one) reports
    them; each result's severity is its own shape's."""
    from pyshacl import validate as shacl  # imported here: only validation needs it

    _conforms, report, _text = shacl(
        g, shacl_graph=_shapes(ns), inference="none", advanced=True, allow_warnings=True
    )
    nested = set(report.objects(None, _SH.detail))
    violations: list[tuple[str, str, str]] = []
    warnings: list[tuple[str, str, str]] = []
    for r in report.subjects(RDF.type, _SH.ValidationResult):
        if r in nested:
            continue
        row = (
            str(report.value(r, _SH.focusNode)),
            str(report.value(r, _SH.resultPath) or ""),
            str(report.value(r, _SH.resultMessage) or ""),
        )
        severity = report.value(r, _SH.resultSeverity)
        (violations if severity == _SH.Violation else warnings).append(row)
    return Validation(tuple(sorted(set(violations))), tuple(sorted(set(warnings))))
