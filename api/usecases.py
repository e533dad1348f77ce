"""What antal does, once, for every face: the command line, the HTTP API (and later a web
page or a federation node) only translate: they parse arguments, call a use case here, and
present its result or map its typed error to an exit code or an HTTP status.

- opening: the installation, its catalog, the store and the backend from one `Settings`;
- cohorts: validate, compile, count exact (the data holder's local mode), count released
  (through the privacy gate: the only way a number computed on the extracts leaves), and
  quote (what a count would cost: nothing read, charged or released);
- receipts: the installation's signing key, and checking a receipt;
- the data check;
- administration: users, tokens (issue and revoke), projects, approvals (add, remove,
  replace), members, the audit log's verification.

Every failure is a typed error: the engine's (`CohortError`, `MissingRegisterError`,
`DataError`), the privacy layer's (`BudgetExceeded`, `CountFailed`, `UnknownProject`), the
catalog's (`CatalogError`), or one of this module's (`UseCaseError` and below).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from antal.catalog import (
    HOLDER_FIELDS,
    Catalog,
    Installation,
    Register,
    bundled_dir,
    load_catalog,
    load_installation,
)
from antal.catalog.errors import AntalError
from antal.catalog.vocabulary import PURPOSES, ROLES
from antal.engine import (
    BreakdownTooFine,
    CohortError,
    Currency,
    DataError,
    Diagnostic,
    IRInvalid,
    check_held,
    check_with_warnings,
    currency_of,
    ir,
    limits,
    parse,
    prepare,
    review,
)
from antal.engine import count_exact as _engine_count_exact
from antal.engine.check import event_sources
from antal.engine.domain import domain_size, released_tables, roll_up
from antal.engine.hierarchy import has_names, value_name
from antal.privacy import AlreadyExists, InvalidValue, UnknownProject
from antal.privacy import NotFound as StoreNotFound

# use cases of registry holders (antal.api.holders), re-exported here: loaded on first use
_HOLDERS = (
    "catalog_releases",
    "entry_version",
    "entry_versions",
    "holder_overview",
    "holder_registers",
    "publish_text",
)

# What only some use cases need is imported in them, not here: every command and the
# service import this module, and pandas, DuckDB's ingest, the gate (OpenDP), the receipts
# (cryptography), the forecast (statsmodels) and the settings (pydantic-settings) would
# triple the start-up time of `antal check`, which needs none of them; nor the store
# (SQLite), the accounts or the backends.
if TYPE_CHECKING:
    import pandas as pd
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from antal.api.accounts import Accounts, CatalogEntries, EntryVersion, User
    from antal.api.planning import Planned, PlanRequest
    from antal.api.settings import Settings
    from antal.engine import Backend, Compiled
    from antal.engine.datacheck import Finding
    from antal.engine.ingest import Prepared as PreparedFile
    from antal.engine.result import ExactResult
    from antal.privacy import Answer, Gate, PrivacyParams, Project, Quote, Signer, Store, TrueCounts
    from antal.privacy.forecast import Forecast, ReleasedMonth
    from antal.privacy.seal import AuditCheck

__all__ = [
    "FORECAST_BY",
    "CompiledCohort",
    "Counted",
    "DateIndexed",
    "Forecasted",
    "Invalid",
    "NotApproved",
    "NotFound",
    "ProjectMismatch",
    "Reported",
    "StoreMissing",
    "UnknownRegister",
    "UseCaseError",
    "Validation",
    "add_member",
    "approve_registers",
    "audit_anchor",
    "canonical_query",
    "check_data",
    "code_systems",
    "cohort_from_json",
    "compile_cohort",
    "count_exact",
    "count_released",
    "create_project",
    "create_user",
    "forecast",
    "forecast_count",
    "installation_public_key",
    "issue_token",
    "local_project",
    "monthly_cohort",
    "open_backend",
    "open_catalog",
    "open_installation",
    "open_signer",
    "open_store",
    "prepare_count",
    "prepare_data",
    "quote_count",
    "quote_local",
    "release_count",
    "report_count",
    "revoke_registers",
    "revoke_tokens",
    "series_quantity",
    "set_budget",
    "set_registers",
    "validate",
    "verify_audit",
    "verify_receipt",
    *_HOLDERS,
]


def __getattr__(name: str) -> Any:
    if name in _HOLDERS:
        from antal.api import holders

        return getattr(holders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PROJECT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
USER_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


# ---- errors ---------------------------------------------------------------------------------


class UseCaseError(AntalError):
    """A request the use cases refuse; `code` is stable (the HTTP API's error code)."""

    code = "invalid"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        self.message, self.details = message, details
        super().__init__(message)


class Invalid(UseCaseError):
    """Bad input: an id, a role, an unknown register, an existing id."""


class UnknownRegister(Invalid):
    code = "unknown_register"


class NotFound(UseCaseError):
    code = "not_found"


class StoreMissing(NotFound):
    """A read-only command was pointed at a store that does not exist (it is not created)."""

    code = "store_missing"


class ProjectMismatch(Invalid):
    """`--purpose`/`--budget` given for an existing project that has others."""

    code = "project_mismatch"


class NotApproved(UseCaseError):
    code = "register_not_approved"


class Forbidden(UseCaseError):
    code = "forbidden"


class EntryMismatch(UseCaseError):
    """A published catalog entry that the installation's data does not bear out."""

    code = "entry_does_not_match_data"


# ---- opening --------------------------------------------------------------------------------


def open_installation(settings: Settings) -> Installation:
    """The installation the settings name (CatalogError, FileNotFoundError or Invalid)."""
    if settings.installation:
        # with --data too: the directory of the delivery the file describes (else an error)
        inst = load_installation(settings.installation, settings.data)
        if inst.delivery is not None:
            from antal.engine.delivery import open_delivery

            inst = open_delivery(inst, open_catalog(inst))
        return inst
    if settings.data:
        return Installation.from_data_dir(settings.data)
    raise Invalid(
        "say where the extracts are: a data directory (--data DIR, ANTAL_DATA) or an "
        "installation file (--config FILE, ANTAL_INSTALLATION)"
    )


def open_catalog(installation: Installation | None = None, store: Store | None = None) -> Catalog:
    """The bundled catalog, the installation's extra entries, and (with a store) the entries
    holders published through the API, which win over files."""
    cat = load_catalog(bundled_dir(), *(installation.catalog_dirs if installation else ()))
    if store is not None:
        from antal.api.accounts import CatalogEntries

        for reg in CatalogEntries(store).all():
            cat.registers[reg.id] = reg
    return cat


def catalog_for(settings: Settings, installation: Installation | None = None) -> Catalog:
    """The catalog every face sees for these settings: bundled entries, the installation's
    own (when one is configured) and those published to the settings' store (when it exists;
    it is not created here). The CLI and the server count under the same catalog."""
    from antal.privacy.store import open_store as _open_store
    from antal.privacy.store import store_exists

    if installation is None and (settings.data or settings.installation):
        installation = open_installation(settings)
    store = _open_store(settings.store) if store_exists(settings.store) else None
    return open_catalog(installation, store)


def open_store(settings: Settings, *, must_exist: bool = False) -> Store:
    """The settings' store, signing its audit log with the installation's key and appending
    the signed heads to its anchor (both made on first use). A read-only use (`must_exist`)
    never creates a store, a key or an anchor, and cannot append to a signed log."""
    from antal.privacy.store import open_store as _open_store
    from antal.privacy.store import store_exists

    anchor = audit_anchor(settings)
    if must_exist:
        if not store_exists(settings.store):
            raise StoreMissing(f"no store at {settings.store}")
        return _open_store(settings.store, anchor=anchor)
    return _open_store(settings.store, signer=open_signer(settings), anchor=anchor)


def audit_anchor(settings: Settings) -> Path:
    """The audit anchor: the setting `audit_anchor`, else beside the store."""
    from antal.api.settings import default_audit_anchor

    return settings.audit_anchor or default_audit_anchor(settings.store)


def installation_public_key(settings: Settings) -> Ed25519PublicKey | None:
    """The public half of the installation's signing key; None if there is no key file
    (it is never made here). `SigningKeyError` if it cannot be read or trusted."""
    from antal.api.settings import default_signing_key
    from antal.privacy import Signer

    path = settings.signing_key or default_signing_key(settings.store)
    return Signer.from_file(path).public if path.exists() else None


def open_signer(settings: Settings) -> Signer:
    """The installation's receipt signing key (`signing_key`, else beside the store), made
    on first use; `SigningKeyError` if it cannot be made, read or trusted."""
    from antal.api.settings import default_signing_key
    from antal.privacy import Signer

    return Signer.from_file(settings.signing_key or default_signing_key(settings.store))


def open_gate(settings: Settings, installation: Installation, store: Store) -> Gate:
    """The privacy gate every released count goes through: the installation's privacy
    parameters and its receipt signing key, on the settings' store. The service, the node
    and the command line build it here, so none of them can release under other terms."""
    from antal.privacy import Gate

    return Gate(store, installation.privacy, open_signer(settings))


def open_backend(
    settings: Settings,
    installation: Installation,
    catalog: Catalog,
    *,
    time_budget: bool = True,
) -> Backend:
    """The settings' backend with their threads, memory limit and (unless the data holder's
    own local mode, `time_budget=False`) the time budget of one count."""
    from antal.engine.backends import get_backend

    return get_backend(
        settings.backend, installation, catalog, threads=settings.threads,
        memory_limit=settings.memory_limit,
        query_seconds=settings.query_seconds if time_budget else None,
    )  # fmt: skip


def check_data(
    installation: Installation,
    catalog: Catalog,
    registers: set[str] | None = None,
    before_count: bool = False,
    refresh: bool = False,
) -> list[Finding]:
    """Raise `DataError` (findings name files and columns, never a value) on a failing check;
    else the notes (optional columns missing, tolerated malformed rows).
    `registers`: only these (the check adds the population and the opt-outs);
    `before_count`: the check a count makes first, which trusts the values of a prepared
    file checked when it was made (engine/datacheck.py, `trust_prepared`);
    `refresh`: read every value again instead of reusing the stored result of the same
    files (`antal data check`)."""
    from antal.engine.datacheck import check_data as _check
    from antal.engine.datacheck import failures, format_findings

    findings = _check(installation, catalog, registers, trust_prepared=before_count,
                      refresh=refresh)  # fmt: skip
    failed = failures(findings)
    if failed:
        raise DataError(
            f"the extracts fail the data check ({len(failed)} problem(s)):\n"
            + format_findings(findings),
            failed,
        )
    # the check includes the population and refuses a person key on two of its rows
    if (pop := catalog.population) is not None and pop.id in installation.sources:
        installation.unique_persons.add(pop.id)
    return findings


def prepare_data(
    data: Path,
    out: Path,
    catalog: Catalog,
    memory_limit: str | None = None,
    threads: int | None = None,
    progress: Callable[[str, float], None] | None = None,
    config: Path | None = None,
) -> PreparedFile:
    """`antal prepare`: the raw extracts in `data`, checked against the catalog first (a
    prepared file is only as good as its source), ingested into the DuckDB file `out`,
    which is replaced only once the new one is complete. `config`: a delivery description
    of the files in `data`, converted to the canonical layout first."""
    from antal.engine.ingest import prepare as ingest

    if not Path(data).is_dir():
        raise Invalid(f"--data {data}: `antal prepare` reads a directory of extracts")
    release = None
    if config is not None:
        inst = load_installation(config, data)
        if inst.delivery is None:  # pragma: no cover - load_installation refuses it
            raise Invalid(f"--config {config}: `antal prepare` reads a delivery description")
        from antal.engine.delivery import open_delivery

        inst = open_delivery(inst, catalog)
        data = Path(inst.sources[next(iter(inst.sources))].parquet or "").parent
        release = inst.release  # the same data as the delivery counts on: the same answers
    check_data(Installation.from_data_dir(data), catalog)
    return ingest(
        data,
        out,
        catalog,
        memory_limit or limits.PREPARE_MEMORY,
        threads=threads,
        progress=progress,
        checked=True,
        release=release,
    )


# ---- catalog entries ----------------------------------------------------------------------------


def publish_entry(
    catalog: Catalog,
    entries: CatalogEntries,
    installation: Installation,
    user: User,
    register_id: str,
    entry: Register,
    backend: Backend | None = None,
) -> EntryVersion:
    """Publish a register's catalog entry (its holder, or an admin), checked against the
    installation's data before anything changes: its next version (who, when, what
    changed), stored with its audit entry in one transaction; researchers see it at once.
    An entry equal to the current version changes nothing (the current version again)."""
    if user.role != "admin" and not (user.role == "holder" and register_id in user.registers):
        raise Forbidden(f"only the holder of '{register_id}' or an admin may publish its entry")
    if entry.id != register_id:
        raise Invalid(f"the entry's id is {entry.id!r}, the path says {register_id!r}")
    old = catalog.register(register_id)
    if old is not None and (old.kind, old.person_key) != (entry.kind, entry.person_key):
        raise Invalid("an entry keeps its kind and person key")
    if user.role != "admin":
        # a holder describes its register; which events it provides (and its kind, keys,
        # dates, internal flag) is the installation's decision, an admin's
        base = old or Register.model_validate(
            {**entry.model_dump(), "kind": "events", "provides": [], "internal": False,
             "site_column": None}
        )  # fmt: skip
        fixed = sorted(
            f for f in Register.model_fields
            if f not in HOLDER_FIELDS and getattr(entry, f) != getattr(base, f)
        )  # fmt: skip
        if fixed:
            raise Forbidden(
                f"a holder publishes descriptions and variables only; {', '.join(fixed)} "
                "can be changed by an admin",
                {"fields": fixed},
            )
    if register_id in installation.sources:
        # the entry must describe the data as it is: every variable a column of a type that
        # holds it, codes of their system's shape, closed value sets respected. Otherwise a
        # researcher's count on it would fail (or, worse, count zero) after being charged.
        from antal.engine.datacheck import check_data as _check

        candidate = dataclasses.replace(
            catalog, registers={**catalog.registers, register_id: entry}
        )
        # this register only: the population and opt-outs were checked at start
        found = _check(installation, candidate, {register_id}, required=False, by_period=True)
        if found:
            raise EntryMismatch(
                f"the entry does not match this installation's data for '{register_id}' "
                f"({len(found)} problem(s)): "
                + "; ".join(f.message + (f" (column {f.column!r})" if f.column else "") for f in found),
                # where and what: never a value, the server's file paths, or how many rows
                # (a count of rows failing a rule the holder chose would be an exact count)
                {"problems": [{"column": f.column, "kind": f.kind, "message": f.message}
                              for f in found]},
            )  # fmt: skip
    version = entries.put(entry, actor=user.id, base=old)
    catalog.registers[register_id] = entry
    if backend is not None:
        backend.forget(register_id)
    return version


def code_systems(catalog: Catalog) -> list[dict[str, Any]]:
    """Each code system the catalog's variables hold: which variables, in which periods
    (a variable's `coding`), and the lists its codes are checked against."""
    out: dict[str, dict[str, Any]] = {}

    def entry(system: str) -> dict[str, Any]:
        return out.setdefault(system, {"code_system": system, "variables": [], "periods": []})

    for reg in catalog.registers.values():
        for v in reg.variables:
            if v.code_system:
                entry(v.code_system)["variables"].append(f"{reg.id}.{v.name}")
            for p in v.coding:
                entry(p.system)["periods"].append({
                    "variable": f"{reg.id}.{v.name}",
                    "start": p.start.isoformat() if p.start else None,
                    "until": p.until.isoformat() if p.until else None,
                    "note": p.note, "historical": p.historical, "regions": p.regions,
                })  # fmt: skip
    for system, e in out.items():
        lst = catalog.code_lists.of(system)
        e["variables"] = sorted(set(e["variables"]))
        listed = {"codes": len(lst.codes), "sources": list(lst.sources),
                  "complete_up_to_characters": lst.complete} if lst else None  # fmt: skip
        e["code_list"] = listed
    return [out[k] for k in sorted(out)]


# ---- cohorts ----------------------------------------------------------------------------------


def cohort_from_json(node: Any) -> ir.Cohort:
    """A cohort from its JSON IR (the engine's IRInvalid if it is not one)."""
    try:
        cohort = ir.from_json(node or {})
    except IRInvalid as e:
        raise IRInvalid(f"not a valid cohort IR: {e}") from None
    if not isinstance(cohort, ir.Cohort):
        raise IRInvalid("the IR's top node must be of kind 'cohort'")
    return cohort


@dataclass(frozen=True)
class Validation:
    """A checked cohort's summary and warnings, or the CohortError that says what is wrong."""

    error: CohortError | None
    checked: ir.Cohort | None = None
    query_hash: str | None = None
    steps: tuple[str, ...] = ()
    registers: tuple[str, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()
    currency: Currency | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# The service is asked the same cohorts again and again (a project's stored answers, an
# editor validating as the researcher types): a cohort's text is prepared (parsed, checked,
# compiled, reviewed) once and kept among the catalog's derived values (Catalog.derived),
# so a changed catalog entry prepares it again, keyed by everything else it depends on
# (what is prepared, the purpose, the installation). Never an answer: those are the
# store's, under the project's key. The files are checked again on every use.
_PREPARED_MAX = 256  # kept per catalog; the oldest goes first


def _prepared_once(
    catalog: Catalog, key: tuple[Any, ...], installation: Installation | None,
    compute: Callable[[], Any],
) -> tuple[Any, bool]:  # fmt: skip
    """The value kept under `key` (with `installation`, the same object) and True, or
    `compute()`'s, kept, and False."""
    derived = catalog.derived()
    key = (*key, id(installation))
    hit = derived.get(key)
    if hit is not None and hit[0] is installation:  # it keeps its installation: ids are unique
        return hit[1], True
    value = compute()
    if len(derived) >= _PREPARED_MAX:
        with contextlib.suppress(RuntimeError, StopIteration, KeyError):  # another thread's
            derived.pop(next(iter(derived)))
    derived[key] = (installation, value)
    return value, False


def validate(
    cohort: str | ir.Cohort, catalog: Catalog, installation: Installation | None = None
) -> Validation:
    """Parse and check against the catalog (and the installation's data currency, when
    given, for the warnings); no data read, nothing charged."""
    if isinstance(cohort, str):  # a Validation is immutable: the same one for every ask
        return _prepared_once(catalog, ("validate", cohort), installation,
                              lambda: _validate(cohort, catalog, installation))[0]  # fmt: skip
    return _validate(cohort, catalog, installation)


def _validate(
    cohort: str | ir.Cohort, catalog: Catalog, installation: Installation | None
) -> Validation:
    try:
        p = prepare(cohort, catalog)
    except CohortError as e:
        return Validation(error=e)
    warnings, currency = p.warnings, p.currency
    if installation is not None:  # the warnings about this installation's data
        everything = currency_of(catalog, installation, catalog.registers)
        warnings = tuple(check_with_warnings(
            cohort if not isinstance(cohort, str) else parse(cohort), catalog,
            lambda co: review(co, catalog, everything),
        )[1])  # fmt: skip
        currency = currency_of(catalog, installation, p.compiled.registers)
    return Validation(None, p.checked, ir.ir_hash(p.checked), tuple(p.compiled.labels),
                      tuple(sorted(p.compiled.registers)), warnings, currency)  # fmt: skip


@dataclass(frozen=True)
class CompiledCohort:
    checked: ir.Cohort
    compiled: Compiled
    warnings: tuple[Diagnostic, ...] = ()
    currency: Currency | None = None

    # computed once: a prepared cohort is kept and released again (stored answers)
    @functools.cached_property
    def query_hash(self) -> str:
        return ir.ir_hash(self.checked)

    @functools.cached_property
    def query(self) -> str:
        """The canonical query the audit log records (`canonical_query`)."""
        return canonical_query(self.checked)

    @functools.cached_property
    def attrition(self) -> tuple[str, str]:
        """The hash and canonical query of the cohort without its tables: its attrition is
        released (and stored) once per project (privacy.gate)."""
        alone = dataclasses.replace(self.checked, reports=())
        return ir.ir_hash(alone), canonical_query(alone)

    @property
    def registers(self) -> list[str]:
        return sorted(self.compiled.registers)

    def sql(self, dialect: str = "duckdb") -> str:
        return self.compiled.sql(dialect, pretty=True)


def compile_cohort(
    cohort: str | ir.Cohort,
    catalog: Catalog,
    installation: Installation | None = None,
    purpose: str = "forskning",
) -> CompiledCohort:
    """Check and compile (with an installation: also that it holds every register read)."""
    _purpose(purpose)
    p = prepare(cohort, catalog, installation, purpose=purpose)
    return CompiledCohort(p.checked, p.compiled, p.warnings, p.currency)


def count_exact(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog,
    backend: Backend,
    purpose: str = "forskning",
) -> ExactResult:
    """True counts: the data holder's local mode on their own extract, never a service's."""
    _purpose(purpose)
    return _engine_count_exact(cohort, installation, catalog, purpose=purpose, backend=backend)


def canonical_query(checked: ir.Cohort) -> str:
    """The canonical IR as compact JSON: what the audit log records of a query."""
    return json.dumps(
        ir.to_json(ir.canonical(checked)),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def prepare_count(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog,
    project: Project,
    *,
    approved_only: bool,
) -> CompiledCohort:
    """Check and compile for a project's release; raises before anything is charged:
    with `approved_only`, a register the project is not approved for is `NotApproved`
    (the population and opt-out registers need no approval)."""
    prepared = _prepared_for(cohort, installation, catalog, project.purpose)
    if approved_only:
        implicit = {r.id for r in (catalog.population, catalog.optout) if r is not None}
        unapproved = sorted(set(prepared.compiled.registers) - implicit - set(project.registers))
        if unapproved:
            err = NotApproved(
                f"project {project.id!r} is not approved for {', '.join(unapproved)}",
                {"registers": unapproved, "approved": list(project.registers)},
            )
            err.checked = prepared.checked  # the question refused: its audit entry names it
            raise err
    return prepared


def _prepared_for(
    cohort: str | ir.Cohort, installation: Installation, catalog: Catalog, purpose: str
) -> CompiledCohort:
    """`prepare` for a count, a cohort's text prepared once (`_prepared_once`); whether the
    installation's files hold what it reads is checked every time (they may change)."""

    def compute() -> CompiledCohort:
        p = prepare(cohort, catalog, installation, purpose=purpose)  # type: ignore[arg-type]
        return CompiledCohort(p.checked, p.compiled, p.warnings, p.currency)

    if not isinstance(cohort, str):
        return compute()
    prepared, kept = _prepared_once(catalog, ("count", cohort, purpose), installation, compute)
    if kept:
        check_held(prepared.compiled, installation, catalog)
    return prepared  # type: ignore[no-any-return]


def _prepare_for_release(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog,
    gate: Gate,
    project: Project,
    actor: str,
    *,
    approved_only: bool,
) -> CompiledCohort:
    """`prepare_count` for a count that would release: a refusal for a register the
    project is not approved for is audited (`refused_registers`, the question's hash and
    canonical form, the registers), as the gate audits a refusal for budget; every refusal
    of a release is in the log (docs/privacy.md). Nothing is read or charged."""
    try:
        return prepare_count(cohort, installation, catalog, project, approved_only=approved_only)
    except NotApproved as e:
        checked = getattr(e, "checked", None)
        registers = (e.details or {}).get("registers", [])
        with gate.store.transaction() as tx:
            tx.audit(actor, project.id, "refused_registers",
                     ir.ir_hash(checked) if checked is not None else None,
                     canonical_query(checked) if checked is not None else None, 0.0,
                     json.dumps({"code": e.code, "registers": registers}, sort_keys=True),
                     registers)  # fmt: skip
        raise


def true_counts(
    prepared: CompiledCohort, installation: Installation, catalog: Catalog, backend: Backend
) -> TrueCounts:
    """The engine's exact counts of a prepared cohort as the privacy gate takes them (every
    table of its release, roll-up levels as sums of the table asked): only the gate's
    `compute` and the utility benchmark (bench/utility.py) call this, never a face."""
    from antal.engine.result import ExactResult
    from antal.privacy import TrueCounts
    from antal.privacy.mechanism import TrueTable

    checked = prepared.checked
    # a tree of its own: a prepared cohort is kept and shared (`_prepared_once`), and the
    # first rendering of a tree may rewrite it (engine.compiler.Compiled.sql)
    compiled = dataclasses.replace(prepared.compiled, tree=prepared.compiled.rebuild())
    released = released_tables(checked, catalog)  # public: the catalog and the cohort only
    res = ExactResult.from_rows(compiled, backend.run(compiled), prepared.query_hash,
                                installation.release)  # fmt: skip
    asked = [{tuple(k): n for k, n in t.cells} for t in res.tables]
    cells = roll_up(released, asked)  # a roll-up level's counts: sums of the table's
    tables = tuple(
        TrueTable(t.dims, c, list(t.domain), t.parent, list(t.up) if t.up else None,
                  t.report, t.level)
        for t, c in zip(released, cells, strict=True)
    )  # fmt: skip
    each = isinstance(checked.index, ir.IndexEvent) and checked.index.episodes
    return TrueCounts(res.labels, res.counts, tables=tables,
                      contribution=ir.contribution(checked.index),
                      unit="episodes" if each else "persons")  # fmt: skip


def _released_shape(
    prepared: CompiledCohort, catalog: Catalog
) -> tuple[int, list[Any], dict[str, dict[Any, str | None]]]:
    """The cells of a cohort's tables, the tables released, and the names of their coded
    values (`region` -> "18" -> "Örebro län"): public (the catalog and the cohort only),
    computed once per canonical cohort and catalog (`_prepared_once`)."""

    def compute() -> tuple[int, list[Any], dict[str, dict[Any, str | None]]]:
        checked = prepared.checked
        released = released_tables(checked, catalog)
        names = {
            d: {key[i]: value_name(catalog, d, key[i]) for key in t.domain}
            for t in released
            for i, d in enumerate(t.dims)
            if has_names(d)
        }
        return domain_size(checked, catalog), released, names

    return _prepared_once(catalog, ("shape", prepared.query_hash), None, compute)[0]  # type: ignore[no-any-return]


def release_count(
    prepared: CompiledCohort,
    installation: Installation,
    catalog: Catalog,
    gate: Gate,
    project_id: str,
    actor: str,
    backend: Backend,
) -> Counted:
    """Release a prepared cohort through the privacy gate (charging the project).

    The engine's exact result becomes `privacy.TrueCounts` inside the `compute` callback
    the gate calls; it is never returned, logged or stored here. Once the gate has charged,
    any failure of `compute` (a database error, the time budget running out) is charged
    like an answer and raised as `CountFailed` (fail closed)."""

    checked, compiled = prepared.checked, prepared.compiled
    cells, released, names = _released_shape(prepared, catalog)
    if cells > gate.params.max_cells:
        raise BreakdownTooFine(cells, gate.params.max_cells)

    def compute() -> TrueCounts:
        return true_counts(prepared, installation, catalog, backend)

    answer = gate.answer(
        project_id, actor, prepared.query_hash, prepared.query, installation.release,
        compiled.labels, tuple(d for t in released for d in t.dims), compute,
        catalog_version=catalog.version(), attrition=prepared.attrition, names=names,
        registers=tuple(sorted(compiled.registers)), title=checked.title,
    )  # fmt: skip
    currency = prepared.currency or currency_of(catalog, installation, compiled.registers)
    return Counted(answer, prepared.warnings, currency)


def quote_count(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog,
    gate: Gate,
    project_id: str,
    *,
    approved_only: bool = False,
) -> Quote:
    """What counting this cohort for the project would charge now (0 when the project asked
    it before: its stored answer), and the budget left after. Checked like a count (cohort,
    approvals, registers held, breakdown size: the same refusals, before anything is
    charged) but no data is read, nothing is charged, released or audited."""
    project = gate.store.project(project_id)
    if project is None:
        raise UnknownProject(project_id)
    prepared = _quotable(cohort, installation, catalog, project, gate.params, approved_only)
    return gate.quote(
        project_id, prepared.query_hash, installation.release, bool(prepared.compiled.dims),
        catalog_version=catalog.version(), attrition_hash=prepared.attrition[0],  # as count asks
    )  # fmt: skip


def _quotable(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog,
    project: Project,
    params: PrivacyParams,
    approved_only: bool,
) -> CompiledCohort:
    """Prepared as for a count, with the same refusals before anything would be charged."""
    prepared = prepare_count(cohort, installation, catalog, project, approved_only=approved_only)
    cells = domain_size(prepared.checked, catalog)
    if cells > params.max_cells:
        raise BreakdownTooFine(cells, params.max_cells)
    return prepared


def quote_local(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog,
    settings: Settings,
    project_id: str,
    purpose: str | None = None,
    budget: float | None = None,
) -> Quote:
    """`antal count --quote`: the command line's local project's quote. For a project (or a
    store) not made yet, what its first count would cost: nothing is created."""
    from antal.privacy import Gate
    from antal.privacy.gate import answer_key, quote_new
    from antal.privacy.store import Project, store_exists
    from antal.privacy.store import open_store as _open_store

    params = installation.privacy
    if store_exists(settings.store):
        store = _open_store(settings.store)
        if store.project(project_id) is not None:
            local_project(store, project_id, params, purpose, budget)  # the same mismatches
            gate = Gate(store, params)  # a quote signs nothing: no key is made for it
            return quote_count(cohort, installation, catalog, gate, project_id)
    purpose = purpose or "forskning"
    _purpose(purpose)
    total = params.default_budget if budget is None else budget
    project = Project(project_id, "", purpose, total, 0.0, ())
    prepared = _quotable(cohort, installation, catalog, project, params, False)
    key = answer_key(params, prepared.query_hash, installation.release, purpose, catalog.version())
    return quote_new(params, project_id, total, prepared.query_hash, key,
                     bool(prepared.compiled.dims))  # fmt: skip


@dataclass(frozen=True)
class Counted:
    """A released answer with what the engine says about it: the warnings of its cohort
    (retired codes, windows reaching into a register's lag) and its data's currency.
    Neither depends on the data's rows: both come from the cohort, the catalog and the
    installation's statements, so they add nothing a released count does not."""

    answer: Answer
    warnings: tuple[Diagnostic, ...]
    currency: Currency

    def to_json(self) -> dict[str, Any]:
        return {
            **self.answer.to_json(),
            "warnings": [w.to_json() for w in self.warnings],
            "data_currency": self.currency.to_json(),
        }

    def attrition_frame(self) -> pd.DataFrame:
        """A pandas DataFrame: step, label, count (nullable Int64: <NA> when suppressed),
        suppressed, lower, upper, display."""
        from antal.api.frames import attrition_frame

        return attrition_frame(self.answer.to_json())

    def breakdown_frame(self) -> pd.DataFrame:
        """A pandas DataFrame: the dimensions, then count, suppressed, lower, upper, display;
        `breakdown_frame()["count"].sum()` adds up the cells shown."""
        from antal.api.frames import breakdown_frame

        return breakdown_frame(self.answer.to_json())

    def plot(self) -> Any:
        """The attrition funnel and each breakdown as an Altair chart (antal.api.charts)."""
        from antal.api.charts import plot

        return plot(self.to_json())


def count_released(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog,
    gate: Gate,
    project_id: str,
    actor: str,
    backend: Backend,
    *,
    approved_only: bool = False,
) -> Counted:
    """Check, compile and release through the privacy gate, charging the project."""
    project = gate.store.project(project_id)
    if project is None:
        raise UnknownProject(project_id)
    prepared = _prepare_for_release(cohort, installation, catalog, gate, project, actor,
                                    approved_only=approved_only)  # fmt: skip
    return release_count(prepared, installation, catalog, gate, project_id, actor, backend)


def local_project(
    store: Store,
    project_id: str,
    params: PrivacyParams,
    purpose: str | None = None,
    budget: float | None = None,
    actor: str = "cli",
) -> Project:
    """The command line's local project: made on first use with `purpose` (default
    forskning) and `budget` (default: the installation's); for an existing project, a
    purpose or budget that differs from its own is `ProjectMismatch`, never ignored."""
    if purpose is not None:
        _purpose(purpose)
    project = store.project(project_id)
    if project is None:
        return store.create_project(
            project_id, f"local project {project_id}", purpose or "forskning",
            params.default_budget if budget is None else budget, actor=actor,
        )  # fmt: skip
    wrong = []
    if purpose is not None and purpose != project.purpose:
        wrong.append(f"its purpose is {project.purpose}, not {purpose}")
    if budget is not None and budget != project.budget:
        wrong.append(f"its budget is ε {project.budget:g}, not {budget:g}")
    if wrong:
        raise ProjectMismatch(
            f"project {project_id} exists: {'; '.join(wrong)}. A project's purpose and budget "
            "are fixed when it is made: leave the option out, or name another project",
            {"purpose": project.purpose, "budget": project.budget},
        )
    return project


def _purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise Invalid("purpose is 'forskning' or 'kommersiell'")


class DateIndexed(Invalid):
    """A forecast asked of a cohort with a date index: a prevalence question."""

    code = "date_index_cohort"


def forecast(
    series: Sequence[ReleasedMonth | Sequence[Any]],
    months: int,
    cohort: ir.Cohort | None = None,
) -> Forecast:
    """Recruitment forecast from an already released monthly series of the persons newly
    eligible (`antal.privacy.forecast.ReleasedMonth`s, or tuples (first day of the month,
    released value or None when shown as "<T", noise scale, threshold[, rounding])): the
    next `months` months with 50% and 90% prediction intervals, and the back-test of the
    last 12 months. Post-processing of released values: nothing is charged.

    With the `cohort` the series was released for: a cohort with a date index is refused
    (`DateIndexed`), since everyone in it is eligible on one day and nobody becomes
    eligible month by month. A series the model cannot use (fewer than 12 months, gaps,
    almost nothing shown) is `Invalid` with the reason."""
    from antal.privacy.forecast import ForecastError
    from antal.privacy.forecast import forecast as _forecast

    if cohort is not None and isinstance(cohort.index, ir.IndexDate):
        raise DateIndexed(
            f"the cohort's index is a date ({cohort.index.date.isoformat()}): it counts who is "
            "eligible on that day, a prevalence question, and nobody becomes newly eligible "
            "month by month. A forecast needs an event index (`index first EVENT ...`)"
        )
    _check_months(months)
    if len(series) > limits.FORECAST_MAX_HISTORY:
        raise Invalid(f"a series of at most {limits.FORECAST_MAX_HISTORY} months")
    try:
        return _forecast(series, months)
    except ForecastError as e:
        raise Invalid(str(e)) from None


FORECAST_BY = ("hospital", "region", "sjukvardsregion")  # the groups `--by` may split into


def _month_start(d: dt.date) -> dt.date:
    return d.replace(day=1)


def _last_full_month_end(d: dt.date) -> dt.date:
    """The last day of the last whole month up to `d` (d itself when it ends a month)."""
    nxt = d + dt.timedelta(days=1)
    return d if nxt.day == 1 else nxt.replace(day=1) - dt.timedelta(days=1)


def monthly_cohort(
    cohort: ir.Cohort, catalog: Catalog, installation: Installation, by: str | None
) -> tuple[ir.Cohort, list[str]]:
    """The cohort asked for its monthly series: its index window bounded by the data (from
    the extract's first day, through the last whole month whose records are complete, given
    the reporting lag), its tables replaced by `report by month` (and `report by month, BY`).
    Returns it with notes saying what was bounded. Only public facts decide the bounds: the
    catalog and the installation's statements (engine/currency.py), never the rows."""
    if isinstance(cohort.index, ir.IndexDate):
        raise DateIndexed(
            f"the cohort's index is a date ({cohort.index.date.isoformat()}): it counts who is "
            "eligible on that day, a prevalence question, and nobody becomes newly eligible "
            "month by month. A forecast needs an event index (`index first EVENT ...`)"
        )
    if by is not None and by not in FORECAST_BY:
        raise Invalid(f"--by is one of {', '.join(FORECAST_BY)}, not {by!r}")
    idx = cohort.index
    regs = {r.id for r, _ in event_sources(idx.event, catalog)}
    cur = currency_of(catalog, installation, regs)
    starts = [c.start for c in cur.registers.values()]
    finals = [c.complete_through or c.through for c in cur.registers.values()]
    if not starts or any(f is None for f in finals):
        raise Invalid(
            "the installation states no extraction date, so the last month with complete "
            "data is unknown: set `extracted` (docs/configuration.md) to forecast"
        )
    notes: list[str] = []
    lo = max(starts)
    hi = _last_full_month_end(min(f for f in finals if f is not None))
    start, end = idx.window.start, idx.window.end
    if start is None or start < lo:
        notes.append(f"the series starts {lo}, the first day of the data")
        start = lo
    if end is None or end > hi:
        if end is not None or hi < max(c.through or hi for c in cur.registers.values()):
            notes.append(f"the series ends {hi}, the last whole month whose records are complete")
        end = hi
    if start > end:
        raise Invalid("the index window has no whole month of complete data")
    if start.day != 1:  # a part of a month would look like a month with few patients
        start = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        notes.append(f"the series starts {start}, the first whole month")
    if idx.episodes and idx.washout is not None and start - dt.timedelta(days=idx.washout) < lo:
        notes.append(
            f"the washout of {idx.washout} days reaches before the data ({lo}): episodes in "
            "the series' first months may be recurrences the data cannot see"
        )
    window = dataclasses.replace(idx.window, start=start, end=end)
    month = ir.Dim("month")
    reports = [ir.Report((month,))]
    if by is not None:
        reports.append(ir.Report((ir.Dim("month"), ir.Dim(by))))  # type: ignore[arg-type]
    monthly = dataclasses.replace(
        cohort, index=dataclasses.replace(idx, window=window), reports=tuple(reports)
    )
    return monthly, notes


@dataclass(frozen=True)
class Forecasted:
    """A recruitment forecast: the released monthly series (one charge, `counted`) and, per
    series (the whole cohort, and each group with `by`), its forecast or why there is none."""

    counted: Counted
    by: str | None
    notes: tuple[str, ...]
    series: dict[str, tuple[ReleasedMonth, ...]]
    forecasts: dict[str, Forecast | str]
    names: dict[str, str | None]
    quantity: dict[str, Any] = field(default_factory=dict)  # what the series counts

    def to_json(self) -> dict[str, Any]:
        from antal.privacy.forecast import Forecast

        def one(key: str) -> dict[str, Any]:
            f = self.forecasts[key]
            return {
                "group": key, "name": self.names.get(key),
                "series": [{"month": m.month.isoformat(), "count": m.value} for m in self.series[key]],
                **({"forecast": f.to_json()} if isinstance(f, Forecast) else {"no_forecast": f}),
            }  # fmt: skip

        return {
            "by": self.by,
            "quantity": self.quantity,
            "notes": list(self.notes),
            "total": one(TOTAL),
            "groups": [one(k) for k in self.forecasts if k != TOTAL],
            "answer": self.counted.to_json(),
        }


TOTAL = "total"


def _check_months(months: int) -> None:
    """How far ahead a forecast may look (`Invalid` otherwise): every face's one check."""
    if not 1 <= months <= limits.FORECAST_MAX_MONTHS:
        raise Invalid(f"forecast 1 to {limits.FORECAST_MAX_MONTHS} months ahead, not {months}")


def forecast_count(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog,
    gate: Gate,
    project_id: str,
    actor: str,
    backend: Backend,
    *,
    months: int,
    by: str | None = None,
    approved_only: bool = False,
) -> Forecasted:
    """Persons newly eligible per month, released as ONE query (`report by month`, and
    `report by month, BY`: the tables together under one charge), then a forecast of each
    series (post-processing: no further charge). A group whose series the model cannot use
    (too short, nearly all `<T`) says why instead."""

    _check_months(months)
    co = parse(cohort) if isinstance(cohort, str) else cohort
    monthly, notes = monthly_cohort(co, catalog, installation, by)
    counted = count_released(monthly, installation, catalog, gate, project_id, actor, backend,
                             approved_only=approved_only)  # fmt: skip
    return _forecasted(counted, by, notes, months, cohort=monthly)


def series_quantity(cohort: ir.Cohort) -> dict[str, Any]:
    """What a cohort's monthly series counts, and what its trend can mean: the forecast
    says it, since `index first` and `index each` answer different questions
    (docs/forecast.md, "Which quantity to forecast")."""
    idx = cohort.index
    if not isinstance(idx, ir.IndexEvent):
        return {"unit": "persons", "index": "date", "note": "persons eligible on one day"}
    if idx.episodes:
        return {
            "unit": "episodes", "index": "each", "washout_days": idx.washout,
            "contribution": ir.contribution(idx),
            "note": f"episodes per month: every qualifying event with none in the {idx.washout} "
            "days before it (a person may recur after the washout), so a disease whose rate "
            "is stationary gives a flat series: the rate at which patients become eligible",
        }  # fmt: skip
    if idx.which == "first":
        return {
            "unit": "persons", "index": "first",
            "note": "first-ever persons per month: each person counts in the month of their "
            "first qualifying event in the window and never again, so the series declines "
            "over the window even where the disease's rate is stationary (a trend below 1 "
            "a year is expected). For the rate of newly eligible patients, use `index each "
            "EVENT between D1 and D2, washout N days`",
        }  # fmt: skip
    return {
        "unit": "persons", "index": "last",
        "note": "persons by the month of their last qualifying event in the window: the "
        "series rises toward the window's end even where the disease's rate is stationary",
    }  # fmt: skip


def _is_month(report: ir.Report) -> bool:
    """A `report by month` (with or without its roll-up): a released monthly series."""
    return (
        len(report.dims) == 1
        and isinstance(report.dims[0], ir.Dim)
        and (report.dims[0].name == "month")
    )


def _forecasted(
    counted: Counted,
    by: str | None,
    notes: list[str],
    months: int,
    within: tuple[dt.date, dt.date] | None = None,
    cohort: ir.Cohort | None = None,
) -> Forecasted:
    """The monthly series of a released answer's month tables (`report by month`, and
    `report by month, BY`: post-processing, nothing released again), each forecast; only
    the months `within` (first and last day) when given; `cohort` says what they count."""
    from antal.privacy.forecast import ForecastError, ReleasedMonth
    from antal.privacy.forecast import forecast as _forecast

    answer = counted.answer
    params = answer.params
    scale = float(answer.scales.get("breakdown", 0.0))
    series: dict[str, list[ReleasedMonth]] = {}
    names: dict[str, str | None] = {TOTAL: "all"}
    for t in answer.tables or ():
        if t.dims[:1] != ("month",) or len(t.dims) > 2 or t.level:
            continue  # the cohort's other tables (a report draws them, no series)
        group_at = 1 if len(t.dims) == 2 else None
        for key, c in t.cells:
            ym = int(key[0])
            month = dt.date(ym // 100, ym % 100, 1)
            if within is not None and not within[0] <= month <= within[1]:
                continue
            g = TOTAL if group_at is None else str(key[group_at])
            if group_at is not None:
                names[g] = answer.names.get(t.dims[group_at], {}).get(key[group_at])
            threshold, rounding = int(params["threshold"]), int(params.get("rounding", 1))
            series.setdefault(g, []).append(
                ReleasedMonth(month, c.value, scale, threshold, rounding, answer.noise)
            )
    forecasts: dict[str, Forecast | str] = {}
    for g, ser in series.items():
        ser.sort(key=lambda m: m.month)
        try:
            forecasts[g] = _forecast(ser, months)
        except ForecastError as e:
            forecasts[g] = str(e)
    return Forecasted(counted, by, tuple(notes), {k: tuple(v) for k, v in series.items()},
                      forecasts, names,
                      series_quantity(cohort) if cohort is not None else {})  # fmt: skip


@dataclass(frozen=True)
class Reported:
    """What a feasibility report draws, all of it released and stored: the answer of the
    cohort (`checked`) and, when one was asked, the forecast computed from the released
    monthly series (antal.privacy.forecast's JSON), or the reason there is none, and when
    one was asked, the enrolment plan computed from the released site table."""

    checked: ir.Cohort
    counted: Counted
    forecast: dict[str, Any] | None = None
    no_forecast: str | None = None  # why the forecast asked for could not be made
    plan: Planned | None = None
    no_plan: str | None = None  # why the plan asked for could not be made from the table


def report_count(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog,
    gate: Gate,
    project_id: str,
    actor: str,
    backend: Backend,
    *,
    forecast_months: int | None = None,
    plan: PlanRequest | None = None,
    approved_only: bool = False,
) -> Reported:
    """The numbers of a feasibility report (`antal report`, `POST .../report`): the cohort
    released as a count is (its stored answer, free, when the project asked it before) and,
    with `forecast_months`, a forecast from its monthly series: the cohort's own released
    `report by month` table when it asks one (its whole months of complete data, nothing
    released again), else the series released as `forecast_count` releases it (one more
    release, charged unless asked before). With `plan`, the enrolment plan computed from
    the answer's released site table (antal.api.planning: post-processing, no ε beyond
    the count). Nothing else: a
    report shows no number the installation did not release. Everything that can be
    refused (the cohort, approvals, a date index or data without complete months for the
    forecast, a cohort the plan cannot use) is refused before anything is charged."""
    # planning counts through this module: imported here, not at its top
    from antal.api import planning

    project = gate.store.project(project_id)
    if project is None:
        raise UnknownProject(project_id)
    prepared = _prepare_for_release(cohort, installation, catalog, gate, project, actor,
                                    approved_only=approved_only)  # fmt: skip
    if forecast_months is not None:
        _check_months(forecast_months)
        monthly, notes = monthly_cohort(prepared.checked, catalog, installation, None)
    if plan is not None:
        window, plan_notes = planning.check_cohort(prepared.checked, catalog, installation)
    counted = release_count(prepared, installation, catalog, gate, project_id, actor, backend)
    planned, no_plan = None, None
    if plan is not None:
        try:
            planned = planning.plan_released(counted, window, plan_notes, plan)
        except Invalid as e:  # the released table gives no plan (every site below threshold)
            no_plan = e.message
    if forecast_months is None:
        return Reported(prepared.checked, counted, plan=planned, no_plan=no_plan)
    if any(_is_month(r) for r in prepared.checked.reports):
        # the cohort asked its monthly series itself: the forecast is made from that
        # released table (its whole months of complete data), never from a second release
        # of it, so that the report shows one series
        window = monthly.index.window
        assert window.start is not None and window.end is not None  # bounded by monthly_cohort
        res = _forecasted(counted, None, notes, forecast_months, (window.start, window.end),
                          monthly)  # fmt: skip
    else:
        res = forecast_count(prepared.checked, installation, catalog, gate, project_id, actor,
                             backend, months=forecast_months, approved_only=approved_only)  # fmt: skip
    total = res.forecasts.get(TOTAL, "no monthly series was released")
    if isinstance(total, str):
        return Reported(prepared.checked, counted, None, total, planned, no_plan)
    return Reported(prepared.checked, counted, total.to_json(), None, planned, no_plan)


# ---- administration -------------------------------------------------------------------------


def _registers(catalog: Catalog, registers: tuple[str, ...]) -> None:
    unknown = sorted(set(registers) - set(catalog.ids()))
    if unknown:
        raise UnknownRegister(f"unknown register(s) {', '.join(unknown)}", {"registers": unknown})


def create_user(
    accounts: Accounts,
    uid: str,
    name: str | None,
    role: str,
    registers: tuple[str, ...] = (),
    actor: str = "admin",
) -> User:
    if role not in ROLES:
        raise Invalid("role is researcher, holder or admin")
    if not USER_ID.match(uid):
        raise Invalid("a user id is lower-case letters, digits, '.', '_' and '-'")
    try:
        return accounts.create_user(uid, name or uid, role, registers, actor=actor)  # type: ignore[arg-type]
    except (AlreadyExists, InvalidValue) as e:
        raise Invalid(str(e)) from None


def issue_token(accounts: Accounts, uid: str, actor: str = "admin") -> str:
    try:
        return accounts.issue_token(uid, actor=actor)
    except StoreNotFound as e:
        raise NotFound(str(e)) from None


def revoke_tokens(accounts: Accounts, uid: str, actor: str = "admin") -> int:
    """Revoke every live token of a user (audited); how many were revoked."""
    try:
        return accounts.revoke_tokens(uid, actor=actor)
    except StoreNotFound as e:
        raise NotFound(str(e)) from None


def create_project(
    store: Store,
    accounts: Accounts,
    catalog: Catalog,
    pid: str,
    title: str | None,
    purpose: str,
    budget: float,
    registers: tuple[str, ...] = (),
    members: tuple[str, ...] = (),
    actor: str = "admin",
) -> Project:
    if not PROJECT_ID.match(pid):
        raise Invalid("a project id is lower-case letters, digits, '_' and '-'")
    _purpose(purpose)
    if budget < 0:
        raise Invalid("budget must not be negative")
    _registers(catalog, registers)
    for m in members:  # before anything is written: no half-made project
        if accounts.user(m) is None:
            raise NotFound(f"no user {m!r}")
    try:
        project = store.create_project(pid, title or pid, purpose, budget, registers, actor=actor)
    except (AlreadyExists, InvalidValue) as e:
        raise Invalid(str(e)) from None
    for m in members:
        accounts.add_member(pid, m, actor=actor)
    return project


def _changed(project: Project | None, pid: str) -> Project:
    if project is None:
        raise NotFound(f"no project {pid!r}")
    return project


def approve_registers(
    store: Store, catalog: Catalog, pid: str, registers: tuple[str, ...], actor: str = "admin"
) -> Project:
    """Add registers to a project's approvals (those it has stay)."""
    _changed(store.project(pid), pid)
    _registers(catalog, registers)
    return _changed(store.change_registers(pid, add=registers, actor=actor), pid)


def revoke_registers(
    store: Store, pid: str, registers: tuple[str, ...], actor: str = "admin"
) -> Project:
    """Remove registers from a project's approvals; a register it is not approved for is
    an error (a typo must not look like a revocation)."""
    project = _changed(store.project(pid), pid)
    absent = sorted(set(registers) - set(project.registers))
    if absent:
        raise Invalid(
            f"project {pid!r} is not approved for {', '.join(absent)}",
            {"registers": absent, "approved": list(project.registers)},
        )
    return _changed(store.change_registers(pid, remove=registers, actor=actor), pid)


def set_budget(store: Store, pid: str, budget: float, actor: str = "admin") -> Project:
    """Raise (or lower, never below what it spent) a project's total ε (audited): the way
    forward for a project whose budget is spent, an admin's decision."""
    _changed(store.project(pid), pid)
    try:
        return store.set_budget(pid, budget, actor=actor)
    except InvalidValue as e:
        raise Invalid(str(e)) from None


def set_registers(
    store: Store, catalog: Catalog, pid: str, registers: tuple[str, ...], actor: str = "admin"
) -> Project:
    """Replace a project's approvals by exactly these registers (HTTP PUT)."""
    _changed(store.project(pid), pid)
    _registers(catalog, registers)
    store.set_registers(pid, registers, actor=actor)
    return _changed(store.project(pid), pid)


def add_member(accounts: Accounts, pid: str, uid: str, actor: str = "admin") -> User:
    try:
        accounts.add_member(pid, uid, actor=actor)
    except StoreNotFound as e:
        raise NotFound(str(e)) from None
    user = accounts.user(uid)
    assert user is not None
    return user


def verify_receipt(document: Any, public_key: Any, cohort: Validation | None = None) -> list[str]:
    """What is wrong with a receipt, or with a whole answer (`antal count --json`, the API's
    count) and its receipt: the signature under `public_key`; for an answer, that its
    released values and step labels are those the receipt was signed for; with `cohort` (a
    cohort checked by `validate`, as counting checks it), that it is the question the receipt
    was signed for (its query hash, title and step labels). Empty: valid."""
    from antal.privacy.receipts import check_answer, check_cohort, verify

    whole = isinstance(document, dict) and isinstance(document.get("receipt"), dict)
    receipt = document["receipt"] if whole else document
    problems = verify(receipt, public_key)
    if problems:  # an unsigned receipt binds nothing: nothing more to compare
        return problems
    if whole:
        problems += check_answer(document, receipt)
    if cohort is not None and cohort.checked is not None and cohort.query_hash is not None:
        problems += check_cohort(receipt, cohort.query_hash, cohort.checked.title, cohort.steps)
    return problems


def verify_audit(
    store: Store, public: Ed25519PublicKey | None = None, anchor: Path | None = None
) -> AuditCheck:
    """The audit log's hash chain, its signed heads under `public` (default: the store's
    signer's), the ledger they sign, the log against the anchor file `anchor` (default:
    the store's), and the consistency of the budget ledger."""
    found = store.check_audit(public, anchor)
    found.problems += store.ledger_problems()
    return found
