"""The `antal` command line, one module per command group; `app` is the console script.

Each command only translates: it reads its options and the one settings model
(`antal.api.settings`), calls a use case (`antal.api.usecases`) and prints the result, or
maps a typed error to a message and an exit code (`antal.api.cli.common.failing`): never
a traceback."""

# ruff: noqa: E402 - the collector is switched off before the imports below (see there)
from __future__ import annotations

import gc

# Importing the command line creates tens of thousands of objects that live as long as
# the process (modules, classes, functions); the cyclic garbage collector, triggered by
# their very allocation, scanned them again and again while they were made (about a
# tenth of `antal check`'s CPU, one full collection of 30 ms among them). It is off while
# they are made, then they are frozen (never scanned again: they are never garbage) and
# it is on again for whatever the command does, collecting the youngest objects after
# 10,000 allocations instead of 700: a command's own imports (the engine, sqlglot's
# dialect, DuckDB, the settings) make as many again, and at 700 set off a full
# collection of them before the first row is read. Only cyclic garbage waits for it.
_collecting = gc.isenabled()
gc.disable()

from collections.abc import Callable, Iterator
from typing import Any, get_type_hints

import typer

from antal.api.cli import admin, audit, catalog, data, holder, receipt
from antal.api.cli.cohorts import check_cmd, sql_cmd
from antal.api.cli.count import count_cmd
from antal.api.cli.forecast import forecast_cmd
from antal.api.cli.loadpg import load_postgres_cmd
from antal.api.cli.plan import plan_cmd
from antal.api.cli.prepare import prepare_cmd
from antal.api.cli.report import report_cmd
from antal.api.cli.serve import serve
from antal.api.cli.synth import synth
from antal.api.federation.cli import hub_app, node_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="antal",
    help="Feasibility counts (antalsberäkning) over Swedish health registers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("synth")(synth)
app.add_typer(catalog.app, name="catalog")
app.add_typer(holder.app, name="holder")
app.command("check")(check_cmd)
app.command("sql")(sql_cmd)
app.command("count")(count_cmd)
app.command("report")(report_cmd)
app.command("forecast")(forecast_cmd)
app.command("plan")(plan_cmd)
app.add_typer(audit.app, name="audit")
app.add_typer(receipt.app, name="receipt")
app.add_typer(admin.app, name="admin")
app.add_typer(data.app, name="data")
app.command("prepare")(prepare_cmd)
app.command("load-postgres")(load_postgres_cmd)
app.command("serve")(serve)
app.add_typer(hub_app, name="hub")
app.add_typer(node_app, name="node")


def _callbacks(t: typer.Typer) -> Iterator[Callable[..., Any]]:
    for command in t.registered_commands:
        if command.callback is not None:
            yield command.callback
    if t.registered_callback is not None and t.registered_callback.callback is not None:
        yield t.registered_callback.callback
    for group in t.registered_groups:
        if group.typer_instance is not None:
            yield from _callbacks(group.typer_instance)


# The command modules' annotations are strings (`from __future__ import annotations`), and
# typer evaluates each of them twice (a signature and its type hints) for every command, on
# every run, for the one command it runs: a tenth of `antal check`'s time to its command.
# Evaluated once here, they are what typer reads, the same objects either way.
for _callback in _callbacks(app):
    _callback.__annotations__ = get_type_hints(_callback, include_extras=True)

gc.freeze()
gc.set_threshold(10_000)
if _collecting:
    gc.enable()


def main() -> None:  # pragma: no cover - console script entry
    app()
