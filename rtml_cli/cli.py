"""The ``rtml`` command line: parse, call one library function, render, map errors to exit codes.

No logic lives here (docs/ARCHITECTURE.md). Every command body is wrapped by :func:`_edge`, which turns
:class:`~rtml_cli.errors.RtmlError` into its exit code and prints warnings as one line each.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator
from typing import Annotated, NoReturn

import typer

from rtml_cli import __version__
from rtml_cli.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    RtmlError,
    RtmlWarning,
)
from rtml_cli.escape import for_rich, for_terminal

app = typer.Typer(
    name="rtml",
    help=(
        "What would moving this model from batch to streaming buy and cost? "
        "rtml replays your historical tables as event streams, simulates batch, stream, "
        "online and static deployments of a scikit-learn model, and reports the difference."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _err(text: str) -> None:
    """One line (or a few) on stderr, with user-derived control characters made visible."""
    typer.echo(for_terminal(text), err=True)


#: Environment variable that, like ``--debug``, prints the traceback of an internal error.
DEBUG_ENV = "RTML_DEBUG"
_debug = False

# OS errors a user's environment causes (a read-only folder, a full disk, a missing path):
# reported as bad input, never as a bug.
_USER_OS_ERRORS = {
    errno.ENOSPC,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EMFILE,
    errno.ENOTEMPTY,
}


def _debugging() -> bool:
    return _debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextlib.contextmanager
def _edge() -> Iterator[None]:
    """Turn library errors into exit codes and warnings into one stderr line each.

    Warnings are recorded while the command runs and shown only after the recording block has
    ended: showing a foreign warning inside it would record it again (an endless loop).
    """
    failure: BaseException | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RtmlWarning)
        try:
            yield
        except GeneratorExit:
            raise
        except BaseException as exc:  # sorted below, once the warnings are shown
            failure = exc
        recorded = list(caught)
    _flush_warnings(recorded)
    if failure is None:
        return
    if isinstance(failure, typer.Exit):
        raise failure
    if isinstance(failure, RtmlError):
        _err(f"error: {failure}")
        raise typer.Exit(code=failure.exit_code) from None
    if isinstance(failure, KeyboardInterrupt):
        _err("interrupted")
        raise typer.Exit(code=EXIT_INTERRUPTED) from None
    if isinstance(failure, SystemExit):
        # rtml never calls sys.exit inside a command: this came from user code (a factory,
        # a model) and must not pass for success or for a failed check.
        _err(
            f"error: code run on rtml's behalf called sys.exit({failure.code!r}); "
            "a model or factory must return or raise, not exit."
        )
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    if isinstance(failure, MemoryError):
        _err(
            "error: out of memory. Use a smaller input (fewer rows, a shorter --start/--end "
            "span, fewer strategies) or a machine with more memory."
        )
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    if isinstance(failure, OSError) and failure.errno in _USER_OS_ERRORS:
        where = f" '{failure.filename}'" if failure.filename else ""
        _err(
            f"error: cannot use{where}: {failure.strerror or failure}. "
            "Check the path, its permissions and the free disk space."
        )
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    _internal_error(failure)


def _internal_error(exc: BaseException) -> NoReturn:
    """A bug in rtml: one line and exit 70; the traceback only with --debug or RTML_DEBUG=1."""
    if _debugging():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    _err(
        f"internal error: {type(exc).__name__}{': ' + first if first else ''}\n"
        "This is a bug in rtml; please report it with the command you ran"
        + ("." if _debugging() else f" and the traceback (rerun with --debug or {DEBUG_ENV}=1).")
    )
    raise typer.Exit(code=EXIT_INTERNAL) from None


def _flush_warnings(caught: list[warnings.WarningMessage], *, limit: int = 20) -> None:
    """Show each distinct warning once; after ``limit`` distinct ones, only count the rest."""
    seen: set[tuple[type[Warning], str]] = set()
    hidden = 0
    for w in caught:
        text = str(w.message)
        if (w.category, text) in seen:
            continue
        seen.add((w.category, text))
        if len(seen) > limit:
            hidden += 1
        elif issubclass(w.category, RtmlWarning):
            _err(f"warning: {text}")
        else:  # not ours (a library's, a user model's): say whose it is
            _err(f"warning ({w.category.__name__}, {w.filename}:{w.lineno}): {text}")
    if hidden:
        _err(f"warning: {hidden} more distinct warnings not shown")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rtml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help=f"Print the traceback of an internal error (exit 70); same as {DEBUG_ENV}=1.",
        ),
    ] = False,
) -> None:
    """rtml: batch vs streaming, measured on your own history.

    Exit codes: 0 ok, 1 a --check failed, 2 bad usage or input, 3 a metric a check needs could
    not be computed, 70 internal error (a bug in rtml), 130 interrupted.
    """
    global _debug
    _debug = debug


# ---- replay -----------------------------------------------------------------------------


def _csv_list(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _render_pairs(title: str, pairs: list[tuple[str, str]]) -> None:
    """Key/value lines on stderr: a rich table on a terminal, plain text otherwise."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for k, v in pairs:
            # values carry user paths and names: Rich would parse "[/b]" as markup and pass ESC
            table.add_row(for_rich(k), for_rich(v))
        Console(stderr=True).print(table)
    else:
        _err(title)
        for k, v in pairs:
            _err(f"  {k}: {v}")


