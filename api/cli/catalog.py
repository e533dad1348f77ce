"""`antal catalog list` / `show ID` / `publish FILE` / `history ID`: the catalog of registers,
on this machine or (`--server`) as a server's researchers see it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from antal.api.cli.common import (
    CatalogOpt,
    ConfigOpt,
    DataOpt,
    StoreOpt,
    fail,
    failing,
    load_catalog,
    out,
    settings,
)
from antal.catalog import Register, suggest

if TYPE_CHECKING:
    from antal.api.client import Client

__all__ = ["app"]

app = typer.Typer(help="The catalog of registers.", no_args_is_help=True)

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server", envvar="ANTAL_URL", help="An antal server (http://host:8000): its catalog."
    ),
]
TokenOpt = Annotated[
    str | None, typer.Option(envvar="ANTAL_TOKEN", help="Your bearer token on the server.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@contextmanager
def server_client(server: str, token: str | None) -> Iterator[Client]:
    """A client of the server; its error answers become a message and exit 2 (3: refused)."""
    from antal.api.client import Client, ClientError, ForbiddenError

    if not token:
        fail("give your bearer token on the server: --token T or ANTAL_TOKEN")
    try:
        with Client(server, token) as c:
            yield c
    except ForbiddenError as e:
        fail(e.message, code=3)
    except ClientError as e:
        where = ""
        if isinstance(e.details, dict) and e.details.get("line") is not None:
            where = f" [line {e.details['line']}, column {e.details['column']}]"
        fail(f"{e.message}{where}")


@app.command("list")
def catalog_list(
    catalog_dir: CatalogOpt = None, data: DataOpt = None, config: ConfigOpt = None
) -> None:
    """List the registers in the catalog (with `--data`/`--config`: each one's data release,
    the period its extract covers and how far its records are final, given the lag)."""
    from antal.api import usecases as uc

    s = settings(data, config)
    with failing():
        inst = uc.open_installation(s) if (s.data or s.installation) else None
    cat = load_catalog(inst, dirs=catalog_dir)
    releases = uc.catalog_releases(cat, inst) if inst is not None else {}
    table = Table("id", "register", "holder", "coverage", "lag", "events")
    if inst is not None:
        table.add_column("extract")
        table.add_column("final through")
    for reg in cat.registers.values():
        cov = f"{reg.coverage.from_year}–{reg.coverage.to_year or ''}"
        events = ", ".join(sorted({p.event for p in reg.provides})) or (
            "where ..." if reg.date_column else "-"
        )
        row = [reg.id, reg.title.en, reg.holder, cov, f"{reg.update.lag_months} mo", events]
        if inst is not None:
            d = releases.get(reg.id) or {}
            ext = d.get("extract") or {}
            held = d.get("held")
            row += [
                f"{ext.get('start')} – {ext.get('through') or '?'}" if held else "not held",
                (d.get("complete_through") or "?") if held else "",
            ]
        table.add_row(*row)
    out.print(table)
    if inst is not None:
        out.print(
            f"data release {inst.release}, extracted {inst.extracted or 'on a day not stated'}"
        )


@app.command("show")
def catalog_show(
    register_id: Annotated[str, typer.Argument(metavar="ID")],
    catalog_dir: CatalogOpt = None,
    version: Annotated[int | None, typer.Option(help="An older published version.")] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one register: what it holds, its variables, its data release, how to use it.

    With `--server`: the entry a server's researchers see now (or `--version N`). Without:
    the bundled entries, the installation's (`--data`/`--config`) and those published to
    the store."""
    from antal.api import usecases as uc

    data_info: dict[str, Any] | None = None
    head: dict[str, Any] | None = None
    if server:
        with server_client(server, token) as c:
            if version is not None:
                head = c.catalog_version(register_id, version)
                body = head["entry"]
            else:
                body = c.register(register_id)
                data_info = c.register_data(register_id)
        reg = Register.model_validate(body)
    else:
        s = settings(data, config, store=store)
        with failing():
            inst = uc.open_installation(s) if (s.data or s.installation) else None
            cat = load_catalog(dirs=catalog_dir) if catalog_dir else uc.catalog_for(s, inst)
            if version is not None:
                st = uc.open_store(s, must_exist=True)
                from antal.api.accounts import CatalogEntries

                head = uc.entry_version(cat, CatalogEntries(st), register_id, version).to_json()
                found: Register | None = Register.model_validate(head["entry"])
            else:
                found = cat.register(register_id)
                data_info = uc.catalog_releases(cat, inst).get(register_id)
        if found is None:
            hint = suggest(register_id, cat.ids())
            fail(
                f"unknown register '{register_id}'"
                + (f" - did you mean '{hint}'?" if hint else f"; registers: {', '.join(cat.ids())}")
            )
        reg = found
    if as_json:
        doc: dict[str, Any] = {"entry": reg.model_dump(mode="json"), "data": data_info}
        if head is not None:
            doc["version"] = {k: v for k, v in head.items() if k != "entry"}
        out.print_json(json.dumps(doc, ensure_ascii=False))
        return
    if head is not None:
        out.print(
            f"[dim]version {head['version']}, published by {escape(head['published_by'])} "
            f"at {head['published']}: {escape(head['summary'])}[/]"
        )
    _print_register(reg, data_info)


