"""The `antal` command line.

Errors are printed as messages (cohort errors like a compiler: file:line:col with
the line and a caret) with a non-zero exit; never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from antal import catalog as cat_mod
from antal.catalog import CatalogError, Installation, load_installation
from antal.catalog.vocabulary import DIALECTS, PURPOSES, ROLES
from antal.privacy.errors import NotFound, PrivacyError, UnknownUser

app = typer.Typer(
    name="antal",
    help="Feasibility counts (antalsberäkning) over Swedish health registers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="The catalog of registers.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
data_app = typer.Typer(help="The installation's extracts.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def _load_catalog(dirs: list[Path] | None = None) -> cat_mod.Catalog:
    try:
        return cat_mod.load_catalog(cat_mod.bundled_dir(), *(dirs or []))
    except CatalogError as e:
        _fail(str(e))
        raise


def _installation(data: Path | None, config: Path | None) -> Installation:
    if data and config:
        _fail("give either --data or --config, not both")
    try:
        if config:
            return load_installation(config)
        if data:
            return Installation.from_data_dir(data)
    except (CatalogError, FileNotFoundError) as e:
        _fail(str(e))
    _fail("say where the extracts are: --data DIR (canonical Parquet files) or --config FILE")
    raise AssertionError


def _read_cohort(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(f"{path}: no such file")
    except UnicodeDecodeError:
        _fail(f"{path}: not UTF-8 text")
    except OSError as e:
        _fail(f"{path}: {e.strerror}")
    raise AssertionError


def _check_data(inst: Installation, catalog: cat_mod.Catalog, registers: set[str] | None) -> None:
    """Refuse extracts that fail the data check (findings name files and columns, no values)."""
    from rich.markup import escape

    from antal.engine.datacheck import check_data, format_findings

    findings = check_data(inst, catalog, registers)
    if findings:  # file names may hold [brackets]: shown as they are, not as markup
        _fail(
            f"the extracts fail the data check ({len(findings)} problem(s)):\n"
            + escape(format_findings(findings))
        )


# ---- synth ------------------------------------------------------------------------------


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the extracts to.")],
    persons: Annotated[int, typer.Option(min=1, help="Number of persons.")] = 100_000,
    seed: Annotated[
        int, typer.Option(help="Random seed; same seed and size give identical files.")
    ] = 1,
) -> None:
    """Generate synthetic, Swedish-shaped register extracts (one Parquet file per register)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from antal.synthetic import generate

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task("persons", total=persons)
        rows = generate(persons, seed, out_dir, progress=lambda n: bar.update(task, completed=n))
    table = Table("register", "rows", title=f"Synthetic extracts in {out_dir}")
    for rid, n in rows.items():
        table.add_row(rid, f"{n:,}".replace(",", " "))
    out.print(table)


# ---- catalog ----------------------------------------------------------------------------


@catalog_app.command("list")
def catalog_list(
    catalog_dir: Annotated[
        list[Path] | None, typer.Option("--catalog", help="Extra directory of entries.")
    ] = None,
) -> None:
    """List the registers in the catalog."""
    cat = _load_catalog(catalog_dir)
    table = Table("id", "register", "holder", "coverage", "events")
    for reg in cat.registers.values():
        cov = f"{reg.coverage.from_year}–{reg.coverage.to_year or ''}"
        events = ", ".join(sorted({p.event for p in reg.provides})) or (
            "where ..." if reg.date_column else "-"
        )
        table.add_row(reg.id, reg.title.en, reg.holder, cov, events)
    out.print(table)


@catalog_app.command("show")
def catalog_show(
    register_id: Annotated[str, typer.Argument(metavar="ID")],
    catalog_dir: Annotated[
        list[Path] | None, typer.Option("--catalog", help="Extra directory of entries.")
    ] = None,
) -> None:
    """Show one register: what it holds, its variables and how to use it."""
    cat = _load_catalog(catalog_dir)
    reg = cat.register(register_id)
    if reg is None:
        hint = cat_mod.suggest(register_id, cat.ids())
        _fail(
            f"unknown register '{register_id}'"
            + (f" - did you mean '{hint}'?" if hint else f"; registers: {', '.join(cat.ids())}")
        )
        return
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


# ---- cohorts ----------------------------------------------------------------------------


def _checked(path: Path, catalog: cat_mod.Catalog):  # -> tuple[text, checked IR]
    from antal.engine import CohortError, check, parse

    text = _read_cohort(path)
    try:
        return text, check(parse(text), catalog)
    except CohortError as e:
        err.print(e.format(str(path), text), soft_wrap=True, markup=False)
        raise typer.Exit(1) from None


