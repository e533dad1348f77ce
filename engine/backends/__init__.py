"""Where a compiled statement runs. Backends differ only in how they attach the
extracts an installation names and how they execute; the SQL differs only by
sqlglot dialect."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any

from antal.catalog import Catalog, Installation
from antal.catalog.vocabulary import BACKENDS, BackendName, Dialect, Placement
from antal.engine.compiler import Compiled
from antal.engine.errors import EngineError, MissingRegisterError

__all__ = [
    "REGISTRY",
    "Backend",
    "DuckDBBackend",
    "backend_class",
    "backend_for",
    "get_backend",
]


class Backend(ABC):
    dialect: Dialect
    # where the extracts it reads may live (catalog/installation.py's DataSource.placement)
    placements: frozenset[Placement]
    # the driver's errors that mean "the data could not be read"; their message may quote a
    # value from the data, so the caller answers a fixed message instead (engine.DataError)
    errors: tuple[type[BaseException], ...] = ()

    def __init__(self, installation: Installation, catalog: Catalog) -> None:
        self.installation = installation
        self.catalog = catalog

    def require(self, registers: set[str] | frozenset[str]) -> None:
        missing = self.installation.missing(registers)
        if missing:
            raise MissingRegisterError(missing)

    @abstractmethod
    def run(self, compiled: Compiled) -> list[tuple[Any, ...]]:
        """Execute a compiled cohort; rows as the compiled statement defines them."""

    def error_kind(self, exc: BaseException) -> str:
        """What kind of error one of `errors` is, without its message: a name the driver
        fixes in advance (an exception class, an error condition), never text that could
        quote the data. It lets an operator tell a missing file from a full disk."""
        return type(exc).__name__

    def forget(self, register_id: str) -> None:  # noqa: B027 - optional hook
        """The register's catalog entry changed: describe its extract anew on next use."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


# Where each backend named in antal.catalog.vocabulary.BACKENDS lives, imported on first
# use (a backend's driver need not be installed unless it is used). A new backend is a
# class in this folder and one line here; tests/test_dispatch.py checks the names agree.
# The first backend that reads an installation's placements is its default (backend_for).
REGISTRY: dict[str, tuple[str, str]] = {
    "duckdb": ("antal.engine.backends.duckdb", "DuckDBBackend"),
    "postgres": ("antal.engine.backends.postgres", "PostgresBackend"),
    "spark": ("antal.engine.backends.spark", "SparkBackend"),
}


def backend_class(name: str) -> type[Backend]:
    """The class of a registered backend (EngineError for an unknown name)."""
    if name not in REGISTRY:
        raise EngineError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    module, cls = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def backend_for(installation: Installation, requested: str | None = None) -> BackendName:
    """The backend that runs this installation's counts: `requested` if it reads where the
    extracts live, else (None) the first registered one that does. One installation runs
    on one engine: DuckDB cannot read PostgreSQL offline (docs/placements.md)."""
    if requested is not None:
        cls = backend_class(requested)  # an unknown name is an error before anything else
        where = installation.placements
        if not where <= cls.placements:
            raise EngineError(
                f"the {requested} backend cannot read extracts placed in "
                f"{', '.join(sorted(where - cls.placements))} (it reads "
                f"{', '.join(sorted(cls.placements))})"
            )
        return requested  # type: ignore[return-value]
    where = installation.placements
    for name in REGISTRY:
        if where <= backend_class(name).placements:
            return name  # type: ignore[return-value]
    raise EngineError(f"no backend reads extracts placed in {', '.join(sorted(where))} together")


def get_backend(
    name: str | None, installation: Installation, catalog: Catalog, **options: Any
) -> Backend:
    """A backend by name (None: the installation's default, `backend_for`); `options` are
    threads, memory_limit and query_seconds (each backend uses those it has)."""
    return backend_class(backend_for(installation, name))(installation, catalog, **options)


def __getattr__(name: str) -> Any:
    if name == "DuckDBBackend":
        return backend_class("duckdb")
    raise AttributeError(name)
