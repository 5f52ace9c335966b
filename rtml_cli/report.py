"""``rtml report``: turn a run directory into a verdict, tables, charts and a CI gate.

The report is made in three steps, one module each:

* :mod:`rtml_cli.report_build` reads the run and gathers the report dict
  (:func:`build_report`; its types and JSON format in :mod:`rtml_cli.report_schema`, the
  ``metrics.json`` it reads in :mod:`rtml_cli.metrics_schema`), with the verdict's sentences
  written by :mod:`rtml_cli.report_verdict`;
* :mod:`rtml_cli.report_layout` turns it into format-neutral sections (:func:`layout`; one
  function per section);
* :mod:`rtml_cli.report_formats` renders it per format (:func:`render`), drawing the sections
  with :mod:`rtml_cli.report_render` (terminal, Markdown, HTML; charts in
  :mod:`rtml_cli.report_svg`); numbers are written by :mod:`rtml_cli.report_values`.

This module is the command: :func:`run_report` builds, renders, writes the file and the GitHub
job summary. The names above are re-exported here, the library's entry points.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtml_cli.errors import UsageError
from rtml_cli.escape import for_terminal
from rtml_cli.report_build import build_report, primary_metric, read_reportable_run
from rtml_cli.report_formats import (
    FORMAT_OF_SUFFIX,
    FORMATS,
    check_format,
    render,
    render_html,
    render_json,
    render_junit,
    render_markdown,
    render_terminal,
)
from rtml_cli.report_layout import layout
from rtml_cli.report_render import sparkline
from rtml_cli.report_schema import SCHEMA_VERSION, Report
from rtml_cli.report_values import METRIC_LABEL
from rtml_cli.report_verdict import capacity_phrase
from rtml_cli.safe_write import atomic_output, refuse_existing, refuse_input_as_output

__all__ = [
    "FORMATS",
    "METRIC_LABEL",
    "SCHEMA_VERSION",
    "Report",
    "ReportOutput",
    "build_report",
    "capacity_phrase",
    "layout",
    "primary_metric",
    "read_reportable_run",
    "render",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "render_terminal",
    "run_report",
    "sparkline",
]


def _write_atomic(target: Path, text: str, *, force: bool, inputs: Sequence[Path]) -> None:
    """Write beside the target and rename: a failed write never leaves half a report, an
    existing file is replaced only with ``force``, and a file of the run is never the target."""
    refuse_input_as_output(target, inputs)
    refuse_existing(target, force=force, what="report file")
    try:
        with atomic_output(target) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"Cannot write the report to '{for_terminal(target, inline=True)}' "
            f"({exc.strerror or exc}); pass another --out."
        ) from None


def _check_summary_target(path: str, runs: Sequence[str | Path]) -> None:
    """$GITHUB_STEP_SUMMARY is appended to: never a file of the run read (that would damage
    the run), never something other than a regular file (a FIFO would block forever)."""
    shown = for_terminal(path, inline=True)
    try:
        refuse_input_as_output(path, runs)
    except UsageError:
        raise UsageError(
            f"$GITHUB_STEP_SUMMARY ('{shown}') lies inside the run directory being reported; "
            "appending the summary would damage the run. Point it at another file."
        ) from None
    if os.path.lexists(path) and not os.path.isfile(path):
        raise UsageError(
            f"$GITHUB_STEP_SUMMARY ('{shown}') is not a regular file; rtml appends the job "
            "summary only to a regular file. Point it at another file, or unset it."
        )


@dataclass
class ReportOutput:
    """What the CLI prints (``stdout``, may be empty; ``notes``, one stderr line each) and exits
    with."""

    stdout: str
    exit_code: int
    written: str | None = None
    notes: list[str] = field(default_factory=list)


def run_report(
    run_dir: str | Path,
    run_b: str | Path | None = None,
    *,
    fmt: str | None = None,
    checks: Sequence[str] = (),
    output: str | Path | None = None,
    force: bool = False,
    github_summary: bool = False,
    traffic: str | None = None,
    slo: str | None = None,
    workers: int | None = None,
    color: bool = False,
) -> ReportOutput:
    """Everything ``rtml report`` does: build, render, write the file and the job summary.

    With ``output`` the rendered report goes to that file and stdout gets a one-line note plus
    the check results; ``github_summary`` appends the Markdown rendering to
    ``$GITHUB_STEP_SUMMARY``. Outside GitHub Actions (the variable unset) the summary goes to
    stdout instead, with a note saying so; it is left out, with a note, when stdout already
    carries a JSON, JUnit or HTML report that Markdown would corrupt. Without ``fmt`` the
    format follows ``output``'s suffix (``.html``, ``.md``, ``.json``, ``.xml``), else terminal.
    """
    if fmt is None:
        suffix = Path(output).suffix.lower() if output is not None else ""
        fmt = FORMAT_OF_SUFFIX.get(suffix, "terminal")
    check_format(fmt)
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if github_summary and summary_path:
        _check_summary_target(summary_path, [run_dir] + ([run_b] if run_b is not None else []))
    from rtml_cli import sweep_report  # a folder written by `rtml sweep` has its own report

    rep: Any  # a run's Report, or a sweep's report dict
    draw: Callable[..., str] = render
    if sweep_report.is_sweep(run_dir):
        build: Callable[..., Any] = sweep_report.build_sweep_report
        draw = sweep_report.render_sweep
    else:
        build = build_report
    rep = build(run_dir, run_b, checks=checks, traffic=traffic, slo=slo, workers=workers)
    text = draw(rep, fmt, color=color and output is None)
    written = None
    stdout = text
    notes: list[str] = []
    if output is not None:
        runs = [Path(run_dir)] + ([Path(run_b)] if run_b is not None else [])
        _write_atomic(Path(output), text, force=force, inputs=runs)
        written = str(output)
        t = for_terminal
        lines = [f"wrote {fmt} report to {t(output, inline=True)}"]
        lines += [
            f"{str(c['status']).upper():5} {t(c['check'], inline=True)}  "
            f"({t(c['detail'], inline=True)})"
            for c in rep["checks"]
        ]
        stdout = "\n".join(lines) + "\n"
    if github_summary:
        md = text if fmt == "markdown" else draw(rep, "markdown")
        unset = "$GITHUB_STEP_SUMMARY is not set (GitHub Actions sets it)"
        if summary_path:
            with open(summary_path, "a", encoding="utf-8") as fh:
                fh.write(md + "\n")
        elif fmt == "markdown" and output is None:
            notes.append(f"{unset}: the Markdown summary is the report on stdout.")
        elif output is None and fmt in ("json", "junit", "html"):
            notes.append(
                f"{unset}, and stdout carries the {fmt} report: the Markdown summary was not "
                "written. Pass --out FILE to get it on stdout."
            )
        else:
            stdout += ("\n" if stdout else "") + md
            notes.append(f"{unset}: the Markdown summary went to stdout.")
    return ReportOutput(stdout, rep["exit_code"], written, notes)
