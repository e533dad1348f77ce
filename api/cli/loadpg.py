"""`antal load-postgres`: a data release's Parquet extracts copied into a PostgreSQL schema,
laid out as a prepared file (see `antal.engine.backends.pgload`); an installation naming
that schema then counts there, on the postgres backend (docs/placements.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from antal.api.cli.common import fail, failing, load_catalog, out

__all__ = ["load_postgres_cmd"]


def load_postgres_cmd(
    data: Annotated[Path, typer.Option("--data", help="Directory of canonical Parquet extracts.")],
    dsn: Annotated[
        str,
        typer.Option(
            help="The database: a libpq connection string or postgresql:// URL (a password "
            "from PGPASSWORD or ~/.pgpass, not the command line)."
        ),
    ],
    schema: Annotated[str, typer.Option(help="The schema to fill (made if missing).")] = "antal",
) -> None:
    """Copy the extracts into tables of one schema, with the prepared file's person and
    code tables and the indexes the counts use, in one transaction (a failed load leaves
    the schema as it was), after the same data check as `antal prepare`."""
    import psycopg

    from antal.api import usecases as uc
    from antal.catalog import Installation
    from antal.engine.backends.pgload import load_postgres

    with failing():
        cat = load_catalog()
        if not data.is_dir():
            fail(f"--data {data}: `antal load-postgres` reads a directory of Parquet extracts")
        uc.check_data(Installation.from_data_dir(data), cat)
        try:
            loaded = load_postgres(data, dsn, schema, catalog=cat)
        except psycopg.Error as e:
            # the server's message may quote a value of the data: its class and code only
            fail(f"the load failed in PostgreSQL ({type(e).__name__}, SQLSTATE {e.sqlstate})")
    out.print(
        f"loaded {len(loaded.tables)} registers into schema {loaded.schema}, "
        f"data release {loaded.release}"
    )
