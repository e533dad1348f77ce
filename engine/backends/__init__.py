"""Where a compiled statement runs. Backends differ only in how they attach the
extracts an installation names and how they execute; the SQL differs only by
sqlglot dialect."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any

from antal.catalog import Catalog, Installation
from antal.catalog.vocabulary import BACKENDS, Dialect
from antal.engine.compiler import Compiled
from antal.engine.errors import EngineError, MissingRegisterError

__all__ = ["REGISTRY", "Backend", "DuckDBBackend", "backend_class", "get_backend"]


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

    def forget(self, register_id: str) -> None:  # noqa: B027 - optional hook
        """The register's catalog entry changed: describe its extract anew on next use."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


# Where each backend named in antal.catalog.vocabulary.BACKENDS lives, imported on first
# use (a backend's driver need not be installed unless it is used). A new backend is a
# class in this folder and one line here; tests/test_dispatch.py checks the names agree.
REGISTRY: dict[str, tuple[str, str]] = {
    "duckdb": ("antal.engine.backends.duckdb", "DuckDBBackend"),
}


def backend_class(name: str) -> type[Backend]:
    """The class of a registered backend (EngineError for an unknown name)."""
    if name not in REGISTRY:
        raise EngineError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    module, cls = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def get_backend(name: str, installation: Installation, catalog: Catalog, **options: Any) -> Backend:
    """A backend by name; `options` are its own (DuckDB: threads, memory_limit, query_seconds)."""
    return backend_class(name)(installation, catalog, **options)


def __getattr__(name: str) -> Any:
    if name == "DuckDBBackend":
        return backend_class("duckdb")
    raise AttributeError(name)