@app.command("check")
def check_cmd(
    file: Annotated[Path, typer.Argument(help="A .cohort file.")],
    catalog_dir: Annotated[
        list[Path] | None, typer.Option("--catalog", help="Extra directory of entries.")
    ] = None,
) -> None:
    """Parse and check a cohort against the catalog; print errors like a compiler."""
    cat = _load_catalog(catalog_dir)
    _, co = _checked(file, cat)
    from antal.engine import ir

    out.print(f"{file}: ok ({len(co.steps)} steps, query {ir.ir_hash(co)[:12]})")


@app.command("sql")
def sql_cmd(
    file: Annotated[Path, typer.Argument(help="A .cohort file.")],
    dialect: Annotated[str, typer.Option(help="duckdb, postgres or spark.")] = "duckdb",
    purpose: Annotated[
        str, typer.Option(help="forskning or kommersiell (which opt-outs apply).")
    ] = "forskning",
    catalog_dir: Annotated[
        list[Path] | None, typer.Option("--catalog", help="Extra directory of entries.")
    ] = None,
) -> None:
    """Print the one SQL statement a cohort compiles to. No data is read."""
    from antal.engine import compile_cohort

    if dialect not in DIALECTS:
        _fail(f"unknown dialect '{dialect}'; choose {', '.join(DIALECTS)}")
    if purpose not in PURPOSES:
        _fail(f"purpose is one of {', '.join(PURPOSES)}")
    cat = _load_catalog(catalog_dir)
    _, co = _checked(file, cat)
    optout = cat.optout.id if cat.optout else None
    sys.stdout.write(
        compile_cohort(co, cat, purpose=purpose, optout=optout).sql(dialect, pretty=True) + ";\n"
    )


def _default_store() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("antal")) / "store.sqlite"


def _fmt(n: int | None) -> str:
    return "" if n is None else f"{n:,}".replace(",", " ")


