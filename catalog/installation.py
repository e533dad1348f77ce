"""Where an installation's extracts live, and how their columns map to the catalog's.

A small YAML file::

    release: region-orebro-2026-10      # id of this data release (part of answer keys)
    extracted: 2026-10-15               # the day the extracts were taken (data currency)
    catalog: [./my-entries]             # optional extra directories of entries
    registers:
      population: {parquet: /data/rtb.parquet}
      npr:
        parquet: /data/par/*.parquet    # a path or a glob
        columns: {lopnr: pnr}           # canonical name -> name in the file
        start: 1997-01-01               # optional: first and last day the extract covers
        through: 2026-09-30
    privacy: {epsilon: 0.5, threshold: 10, rounding: 5, default_budget: 10}
    optout: required                    # or `none`: this installation keeps no opt-outs
    tolerate: {npr.indatum: 5}          # malformed rows accepted per column (see below)

Relative paths are taken from the file's directory. Instead of (or besides) `registers`,
`prepared: /data/release.duckdb` names a file `antal prepare` wrote: its registers and code
tables, except any register the config places elsewhere.

Without `release`, the release id is a hash of the files' contents (catalog/release.py):
copying or touching them keeps it, changing their content changes it.

A data directory (`--data DIR`) may hold a manifest, `DIR/release.yaml`, with the same
`release` and `extracted` keys and, under `registers`, each register's `start` and
`through` (`antal synth` writes one). Data currency in every answer comes from these:
without them an answer says the currency is unknown.

A delivery (docs/extracts.md#deliveries): `delivery:` names a description of files as
they came (a shipped one by name, `reporting`; a path; or inline, antal.catalog.delivery)
and `data:` the directory they are in (or `--data DIR` beside `--config FILE`). Its
registers are converted to the canonical layout when the installation is opened
(antal.engine.delivery); a file that is itself a delivery description is read as
`delivery:` it.

Opt-outs fail closed: an installation holds the opt-out register (`optout`) unless its
config says `optout: none`. With `required` (the default, and always for `--data DIR`)
a missing opt-out file is an error of `antal data check`, of `antal serve` at start-up
and of every count, never a silent count that includes persons who opted out. A region
where nobody has opted out yet provides an opt-out file with no rows.

`tolerate` accepts up to a stated number of malformed rows in a column (a date out of
range, a code of the wrong shape or case, a value outside a closed list: the data
check's row checks, engine/datacheck.py): within it, `antal data check` reports them as
a note and every count reads the column's value on those rows as missing; above it,
the check fails as without `tolerate`. It applies to extracts read in place (Parquet,
DuckDB) and to the values a delivery's rules cannot read (antal.engine.delivery: missing,
and noted); on PostgreSQL tables every malformed row fails the check.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from antal.catalog.errors import CatalogError
from antal.catalog.release import content_release
from antal.catalog.vocabulary import PLACEMENTS, Placement
from antal.privacy.params import PrivacyParams

if TYPE_CHECKING:  # read only for an installation of delivered files (load_installation)
    from antal.catalog.delivery import Delivery

__all__ = [
    "CODE_TABLES",
    "LAYOUT_VERSION",
    "MANIFEST",
    "META_TABLE",
    "DataSource",
    "Installation",
    "Manifest",
    "PhysicalLayout",
    "PostgresPlacement",
    "code_table_name",
    "data_dir_release",
    "load_installation",
    "person_table_name",
]

LAYOUT_VERSION = 2  # of a prepared file (`antal prepare`, antal.engine.ingest)
META_TABLE = "antal_release"  # a prepared file's table of its layout, release and manifest
CODE_TABLES = "antal_code_tables"  # a prepared file's table naming its code tables


def code_table_name(register: str, column: str) -> str:
    """The table of a prepared file holding one code per row of a register's column of
    codes. `#` is in no register's name, so it never shadows a register."""
    return f"{register}#{column}"


def person_table_name(register: str) -> str:
    """The table of a prepared file holding the population register's persons, one row
    each, every value resolved as the compiler resolves it (engine/compiler.py)."""
    return f"{register}#person"


@dataclass(frozen=True)
class PhysicalLayout:
    """The tables besides the registers that the compiler may read instead of them: a
    prepared file's (or a schema `antal load-postgres` filled) code tables, (register,
    column of codes) -> table, and person tables, register -> table. Empty for extracts
    read as they are."""

    code_tables: Mapping[tuple[str, str], str] = field(default_factory=dict)
    person_tables: Mapping[str, str] = field(default_factory=dict)


class DataSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    parquet: str | None = None
    duckdb: str | None = None  # a DuckDB database file ...
    table: str | None = None  # ... and the table in it
    postgres: str | None = None  # a table in the installation's PostgreSQL schema
    columns: dict[str, str] = Field(default_factory=dict)
    # the days this extract covers (first and last); None: the catalog's coverage, and
    # through the extraction date
    start: dt.date | None = None
    through: dt.date | None = None
    # a prepared file's code tables of this register: column of codes -> table in `duckdb`
    # (or in the `postgres` schema `antal load-postgres` filled)
    code_tables: dict[str, str] = Field(default_factory=dict)
    # a prepared file's (or loaded schema's) table of the population's persons, one row each
    person_table: str | None = None
    # every value was checked when the file was prepared, and the file is immutable (its
    # release id is its content's): a data check checks only the tables' shape
    values_checked: bool = False

    def column(self, canonical: str) -> str:
        return self.columns.get(canonical, canonical)

    @property
    def placement(self) -> Placement | None:
        """Where the extract lives (one of them; `load_installation` refuses several)."""
        found = [p for p in PLACEMENTS if getattr(self, p) is not None]
        return found[0] if len(found) == 1 else None


class PostgresPlacement(BaseModel):
    """An existing schema of a PostgreSQL database that holds the extracts as tables.

    `dsn` is a libpq connection string or URI; keep a password out of it (libpq reads
    PGPASSWORD or ~/.pgpass). Tables are read, never written."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    dsn: str = Field(min_length=1)
    schema_: str = Field(alias="schema", min_length=1, max_length=63)


_TOLERATE_KEY = r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$"


class _InstallationFile(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    release: str | None = None
    extracted: dt.date | None = None
    catalog: list[str] = Field(default_factory=list)
    # a file `antal prepare` wrote: its registers (and code tables), unless `registers`
    # places one elsewhere
    prepared: str | None = None
    # without `registers`, a `postgres` schema's tables (as `antal load-postgres` made them)
    registers: dict[str, DataSource] = Field(default_factory=dict)
    postgres: PostgresPlacement | None = None
    # typed: an unknown key or a value out of range is an error naming `privacy.<key>`
    privacy: PrivacyParams = Field(default_factory=PrivacyParams)
    optout: Literal["required", "none"] = "required"
    # files as they came: a description (shipped name, path or inline) and their directory
    delivery: str | dict | None = None
    data: str | None = None
    # malformed rows accepted per column (`register.column`, canonical names): within it,
    # the data check notes them and a count reads their value as missing
    tolerate: dict[Annotated[str, Field(pattern=_TOLERATE_KEY)], Annotated[int, Field(ge=0)]] = (
        Field(default_factory=dict)
    )


@dataclass(frozen=True)
class Installation:
    """The registers this installation holds and where each one's data is."""

    sources: dict[str, DataSource]
    release: str
    catalog_dirs: tuple[Path, ...] = field(default=())
    privacy: PrivacyParams = field(default_factory=PrivacyParams)
    optout: Literal["required", "none"] = "required"  # see the module docstring
    extracted: dt.date | None = None  # the day the extracts were taken, when known
    postgres: PostgresPlacement | None = None  # the schema of the `postgres` placements
    # a delivery not yet converted (antal.engine.delivery.open_delivery fills `sources`)
    delivery: Delivery | None = None
    delivery_dir: Path | None = None
    # `register.column` -> malformed rows accepted (see the module docstring)
    tolerate: Mapping[str, int] = field(default_factory=dict)
    # registers of persons whose person key a passing data check found unique, in this
    # process (api/usecases.py, `check_data`): read as their own person table, without
    # grouping their rows by person (engine/compiler.py). Mutable: the check comes after
    # the installation is made, and the same files stay behind the same release id
    unique_persons: set[str] = field(default_factory=set, compare=False, repr=False)

    @property
    def placements(self) -> frozenset[Placement]:
        """Where this installation's extracts live (engine/backends picks an engine by it)."""
        return frozenset(p for s in self.sources.values() if (p := s.placement) is not None)

    def code_tables(self) -> dict[tuple[str, str], str]:
        """(register, column of codes) -> the table holding one code per row, for the
        registers a prepared file (or a loaded schema) holds; the compiler scans these
        instead of the register."""
        return {
            (rid, col): table
            for rid, src in self.sources.items()
            for col, table in src.code_tables.items()
        }

    def layout(self) -> PhysicalLayout:
        """What the compiler may read besides the registers (a prepared file's tables, or
        a loaded schema's)."""
        return PhysicalLayout(
            code_tables=self.code_tables(),
            person_tables={
                **{rid: rid for rid in self.unique_persons if rid in self.sources},
                **{rid: src.person_table for rid, src in self.sources.items() if src.person_table},
            },
        )

    def missing(self, registers: set[str] | frozenset[str]) -> list[str]:
        """Which of these registers this installation holds no data for."""
        return sorted(r for r in registers if r not in self.sources)

    @classmethod
    def from_data_dir(cls, directory: Path | str, release: str | None = None) -> Installation:
        """The canonical layout: `DIR/<id>.parquet` for each register present; or a file
        `antal prepare` wrote (`*.duckdb`)."""
        d = Path(directory).resolve()
        if d.is_file() and d.suffix == ".duckdb":
            return cls.from_prepared(d, release)
        if not d.is_dir():
            raise FileNotFoundError(f"data directory {d} does not exist")
        files = sorted(d.glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"no Parquet extracts (*.parquet) in {d}")
        sources = {p.stem: DataSource(parquet=str(p)) for p in files}
        manifest = _read_manifest(d / MANIFEST)
        for rid, period in manifest.registers.items():
            if rid in sources:
                sources[rid] = sources[rid].model_copy(
                    update={"start": period.start, "through": period.through}
                )
        if release is None:
            release = data_dir_release(d, manifest.release)
        return cls(sources=sources, release=release, extracted=manifest.extracted)

    @classmethod
    def from_prepared(cls, path: Path | str, release: str | None = None) -> Installation:
        """A prepared file: one table per register, its release id (from the content of the
        files it was made from) and the manifest's periods, written by `antal prepare`."""
        import duckdb  # only here: the catalog is read without the database otherwise

        p = Path(path).resolve()
        if not p.is_file():
            raise FileNotFoundError(f"prepared file {p} does not exist")
        try:
            with duckdb.connect(str(p), read_only=True) as con:
                tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
                row = (
                    con.execute(f'SELECT * FROM "{META_TABLE}"').fetchone()
                    if META_TABLE in tables
                    else None
                )
                coded = (
                    con.execute(
                        f'SELECT "register", "column", "table" FROM "{CODE_TABLES}"'
                    ).fetchall()
                    if CODE_TABLES in tables
                    else []
                )
        except duckdb.Error as e:
            raise CatalogError(p, "", f"cannot be opened as a DuckDB database: {e}") from e
        if row is None:
            raise CatalogError(p, "", "not a file written by `antal prepare` (no release table)")
        layout, content_release, manifest_json = row[:3]
        # the extracts passed the data check before they were prepared (`antal prepare`)
        checked = len(row) > 3 and row[3] is True
        if layout != LAYOUT_VERSION:
            raise CatalogError(
                p, "", f"layout version {layout}; this antal reads {LAYOUT_VERSION}: prepare again"
            )
        manifest = Manifest.model_validate_json(manifest_json)
        sources = {}
        own = {t for _r, _c, t in coded} | {META_TABLE, CODE_TABLES}
        own |= {t for t in tables if t.endswith("#person")}
        for rid in sorted(tables - own):
            period = manifest.registers.get(rid)
            sources[rid] = DataSource(
                duckdb=str(p),
                table=rid,
                start=period.start if period else None,
                through=period.through if period else None,
                code_tables={c: t for r, c, t in coded if r == rid and t in tables},
                person_table=(person_table_name(rid) if person_table_name(rid) in tables else None),
                values_checked=checked,
            )
        return cls(
            sources=sources, release=release or content_release, extracted=manifest.extracted
        )

    @classmethod
    def from_postgres(cls, placement: PostgresPlacement) -> Installation:
        """A schema `antal load-postgres` filled: a table per register, its release table
        (the release id and manifest of the files it was loaded from), and the person and
        code tables the compiler reads as it reads a prepared file's."""
        import psycopg  # only here: the catalog is read without the driver otherwise
        from psycopg import sql

        schema = placement.schema_
        try:
            with psycopg.connect(placement.dsn, connect_timeout=10) as con:
                tables = {
                    r[0]
                    for r in con.execute(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                        (schema,),
                    ).fetchall()
                }
                row = None
                if META_TABLE in tables:
                    q = sql.SQL("SELECT layout, release, manifest FROM {}").format(
                        sql.Identifier(schema, META_TABLE)
                    )
                    row = con.execute(q).fetchone()
                coded: list[tuple[str, str, str]] = []
                if CODE_TABLES in tables:  # a schema loaded before it had none
                    q = sql.SQL('SELECT "register", "column", "table" FROM {}').format(
                        sql.Identifier(schema, CODE_TABLES)
                    )
                    coded = con.execute(q).fetchall()
        except psycopg.Error as e:
            # the driver's message names host and database, never a row
            raise CatalogError(Path(schema), "", f"cannot read the PostgreSQL schema: {e}") from e
        if row is None:
            raise CatalogError(
                Path(schema), "", "not a schema filled by `antal load-postgres` (no release table)"
            )
        _layout, content_release, manifest_json = row
        manifest = Manifest.model_validate_json(manifest_json)
        sources = {}
        # a `#` is in no register's name: the person and code tables are the load's own
        for rid in sorted(t for t in tables - {META_TABLE, CODE_TABLES} if "#" not in t):
            period = manifest.registers.get(rid)
            sources[rid] = DataSource(
                postgres=rid,
                start=period.start if period else None,
                through=period.through if period else None,
                code_tables={c: t for r, c, t in coded if r == rid and t in tables},
                person_table=(person_table_name(rid) if person_table_name(rid) in tables else None),
            )
        return cls(
            sources=sources, release=content_release, extracted=manifest.extracted,
            postgres=placement,
        )  # fmt: skip