@app.command()
def replay(
    table: Annotated[
        str, typer.Argument(help="Table: Parquet file/folder/glob, CSV, NDJSON or Arrow IPC.")
    ],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            "-o",
            help="Target: '-' (NDJSON on stdout), a .ndjson/.jsonl/.arrow/.parquet file, or a URL.",
        ),
    ] = "-",
    speed: Annotated[
        float | None,
        typer.Option(
            help="Pace by event time: event-time seconds per wall second (e.g. 3600 = 1 h/s)."
        ),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Pace by count: messages per wall second.")
    ] = None,
    max_speed: Annotated[
        bool,
        typer.Option(
            "--max-speed",
            help="Send as fast as the target takes them. The default when neither --speed nor --rate is given.",
        ),
    ] = False,
    start: Annotated[
        str | None, typer.Option(help="Replay events at or after this ISO time (event time).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Replay events before this ISO time (event time, exclusive).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Replay at most N events.")] = None,
    max_gap: Annotated[
        str | None,
        typer.Option(
            help="With --speed: idle event-time gaps longer than this (e.g. '5m') are shortened to it."
        ),
    ] = None,
    label_delay: Annotated[
        str | None,
        typer.Option(help="Labels arrive this long after their event (e.g. '30m'); default 0."),
    ] = None,
    disorder: Annotated[
        str | None,
        typer.Option(
            help="Delay each event's arrival by a random amount in [0, DURATION] (bounded disorder)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --disorder (same seed, same stream).")] = 0,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan (rows, span, messages, expected wall time); send nothing.",
        ),
    ] = False,
    resume_from: Annotated[
        int | None,
        typer.Option(
            help="Skip the first N messages of the stream without sending them (continue an "
            "interrupted replay). Overrides a --checkpoint file; 0 starts over."
        ),
    ] = None,
    time_col: Annotated[
        str | None, typer.Option(help="Event time column (default: inferred).")
    ] = None,
    label_col: Annotated[
        str | None, typer.Option(help="Label column (default: inferred; none: events only).")
    ] = None,
    label_time_col: Annotated[
        str | None, typer.Option(help="Column holding when each label became known.")
    ] = None,
    key_col: Annotated[str | None, typer.Option(help="Entity key column.")] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(help="Columns to leave out of messages (comma-separated, repeatable)."),
    ] = None,
    time_unit: Annotated[
        str | None, typer.Option(help="Unit of an integer epoch time column: s, ms, us, ns.")
    ] = None,
    time_format: Annotated[
        str | None,
        typer.Option(help="strftime format of a string time column, e.g. '%Y-%m-%d %H:%M'."),
    ] = None,
    drop_null_time: Annotated[
        bool,
        typer.Option("--drop-null-time", help="Drop rows whose time is null instead of failing."),
    ] = False,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="Network targets: keep the confirmed position in this file as the replay goes; an existing file resumes from it."
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(
            help="Network targets: retries (with backoff) when the server goes away (default 5)."
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="http://: requests in flight at once (default 1).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="http://: events per POST, sent as a JSON list (default 1: one event object)."
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            help="http://: how long a whole request (connect, send, full response) may take before it counts as a timeout: seconds or a duration such as '500ms' (default 10s)."
        ),
    ] = None,
    max_response_bytes: Annotated[
        int | None,
        typer.Option(
            help="http://: largest response body accepted, in bytes; a larger one counts as an error and is not read (default 1048576)."
        ),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(help="http://: extra request header 'Name: value' (repeatable)."),
    ] = None,
    score_field: Annotated[
        str | None,
        typer.Option(
            help="http://: dotted path of the prediction in the response JSON, e.g. 'proba.1'."
        ),
    ] = None,
    record: Annotated[
        str | None,
        typer.Option(
            help="http://: write responses, latencies and joined labels to this new run directory (for rtml report)."
        ),
    ] = None,
    fail_on_error: Annotated[
        bool,
        typer.Option(
            "--fail-on-error",
            help="http://: stop at the first failed answer (4xx/5xx, timeout, broken, too large, no usable score) instead of counting it.",
        ),
    ] = False,
    kafka_config: Annotated[
        list[str] | None,
        typer.Option(help="kafka://: producer setting KEY=VALUE (librdkafka names, repeatable)."),
    ] = None,
    maxlen: Annotated[
        int | None, typer.Option(help="redis://: trim the stream to its newest N entries.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing output file (a regular file only, never the input).",
        ),
    ] = False,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="rtml.toml to take the [data] roles from (default: the one beside the table, if any); flags override.",
        ),
    ] = None,
) -> None:
    """Replay a table as a stream of event and label messages, paced by event time.

    Events are sent at their event time; labels when they became known (--label-time-col, or --label-delay after the event). Ties: time, then events before labels, then table order. Roles (time, label, label_time or label_delay, key, ignore) come from flags, else from [data] of the rtml.toml beside the table (or --config), else are inferred.

    Pace with --speed or --rate; the default is --max-speed. Progress goes to stderr while it runs; a summary (messages, achieved rate, lateness p50/p99/max against the schedule) follows.

    A file output is written whole or not at all: to a temporary file beside it, renamed into place when complete. A failed or interrupted (Ctrl-C) replay leaves the file as it was. An existing file needs --force.
    """
    from rtml_cli.durations import parse_duration, parse_timestamp
    from rtml_cli.errors import UsageError
    from rtml_cli.io import Roles
    from rtml_cli.replay import ReplayOptions, ReplaySource, plan_replay
    from rtml_cli.replay import replay as run
    from rtml_cli.replay_guard import roles_from_config
    from rtml_cli.replay_progress import Progress
    from rtml_cli.sinks.retry import transport_options

    with _edge():
        if max_speed and (speed is not None or rate is not None):
            raise UsageError("--max-speed contradicts --speed/--rate: pass one pace only.")
        _start, sink_options = transport_options(
            to,
            resume_from=resume_from,
            checkpoint=checkpoint,
            retries=retries,
            key_col=key_col,
            source=table,
            concurrency=concurrency,
            batch_size=batch_size,
            timeout_s=(
                parse_duration(timeout, what="--timeout") / 1e6 if timeout is not None else None
            ),
            max_response_bytes=max_response_bytes,
            headers=header,
            score_field=score_field,
            record=record,
            fail_on_error=fail_on_error,
            kafka_config=kafka_config,
            maxlen=maxlen,
        )
        roles, label_delay_us, config_note = roles_from_config(
            table,
            Roles(
                time=time_col,
                label=label_col,
                key=key_col,
                label_time=label_time_col,
                ignore=_csv_list(ignore),
                time_unit=time_unit,
                time_format=time_format,
            ),
            config=config,
            label_delay=label_delay,
        )
        if config_note:
            _err(f"note: {config_note}")
        opts = ReplayOptions(
            label_delay_us=label_delay_us,
            drop_null_time=drop_null_time,
            start=parse_timestamp(start, what="--start") if start else None,
            end=parse_timestamp(end, what="--end") if end else None,
            limit=limit,
            max_gap_us=parse_duration(max_gap, what="--max-gap") if max_gap else None,
            disorder_us=parse_duration(disorder, what="--disorder") if disorder else 0,
            seed=seed,
            speed=speed,
            rate=rate,
            start_position=resume_from,  # None: from --checkpoint, checked against this replay
        )
        if dry_run:
            plan = plan_replay(table, roles, opts, to=to, sink_options=sink_options, force=force)
            for note in plan.notes:
                _err(f"note: {note}")
            typer.echo("\n".join(plan.lines()))
            return
        shown: list[str] = []

        def started(src: ReplaySource) -> None:  # notes before the first message, not after
            shown.extend(src.notes)
            for note in src.notes:
                _err(f"note: {note}")

        summary = run(
            table,
            roles,
            opts,
            to=to,
            sink_options=sink_options,
            force=force,
            on_start=started,
            # a status line redrawn in place would garble data written to the same terminal
            progress=lambda total: Progress(
                sys.stderr,
                total=total,
                tty=sys.stderr.isatty() and not (to == "-" and sys.stdout.isatty()),
            ),
        )
        for note in summary.notes[len(shown) :]:
            _err(f"note: {note}")
        _render_pairs(
            "replay interrupted" if summary.interrupted else "replay done", summary.rows()
        )
        if summary.interrupted:
            raise KeyboardInterrupt


