"""`antal audit verify`: the audit log's hash chain and the budget ledger (read-only: a
store that does not exist is an error, never created and reported intact)."""

from __future__ import annotations

import typer

from antal.api.cli.common import StoreOpt, err, failing, out, settings

__all__ = ["app"]

app = typer.Typer(help="The audit log.", no_args_is_help=True)


@app.command("verify")
def audit_verify(store: StoreOpt = None) -> None:
    """Check the audit log's hash chain and the budget ledger; exit 1 on any problem."""
    from antal.api import usecases as uc

    s = settings(store=store)
    with failing():
        entries, problems = uc.verify_audit(uc.open_store(s, must_exist=True))
    if problems:
        for p in problems:
            err.print(f"[bold red]audit:[/] {p}", markup=True)
        raise typer.Exit(1)
    out.print(f"audit log intact: {entries} entries; ledger consistent ({s.store})", soft_wrap=True)
