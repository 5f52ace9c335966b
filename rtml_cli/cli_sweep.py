"""``rtml sweep``: run a grid of compare cells and write the freshness curve."""

from __future__ import annotations

from typing import Annotated

import typer

from rtml_cli.cli import _edge, _err, app

_GRID = "Grid"
_RUN = "Running"


def _timing(text: str) -> tuple[int | None, float | None]:
    """``--timing-sample``: ``auto`` (sample and budget as compare), ``all`` or a number."""
    from rtml_cli.compare import DEFAULT_TIMING_BUDGET_S, DEFAULT_TIMING_SAMPLE
    from rtml_cli.errors import UsageError

    t = text.strip().lower()
    if t == "all":
        return None, None
    if t == "auto":
        return DEFAULT_TIMING_SAMPLE, DEFAULT_TIMING_BUDGET_S
    try:
        n = int(t)
    except ValueError:
        n = -1
    if n < 0:
        raise UsageError(
            f"--timing-sample must be a number of events >= 0, 'auto' or 'all'. Got {text!r}."
        )
    return n, None


@app.command()
def sweep(
    table: Annotated[
        str,
        typer.Argument(help="Event table: Parquet (file, folder, glob), CSV, NDJSON or Arrow IPC."),
    ],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="Sweep directory: sweep.json, curve.parquet and cells/<cell>/ run directories. "
            "Rerun the same command to resume it.",
            rich_help_panel=_GRID,
        ),
    ],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            "-g",
            metavar="KEY=V1,V2",
            help="Repeatable. Keys: retrain_every (batch, stream), update_every (online), "
            "train_window (all kinds), label_delay, model. Each cell is one combination.",
            rich_help_panel=_GRID,
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="rtml.toml every cell starts from. Default: the rtml.toml beside the table.",
            rich_help_panel=_GRID,
        ),
    ] = None,
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies",
            "-s",
            metavar="STRATEGIES",
            show_default="the config's, else batch:1d,stream:1d,online:1,static",
            help="Compact form as in compare; the grid changes what each kind takes.",
            rich_help_panel=_GRID,
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="STRATEGY",
            show_default="the config's, else static",
            help="Strategy every difference is measured against, in every cell.",
            rich_help_panel=_GRID,
        ),
    ] = None,
    warmup: Annotated[
        str | None,
        typer.Option(
            "--warmup",
            help="Warm-up: a duration ('1d') or a fraction (0.2).",
            rich_help_panel=_GRID,
        ),  # fmt: skip
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Cells run in parallel local processes.",
            rich_help_panel=_RUN,
        ),  # fmt: skip
    ] = 1,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            envvar="RTML_DASK_ADDRESS",
            help="Send each cell as a task to this Dask scheduler (tcp://host:8786; needs the "
            "dask extra: pip install 'rtml\\[dask]'); its workers must see the table and --out at the same paths.",
            rich_help_panel=_RUN,
        ),
    ] = None,
    timing_sample: Annotated[
        str,
        typer.Option(
            "--timing-sample",
            metavar="auto|all|N",
            help="Single-row latency calls per strategy and cell, as in compare.",
            rich_help_panel=_RUN,
        ),  # fmt: skip
    ] = "auto",
    seed: Annotated[
        int,
        typer.Option(
            "--seed", min=0, help="Seed for presets, timing and bootstrap.", rich_help_panel=_RUN
        ),  # fmt: skip
    ] = 0,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Start over: replace a sweep directory rtml wrote (other arguments, or to rerun "
            "finished cells).",
            rich_help_panel=_RUN,
        ),
    ] = False,
) -> None:
    """Draw the freshness curve: one compare run per combination of --grid values.

    Example: rtml sweep events.parquet --grid retrain_every=7d,1d,1h --grid update_every=1,64 --out sweep. Render it with `rtml report SWEEP_DIR`. Exit codes: 0 every cell ran, 1 a cell failed (the others and the curve are written; rerun the same command to retry it), 2 bad usage or input.
    """
    from rtml_cli.escape import for_terminal
    from rtml_cli.sweep import run_sweep

    with _edge():
        sample, budget = _timing(timing_sample)
        res = run_sweep(
            table,
            grid=grid or [],
            out=out,
            config=config,
            strategies=strategies,
            baseline=baseline,
            warmup=warmup,
            seed=seed,
            timing_sample=sample,
            timing_budget_s=budget,
            jobs=jobs,
            dask=dask,
            force=force,
            echo=_err,
        )
        t = for_terminal
        ok = len(res.cells) - len(res.failed)
        typer.echo(
            f"rtml sweep → {t(res.out, inline=True)}: {ok} of {len(res.cells)} cells ok "
            f"({res.ran} run, {res.kept} kept) in {res.wall_s:.1f} s"
        )
        for c in res.failed:
            params = " ".join(f"{k}={v}" for k, v in c["params"].items())
            typer.echo(f"FAILED {c['alias']} ({t(params, inline=True)}): {t(c['error'])}")
        typer.echo(f"full report: rtml report {t(res.out, inline=True)}")
    if res.failed:
        _err(
            f"error: {len(res.failed)} of {len(res.cells)} cells failed; fix the cause and rerun "
            "the same command to run them (finished cells are kept)."
        )
        raise typer.Exit(code=res.exit_code)
