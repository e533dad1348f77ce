"""`antal count FILE`: released through the privacy layer (charged to a local project in
the one store), `--quote` for what that would cost (nothing read or charged), or `--exact`
for a data holder on their own extract."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from antal.api.cli.common import (
    BudgetOpt,
    ConfigOpt,
    DataOpt,
    ProjectOpt,
    PurposeOpt,
    StoreOpt,
    checked,
    fail,
    failing,
    local_release,
    out,
    settings,
)
from antal.privacy.noise import describe_noise

if TYPE_CHECKING:
    from antal.engine import Currency
    from antal.privacy import Answer, Quote

__all__ = ["count_cmd"]


def _fmt(n: int | None) -> str:
    return "" if n is None else f"{n:,}".replace(",", " ")


def count_cmd(
    file: Annotated[Path, typer.Argument(help="A .cohort file.")],
    data: DataOpt = None,
    config: ConfigOpt = None,
    exact: Annotated[
        bool,
        typer.Option("--exact", help="True counts: only for a data holder on their own extract."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    quote: Annotated[
        bool,
        typer.Option(
            "--quote",
            help="Say what the count would cost the project (0 if its answer is stored) and "
            "the budget left after; no data read, nothing charged or released.",
        ),
    ] = False,
    purpose: PurposeOpt = None,
    store: StoreOpt = None,
    project: ProjectOpt = "local",
    budget: BudgetOpt = None,
) -> None:
    """Count a cohort: released through the privacy layer, or --exact for a data holder."""
    from antal.api import usecases as uc

    s = settings(data, config, store=store)
    with failing():
        inst = uc.open_installation(s)
        cat = uc.catalog_for(s, inst)
    _text, v = checked(file, cat, inst, warn=not as_json)  # --json: in the JSON
    assert v.checked is not None
    title = v.checked.title or file.name
    if quote:
        if exact:
            fail("--quote says what a released count costs; --exact charges nothing")
        with failing(project):
            q = uc.quote_local(v.checked, inst, cat, s, project, purpose, budget)
        if as_json:
            sys.stdout.write(json.dumps(q.to_json(), ensure_ascii=False) + "\n")
        else:
            _print_quote(q, title)
        return
    with failing():
        # the registers this cohort reads (the check adds the population and the opt-outs)
        uc.check_data(inst, cat, set(v.registers), before_count=True)
    if exact:
        if budget is not None:
            fail("--budget is a project's ε: it does not apply to --exact, which charges nothing")
        with failing():
            backend = uc.open_backend(s, inst, cat, time_budget=False)
            try:
                res = uc.count_exact(v.checked, inst, cat, backend, purpose or "forskning")
            finally:
                backend.close()
        if as_json:
            body = {**res.to_json(), "warnings": [w.to_json() for w in v.warnings],
                    "data_currency": v.currency.to_json() if v.currency else None}  # fmt: skip
            sys.stdout.write(json.dumps(body, ensure_ascii=False, default=str) + "\n")
            return
        table = Table(
            "step", "label", "count", title=f"{title} — exact counts (holder's local mode)"
        )
        for i, (label, n) in enumerate(res.attrition):
            table.add_row(str(i), label, _fmt(n))
        out.print(table)
        from antal.engine import ir

        if isinstance(v.checked.index, ir.IndexEvent) and v.checked.index.episodes:
            out.print(episodes_note(ir.contribution(v.checked.index)))
        for t in res.tables:
            bt = Table(
                *t.dims, "count", title=f"Breakdown of the final cohort by {', '.join(t.dims)}"
            )
            for row in t.rows(res.names):
                bt.add_row(*(_shown(row, d) for d in t.dims), _fmt(row["count"]))
            out.print(bt)
        _print_currency(v.currency)
        return

    with failing(project), local_release(s, inst, cat, project, purpose, budget) as (gate, be):
        answer = uc.count_released(v.checked, inst, cat, gate, project, "cli", be)
    if as_json:
        sys.stdout.write(json.dumps(answer.to_json(), ensure_ascii=False, default=str) + "\n")
        return
    _print_answer(answer.answer, title, project)
    _print_currency(answer.currency)


def _print_quote(q: Quote, title: str) -> None:
    if q.stored:
        cost = "nothing: its answer is stored (project asked it before)"
    else:
        cost = f"ε {q.epsilon:g}"
    out.print(f"{title}: would cost {cost}; budget left ε {q.budget_left:g}, after ε "
              f"{q.budget_left_after:g} (project {q.project}). Nothing was read or charged.")  # fmt: skip
    if q.asks_left is not None and q.affordable:
        each = (f"ε {q.full_price:g} each" if q.rho_full is None else
                f"ρ {q.rho_full:.3g} each; in ε the first costs {q.full_price:.3g}, each later one less")  # fmt: skip
        out.print(f"After it, the budget allows {q.asks_left} more asks of this shape ({each}).")
    if not q.affordable:
        out.print(
            f"The budget left is too small: the count would be refused (ε {q.epsilon:g} needed). "
            "A new project for a new study question, or an admin raising this project's "
            f"budget (`antal admin set-budget {q.project} EPSILON`, audited), opens the way."
        )


def _print_currency(currency: Currency | None) -> None:
    """Data currency under the counts: how far each register's data reach, how final."""
    if currency is None:
        return
    t = Table("register", "extract", "complete through", "lag", "known gaps",
              title=f"Data currency: release {currency.release or 'unknown'}, extracted "
              f"{currency.extracted or 'unknown'}")  # fmt: skip
    for rid in sorted(currency.registers):
        r = currency.registers[rid]
        gaps = "; ".join(
            f"{p.start or '…'}–{p.until or '…'}" + (f" ({p.note})" if p.note else "")
            for p in r.incomplete
        )
        t.add_row(rid, f"{r.start} – {r.through or 'unknown'}", str(r.complete_through or "unknown"),
                  f"{r.lag_months} months" + (" after year end" if r.finalised == "yearly" else ""),
                  gaps)  # fmt: skip
    out.print(t)


