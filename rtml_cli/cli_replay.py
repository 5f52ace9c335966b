"""``rtml replay``: parse the replay flags, call :func:`rtml_cli.replay.replay`, render its summary."""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import typer

from rtml_cli.cli import DURATION, _csv_list, _edge, _err, app
from rtml_cli.escape import for_rich


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


# Panels of `rtml replay --help`: the options a target or a question needs, together.
_PACING = "Pacing"
_SELECTION = "Selection"
_COLUMNS = "Columns"
_NETWORK = "Network targets (http, kafka, redis)"
_HTTP = "HTTP"
_KAFKA = "Kafka"
_REDIS = "Redis"


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
            metavar="TARGET",
            help="Target: '-' (NDJSON on stdout), a .ndjson/.jsonl/.arrow/.parquet file, or a URL "
            "(http://, https://, kafka://, redis://).",
        ),
    ] = "-",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan (rows, span, messages, expected wall time); send nothing.",
        ),
    ] = False,
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
            metavar="PATH",
            help="rtml.toml to take the \\[data] roles from (default: the one beside the table, "
            "if any); flags override.",
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            metavar="RATIO",
            help="Pace by event time: event-time seconds per wall second (e.g. 3600 = 1 h/s).",
            rich_help_panel=_PACING,
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            metavar="PER_S",
            help="Pace by count: messages per wall second.",
            rich_help_panel=_PACING,
        ),
    ] = None,
    max_speed: Annotated[
        bool,
        typer.Option(
            "--max-speed",
            help="Send as fast as the target takes them. The default when neither --speed nor "
            "--rate is given.",
            rich_help_panel=_PACING,
        ),
    ] = False,
    max_gap: Annotated[
        str | None,
        typer.Option(
            metavar=DURATION,
            help="With --speed: idle event-time gaps longer than this (e.g. '5m') are shortened "
            "to it.",
            rich_help_panel=_PACING,
        ),
    ] = None,
    disorder: Annotated[
        str | None,
        typer.Option(
            metavar=DURATION,
            help="Delay each event's arrival by a random amount in \\[0, DURATION] (bounded "
            "disorder).",
            rich_help_panel=_PACING,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            min=0, help="Seed of --disorder (same seed, same stream).", rich_help_panel=_PACING
        ),
    ] = 0,
    start: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help="Replay events at or after this ISO time (event time).",
            rich_help_panel=_SELECTION,
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help="Replay events before this ISO time (event time, exclusive).",
            rich_help_panel=_SELECTION,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=0, help="Replay at most N events.", rich_help_panel=_SELECTION),
    ] = None,
    resume_from: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Skip the first N messages of the stream without sending them (continue an "
            "interrupted replay). Overrides a --checkpoint file; 0 starts over.",
            rich_help_panel=_SELECTION,
        ),
    ] = None,
    time_col: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN",
            help="Event time column (default: inferred).",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    label_col: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN",
            help="Label column (default: inferred; none: events only).",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    label_time_col: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN",
            help="Column holding when each label became known.",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    label_delay: Annotated[
        str | None,
        typer.Option(
            metavar=DURATION,
            show_default="0",
            help="Labels arrive this long after their event (e.g. '30m').",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    key_col: Annotated[
        str | None,
        typer.Option(metavar="COLUMN", help="Entity key column.", rich_help_panel=_COLUMNS),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            metavar="COLUMNS",
            help="Columns to leave out of messages (comma-separated, repeatable).",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    time_unit: Annotated[
        Literal["s", "ms", "us", "ns"] | None,
        typer.Option(
            help="Unit of an integer epoch time column.",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    time_format: Annotated[
        str | None,
        typer.Option(
            metavar="FORMAT",
            help="strftime format of a string time column, e.g. '%Y-%m-%d %H:%M'.",
            rich_help_panel=_COLUMNS,
        ),
    ] = None,
    drop_null_time: Annotated[
        bool,
        typer.Option(
            "--drop-null-time",
            help="Drop rows whose time is null instead of failing.",
            rich_help_panel=_COLUMNS,
        ),
    ] = False,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            metavar="PATH",
            help="Keep the confirmed position in this file as the replay goes; an existing file "
            "resumes from it.",
            rich_help_panel=_NETWORK,
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(
            min=0,
            show_default="5",
            help="Retries (with backoff) when the server goes away.",
            rich_help_panel=_NETWORK,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, show_default="1", help="Requests in flight at once.", rich_help_panel=_HTTP
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default="1",
            help="Events per POST, sent as a JSON list (1: one event object, not a list).",
            rich_help_panel=_HTTP,
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            metavar=DURATION,
            show_default="10s",
            help="How long a whole request (connect, send, full response) may take before it "
            "counts as a timeout: a duration such as '500ms', or seconds.",
            rich_help_panel=_HTTP,
        ),
    ] = None,
    max_response_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default="1048576",
            help="Largest response body accepted, in bytes; a larger one counts as an error and "
            "is not read.",
            rich_help_panel=_HTTP,
        ),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            metavar="'NAME: VALUE'",
            help="Extra request header (repeatable).",
            rich_help_panel=_HTTP,
        ),
    ] = None,
    score_field: Annotated[
        str | None,
        typer.Option(
            metavar="PATH",
            help="Dotted path of the prediction in the response JSON, e.g. 'proba.1'.",
            rich_help_panel=_HTTP,
        ),
    ] = None,
    record: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help="Write responses, latencies and joined labels to this new run directory (for "
            "rtml report).",
            rich_help_panel=_HTTP,
        ),
    ] = None,
    fail_on_error: Annotated[
        bool,
        typer.Option(
            "--fail-on-error",
            help="Stop at the first failed answer (4xx/5xx, timeout, broken, too large, no usable "
            "score) instead of counting it.",
            rich_help_panel=_HTTP,
        ),
    ] = False,
    kafka_config: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=VALUE",
            help="Producer setting (librdkafka names, repeatable).",
            rich_help_panel=_KAFKA,
        ),
    ] = None,
    maxlen: Annotated[
        int | None,
        typer.Option(
            min=1, help="Trim the stream to its newest N entries.", rich_help_panel=_REDIS
        ),
    ] = None,
) -> None:
    """Replay a table as a stream of event and label messages, paced by event time.

    Events are sent at their event time; labels when they became known (--label-time-col, or --label-delay after the event). Ties: time, then events before labels, then table order. Roles (time, label, label_time or label_delay, key, ignore) come from flags, else from \\[data] of the rtml.toml beside the table (or --config), else are inferred.

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
    from rtml_cli.sinks.transport import transport_options

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