MANIFEST = "release.yaml"  # a data directory's description of its release


class _ExtractPeriod(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    start: dt.date | None = None
    through: dt.date | None = None


class Manifest(BaseModel):
    """`DIR/release.yaml`: what a data release says of itself (all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    release: str | None = Field(default=None, min_length=1, max_length=200)
    extracted: dt.date | None = None
    registers: dict[str, _ExtractPeriod] = Field(default_factory=dict)


def data_dir_release(directory: Path, name: str | None = None) -> str:
    """The release id of a data directory's extracts (`*.parquet`) and manifest, by their
    content (catalog/release.py). The same wherever the content is then placed: read in
    place, a prepared file made from it (`antal prepare`) and a PostgreSQL schema loaded
    from it (`antal load-postgres`) record this id, computed from the files when they are
    made: a count gives the same answer on each (tests/test_spec.py, tests/test_prepare.py),
    so an answer stored on one placement is reused on the others."""
    files = sorted(directory.glob("*.parquet"))
    if (directory / MANIFEST).is_file():
        files.append(directory / MANIFEST)
    return content_release(files, "local", name)


def _read_manifest(path: Path) -> Manifest:
    import yaml  # here: reading the catalog, from the cache, needs no YAML parser

    if not path.exists():
        return Manifest()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise CatalogError(path, "", f"cannot be read as YAML: {e}") from e
    try:
        return Manifest.model_validate(raw or {})
    except ValidationError as e:
        err = e.errors()[0]
        raise CatalogError(path, ".".join(map(str, err["loc"])), err["msg"]) from e


def load_installation(path: Path | str, data: Path | str | None = None) -> Installation:
    """The installation a file describes; `data`: the directory of its delivery's files
    (`--data DIR` beside `--config FILE`), for a file with `delivery:` only."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise CatalogError(path, "", f"cannot be read as YAML: {e}") from e
    if isinstance(raw, dict) and "name" in raw and "registers" in raw:
        raw = {"delivery": raw}  # a delivery description itself
    try:
        cfg = _InstallationFile.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        raise CatalogError(path, ".".join(map(str, err["loc"])), err["msg"]) from e
    base = path.parent.resolve()

    def rel(p: str | None) -> str | None:
        if p is None:
            return None
        q = Path(p)
        return str(q if q.is_absolute() else base / q)

    if cfg.delivery is not None:
        return _delivery_installation(cfg, path, base, data)
    if data is not None:
        raise CatalogError(
            path, "", "--data beside --config reads a delivery: this file has no `delivery`"
        )

    sources = {}
    for rid, src in cfg.registers.items():
        if src.placement is None:
            raise CatalogError(
                path, f"registers.{rid}", "needs one of `parquet`, `duckdb` or `postgres`"
            )
        if src.postgres is not None and cfg.postgres is None:
            raise CatalogError(
                path, f"registers.{rid}", "`postgres` needs the file's `postgres` schema"
            )
        sources[rid] = src.model_copy(
            update={"parquet": rel(src.parquet), "duckdb": rel(src.duckdb)}
        )
    if cfg.postgres is not None and not sources and cfg.prepared is None:
        return _from_postgres_config(cfg, path, base)
    prepared_release = None
    if cfg.prepared is not None:
        # a prepared file's registers, unless the config places a register elsewhere
        made = Installation.from_prepared(rel(cfg.prepared) or cfg.prepared)
        sources = {**made.sources, **sources}
        prepared_release = made.release
    if not sources:
        raise CatalogError(path, "registers", "names no register and no `prepared` file")
    kinds = {s.placement for s in sources.values()}
    if "postgres" in kinds and len(kinds) > 1:
        # DuckDB would read PostgreSQL through its postgres extension, which it downloads at
        # run time; no package provides it for our DuckDB, and an installation must work
        # offline. So one installation reads its extracts with one engine (docs/placements.md).
        raise CatalogError(
            path, "registers", "registers in PostgreSQL and registers in files cannot be mixed "
            "in one installation; load the files into the schema with `antal load-postgres`",
        )  # fmt: skip
    if "postgres" in kinds and cfg.release is None:
        # a stored answer is kept per data release: tables named by hand carry no release id
        raise CatalogError(path, "release", "an installation on PostgreSQL tables needs `release`")
    files = sorted({Path(p) for s in sources.values() for p in [s.parquet or s.duckdb] if p})
    if cfg.release:
        release = cfg.release
    elif prepared_release and not cfg.registers:
        release = prepared_release
    else:
        release = content_release([f for f in files if f.is_file()], "local")
    return Installation(
        sources=sources,
        release=release,
        catalog_dirs=tuple(Path(rel(c) or c) for c in cfg.catalog),
        privacy=cfg.privacy,
        optout=cfg.optout,
        extracted=cfg.extracted,
        postgres=cfg.postgres,
        tolerate=cfg.tolerate,
    )


def _delivery_installation(
    cfg: _InstallationFile, path: Path, base: Path, data: Path | str | None
) -> Installation:
    """An installation of a delivery's files, not yet converted (no `sources`)."""
    if cfg.registers or cfg.prepared or cfg.postgres:
        raise CatalogError(
            path, "delivery", "a delivery is read alone: no `registers`, `prepared` or `postgres`"
        )
    where = Path(data) if data is not None else (base / cfg.data if cfg.data else None)
    if where is None:
        raise CatalogError(path, "data", "a delivery needs its directory: `data:` or --data DIR")
    if not where.is_dir():
        raise FileNotFoundError(f"data directory {where} does not exist")
    from antal.catalog.delivery import load_delivery

    delivery = load_delivery(cfg.delivery, base)  # type: ignore[arg-type]
    return Installation(
        sources={},
        release=cfg.release or "",
        catalog_dirs=tuple(Path(c if Path(c).is_absolute() else base / c) for c in cfg.catalog),
        privacy=cfg.privacy,
        optout=cfg.optout,
        extracted=cfg.extracted,
        delivery=delivery,
        delivery_dir=where.resolve(),
        tolerate=cfg.tolerate,
    )


def _from_postgres_config(cfg: _InstallationFile, path: Path, base: Path) -> Installation:
    """An installation of every table of a schema that `antal load-postgres` filled."""
    assert cfg.postgres is not None
    try:
        inst = Installation.from_postgres(cfg.postgres)
    except (FileNotFoundError, CatalogError) as e:
        raise CatalogError(path, "postgres", str(e)) from e
    return dataclasses.replace(
        inst,
        release=cfg.release or inst.release,
        catalog_dirs=tuple(Path(c if Path(c).is_absolute() else base / c) for c in cfg.catalog),
        privacy=cfg.privacy,
        optout=cfg.optout,
        extracted=cfg.extracted or inst.extracted,
        tolerate=cfg.tolerate,
    )
