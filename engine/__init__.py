"""The engine: cohort text → typed IR → checked → one sqlglot statement → exact counts.

Exact counts leave the engine only to `privacy` (or to a data holder's local
`--exact` mode). Public API::

    ir = engine.parse(text)                         # CohortError with line:col
    sql = engine.compile(ir, "postgres")            # checked against the bundled catalog
    res = engine.count_exact(text, installation)    # ExactResult, for privacy/ and --exact
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# `check` and `review` name both a module of this package and the function exported here:
# importing the module (`antal.engine.check`, anywhere) makes it the package's attribute
# `check`, so the function is bound after it, here, and not on first use like the rest.
from antal.engine.check import check, check_with_warnings, registers_used
from antal.engine.errors import (
    BreakdownTooFine,
    CohortError,
    DataError,
    Diagnostic,
    EngineError,
    InternalError,
    IRInvalid,
    MissingColumnError,
    MissingRegisterError,
    QueryTimeout,
)
from antal.engine.review import review

if TYPE_CHECKING:
    from antal.catalog import Catalog, Installation
    from antal.catalog.vocabulary import BackendName, Dialect, Purpose
    from antal.engine import ir
    from antal.engine.backends import Backend, get_backend
    from antal.engine.compiler import Compiled, compile_cohort
    from antal.engine.currency import Currency, currency_of
    from antal.engine.language.parser import parse
    from antal.engine.result import ExactResult

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
    "MissingColumnError",
    "MissingRegisterError",
    "Prepared",
    "QueryTimeout",
    "check",
    "check_held",
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

# Imported on first use (PEP 562), not with the package: importing any engine module
# (`antal.engine.limits`, `.ir`) runs this file first, and the parser (lark), the compiler
# (sqlglot), the results (pandas) and DuckDB are more than most callers need: `antal
# check` uses no DuckDB or pandas.
_LAZY = {
    "ir": "ir",
    "Backend": "backends",
    "get_backend": "backends",
    "Compiled": "compiler",
    "compile_cohort": "compiler",
    "Currency": "currency",
    "currency_of": "currency",
    "parse": "language.parser",
    "ExactResult": "result",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    found = importlib.import_module(f"{__name__}.{module}")
    value = found if name == module else getattr(found, name)
    globals()[name] = value  # once: later look-ups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _as_ir(cohort: str | ir.Cohort) -> ir.Cohort:
    from antal.engine.language.parser import parse

    return parse(cohort) if isinstance(cohort, str) else cohort


def compile(
    cohort: str | ir.Cohort, dialect: Dialect = "duckdb", catalog: Catalog | None = None
) -> str:
    """The SQL of a cohort in a dialect (duckdb, postgres, spark). No data is read."""
    from antal.catalog import load_catalog
    from antal.engine.compiler import compile_cohort

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
    from antal.engine.compiler import compile_cohort
    from antal.engine.currency import currency_of

    everything = currency_of(catalog, installation, catalog.registers)
    checked, warnings = check_with_warnings(
        _as_ir(cohort), catalog, lambda co: review(co, catalog, everything)
    )
    compiled = compile_cohort(
        checked,
        catalog,
        purpose=purpose,
        optout=_optout(catalog, installation),
        layout=installation.layout() if installation is not None else None,
    )
    if installation is not None:
        check_held(compiled, installation, catalog)
    read = currency_of(catalog, installation, compiled.registers)
    return Prepared(checked, compiled, tuple(warnings), read)


def check_held(compiled: Compiled, installation: Installation, catalog: Catalog) -> None:
    """Raise `MissingRegisterError` for a register the statement reads that the
    installation does not hold, `MissingColumnError` for a column its files lack."""
    missing = installation.missing(compiled.registers)
    if missing:
        raise MissingRegisterError(missing)
    from antal.engine.datacheck import missing_columns

    absent = missing_columns(installation, catalog, compiled.columns)
    if absent:
        raise MissingColumnError(absent)


def count_exact(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog | None = None,
    purpose: Purpose = "forskning",
    backend: Backend | BackendName | None = None,
) -> ExactResult:
    """Run a cohort and return its true counts. For `privacy/` and the holder's `--exact` only."""
    from antal.catalog import bundled_dir, load_catalog
    from antal.engine import ir
    from antal.engine.backends import Backend, get_backend
    from antal.engine.result import ExactResult

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
    except be.errors as e:  # its message may quote a value from the data: never passed on
        raise DataError(
            f"the extracts could not be read for this count ({be.error_kind(e)}); "
            "`antal data check` says why"
        ) from None
    finally:
        if not isinstance(backend, Backend):
            be.close()
    return ExactResult.from_rows(compiled, rows, ir.ir_hash(checked), installation.release)
