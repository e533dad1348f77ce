"""Where a compiled statement runs. Backends differ only in how they attach the
extracts an installation names and how they execute; the SQL differs only by
sqlglot dialect."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from antal.catalog import Catalog, Installation
from antal.catalog.vocabulary import BACKENDS, Dialect
from antal.engine.compiler import Compiled
from antal.engine.errors import EngineError, MissingRegisterError

__all__ = ["Backend", "DuckDBBackend", "get_backend"]


class Backend(ABC):
    dialect: Dialect

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

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def get_backend(name: str, installation: Installation, catalog: Catalog, **options: Any) -> Backend:
    """A backend by name; `options` are its own (DuckDB: threads, memory_limit, query_seconds)."""
    if name == "duckdb":  # one branch per name in antal.catalog.vocabulary.BACKENDS
        from antal.engine.backends.duckdb import DuckDBBackend

        return DuckDBBackend(installation, catalog, **options)
    raise EngineError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")


def __getattr__(name: str) -> Any:
    if name == "DuckDBBackend":
        from antal.engine.backends.duckdb import DuckDBBackend

        return DuckDBBackend
    raise AttributeError(name)