@app.command()
def sample(
    name: Annotated[str, typer.Argument(help="Which sample table: clickstream.")],
    rows: Annotated[
        int | None, typer.Option(help="Rows to generate (clickstream: 50,000 by default).")
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Random seed: the same seed gives the same table.")
    ] = 0,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help="Output file (.parquet, .csv, .ndjson, .arrow); default NAME.parquet.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing output file (a regular file only).")
    ] = False,
) -> None:
    """Write a realistic synthetic table for demos, tests and benchmarks.

    clickstream: a recommendation impression log (ts, user_id, item_id, category, price, position, device, hour, item_popularity, click, click_time) whose user preferences drift within hours. A non-click is known 10 minutes after the impression (click_time = ts + 10m).

    The file is written to a temporary name beside the output and renamed when complete; an existing file needs --force.
    """
    from rtml_cli.sample import write_sample

    with _edge():
        path = write_sample(name, rows=rows, seed=seed, out=out, force=force)
        typer.echo(f"wrote {for_terminal(path, inline=True)}")


# ---- compare ----------------------------------------------------------------------------


@app.command()
def compare(
    table: Annotated[
        str,
        typer.Argument(help="Event table: Parquet (file, folder, glob), CSV, NDJSON or Arrow IPC."),
    ],
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="rtml.toml to use. Default: the rtml.toml beside the table, if any (said on stderr).",
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out", "-o", help="Run directory to write (default runs/<table>-<UTC time>)."
        ),
    ] = None,
    time_col: Annotated[
        str | None, typer.Option("--time-col", help="Event time column (default: inferred).")
    ] = None,
    label_col: Annotated[
        str | None, typer.Option("--label-col", help="Label column (default: inferred).")
    ] = None,
    key_col: Annotated[
        str | None, typer.Option("--key-col", help="Entity column (default: one global entity).")
    ] = None,
    label_time_col: Annotated[
        str | None, typer.Option("--label-time-col", help="When each label became known.")
    ] = None,
    label_delay: Annotated[
        str | None, typer.Option("--label-delay", help="Fixed label delay, e.g. '30m' (default 0).")
    ] = None,
    features: Annotated[
        list[str] | None,
        typer.Option("--features", help="Feature columns (comma-separated or repeated)."),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option("--ignore", help="Columns never used as features, e.g. leaks."),
    ] = None,
    request_features: Annotated[
        list[str] | None,
        typer.Option(
            "--request-features",
            help="Features known at request time: batch takes them from the event itself.",
        ),
    ] = None,
    feature: Annotated[
        list[str] | None,
        typer.Option(
            "--feature",
            help="Windowed aggregate per key, point-in-time, repeatable: KEY:COLUMN:AGG:WINDOW[:NAME], "
            "e.g. 'user_id:click:mean:1h' or 'user_id:*:count:5m' (empty KEY: whole table). "
            "AGG: count sum mean min max std last count_distinct.",
        ),
    ] = None,
    calendar: Annotated[
        str | None,
        typer.Option(
            "--calendar",
            help="Request-time calendar features of the event time: 'hour', 'dow' or 'hour,dow'.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace --out if it is an existing run directory (only once the new run is complete).",
        ),
    ] = False,
    warmup: Annotated[
        str | None,
        typer.Option(
            "--warmup",
            help="Warm-up: a duration ('7d') or a fraction of events (0.2, the default).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Preset (logreg sgd hgb rf nb; regression: ridge linear sgd hgb rf), an estimator "
            "class 'sklearn.linear_model:SGDClassifier' (nothing but an estimator class is called), "
            "or 'model.py:factory': a Python file rtml imports and runs, with your permissions; its "
            "model gets the raw features (strings as Python str). Default: sgd.",
        ),
    ] = None,
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies",
            "-s",
            help="Compact form: 'batch:1d,stream,online:1'. batch:R[:WINDOW] and stream:R retrain "
            "every R (default 1d); online:K updates every K labels (default 1); static. Names: the kind, or "
            "kind_param when a kind repeats; 'name=kind:param' names one. Default: batch:1d,stream:1d,online:1.",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline", help="Strategy the others are compared with (default: the first)."
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Strategies simulated in parallel processes.")
    ] = 1,
    timing_sample: Annotated[
        str,
        typer.Option(
            "--timing-sample",
            help="Events per strategy whose latency is measured with a real single-row call: "
            "'auto' (a uniform sample of up to 2000, thinned to about 2 s of calls per strategy, "
            "at least 400), a number, or 'all'. batch serves precomputed scores: never timed per "
            "request.",
        ),
    ] = "auto",
    timing: Annotated[
        str | None,
        typer.Option(
            "--timing",
            help="'all': time every event with a real single-row call (= --timing-sample all).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed for presets and the timing sample.")
    ] = 0,
) -> None:
    """Simulate batch, stream, online and static deployments of one model on a table; write a run directory.

    Zero config works: roles, task and model are inferred and stated on stderr. Render the run with `rtml report RUN_DIR`.
    """
    from rtml_cli.compare import compare_cli

    with _edge():
        compare_cli(
            table,
            config=config,
            out=out,
            time_col=time_col,
            label_col=label_col,
            key_col=key_col,
            label_time_col=label_time_col,
            label_delay=label_delay,
            features=_csv_list(features) or None,
            ignore=_csv_list(ignore),
            request_features=_csv_list(request_features),
            feature=feature,
            calendar=_csv_list([calendar]) if calendar is not None else None,
            force=force,
            warmup=warmup,
            model=model,
            strategies=strategies,
            baseline=baseline,
            jobs=jobs,
            timing_sample=timing or timing_sample,
            seed=seed,
            echo=_err,
        )


