"""``rtml sample``: write a synthetic demo table."""

from __future__ import annotations

from typing import Annotated

import typer

from rtml_cli.cli import _edge, app
from rtml_cli.escape import for_terminal


@app.command()
def sample(
    name: Annotated[str, typer.Argument(help="Which sample table: clickstream or recurring.")],
    rows: Annotated[
        int | None,
        typer.Option(
            min=1, show_default="clickstream: 50,000; recurring: 20,000", help="Rows to generate."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Random seed: the same seed gives the same table.")
    ] = 0,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            metavar="PATH",
            show_default="NAME.parquet",
            help="Output file (.parquet, .csv, .ndjson, .arrow).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing output file (a regular file only).")
    ] = False,
) -> None:
    """Write a realistic synthetic table for demos, tests and benchmarks.

    clickstream: a recommendation impression log (ts, user_id, item_id, category, price, position, device, hour, item_popularity, click, click_time) whose user preferences drift within hours. A non-click is known 10 minutes after the impression (click_time = ts + 10m).

    recurring: one event a minute (ts, x1..x4, y) whose concept switches A → B → A (B from 50 % to 70 % of the rows): a fast online learner forgets A during B, a model retrained on all history does not. Labels have no time of their own: pass --label-delay to compare.

    The file is written to a temporary name beside the output and renamed when complete; an existing file needs --force.
    """
    from rtml_cli.sample import write_sample

    with _edge():
        path = write_sample(name, rows=rows, seed=seed, out=out, force=force)
        typer.echo(f"wrote {for_terminal(path, inline=True)}")
