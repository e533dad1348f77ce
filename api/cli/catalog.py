"""`antal catalog list` / `antal catalog show ID`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from antal.api.cli.common import CatalogOpt, fail, load_catalog, out

__all__ = ["app"]

app = typer.Typer(help="The catalog of registers.", no_args_is_help=True)


@app.command("list")
def catalog_list(catalog_dir: CatalogOpt = None) -> None:
    """List the registers in the catalog."""
    cat = load_catalog(dirs=catalog_dir)
    table = Table("id", "register", "holder", "coverage", "events")
    for reg in cat.registers.values():
        cov = f"{reg.coverage.from_year}–{reg.coverage.to_year or ''}"
        events = ", ".join(sorted({p.event for p in reg.provides})) or (
            "where ..." if reg.date_column else "-"
        )
        table.add_row(reg.id, reg.title.en, reg.holder, cov, events)
    out.print(table)


@app.command("show")
def catalog_show(
    register_id: Annotated[str, typer.Argument(metavar="ID")], catalog_dir: CatalogOpt = None
) -> None:
    """Show one register: what it holds, its variables and how to use it."""
    from antal.catalog import suggest

    cat = load_catalog(dirs=catalog_dir)
    reg = cat.register(register_id)
    if reg is None:
        hint = suggest(register_id, cat.ids())
        fail(
            f"unknown register '{register_id}'"
            + (f" - did you mean '{hint}'?" if hint else f"; registers: {', '.join(cat.ids())}")
        )
    out.print(f"[bold]{reg.id}[/]  {reg.title.sv} / {reg.title.en}")
    out.print(
        f"holder: {reg.holder}    coverage: {reg.coverage.from_year}–{reg.coverage.to_year or 'ongoing'}"
        f"    updated: {reg.update.frequency} (lag {reg.update.lag_months} months)"
    )
    out.print(reg.description.en)
    out.print(f"[dim]legal basis:[/] {reg.legal_basis}")
    out.print(f"[dim]access:[/] {reg.access}")
    out.print(f"[dim]population:[/] {reg.population}")
    keys = f"person key: {reg.person_key}" + (
        f", date: {reg.date_column}" if reg.date_column else ""
    )
    if reg.site_column:
        keys += f", hospital: {reg.site_column}"
    out.print(f"[dim]{keys}[/]")
    table = Table("variable", "type", "code system / unit", "values", "description")
    for v in reg.variables:
        values = ", ".join(str(x) for x in v.values) if v.values else ""
        table.add_row(
            v.name,
            v.type + (" list" if v.multi else ""),
            v.code_system or v.unit or "",
            values,
            v.description,
        )
    out.print(table)
    for p in reg.provides:
        extra = f" (main: {p.main})" if p.main else ""
        out.print(f"provides [bold]{p.event}[/] from {p.codes}{extra}")