# ---- report -----------------------------------------------------------------------------


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


# ---- features and export flink -----------------------------------------------------------

_FEATURE_HELP = (
    "Windowed aggregate per key, repeatable: KEY:COLUMN:AGG:WINDOW[:NAME], e.g. "
    "'user_id:click:mean:1h' (added to the config's feature entries; empty KEY: whole table)."
)


# Options that `features` and `export flink` share, declared once.
_ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", help="rtml.toml (default: the one beside the table, if any)."),
]
_FeatureOpt = Annotated[list[str] | None, typer.Option("--feature", help=_FEATURE_HELP)]
_CalendarOpt = Annotated[
    str | None, typer.Option("--calendar", help="Calendar parts: 'hour', 'dow' or 'hour,dow'.")
]
_LabelDelayOpt = Annotated[
    str | None,
    typer.Option("--label-delay", help="Labels arrive this long after their event ('30m')."),
]
_TimeColOpt = Annotated[str | None, typer.Option("--time-col", help="Event time column.")]
_LabelColOpt = Annotated[str | None, typer.Option("--label-col", help="Label column.")]
_LabelTimeColOpt = Annotated[
    str | None, typer.Option("--label-time-col", help="When each label became known.")
]
_KeyColOpt = Annotated[str | None, typer.Option("--key-col", help="Entity key column.")]


