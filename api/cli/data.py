"""`antal data check`: the extracts against the catalog."""

from __future__ import annotations

import typer

from antal.api.cli.common import ConfigOpt, DataOpt, failing, out, settings

__all__ = ["app"]

app = typer.Typer(help="The installation's extracts.", no_args_is_help=True)


@app.command("check")
def data_check(data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Check the extracts against the catalog: files, columns, types, keys, dates, codes."""
    from antal.api import usecases as uc

    s = settings(data, config)
    with failing():
        inst = uc.open_installation(s)
        cat = uc.catalog_for(s, inst)
        uc.check_data(inst, cat)
    out.print(f"data check passed: {len(inst.sources)} registers, data release {inst.release}")
