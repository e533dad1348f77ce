"""`antal audit verify`: the audit log's hash chain, its signed heads, the anchor file and
the budget ledger (read-only: a store that does not exist is an error, never created and
reported intact; no key or anchor is made either)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from antal.api.cli.common import StoreOpt, err, failing, out, settings

__all__ = ["app"]

app = typer.Typer(help="The audit log.", no_args_is_help=True)

AnchorOpt = Annotated[
    Path | None,
    typer.Option(
        "--anchor",
        help="Check the log against this copy of the audit anchor (one shipped elsewhere); "
        "default: the installation's anchor (setting audit_anchor, else beside the store).",
    ),
]


@app.command("verify")
def audit_verify(store: StoreOpt = None, anchor: AnchorOpt = None) -> None:
    """Check the audit log's hash chain, each entry's signature (the installation's key),
    the log against its anchor, and the budget ledger; exit 1 on any problem."""
    from antal.api import usecases as uc

    s = settings(store=store)
    with failing():
        st = uc.open_store(s, must_exist=True)
        found = uc.verify_audit(st, uc.installation_public_key(s), anchor)
    for note in found.notes:
        err.print(f"[bold]audit note:[/] {escape(note)}", soft_wrap=True)
    if found.problems:
        for p in found.problems:
            err.print(f"[bold red]audit:[/] {escape(p)}", soft_wrap=True)
        raise typer.Exit(1)
    out.print(
        f"audit log intact: {found.entries} entries, {found.signed} signed; ledger consistent "
        f"({s.store})",
        soft_wrap=True,
        markup=False,
    )
