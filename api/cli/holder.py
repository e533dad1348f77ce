"""`antal holder overview`: a registry holder's view of its registers: the projects approved
for each, their purposes, the ε they spent on queries reading it, and the audit entries
touching it (never an answer)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from antal.api.cli.catalog import JsonOpt, ServerOpt, TokenOpt, server_client
from antal.api.cli.common import StoreOpt, failing, out, settings

__all__ = ["app"]

app = typer.Typer(help="A registry holder's view of its registers.", no_args_is_help=True)


@app.command("overview")
def holder_overview(
    register_id: Annotated[
        str | None, typer.Argument(metavar="[REGISTER]", help="One of your registers.")
    ] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest audit entries shown.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """For each of your registers: approved projects and their purposes, the ε they spent
    on queries reading it, and the newest audit entries touching it.

    With `--server` and a holder's token: that holder's registers on the server. Without:
    every register of the local store (its operator's view)."""
    from antal.api import usecases as uc

    if server:
        with server_client(server, token) as c:
            rows: list[dict[str, Any]] = c.holder_overview(register_id)
    else:
        from antal.api.accounts import User

        s = settings(store=store)
        with failing():
            st = uc.open_store(s, must_exist=True)
            cat = uc.catalog_for(s)
            me = User("cli-admin", "command line", "admin", ())
            rows = uc.holder_overview(st, cat, me, register_id, limit=limit)
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        out.print(
            f"[bold]{r['register']}[/]  {escape(r.get('title') or '')}: ε {r['epsilon_spent']:g} "
            f"spent on it, {r['audit_entries']} audit entries"
        )
        if r["projects"]:
            t = Table("project", "purpose", "title", "approved", "ε spent", "queries")
            for p in r["projects"]:
                t.add_row(p["id"], p["purpose"] or "", escape(p["title"] or ""),
                          "yes" if p["approved"] else "no", f"{p['epsilon_spent']:g}",
                          str(p["queries"]))  # fmt: skip
            out.print(t)
        else:
            out.print("[dim]no project is approved for it[/]")
        for e in r["audit"][-limit:]:
            out.print(
                f"  [dim]{e['seq']:>6} {e['ts'][:19]}[/] {escape(e['actor'])} "
                f"{escape(e['project_id'] or '-')} {e['action']} ε {e['epsilon']:g}",
                soft_wrap=True,
            )