@app.command()
def features(
    table: Annotated[str, typer.Argument(help="Event table (Parquet, CSV, NDJSON, Arrow IPC).")],
    out: Annotated[
        str,
        typer.Option(
            "--out", "-o", help="Output file: .parquet, .csv, .ndjson/.jsonl or .arrow/.ipc."
        ),
    ],
    config: _ConfigOpt = None,
    feature: _FeatureOpt = None,
    calendar: _CalendarOpt = None,
    as_of_cutoff: Annotated[
        str | None,
        typer.Option(
            "--as-of-cutoff",
            help="Batch view: values as of the cutoff floor(t / R) * R (R e.g. '1d', a grid since the Unix epoch, UTC) instead of as of each event.",
        ),
    ] = None,
    label_delay: _LabelDelayOpt = None,
    time_col: _TimeColOpt = None,
    label_col: _LabelColOpt = None,
    label_time_col: _LabelTimeColOpt = None,
    key_col: _KeyColOpt = None,
    drop_null_time: Annotated[
        bool, typer.Option("--drop-null-time", help="Drop rows whose time is null.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing output file (never the input).")
    ] = False,
) -> None:
    """Write every event's windowed and calendar feature values, point-in-time, as rtml computes them.

    One row per event: rtml_event_id (the id `rtml replay` messages carry), one column per windowed feature and per calendar part (event_hour, event_dow). Fresh view by default (as of each event: the window [t - w, t), the event and its ties excluded, labels only once arrived); --as-of-cutoff R gives the batch view. Roles are read as `rtml replay` reads them. The reference that `rtml export flink` jobs are tested against.
    """
    from rtml_cli.features_cli import write_features
    from rtml_cli.io import Roles

    with _edge():
        path, job, rows = write_features(
            table,
            out,
            force=force,
            as_of_cutoff=as_of_cutoff,
            drop_null_time=drop_null_time,
            config=config,
            roles=Roles(time=time_col, label=label_col, key=key_col, label_time=label_time_col),
            label_delay=label_delay,
            feature=feature or [],
            calendar=_csv_list([calendar]) if calendar is not None else None,
        )
        for note in job.notes:
            _err(f"note: {note}")
        view = f"as of cutoffs every {as_of_cutoff}" if as_of_cutoff else "fresh"
        shown = for_terminal(path, inline=True)
        typer.echo(f"wrote {shown}: {rows} events, {len(job.columns()) - 1} features ({view})")