def _shown(row: dict[str, Any], dim: str) -> str:
    """A cell's value as a table shows it: its name and code (`Örebro län (18)`), an age
    band as `60–69`, `unknown` for an unknown value."""
    v, name = row[dim], row.get(f"{dim}_name")
    if v is None:
        return "unknown"
    if name is None or name == str(v):
        return str(v)
    if dim.startswith("age_") or dim in ("month", "quarter"):
        return name
    return f"{name} ({v})"


def _print_answer(answer: Answer, title: str, project: str) -> None:
    from antal.api.answerview import site_mark_words

    table = Table("step", "label", "count", "95% interval", title=title)
    for i, (label, c) in enumerate(zip(answer.labels, answer.steps, strict=True)):
        table.add_row(
            str(i), label, c.shown(), "" if c.suppressed else f"{_fmt(c.low)}–{_fmt(c.high)}"
        )
    out.print(table)
    threshold = answer.params["threshold"]
    for t in answer.tables:
        by = ", ".join(t.dims)
        if all(c.suppressed for _, c in t.cells):
            out.print(f"Breakdown by {by}: every cell is below {threshold}; none can be shown.")
            continue
        title = f"Breakdown of the final cohort by {by}" + (" (roll-up level)" if t.level else "")
        rows = answer.rows(t.dims, t.cells)  # a site table's with its marks
        marked = any(r.get("near_threshold") or r.get("rank_uncertain") for r in rows)
        heads = (*t.dims, "count", "95% interval", *(("read with care",) if marked else ()))
        bt = Table(*heads, title=title)
        for (_key, c), row in zip(t.cells, rows, strict=True):
            if not c.suppressed:
                care = ("; ".join(site_mark_words(row, threshold)),) if marked else ()
                bt.add_row(*(_shown(row, d) for d in t.dims), c.shown(),
                           f"{_fmt(c.low)}–{_fmt(c.high)}", *care)  # fmt: skip
        hidden = sum(1 for _, c in t.cells if c.suppressed)
        out.print(bt)
        if hidden:
            out.print(f"{hidden} more cells are below {threshold} (shown as <{threshold}).")
    note = (
        "stored answer, nothing charged"
        if answer.stored
        else f"ε charged {answer.epsilon_charged:g}"
    )
    if answer.unit == "episodes":
        out.print(episodes_note(answer.contribution))
    out.print(
        f"{note}; budget left ε {answer.budget_left:g} (project {project}); noise: "
        f"{describe_noise(answer.params)}, counts below {threshold} shown as <{threshold}"
    )
    older = answer.to_json().get("mechanism_note")  # an answer stored before the partition
    if older:
        out.print(older)
    r = answer.receipt()
    out.print(
        f"receipt: query {answer.query_hash[:16]}, data release {answer.release}, audit entry "
        f"{r.get('audit_seq')}, signed by key {r.get('key_id')} (--json for the whole receipt)"
    )


def episodes_note(contribution: int) -> str:
    """What the counts of an `index each` cohort count (docs/language.md)."""
    return (
        "counts are episodes (person, index date), not persons: every qualifying event with "
        f"none in the washout before it; one person may count up to {contribution} times, "
        "and the noise is scaled for that"
    )
