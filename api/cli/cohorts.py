"""`antal check FILE` and `antal sql FILE`: no data read, nothing charged."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from antal.api.cli.common import (
    CatalogOpt,
    ConfigOpt,
    DataOpt,
    checked,
    fail,
    failing,
    load_catalog,
    out,
    settings,
)

__all__ = ["check_cmd", "sql_cmd"]


def check_cmd(
    file: Annotated[Path, typer.Argument(help="A .cohort file.")],
    catalog_dir: CatalogOpt = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Parse and check a cohort against the catalog; print errors like a compiler. With
    `--data` or `--config`, also the warnings about that installation's data (its reporting
    lags and the periods its extracts cover): the warnings `antal count` gives."""
    if data is not None or config is not None:
        from antal.api import usecases as uc

        s = settings(data, config)
        with failing():
            inst = uc.open_installation(s)
            cat = uc.catalog_for(s, inst)
        _, v = checked(file, cat, inst)
    else:
        _, v = checked(file, load_catalog(dirs=catalog_dir))
    assert v.checked is not None
    out.print(f"{file}: ok ({len(v.checked.steps)} steps, query {(v.query_hash or '')[:12]})")


def sql_cmd(
    file: Annotated[Path, typer.Argument(help="A .cohort file.")],
    dialect: Annotated[str, typer.Option(help="duckdb, postgres or spark.")] = "duckdb",
    purpose: Annotated[
        str, typer.Option(help="forskning or kommersiell (which opt-outs apply).")
    ] = "forskning",
    catalog_dir: CatalogOpt = None,
) -> None:
    """Print the one SQL statement a cohort compiles to. No data is read."""
    from antal.api import usecases as uc
    from antal.catalog.vocabulary import DIALECTS

    if dialect not in DIALECTS:
        fail(f"unknown dialect '{dialect}'; choose {', '.join(DIALECTS)}")
    cat = load_catalog(dirs=catalog_dir)
    _, v = checked(file, cat, warn=False)  # the SQL only: `antal check` says what to heed
    assert v.checked is not None
    with failing():
        compiled = uc.compile_cohort(v.checked, cat, purpose=purpose)
    sys.stdout.write(compiled.sql(dialect) + ";\n")