export_app = typer.Typer(
    help="Export rtml's feature semantics as a streaming job.", no_args_is_help=True
)
app.add_typer(export_app, name="export")


@export_app.command("flink")
def export_flink_cmd(
    table: Annotated[str, typer.Argument(help="Event table the features are defined on.")],
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="Messages of `rtml replay`: kafka://HOST:PORT/TOPIC or ndjson:PATH.",
        ),
    ],
    sink: Annotated[
        str,
        typer.Option(
            "--sink",
            help="Where the features go: kafka://HOST:PORT/TOPIC (upsert by rtml_event_id) or ndjson:FOLDER.",
        ),
    ],
    out: Annotated[str, typer.Option("--out", "-o", help="SQL file to write (job.sql).")],
    config: _ConfigOpt = None,
    feature: _FeatureOpt = None,
    calendar: _CalendarOpt = None,
    disorder: Annotated[
        str | None,
        typer.Option(
            "--disorder", help="How late an event message may arrive (the replay's --disorder)."
        ),
    ] = None,
    label_delay: _LabelDelayOpt = None,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode", help="batch (default for ndjson:) or streaming (default for kafka://)."
        ),
    ] = None,
    parallelism: Annotated[
        int, typer.Option("--parallelism", help="Flink parallelism of the job.")
    ] = 1,
    run: Annotated[
        bool,
        typer.Option(
            "--run", help="Run the job on a local Flink mini-cluster (PyFlink: rtml[flink])."
        ),
    ] = False,
    time_col: _TimeColOpt = None,
    label_col: _LabelColOpt = None,
    label_time_col: _LabelTimeColOpt = None,
    key_col: _KeyColOpt = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an existing SQL file, and the sink folder's output."),
    ] = False,
) -> None:
    """Write the Flink SQL job computing `rtml features` from `rtml replay` messages; --run runs it.

    One commented view per feature: each event joined with the rows of its key inside [t - w, t) (ties at t excluded, labels counted once their label message arrived) and grouped by the event. A watermark allows --disorder. --run executes it on a local Flink (pip install 'rtml[flink]', Java 17) over ndjson: endpoints and writes the sink's final values.
    """
    from rtml_cli.export_flink import export_flink
    from rtml_cli.io import Roles

    with _edge():
        res = export_flink(
            table,
            out=out,
            source=source,
            sink=sink,
            disorder=disorder,
            mode=mode,
            parallelism=parallelism,
            run=run,
            force=force,
            config=config,
            roles=Roles(time=time_col, label=label_col, key=key_col, label_time=label_time_col),
            label_delay=label_delay,
            feature=feature or [],
            calendar=_csv_list([calendar]) if calendar is not None else None,
        )
        for note in res.job.notes:
            _err(f"note: {note}")
        typer.echo(
            f"wrote {for_terminal(res.sql_path, inline=True)}: {len(res.job.windowed)} windowed "
            f"and {len(res.job.calendar)} calendar features, {res.export.mode} mode"
        )
        if res.seconds is not None:
            typer.echo(
                f"flink job done in {res.seconds:.1f} s: {res.rows} rows in "
                f"{for_terminal(sink, inline=True)}"
            )


def _terminated(signum: int, frame: object) -> None:
    # SIGTERM (kill, timeout, a cancelled CI job) ends a run like Ctrl-C: its cleanup runs
    # (temporary files removed, previous outputs kept) and it exits 130.
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point (``rtml``)."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interrupt outside a command body
        _err("interrupted")
        sys.exit(EXIT_INTERRUPTED)