def _print_register(reg: Register, data: dict[str, Any] | None) -> None:
    out.print(f"[bold]{reg.id}[/]  {escape(reg.title.sv)} / {escape(reg.title.en)}")
    out.print(
        f"holder: {escape(reg.holder)}    coverage: {reg.coverage.from_year}–{reg.coverage.to_year or 'ongoing'}"
        f"    updated: {escape(reg.update.frequency)} (lag {reg.update.lag_months} months)"
    )
    if data and data.get("held"):
        ext = data.get("extract") or {}
        out.print(
            f"data release: {data.get('release')}, extracted {data.get('extracted') or 'unknown'}"
            f"; extract {ext.get('start')} – {ext.get('through') or 'not stated'}"
            f"; final through {data.get('complete_through') or 'unknown'}"
        )
    elif data is not None:
        out.print("[dim]data release: this installation holds no data of it[/]")
    out.print(escape(reg.description.en))
    out.print(f"[dim]legal basis:[/] {escape(reg.legal_basis)}")
    out.print(f"[dim]access:[/] {escape(reg.access)}")
    out.print(f"[dim]population:[/] {escape(reg.population)}")
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


# the holder of this command line's local publishing: the operator of the store, like
# `antal admin` (a holder publishes to a server with --server and its own token)
LOCAL = "cli-admin"


@app.command("publish")
def catalog_publish(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The entry: .yaml, .yml or .json.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish a register's catalog entry as its next version.

    With `--server` (and your token): to that server, as its holder. Without: to the local
    store (`--store`), as its operator, checked against the installation's data
    (`--data`/`--config`). Either way the entry is checked against the data before it is
    accepted, and the new version says what changed."""
    from antal.api import usecases as uc

    if file.suffix.lower() not in (".yaml", ".yml", ".json"):
        fail(f"{file}: an entry is a .yaml, .yml or .json file")
    try:
        text = file.read_bytes()
    except OSError as e:
        fail(f"{file}: {e.strerror}")
    fmt = "json" if file.suffix.lower() == ".json" else "yaml"
    if server:
        with server_client(server, token) as c:
            v = c.publish_catalog_entry(file)
    else:
        from antal.api.accounts import CatalogEntries, User

        s = settings(data, config, store=store)
        with failing(prefix=f"{file}: "):
            inst = uc.open_installation(s)
            st = uc.open_store(s)
            cat = uc.open_catalog(inst, st)
            me = User(LOCAL, "command line", "admin", ())
            v = uc.publish_text(cat, CatalogEntries(st), inst, me, text, fmt).to_json()  # type: ignore[arg-type]
    if as_json:
        out.print_json(json.dumps(v, ensure_ascii=False))
        return
    out.print(
        f"{v['register']} version {v['version']} published by {escape(v['published_by'])} "
        f"at {v['published']}: {escape(v['summary'])}"
    )


@app.command("history")
def catalog_history(
    register_id: Annotated[str, typer.Argument(metavar="REGISTER")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The published versions of a register's entry: who, when and what changed."""
    from antal.api import usecases as uc

    if server:
        with server_client(server, token) as c:
            rows = c.catalog_versions(register_id).to_dict("records")
    else:
        from antal.api.accounts import CatalogEntries

        s = settings(store=store)
        with failing():
            st = uc.open_store(s, must_exist=True)
            cat = uc.catalog_for(s)
            rows = [
                v.to_json(with_entry=False)
                for v in uc.entry_versions(cat, CatalogEntries(st), register_id)
            ]
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        out.print(f"{register_id}: no published version (the catalog's files describe it)")
        return
    table = Table("version", "published by", "when", "what changed")
    for r in rows:
        table.add_row(str(r["version"]), r["published_by"], r["published"], r["summary"])
    out.print(table)


# the published side (issue 16): HealthDCAT-AP export and availability counts
from antal.api.cli import catalog_export  # noqa: E402 - registered after this module's commands

app.command("export")(catalog_export.export)
app.command("availability")(catalog_export.availability)