@app.command("count")
def count_cmd(
    file: Annotated[Path, typer.Argument(help="A .cohort file.")],
    data: Annotated[
        Path | None, typer.Option(help="Directory of canonical Parquet extracts.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Installation config (YAML).")] = None,
    exact: Annotated[
        bool,
        typer.Option("--exact", help="True counts: only for a data holder on their own extract."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    purpose: Annotated[
        str,
        typer.Option(
            help="forskning or kommersiell: which opt-outs apply (--exact and new projects)."
        ),
    ] = "forskning",
    store: Annotated[Path | None, typer.Option(help="Local privacy store (SQLite).")] = None,
    project: Annotated[str, typer.Option(help="Local project to charge.")] = "local",
    budget: Annotated[float | None, typer.Option(help="Total ε of a new local project.")] = None,
) -> None:
    """Count a cohort: released through the privacy layer, or --exact for a data holder."""
    from antal.engine import EngineError, count_exact, get_backend

    if purpose not in PURPOSES:
        _fail(f"purpose is one of {', '.join(PURPOSES)}")
    inst = _installation(data, config)
    cat = _load_catalog(list(inst.catalog_dirs))
    _text, co = _checked(file, cat)
    title = co.title or file.name
    from antal.engine import compile_cohort

    # the registers this cohort reads (the check adds the population and the opt-outs)
    _check_data(inst, cat, set(compile_cohort(co, cat).registers))
    if exact:
        try:
            res = count_exact(co, inst, cat, purpose=purpose)
        except EngineError as e:
            _fail(str(e))
            return
        if as_json:
            sys.stdout.write(json.dumps(res.to_json(), ensure_ascii=False, default=str) + "\n")
            return
        table = Table(
            "step", "label", "count", title=f"{title} — exact counts (holder's local mode)"
        )
        for i, (label, n) in enumerate(res.attrition):
            table.add_row(str(i), label, _fmt(n))
        out.print(table)
        if res.dims:
            bt = Table(*res.dims, "count", title="Breakdown of the final cohort")
            for row in res.breakdown:
                bt.add_row(*(str(row[d]) for d in res.dims), _fmt(row["count"]))
            out.print(bt)
        return

    from antal.api.release import BreakdownTooFine, count_released
    from antal.privacy import CountFailed, Gate, PrivacyError, PrivacyParams, open_store

    try:
        params = PrivacyParams(**inst.privacy)  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        _fail(f"privacy settings of the installation: {e}")
        return
    st = open_store(store or _default_store())
    if st.project(project) is None:
        st.create_project(
            project,
            f"local project {project}",
            purpose,
            budget or params.default_budget,
            actor="cli",
        )
    backend = get_backend("duckdb", inst, cat)
    try:
        answer = count_released(co, inst, cat, Gate(st, params), project, "cli", backend)
    except CountFailed as e:  # charged; the same text whatever failed (see privacy.gate)
        _fail(f"{e}; budget left ε {e.left:g} (project {project})", code=4)
        return
    except PrivacyError as e:
        _fail(str(e), code=3)
        return
    except (EngineError, BreakdownTooFine) as e:
        _fail(str(e))
        return
    finally:
        backend.close()
    if as_json:
        sys.stdout.write(json.dumps(answer.to_json(), ensure_ascii=False, default=str) + "\n")
        return
    table = Table("step", "label", "count", "95% interval", title=title)
    for i, (label, c) in enumerate(zip(answer.labels, answer.steps, strict=True)):
        table.add_row(
            str(i), label, c.shown(), "" if c.suppressed else f"{_fmt(c.low)}–{_fmt(c.high)}"
        )
    out.print(table)
    if answer.dims:
        if answer.all_cells_suppressed:
            out.print(
                f"Breakdown by {', '.join(answer.dims)}: every cell is below {answer.params['threshold']}; none can be shown."
            )
        else:
            bt = Table(*answer.dims, "count", "95% interval", title="Breakdown of the final cohort")
            for key, c in answer.cells:
                if not c.suppressed:
                    bt.add_row(
                        *("unknown" if v is None else str(v) for v in key),
                        c.shown(),
                        f"{_fmt(c.low)}–{_fmt(c.high)}",
                    )
            hidden = sum(1 for _, c in answer.cells if c.suppressed)
            out.print(bt)
            if hidden:
                out.print(
                    f"{hidden} more cells are below {answer.params['threshold']} (shown as <{answer.params['threshold']})."
                )
    note = (
        "stored answer, nothing charged"
        if answer.stored
        else f"ε charged {answer.epsilon_charged:g}"
    )
    out.print(
        f"{note}; budget left ε {answer.budget_left:g} (project {project}); noise: discrete Laplace, "
        f"ε {answer.params['epsilon']:g} per release, counts below {answer.params['threshold']} shown as <{answer.params['threshold']}"
    )
    out.print(f"receipt: query {answer.query_hash[:16]}, data release {answer.release}")


audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    store: Annotated[
        str | None, typer.Option(help="The store: a SQLite path or postgresql:// URL.")
    ] = None,
) -> None:
    """Check the audit log's hash chain and the budget ledger; exit 1 on any problem."""
    from antal.privacy import open_store

    st = open_store(store or _default_store())
    problems = st.verify_audit() + st.ledger_problems()
    if problems:
        for p in problems:
            err.print(f"[bold red]audit:[/] {p}")
        raise typer.Exit(1)
    out.print(f"audit log intact: {len(st.audit_entries())} entries; ledger consistent")


admin_app = typer.Typer(
    help="Users, tokens, projects and approvals of a service's store.", no_args_is_help=True
)
app.add_typer(admin_app, name="admin")
_STORE_HELP = "The service's store: SQLite path or postgresql:// URL (default: ANTAL_STORE, else the user data dir)."


def _admin_store(store: str | None):
    import os

    from antal.api.accounts import Accounts
    from antal.api.settings import _default_store
    from antal.privacy import open_store

    st = open_store(store or os.environ.get("ANTAL_STORE") or _default_store())
    return st, Accounts(st)


@admin_app.command("create-user")
def admin_create_user(
    user_id: Annotated[str, typer.Argument(metavar="ID")],
    role: Annotated[str, typer.Option(help="researcher, holder or admin")] = "researcher",
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    registers: Annotated[
        list[str] | None, typer.Option("--register", help="A holder's own register (repeat).")
    ] = None,
    token: Annotated[bool, typer.Option(help="Also issue a token and print it.")] = True,
    store: Annotated[str | None, typer.Option(help=_STORE_HELP)] = None,
) -> None:
    """Create a user (and print a bearer token for them, shown once)."""
    import re

    if role not in ROLES:
        _fail(f"role is one of {', '.join(ROLES)}")
    if not re.match(r"^[a-z0-9][a-z0-9_.-]{0,62}$", user_id):
        _fail("a user id is lower-case letters, digits, '.', '_' and '-'")
    _st, acc = _admin_store(store)
    try:
        acc.create_user(user_id, name or user_id, role, tuple(registers or ()), actor="cli-admin")  # type: ignore[arg-type]
    except PrivacyError as e:
        _fail(str(e))
    err.print(f"user {user_id} ({role}) created")
    if token:
        sys.stdout.write(acc.issue_token(user_id, actor="cli-admin") + "\n")


@admin_app.command("create-token")
def admin_create_token(
    user_id: Annotated[str, typer.Argument(metavar="USER")],
    store: Annotated[str | None, typer.Option(help=_STORE_HELP)] = None,
) -> None:
    """Issue a new bearer token for a user (printed once; only its hash is stored)."""
    _st, acc = _admin_store(store)
    try:
        sys.stdout.write(acc.issue_token(user_id, actor="cli-admin") + "\n")
    except UnknownUser as e:
        _fail(str(e))


@admin_app.command("create-project")
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
    store: Annotated[str | None, typer.Option(help=_STORE_HELP)] = None,
) -> None:
    """Create a project with its purpose, ε budget, approved registers and members."""
    import re

    if not re.match(r"^[a-z0-9][a-z0-9_-]{0,62}$", project_id):
        _fail("a project id is lower-case letters, digits, '_' and '-'")
    cat = _load_catalog()
    unknown = sorted(set(registers or ()) - set(cat.ids()))
    if unknown:
        _fail(f"unknown register(s) {', '.join(unknown)}")
    st, acc = _admin_store(store)
    try:
        st.create_project(
            project_id,
            title or project_id,
            purpose,
            budget,
            tuple(registers or ()),
            actor="cli-admin",
        )
        for m in member or ():
            acc.add_member(project_id, m, actor="cli-admin")
    except PrivacyError as e:
        _fail(str(e))
    out.print(
        f"project {project_id} created: {purpose}, ε {budget:g}, registers {', '.join(registers or ()) or '-'}"
    )


