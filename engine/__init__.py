"""The engine: cohort text → typed IR → checked → one sqlglot statement → exact counts.

Exact counts leave the engine only to `privacy` (or to a data holder's local
`--exact` mode). Public API::

    ir = engine.parse(text)                         # CohortError with line:col
    sql = engine.compile(ir, "postgres")            # checked against the bundled catalog
    res = engine.count_exact(text, installation)    # ExactResult, for privacy/ and --exact
"""

from __future__ import annotations

from dataclasses import dataclass

from antal.catalog import Catalog, Installation, bundled_dir, load_catalog
from antal.catalog.vocabulary import BackendName, Dialect, Purpose
from antal.engine import ir
from antal.engine.backends import Backend, get_backend
from antal.engine.check import check, check_with_warnings, registers_used
from antal.engine.compiler import Compiled, compile_cohort
from antal.engine.currency import Currency, currency_of
from antal.engine.errors import (
    BreakdownTooFine,
    CohortError,
    DataError,
    Diagnostic,
    EngineError,
    InternalError,
    IRInvalid,
    MissingRegisterError,
    QueryTimeout,
)
from antal.engine.language.parser import parse
from antal.engine.result import ExactResult
from antal.engine.review import review

__all__ = [
    "Backend",
    "BreakdownTooFine",
    "CohortError",
    "Compiled",
    "Currency",
    "DataError",
    "Diagnostic",
    "EngineError",
    "ExactResult",
    "IRInvalid",
    "InternalError",
    "MissingRegisterError",
    "Prepared",
    "QueryTimeout",
    "check",
    "check_with_warnings",
    "compile",
    "compile_cohort",
    "count_exact",
    "currency_of",
    "get_backend",
    "ir",
    "parse",
    "prepare",
    "registers_used",
    "review",
]


def _as_ir(cohort: str | ir.Cohort) -> ir.Cohort:
    return parse(cohort) if isinstance(cohort, str) else cohort


def compile(
    cohort: str | ir.Cohort, dialect: Dialect = "duckdb", catalog: Catalog | None = None
) -> str:
    """The SQL of a cohort in a dialect (duckdb, postgres, spark). No data is read."""
    cat = catalog or load_catalog()
    return compile_cohort(check(_as_ir(cohort), cat), cat, optout=_optout(cat, None)).sql(
        dialect, pretty=True
    )


def _optout(catalog: Catalog, installation: Installation | None) -> str | None:
    reg = catalog.optout
    if reg is None:
        return None
    if installation is not None and reg.id not in installation.sources:
        if installation.optout == "none":  # the installation says it keeps no opt-outs
            return None
        raise MissingRegisterError([reg.id])  # fail closed: never count opted-out persons
    return reg.id


@dataclass(frozen=True)
class Prepared:
    """A cohort ready to run: checked, compiled, its warnings and its data's currency."""

    checked: ir.Cohort
    compiled: Compiled
    warnings: tuple[Diagnostic, ...]
    currency: Currency


def prepare(
    cohort: str | ir.Cohort,
    catalog: Catalog,
    installation: Installation | None = None,
    purpose: Purpose = "forskning",
) -> Prepared:
    """Parse (if text), check and compile; raise before any database is touched.

    The warnings (engine/review.py) compare the windows with the installation's data
    currency, or with the catalog's coverage alone without an installation."""
    everything = currency_of(catalog, installation, catalog.registers)
    checked, warnings = check_with_warnings(
        _as_ir(cohort), catalog, lambda co: review(co, catalog, everything)
    )
    compiled = compile_cohort(
        checked, catalog, purpose=purpose, optout=_optout(catalog, installation)
    )
    if installation is not None:
        missing = installation.missing(compiled.registers)
        if missing:
            raise MissingRegisterError(missing)
    read = currency_of(catalog, installation, compiled.registers)
    return Prepared(checked, compiled, tuple(warnings), read)


def count_exact(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog | None = None,
    purpose: Purpose = "forskning",
    backend: Backend | BackendName | None = None,
) -> ExactResult:
    """Run a cohort and return its true counts. For `privacy/` and the holder's `--exact` only."""
    cat = catalog or load_catalog(bundled_dir(), *installation.catalog_dirs)
    p = prepare(cohort, cat, installation, purpose)
    checked, compiled = p.checked, p.compiled
    # the holder's local mode on their own extract: no time budget (nobody else waits)
    be = (
        get_backend(backend, installation, cat, query_seconds=None)
        if not isinstance(backend, Backend)
        else backend
    )
    try:
        rows = be.run(compiled)
    except be.errors:  # its message may quote a value from the data: never passed on
        raise DataError(
            "the extracts could not be read for this count; `antal data check` says why"
        ) from None
    finally:
        if not isinstance(backend, Backend):
            be.close()
    return ExactResult.from_rows(compiled, rows, ir.ir_hash(checked), installation.release)
