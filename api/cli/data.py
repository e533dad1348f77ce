"""`antal data check`: the extracts against the catalog."""

from __future__ import annotations

import typer

from antal.api.cli.common import ConfigOpt, DataOpt, failing, out, settings

__all__ = ["app"]

app = typer.Typer(help="The installation's extracts.", no_args_is_help=True)


@app.command("check")
def data_check(data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Check the extracts against the catalog: files, columns, types, keys, dates, codes.
    Reads every value again (a count reuses this check's stored result for the same files)."""
    from antal.api import usecases as uc
    from antal.engine.datacheck import format_findings

    s = settings(data, config)
    with failing():
        inst = uc.open_installation(s)
        cat = uc.catalog_for(s, inst)
        notes = uc.check_data(inst, cat, refresh=True)
    if notes:
        out.print(format_findings(notes))
    out.print(f"data check passed: {len(inst.sources)} registers, data release {inst.release}")
