"""How antal opens DuckDB: one place for the settings every connection of the engine needs.

DuckDB's progress bar is on by default and writes to standard output once a query runs
longer than two seconds: on a large release it landed in `antal count --json`'s output
(a bar before the JSON) and in the terminal of every command. antal says what it is doing
itself, so every connection it opens has the bar off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

__all__ = ["connect"]


def connect(
    database: str = ":memory:", *, config: dict[str, Any] | None = None, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    import duckdb  # here: a command that reads no data does not import the database

    con = duckdb.connect(database, read_only=read_only, config=config or {})
    # a session setting (DuckDB refuses it as connection config); a constant statement
    con.execute("PRAGMA disable_progress_bar")
    return con
