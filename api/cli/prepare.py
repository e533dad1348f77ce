"""`antal prepare`: a data release ingested into one DuckDB file laid out for cohort queries
(see `antal.engine.ingest`); `antal count --data FILE.duckdb` then counts on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from antal.api.cli.common import err, failing, load_catalog, out, settings
from antal.engine.limits import PREPARE_MEMORY

__all__ = ["prepare_cmd"]


def prepare_cmd(
    data: Annotated[Path, typer.Option("--data", help="Directory of canonical Parquet extracts.")],
    out_file: Annotated[
        Path, typer.Option("--out", help="The prepared DuckDB file to write (*.duckdb).")
    ],
    memory_limit: Annotated[
        str,
        typer.Option(help="DuckDB memory limit while ingesting (sorts spill to disk beyond it)."),
    ] = PREPARE_MEMORY,
    config: Annotated[
        Path | None,
        typer.Option(
            help="A delivery description of the files in --data (docs/extracts.md#deliveries)."
        ),
    ] = None,
) -> None:
    """Ingest a data release into one DuckDB file clustered for cohort queries (atomic: a
    failed prepare leaves the previous file as it was)."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from antal.api import usecases as uc

    s = settings(None, None, memory_limit=memory_limit)
    with failing():
        cat = load_catalog()
        with Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=err,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def step(rid: str, done: float) -> None:
                if rid not in tasks:
                    tasks[rid] = bar.add_task(rid, total=1.0)
                bar.update(tasks[rid], completed=done)

            made = uc.prepare_data(
                data, out_file, cat, s.memory_limit, s.threads, step, config=config
            )
    out.print(
        f"prepared {len(made.tables)} registers into {made.path}, data release {made.release}"
    )
