"""The catalog: what each register holds, the regions and the hospitals.

Entries are YAML files, one per register; the bundled ones describe the
synthetic extracts in `fixtures/synthetic`. An installation adds its own
directory of entries and says where each register's data lives.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from antal.catalog.code_lists import CodeLists, load_code_lists
from antal.catalog.errors import AntalError, CatalogError, InternalError
from antal.catalog.installation import (
    DataSource,
    Installation,
    PostgresPlacement,
    load_installation,
)
from antal.catalog.models import (
    HOLDER_FIELDS,
    Clinic,
    Coding,
    EventSource,
    FieldError,
    HealthcareRegion,
    Period,
    Region,
    Register,
    Site,
    Source,
    Variable,
)

__all__ = [
    "HOLDER_FIELDS",
    "AntalError",
    "Catalog",
    "CatalogError",
    "Clinic",
    "Coding",
    "DataSource",
    "EventSource",
    "HealthcareRegion",
    "Installation",
    "InternalError",
    "Period",
    "PostgresPlacement",
    "Region",
    "Register",
    "Site",
    "Source",
    "Variable",
    "bundled_dir",
    "load_catalog",
    "load_clinics",
    "load_healthcare_regions",
    "load_installation",
    "load_regions",
    "load_sites",
    "suggest",
]

_HERE = Path(__file__).parent
M = TypeVar("M", bound=BaseModel)


def bundled_dir() -> Path:
    """The directory of bundled register entries."""
    return _HERE / "registers"


def _edit_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) turning a into b."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def suggest(name: str, choices: list[str] | set[str]) -> str | None:
    """The closest known name to a misspelt one, if any is close.

    Few edits first (a swapped pair of letters is one edit, so 'nrd' gives 'ndr',
    not 'npr'), then difflib's similarity for the rest.
    """
    ranked = sorted(
        (
            _edit_distance(name.lower(), c.lower()),
            -difflib.SequenceMatcher(None, name, c).ratio(),
            c,
        )
        for c in choices
    )
    if ranked and ranked[0][0] <= max(1, len(name) // 3):
        return ranked[0][2]
    hits = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return hits[0] if hits else None


def _read_yaml(path: Path) -> Any:
    """A YAML file's data: from the user's cache when this very text was read before
    (catalog/yamlcache.py), else parsed (and then cached). PyYAML is imported only to parse:
    with every file in the cache, `antal check` does not import it."""
    from antal.catalog import yamlcache  # here: this module is imported by every command

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CatalogError(path, "", f"cannot be read: {e.strerror}") from e
    cached = yamlcache.get(text)
    if cached is not yamlcache.MISSING:
        return cached
    data = _parse_yaml(text, path)
    yamlcache.put(text, data)
    return data


def _parse_yaml(text: str, path: Path) -> Any:
    """libyaml's parser where PyYAML has it: the catalog and its code names are read on
    every `antal check`, and the pure-Python parser took ten times as long (most of the
    command's run). The constructor is the same safe one; a text libyaml refuses is read
    again by the pure-Python parser, so that what is accepted and how an error is worded
    stay as they were."""
    import yaml

    try:
        with contextlib.suppress(yaml.YAMLError):
            return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CatalogError(path, "", f"not valid YAML {where}: {getattr(e, 'problem', e)}") from e


def _validate(model: type[M], data: Any, path: Path, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        parts = [prefix, *err["loc"]]
        msg = err["msg"]
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, FieldError):  # a cross-field check names the field it failed on
            parts.append(cause.field)
            msg = str(cause)
        elif isinstance(cause, ValueError):
            msg = str(cause)
        loc = ".".join(str(p) for p in parts if p != "")
        if err["type"] == "literal_error":
            msg = f"expected {err['ctx']['expected']}, got {err['input']!r}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        raise CatalogError(path, loc, msg) from e


def load_healthcare_regions(path: Path | None = None) -> list[HealthcareRegion]:
    """The six healthcare regions (sjukvårdsregioner), from regions.yaml."""
    path = path or _HERE / "regions.yaml"
    data = _read_yaml(path)
    return [
        _validate(HealthcareRegion, r, path, f"sjukvardsregioner.{i}")
        for i, r in enumerate(data["sjukvardsregioner"])
    ]


def load_regions(path: Path | None = None) -> list[Region]:
    path = path or _HERE / "regions.yaml"
    data = _read_yaml(path)
    regions = [_validate(Region, r, path, f"regions.{i}") for i, r in enumerate(data["regions"])]
    known = {h.code for h in load_healthcare_regions(path)}
    for i, r in enumerate(regions):  # every län in a healthcare region of the list
        for code in (r.sjukvardsregion, *r.split):
            if code not in known:
                raise CatalogError(path, f"regions.{i}.sjukvardsregion", f"unknown {code!r}")
    return regions


def load_sites(path: Path | None = None) -> list[Site]:
    path = path or _HERE / "sites.yaml"
    data = _read_yaml(path)
    return [_validate(Site, s, path, f"sites.{i}") for i, s in enumerate(data["sites"])]


def load_clinics(path: Path | None = None) -> list[Clinic]:
    path = path or _HERE / "clinics.yaml"
    data = _read_yaml(path)
    return [_validate(Clinic, c, path, f"clinics.{i}") for i, c in enumerate(data["clinics"])]


def load_register(path: Path) -> Register:
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise CatalogError(path, "", "expected a mapping of fields")
    reg = _validate(Register, data, path)
    if reg.id != path.stem:
        raise CatalogError(path, "id", f"expected {path.stem!r} (the file's name), got {reg.id!r}")
    return reg


@dataclass(frozen=True)
class Catalog:
    registers: dict[str, Register]
    regions: list[Region] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    healthcare_regions: list[HealthcareRegion] = field(default_factory=list)
    clinics: list[Clinic] = field(default_factory=list)
    # installation catalog directories whose `codelists/` extend the bundled code lists
    code_dirs: tuple[Path, ...] = ()
    # each register's holder as the installation's catalog files name it: the owner of the
    # register's catalog budget. An entry published through the service may rename its
    # holder (a description); it never changes whose budget its releases spend.
    assigned_holders: dict[str, str] = field(default_factory=dict)
    # values computed from the entries (`derived`), and the entries they were computed from
    _derived: list[Any] = field(default_factory=list, init=False, repr=False, compare=False)

    def _entries(self) -> tuple[Any, ...]:
        return (*self.registers, *self.registers.values(), *self.regions, *self.sites,
                *self.healthcare_regions, *self.clinics, *self.code_dirs)  # fmt: skip

    def derived(self) -> dict[Any, Any]:
        """A dict for values computed from this catalog's entries (its version, the
        service's prepared cohorts), emptied when an entry was added, removed or replaced
        since by one not equal to it: what it holds was computed from entries equal to
        these. The entries are frozen models, never changed in place (a published one
        replaces its object); tuples compare their items by identity first, so the same
        entries compare at once."""
        now = self._entries()
        seen = self._derived
        if seen and seen[0] == now:
            return seen[1]  # type: ignore[no-any-return]
        fresh: dict[Any, Any] = {}
        self._derived[:] = [now, fresh]
        return fresh

    @property
    def code_lists(self) -> CodeLists:
        """Which codes exist (catalog/code_lists.py); read once per set of directories."""
        return _code_lists(self.code_dirs)

    def register(self, rid: str) -> Register | None:
        return self.registers.get(rid)

    def ids(self) -> list[str]:
        return sorted(self.registers)

    def assigned_holder(self, rid: str) -> str | None:
        """The holder the installation's files assign `rid` to (None: a register known only
        from an entry published through the service)."""
        return self.assigned_holders.get(rid)

    def sources_of(self, event: str) -> list[tuple[Register, EventSource]]:
        """Every (register, source) that provides the given cohort-language event."""
        return [
            (r, p)
            for r in self.registers.values()
            if not r.is_internal  # never read by a cohort
            for p in r.provides
            if p.event == event
        ]

    @property
    def population(self) -> Register | None:
        return next((r for r in self.registers.values() if r.kind == "population"), None)

    @property
    def optout(self) -> Register | None:
        return next((r for r in self.registers.values() if r.kind == "optout"), None)

    def version(self) -> str:
        """A hash of everything in the catalog that a check or a count depends on.

        Part of a stored answer's key: a catalog change (another register providing an
        event, a new column, a new region) never serves an answer computed under the old
        one; a changed description does not count."""
        derived = self.derived()
        if "version" not in derived:
            derived["version"] = self._version()
        return derived["version"]  # type: ignore[no-any-return]

    def _version(self) -> str:
        blob = json.dumps(
            {
                "registers": {rid: r.semantics() for rid, r in sorted(self.registers.items())},
                "regions": [r.model_dump(mode="json") for r in self.regions],
                "sites": [s.model_dump(mode="json") for s in self.sites],
                "sjukvardsregioner": [h.model_dump(mode="json") for h in self.healthcare_regions],
                "clinics": [c.model_dump(mode="json") for c in self.clinics],
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def region_name(self, code: str) -> str:
        return next((r.name for r in self.regions if r.code == code), code)

    def site(self, code: str) -> Site | None:
        return next((s for s in self.sites if s.code == code), None)

    def site_healthcare_region(self, site: Site) -> str | None:
        """The healthcare region of a hospital: its own (split län), else its län's."""
        if site.sjukvardsregion:
            return site.sjukvardsregion
        return next((r.sjukvardsregion for r in self.regions if r.code == site.region), None)


def load_catalog(*dirs: Path | str) -> Catalog:
    """Load register entries from the given directories (default: the bundled ones).

    A later directory's entry replaces an earlier one with the same id.
    """
    regs: dict[str, Register] = {}
    for d in dirs or (bundled_dir(),):
        d = Path(d)
        if not d.is_dir():
            raise CatalogError(d, "", "is not a directory of catalog entries")
        for path in sorted(d.glob("*.yaml")):
            reg = load_register(path)
            regs[reg.id] = reg
    extra = tuple(Path(d).resolve() for d in dirs if Path(d).resolve() != bundled_dir().resolve())
    return Catalog(registers=regs, regions=load_regions(), sites=load_sites(), code_dirs=extra,
                   healthcare_regions=load_healthcare_regions(), clinics=load_clinics(),
                   assigned_holders={rid: r.holder for rid, r in regs.items()})  # fmt: skip


@cache
def _code_lists(dirs: tuple[Path, ...]) -> CodeLists:
    return load_code_lists(*dirs)
