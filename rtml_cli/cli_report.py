"""``rtml report``: render a run directory and gate CI with checks."""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import typer

from rtml_cli.cli import DURATION, _edge, _either, _err, app


@app.command()
def report(
    run_dir: Annotated[
        str,
        typer.Argument(
            help="Run directory written by `rtml compare --out`, or a sweep directory of `rtml sweep`."
        ),
    ],
    run_b: Annotated[
        str | None,
        typer.Argument(
            help="Optional second run directory, shown side by side (e.g. another model)."
        ),
    ] = None,
    format: Annotated[
        Literal["terminal", "markdown", "html", "json", "junit"] | None,
        typer.Option(
            "--format",
            "-f",
            show_default="the --out suffix's, else terminal",
            help="Report format; an --out ending in .html .md .json or .xml picks its own.",
        ),
    ] = None,
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            "-c",
            metavar="EXPR",
            help="CI gate, repeatable: e.g. 'online.auc - batch.auc >= 0.01', 'stream.predict_p99_ms <= 20'.",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            metavar="PATH",
            help="Write the report to this file instead of stdout (an existing file needs --force).",
        ),
    ] = None,
    output_alias: Annotated[str | None, typer.Option("--output", hidden=True)] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an existing --out file (never a folder or a link)."),
    ] = False,
    github_summary: Annotated[
        bool,
        typer.Option(
            "--github-summary",
            help="Also append the Markdown report to $GITHUB_STEP_SUMMARY (stdout outside GitHub Actions).",
        ),
    ] = False,
    traffic: Annotated[
        str | None,
        typer.Option(
            metavar="MULTIPLIER",
            help="Capacity at this traffic multiplier too, e.g. '10x' (1x is always shown).",
        ),
    ] = None,
    slo: Annotated[
        str | None,
        typer.Option(
            metavar=DURATION,
            show_default="50ms",
            help="End-to-end latency objective at p99 for capacity.",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Also report capacity with this many workers.")
    ] = None,
) -> None:
    """Render a run directory: verdict, quality, freshness, compute, capacity; gate CI with --check.

    Never reruns the simulation. Exit codes: 0 every check passed (or none), 1 a check failed, 2 bad usage or an incomplete run directory, 3 a metric a check needs could not be computed.

    Checks also come from the run's config (report.checks or checks in rtml.toml). Names are strategy.metric (auc, accuracy, log_loss, f1, brier, mae, rmse, r2, auc_diff_low, predict_p99_ms, update_p99_ms, events_per_s, staleness_mean_s, workers_needed, e2e_p99_ms, ...); an unknown name lists the known ones.
    """
    from rtml_cli.report import run_report

    with _edge():
        output = _either(output, output_alias, "--out", "--output")
        out = run_report(
            run_dir,
            run_b,
            fmt=format,
            checks=check or [],
            output=output,
            force=force,
            github_summary=github_summary,
            traffic=traffic,
            slo=slo,
            workers=workers,
            color=sys.stdout.isatty(),
        )
        typer.echo(out.stdout, nl=False)
        for note in out.notes:
            _err(note)
    if out.exit_code:
        raise typer.Exit(code=out.exit_code)
