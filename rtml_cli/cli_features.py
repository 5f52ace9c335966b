"""``rtml features`` and ``rtml export flink``: point-in-time feature values and the Flink job computing them."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from rtml_cli.cli import (
    CALENDAR,
    DURATION,
    RtmlGroup,
    RtmlTyper,
    _calendar,
    _csv_list,
    _edge,
    _err,
    app,
)
from rtml_cli.escape import for_terminal

_FEATURE_HELP = (
    "Windowed aggregate per key, repeatable: KEY:COLUMN:AGG:WINDOW[:NAME], e.g. "
    "'user_id:click:mean:1h' (added to the config's feature entries; empty KEY: whole table)."
)


# Options that `features` and `export flink` share, declared once.
_ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        metavar="PATH",
        help="rtml.toml (default: the one beside the table, if any).",
    ),
]
_FeatureOpt = Annotated[
    list[str] | None, typer.Option("--feature", metavar="SPEC", help=_FEATURE_HELP)
]
_CalendarOpt = Annotated[
    str | None,
    typer.Option("--calendar", metavar=CALENDAR, parser=_calendar, help="Calendar parts."),
]
_LabelDelayOpt = Annotated[
    str | None,
    typer.Option(
        "--label-delay",
        metavar=DURATION,
        show_default="0",
        help="Labels arrive this long after their event ('30m').",
    ),
]
_TimeColOpt = Annotated[
    str | None, typer.Option("--time-col", metavar="COLUMN", help="Event time column.")
]
_LabelColOpt = Annotated[
    str | None, typer.Option("--label-col", metavar="COLUMN", help="Label column.")
]
_LabelTimeColOpt = Annotated[
    str | None,
    typer.Option("--label-time-col", metavar="COLUMN", help="When each label became known."),
]
_KeyColOpt = Annotated[
    str | None, typer.Option("--key-col", metavar="COLUMN", help="Entity key column.")
]


@app.command()
def features(
    table: Annotated[str, typer.Argument(help="Event table (Parquet, CSV, NDJSON, Arrow IPC).")],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            metavar="PATH",
            help="Output file: .parquet, .csv, .ndjson/.jsonl or .arrow/.ipc.",
        ),
    ],
    config: _ConfigOpt = None,
    feature: _FeatureOpt = None,
    calendar: _CalendarOpt = None,
    as_of_cutoff: Annotated[
        str | None,
        typer.Option(
            "--as-of-cutoff",
            metavar=DURATION,
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


export_app = RtmlTyper(
    cls=RtmlGroup, help="Export rtml's feature semantics as a streaming job.", no_args_is_help=True
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
    out: Annotated[
        str, typer.Option("--out", "-o", metavar="PATH", help="SQL file to write (job.sql).")
    ],
    config: _ConfigOpt = None,
    feature: _FeatureOpt = None,
    calendar: _CalendarOpt = None,
    disorder: Annotated[
        str | None,
        typer.Option(
            "--disorder",
            metavar=DURATION,
            help="How late an event message may arrive (the replay's --disorder).",
        ),
    ] = None,
    label_delay: _LabelDelayOpt = None,
    mode: Annotated[
        Literal["batch", "streaming"] | None,
        typer.Option(
            "--mode",
            show_default="batch for ndjson:, streaming for kafka://",
            help="Flink runtime mode of the job.",
        ),
    ] = None,
    parallelism: Annotated[
        int, typer.Option("--parallelism", min=1, help="Flink parallelism of the job.")
    ] = 1,
    run: Annotated[
        bool,
        typer.Option(
            "--run", help="Run the job on a local Flink mini-cluster (PyFlink: rtml\\[flink])."
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

    One commented view per feature: each event joined with the rows of its key inside [t - w, t) (ties at t excluded, labels counted once their label message arrived) and grouped by the event. A watermark allows --disorder. --run executes it on a local Flink (pip install 'rtml\\[flink]', Java 17) over ndjson: endpoints and writes the sink's final values.
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
