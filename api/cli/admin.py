"""`antal admin ...`: users, tokens, projects, approvals and members of the one store."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from antal.api.cli.common import StoreOpt, err, failing, out, settings

if TYPE_CHECKING:
    from antal.api.accounts import Accounts
    from antal.privacy import Store

__all__ = ["app"]

app = typer.Typer(
    help="Users, tokens, projects and approvals of a service's store.", no_args_is_help=True
)
ACTOR = "cli-admin"


def _open(store: str | None) -> tuple[Store, Accounts]:
    from antal.api import usecases as uc
    from antal.api.accounts import Accounts

    s = settings(store=store)
    with failing():
        st = uc.open_store(s)
        return st, Accounts(st)
    raise AssertionError  # pragma: no cover - failing() exits


@app.command("create-user")
def admin_create_user(
    user_id: Annotated[str, typer.Argument(metavar="ID")],
    role: Annotated[str, typer.Option(help="researcher, holder or admin")] = "researcher",
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    registers: Annotated[
        list[str] | None, typer.Option("--register", help="A holder's own register (repeat).")
    ] = None,
    token: Annotated[bool, typer.Option(help="Also issue a token and print it.")] = True,
    store: StoreOpt = None,
) -> None:
    """Create a user (and print a bearer token for them, shown once)."""
    from antal.api import usecases as uc

    _st, acc = _open(store)
    with failing():
        uc.create_user(acc, user_id, name, role, tuple(registers or ()), actor=ACTOR)
        err.print(f"user {user_id} ({role}) created")
        if token:
            sys.stdout.write(uc.issue_token(acc, user_id, actor=ACTOR) + "\n")


@app.command("create-token")
def admin_create_token(
    user_id: Annotated[str, typer.Argument(metavar="USER")], store: StoreOpt = None
) -> None:
    """Issue a new bearer token for a user (printed once; only its hash is stored)."""
    from antal.api import usecases as uc

    _st, acc = _open(store)
    with failing():
        sys.stdout.write(uc.issue_token(acc, user_id, actor=ACTOR) + "\n")


@app.command("revoke-tokens")
def admin_revoke_tokens(
    user_id: Annotated[str, typer.Argument(metavar="USER")], store: StoreOpt = None
) -> None:
    """Revoke every token of a user (audited); the user and their memberships stay."""
    from antal.api import usecases as uc

    _st, acc = _open(store)
    with failing():
        n = uc.revoke_tokens(acc, user_id, actor=ACTOR)
    out.print(f"{n} token(s) of {user_id} revoked")


@app.command("create-project")
def admin_create_project(
    project_id: Annotated[str, typer.Argument(metavar="ID")],
    purpose: Annotated[str, typer.Option(help="forskning or kommersiell")] = "forskning",
    budget: Annotated[
        float, typer.Option(help="Total ε, as the data-access approval says.")
    ] = 10.0,
    title: Annotated[str | None, typer.Option(help="Title.")] = None,
    registers: Annotated[
        list[str] | None, typer.Option("--register", help="An approved register (repeat).")
    ] = None,
    member: Annotated[list[str] | None, typer.Option(help="A member user (repeat).")] = None,
    store: StoreOpt = None,
) -> None:
    """Create a project with its purpose, ε budget, approved registers and members."""
    from antal.api import usecases as uc

    st, acc = _open(store)
    with failing():
        uc.create_project(
            st, acc, uc.catalog_for(settings(store=store)), project_id, title, purpose, budget,
            tuple(registers or ()), tuple(member or ()), actor=ACTOR,
        )  # fmt: skip
    out.print(
        f"project {project_id} created: {purpose}, ε {budget:g}, registers {', '.join(registers or ()) or '-'}"
    )


@app.command("set-budget")
def admin_set_budget(
    project: Annotated[str, typer.Argument(help="The project.")],
    epsilon: Annotated[float, typer.Argument(help="Its new total ε (not below what it spent).")],
    store: StoreOpt = None,
) -> None:
    """Raise (or lower, never below what it spent) a project's total ε budget; audited with
    the old and the new budget."""
    from antal.api import usecases as uc

    st, _ = _open(store)
    with failing():
        p = uc.set_budget(st, project, epsilon, actor="admin")
    out.print(f"project {p.id}: budget ε {p.budget:g}, spent ε {p.spent:g}, left ε {p.left:g}")


@app.command("approve")
def admin_approve(
    project_id: Annotated[str, typer.Argument(metavar="PROJECT")],
    registers: Annotated[list[str], typer.Argument(metavar="REGISTER...")],
    store: StoreOpt = None,
) -> None:
    """Approve a project for these registers too (those it has stay; `revoke` removes)."""
    from antal.api import usecases as uc

    st, _acc = _open(store)
    with failing():
        p = uc.approve_registers(
            st, uc.catalog_for(settings(store=store)), project_id, tuple(registers), actor=ACTOR
        )
    out.print(f"project {project_id} approved for {', '.join(p.registers) or '-'}")


@app.command("revoke")
def admin_revoke(
    project_id: Annotated[str, typer.Argument(metavar="PROJECT")],
    registers: Annotated[list[str], typer.Argument(metavar="REGISTER...")],
    store: StoreOpt = None,
) -> None:
    """Withdraw a project's approval for these registers."""
    from antal.api import usecases as uc

    st, _acc = _open(store)
    with failing():
        p = uc.revoke_registers(st, project_id, tuple(registers), actor=ACTOR)
    out.print(f"project {project_id} approved for {', '.join(p.registers) or '-'}")


@app.command("add-member")
def admin_add_member(
    project_id: Annotated[str, typer.Argument(metavar="PROJECT")],
    user_id: Annotated[str, typer.Argument(metavar="USER")],
    store: StoreOpt = None,
) -> None:
    """Make a user a member of a project."""
    from antal.api import usecases as uc

    _st, acc = _open(store)
    with failing():
        uc.add_member(acc, project_id, user_id, actor=ACTOR)
    out.print(f"{user_id} is a member of {project_id}")
