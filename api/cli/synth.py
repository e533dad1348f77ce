"""`antal synth`: deterministic synthetic extracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

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
    fmt: Annotated[
        Literal["parquet", "reporting"],
        typer.Option(
            "--format",
            help="parquet: the canonical layout; reporting: the patient register and the drug "
            "administrations as the reporting format's text files (delivery `reporting`).",
        ),
    ] = "parquet",
) -> None:
    """Generate synthetic, Swedish-shaped register extracts (one Parquet file per register,
    or with --format reporting the patient register's text files)."""
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
    if fmt == "reporting":
        from antal.synthetic.reporting import REPORTED, write_reporting

        files = write_reporting(out_dir)
        out.print(
            f"{', '.join(REPORTED)} written as {len(files)} text files in the reporting format; "
            "count on them with --config FILE holding `delivery: reporting`"
        )