@admin_app.command("approve")
def admin_approve(
    project_id: Annotated[str, typer.Argument(metavar="PROJECT")],
    registers: Annotated[list[str], typer.Argument(metavar="REGISTER...")],
    store: Annotated[str | None, typer.Option(help=_STORE_HELP)] = None,
) -> None:
    """Set the registers a project is approved for."""
    cat = _load_catalog()
    unknown = sorted(set(registers) - set(cat.ids()))
    if unknown:
        _fail(f"unknown register(s) {', '.join(unknown)}")
    st, _acc = _admin_store(store)
    if st.project(project_id) is None:
        _fail(f"no project {project_id!r}")
    st.set_registers(project_id, tuple(registers), actor="cli-admin")
    out.print(f"project {project_id} approved for {', '.join(sorted(registers))}")


@admin_app.command("add-member")
def admin_add_member(
    project_id: Annotated[str, typer.Argument(metavar="PROJECT")],
    user_id: Annotated[str, typer.Argument(metavar="USER")],
    store: Annotated[str | None, typer.Option(help=_STORE_HELP)] = None,
) -> None:
    """Make a user a member of a project."""
    _st, acc = _admin_store(store)
    try:
        acc.add_member(project_id, user_id, actor="cli-admin")
    except NotFound as e:
        _fail(str(e))
    out.print(f"{user_id} is a member of {project_id}")


@data_app.command("check")
def data_check(
    data: Annotated[
        Path | None, typer.Option(help="Directory of canonical Parquet extracts.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Installation config (YAML).")] = None,
) -> None:
    """Check the extracts against the catalog: files, columns, types, keys, dates, codes."""
    inst = _installation(data, config)
    cat = _load_catalog(list(inst.catalog_dirs))
    _check_data(inst, cat, None)
    out.print(f"data check passed: {len(inst.sources)} registers, data release {inst.release}")


@app.command()
def serve(
    config: Annotated[
        Path | None, typer.Option(help="Service config (YAML); ANTAL_* variables win over it.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Directory of canonical Parquet extracts.")
    ] = None,
    installation: Annotated[Path | None, typer.Option(help="Installation config (YAML).")] = None,
    store: Annotated[str | None, typer.Option(help="SQLite path or postgresql:// URL.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
) -> None:
    """Run the HTTP API (uvicorn): DuckDB over the extracts, a SQLite store by default."""
    import uvicorn
    from pydantic import ValidationError

    from antal.api.app import create_app
    from antal.api.settings import load_settings
    from antal.engine import EngineError

    try:
        settings = load_settings(
            config, data=data, installation=installation, store=store, host=host, port=port
        )
        application = create_app(settings)
    except (ValidationError, ValueError, CatalogError, FileNotFoundError, EngineError) as e:
        _fail(f"cannot start: {e}")
        return
    err.print(
        f"antal: data release {application.state.antal.installation.release} "
        f"on http://{settings.host}:{settings.port} (OpenAPI: /openapi.json, docs: /docs)"
    )
    uvicorn.run(application, host=settings.host, port=settings.port, log_level="warning")


def main() -> None:  # pragma: no cover - console script entry
    app()
