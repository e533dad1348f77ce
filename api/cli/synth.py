"""`antal synth`: deterministic synthetic extracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from antal.api.cli.common import err, out

__all__ = ["synth"]


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
