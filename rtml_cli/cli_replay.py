"""``rtml replay``: parse the replay flags, call :func:`rtml_cli.replay.replay`, render its summary."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from rtml_cli.cli import _csv_list, _edge, _err, app
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
