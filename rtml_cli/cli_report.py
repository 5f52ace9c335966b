"""``rtml report``: render a run directory and gate CI with checks."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from rtml_cli.cli import _edge, _err, app


@app.command()
def report(
    run_dir: Annotated[str, typer.Argument(help="Run directory written by `rtml compare --out`.")],
    run_b: Annotated[
        str | None,
        typer.Argument(
            help="Optional second run directory, shown side by side (e.g. another model)."
        ),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="terminal, markdown, html, json or junit. Default: from the --out suffix "
            "(.html .md .json .xml), else terminal.",
        ),
    ] = None,
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            "-c",
            help="CI gate, repeatable: e.g. 'online.auc - batch.auc >= 0.01', 'stream.predict_p99_ms <= 20'.",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            "--output",
            help="Write the report to this file instead of stdout (an existing file needs --force).",
        ),
    ] = None,
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
            help="Capacity at this traffic multiplier too, e.g. '10x' (1x is always shown)."
        ),
    ] = None,
    slo: Annotated[
        str | None,
        typer.Option(
            help="End-to-end latency objective at p99 for capacity, e.g. '50ms' (default)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Also report capacity with this many workers.")
    ] = None,
) -> None:
    """Render a run directory: verdict, quality, freshness, compute, capacity; gate CI with --check.

    Never reruns the simulation. Exit codes: 0 every check passed (or none), 1 a check failed, 2 bad usage or an incomplete run directory, 3 a metric a check needs could not be computed.

    Checks also come from the run's config (report.checks or checks in rtml.toml). Names are strategy.metric (auc, accuracy, log_loss, f1, brier, mae, rmse, r2, auc_diff_low, predict_p99_ms, update_p99_ms, events_per_s, staleness_mean_s, workers_needed, e2e_p99_ms, ...); an unknown name lists the known ones.
    """
    from rtml_cli.report import run_report

    with _edge():
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
